/**
 * The `agentca agent` sidecar next to a client that only reads files: it boots with a join
 * token, writes key.pem (0600), cert.pem (leaf + intermediate) and bundle.pem atomically, and
 * rewrites them on every renewal. It logs one JSON line per event on stderr.
 *
 *   agentca agent --server https://ca:8443 --token @token --ca-bundle root.pem --out-dir ./identity
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { AGENTCA } from './ca.ts';

/** One line of the sidecar's log, e.g. `{"event":"agent.rotated","serial":"4a…",…}`. */
export type SidecarEvent = { event: string } & Record<string, unknown>;

export class Sidecar extends EventEmitter<{ event: [SidecarEvent] }> {
  readonly outDir: string;
  readonly #child: ChildProcess;
  readonly log: SidecarEvent[] = [];

  constructor(o: { server: string; tokenFile: string; caBundleFile: string; outDir: string; ttl: string; renewAt: string }) {
    super();
    this.outDir = o.outDir;
    const args = ['agent', '--server', o.server, '--token', `@${o.tokenFile}`, '--ca-bundle', o.caBundleFile, '--out-dir', o.outDir, '--ttl', o.ttl, '--renew-at', o.renewAt];
    // The sidecar needs no CA secret: only the CA's URL, its bundle and a one-time token.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AGENTCA_')));
    this.#child = spawn(AGENTCA, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let pending = '';
    this.#child.stderr!.on('data', (b: Buffer) => {
      pending += b.toString();
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let e: SidecarEvent;
        try {
          e = JSON.parse(line) as SidecarEvent;
        } catch {
          e = { event: 'agent.output', line };
        }
        this.log.push(e);
        this.emit('event', e);
      }
    });
    this.#child.on('exit', (code, signal) => {
      const e = { event: 'agent.exited', code, signal };
      this.log.push(e);
      this.emit('event', e);
    });
  }

  get certFile(): string {
    return join(this.outDir, 'cert.pem');
  }
  get keyFile(): string {
    return join(this.outDir, 'key.pem');
  }

  /**
   * The first event named `name` (`bootstrapped`, `rotated`, `renewal-failed`, …) logged at or
   * after position `since` of {@link log} (default: from now on); rejects after `timeoutMs`.
   */
  next(name: string, timeoutMs: number, since = this.log.length): Promise<SidecarEvent> {
    const seen = this.log.slice(since).find((e) => e.event === `agent.${name}`);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const onEvent = (e: SidecarEvent): void => {
        if (e.event === `agent.${name}`) done(() => resolve(e));
        else if (e.event === 'agent.exited') done(() => reject(new Error(`the sidecar exited (${String(e.code ?? e.signal)}): ${this.#lastLines()}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no agent.${name} from the sidecar within ${timeoutMs} ms: ${this.#lastLines()}`))), timeoutMs);
      const done = (then: () => void): void => {
        clearTimeout(timer);
        this.off('event', onEvent);
        then();
      };
      this.on('event', onEvent);
    });
  }

  /** Stops the sidecar (SIGTERM; SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(force);
  }

  #lastLines(): string {
    return this.log.slice(-3).map((e) => JSON.stringify(e)).join(' ');
  }
}
