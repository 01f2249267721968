/**
 * Starts `agentca serve` as a real process on a free loopback port and stops it; reads the
 * listening address from its structured log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { request } from 'node:https';
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

/** `env` is merged over the test's environment (from which every AGENTCA_* variable but the passphrase is taken out). */
export async function startServe(dir: string, extra: string[] = [], opts: { env?: Record<string, string> } = {}): Promise<Served> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AGENTCA_')) env[k] = v;
  env.AGENTCA_PASSPHRASE = PASSPHRASE;
  Object.assign(env, opts.env);
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

/** POSTs `body` as JSON to `path` of serve's HTTPS API with a Bearer credential; `ca` is the PEM the server is checked against. */
export function postJson(served: Served, ca: string, path: string, body: unknown, bearer: string): Promise<{ status: number; body: any }> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, served.apiUrl), { method: 'POST', ca, headers: { 'content-type': 'application/json', 'content-length': payload.length, authorization: `Bearer ${bearer}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A loopback port that was free a moment ago (for servers that need a port in their config).
 * Drawn at random below the kernel's ephemeral range (32768–60999 here): a port the kernel
 * handed out for `listen(0)` goes back to that pool when closed and can be taken by the next
 * outgoing connection of any test running in parallel before our server binds it (seen once
 * in CI as EADDRINUSE). Below the range, only another test's pick can collide, and the probe
 * bind catches any already taken.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = 20_000 + randomInt(12_000);
    if (await canBind(port)) return port;
    if (attempt === 50) throw new Error('no free loopback port found in 20000–31999');
  }
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
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
