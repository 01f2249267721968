/**
 * Starts `agentca serve` as a real process on a free loopback port and stops it; reads the
 * listening address from its structured log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { AGENTCA_BIN, PASSPHRASE } from './cli.ts';

export interface Served {
  url: string;
  /** The HTTPS issuance API. */
  apiUrl: string;
  port: number;
  child: ChildProcess;
  logs: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startServe(dir: string, extra: string[] = []): Promise<Served> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AGENTCA_')) env[k] = v;
  env.AGENTCA_PASSPHRASE = PASSPHRASE;
  const child = spawn(process.execPath, [AGENTCA_BIN, 'serve', '--dir', dir, '--http-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', ...extra], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  let buf = '';
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let apiUrl = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agentca serve did not start:\n${logs.join('')}`)), 30_000);
    child.stderr!.on('data', (b: Buffer) => {
      buf += b.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        logs.push(line + '\n');
        try {
          const j = JSON.parse(line) as { event?: string; http?: string; https?: string };
          if (j.event === 'serve.listening' && j.http) {
            clearTimeout(timer);
            apiUrl = j.https ?? '';
            resolve(j.http);
          }
        } catch {
          /* not JSON */
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agentca serve exited ${code}:\n${logs.join('')}${buf}`));
    });
  });
  return {
    url,
    apiUrl,
    port: Number(new URL(url).port),
    child,
    logs,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** A port that was free a moment ago (for servers that need a port in their config). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 5000, everyMs = 10): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
