/**
 * The operator's side: a CA in a directory, run with the `agentca` command — `init`,
 * `serve --on-crl-update`, `token create`, `revoke`, exactly as a platform engineer would
 * type them.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The `agentca` command this package depends on (`pnpm exec agentca` from the repository root). */
export const AGENTCA = fileURLToPath(new URL('./node_modules/.bin/agentca', import.meta.url));

export class LocalCa {
  readonly dir: string;
  /** The HTTPS issuance API, once {@link serve} runs. */
  apiUrl = '';
  /** The plain-HTTP listener: `/crl`, `/crl.pem`, `/ocsp`. */
  httpUrl = '';
  readonly #env: NodeJS.ProcessEnv;
  #serve: ChildProcess | null = null;
  readonly #running = new Set<ChildProcess>();
  #serveLog: string[] = [];

  /** A CA in `dir` (which must not exist yet): call {@link init} to create it. */
  constructor(dir: string) {
    this.dir = dir;
    // The CA keys are encrypted with a passphrase that only ever lives in the environment.
    this.#env = { ...withoutAgentcaVariables(process.env), AGENTCA_PASSPHRASE: randomBytes(24).toString('base64url') };
  }

  /** `agentca init`: root, intermediate, admin certificate, store and CRLs in the directory. */
  async init(trustDomain: string): Promise<void> {
    await this.#run(['init', '--trust-domain', trustDomain]);
  }

  /** The trust bundle (root certificates) every party trusts. */
  get bundle(): string {
    return readFileSync(join(this.dir, 'root.pem'), 'utf8');
  }

  /** The issuing CA's certificate. */
  get intermediate(): string {
    return readFileSync(join(this.dir, 'intermediate.pem'), 'utf8');
  }

  /**
   * The proxy CRL file (the issuing CA's CRL, then the root's, PEM): written by `init`,
   * replaced atomically by `serve` within a second of each revocation.
   */
  get crlFile(): string {
    return join(this.dir, 'crl.pem');
  }

  /**
   * `agentca serve` on free loopback ports; resolves once it listens. `onCrlUpdate` is a shell
   * command run after each new CRL file (here: reload nginx, which reads `ssl_crl` only then).
   */
  async serve(o: { onCrlUpdate?: string } = {}): Promise<void> {
    const args = ['serve', '--dir', this.dir, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'];
    if (o.onCrlUpdate) args.push('--on-crl-update', o.onCrlUpdate);
    const child = spawn(AGENTCA, args, {
      env: this.#env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.#serve = child;
    let pending = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('agentca serve did not start within 30 s')), 30_000);
      child.stderr!.on('data', (b: Buffer) => {
        pending += b.toString();
        for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          this.#serveLog.push(line);
          const event = parseJson(line);
          if (event?.event === 'serve.listening') {
            this.apiUrl = String(event.https);
            this.httpUrl = String(event.http);
            clearTimeout(timer);
            resolve();
          }
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`agentca serve exited ${code}:\n${this.#serveLog.join('\n')}`));
      });
    });
  }

  /** `agentca token create`: a one-time join token for `spiffeId`. */
  async createToken(spiffeId: string): Promise<string> {
    return (JSON.parse(await this.#run(['token', 'create', '--id', spiffeId, '--json'])) as { token: string }).token;
  }

  /** `agentca revoke --instance`: every certificate of the instance, durable when it returns. */
  async revokeInstance(instanceId: string): Promise<{ serials: string[]; revokedAt: Date | null }> {
    const out = JSON.parse(await this.#run(['revoke', '--instance', instanceId, '--json'])) as { revoked: { serial: string; revokedAt: string }[] };
    const first = out.revoked[0];
    return { serials: out.revoked.map((r) => r.serial), revokedAt: first ? new Date(first.revokedAt) : null };
  }

  /** What `agentca serve` logged (one JSON line per event). */
  get serveLog(): readonly string[] {
    return this.#serveLog;
  }

  /** Stops `agentca serve` (SIGTERM, then SIGKILL after 5 s) and any command still running. */
  async stop(): Promise<void> {
    for (const c of this.#running) c.kill('SIGTERM');
    const child = this.#serve;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(force);
  }

  #run(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = execFile(AGENTCA, [...args, '--dir', this.dir], { env: this.#env, timeout: 30_000 }, (err, stdout, stderr) => {
        this.#running.delete(child);
        if (err) reject(new Error(`agentca ${args.slice(0, 2).join(' ')} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      });
      this.#running.add(child);
    });
  }
}

function withoutAgentcaVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('AGENTCA_')));
}

function parseJson(line: string): Record<string, unknown> | null {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
}
