/**
 * `agentca agent`: the sidecar for workloads in any language. Bootstraps an identity with the
 * Node SDK, writes key.pem (0600), cert.pem (leaf + chain) and bundle.pem atomically, rewrites
 * them on every rotation, then runs --exec and/or signals a process so it reloads them. One JSON
 * log line per event on stderr (never the token or the key). SIGTERM/SIGINT: optionally retire
 * the instance, then stop. When renewal stops for good (a permanent refusal such as a revoked
 * certificate or an ended task, or expiry without a successful renewal) it exits 1 with the
 * one-line error.
 */
import type { Command } from 'commander';
import { exec } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { AgentIdentity, AgentCAClientError } from '@agentca/client';
import { AgentCAError, InvalidRequest, Unavailable, parseDuration } from '@agentca/core';
import { writeFileAtomic } from '@agentca/node';
import { errorForStatus } from '../http-client.ts';
import { readInput, type CliIo } from '../io.ts';

interface AgentOptions {
  server: string;
  token: string;
  caBundle: string;
  outDir: string;
  exec?: string;
  signal?: string;
  retireOnExit?: boolean;
  ttl?: string;
  renewAt?: string;
}

/** The SDK's error as the CLI's error class, so main.ts prints `error: … (CODE)`. */
function toCliError(e: unknown): Error {
  if (e instanceof AgentCAError) return e;
  if (e instanceof AgentCAClientError) {
    if (e.status === null) return e.code === 'ERR_OPTION_INVALID' ? new InvalidRequest(e.code, e.message) : new Unavailable(e.code, e.message);
    return errorForStatus(e.status, e.code, e.message);
  }
  return e as Error;
}

interface SignalTarget {
  pid: number;
  signal: NodeJS.Signals;
}

function parseSignal(spec: string): SignalTarget {
  const m = /^(\d+)(?::([A-Z0-9]+))?$/.exec(spec);
  if (!m) throw new InvalidRequest('ERR_OPTION_INVALID', `--signal must be PID or PID:SIGNAL, not ${JSON.stringify(spec)}`);
  const pid = Number(m[1]);
  let sig = m[2] ?? 'SIGHUP';
  if (!sig.startsWith('SIG')) sig = `SIG${sig}`;
  if (!(sig in osConstants.signals)) throw new InvalidRequest('ERR_OPTION_INVALID', `--signal: unknown signal ${m[2]}`);
  if (!(pid > 0)) throw new InvalidRequest('ERR_OPTION_INVALID', '--signal: the PID must be positive');
  return { pid, signal: sig as NodeJS.Signals };
}

function parseRenewAt(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!(Number.isFinite(n) && n > 0 && n < 1)) throw new InvalidRequest('ERR_OPTION_INVALID', `--renew-at must be a fraction between 0 and 1 (exclusive), not ${JSON.stringify(s)}`);
  return n;
}

export function register(program: Command, io: CliIo): void {
  program
    .command('agent')
    .description('sidecar: bootstrap with a join token, keep the certificate renewed, write key.pem, cert.pem and bundle.pem atomically on every rotation')
    .requiredOption('--server <url>', 'the CA, e.g. https://127.0.0.1:8443')
    .requiredOption('--token <token>', 'the one-time join token (or @file to read it from a file)')
    .requiredOption('--ca-bundle <file>', 'trust bundle to verify the CA server with')
    .requiredOption('--out-dir <dir>', 'where to write cert.pem, key.pem and bundle.pem')
    .option('--exec <command>', 'shell command to run after each rotation (env: AGENTCA_CERT, AGENTCA_KEY, AGENTCA_BUNDLE)')
    .option('--signal <pid[:sig]>', 'process to signal after each rotation (default signal SIGHUP)')
    .option('--retire-on-exit', 'on SIGTERM/SIGINT, ask the CA to revoke every certificate of this instance')
    .option('--ttl <duration>', 'requested lifetime of each certificate (default: the profile default)')
    .option('--renew-at <fraction>', 'fraction of the lifetime after which to renew', '0.66')
    .action(async (o: AgentOptions) => {
      const log = (event: string, fields: Record<string, unknown> = {}): void =>
        io.err(JSON.stringify({ time: new Date().toISOString(), event: `agent.${event}`, ...fields }) + '\n');
      const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
      const token = o.token.startsWith('@') ? dec(readInput(io, o.token.slice(1), 'token file', 4096)).trim() : o.token;
      const caBundle = dec(readInput(io, o.caBundle, 'CA bundle'));
      const ttlSeconds = o.ttl !== undefined ? parseDuration(o.ttl, '--ttl') : undefined;
      const renewAt = parseRenewAt(o.renewAt);
      const target = o.signal !== undefined ? parseSignal(o.signal) : undefined;
      const paths = { key: join(o.outDir, 'key.pem'), cert: join(o.outDir, 'cert.pem'), bundle: join(o.outDir, 'bundle.pem') };

      let identity: AgentIdentity;
      try {
        identity = await AgentIdentity.bootstrap({
          server: o.server,
          caBundle,
          token,
          ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
          ...(renewAt !== undefined ? { renewAt } : {}),
        });
      } catch (e) {
        throw toCliError(e);
      }

      const writeFiles = (): void => {
        // The key first: a reader that sees the new certificate always finds its key.
        writeFileAtomic(paths.key, identity.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
        writeFileAtomic(paths.cert, identity.certificate);
        writeFileAtomic(paths.bundle, caBundle);
      };
      mkdirSync(o.outDir, { recursive: true, mode: 0o700 });
      writeFiles();
      log('bootstrapped', { spiffeId: identity.spiffeId, instanceId: identity.instanceId, serial: identity.serial, notAfter: identity.notAfter.toISOString(), dir: o.outDir });

      const notify = (): void => {
        if (o.exec !== undefined) {
          const env = { ...io.env, AGENTCA_CERT: paths.cert, AGENTCA_KEY: paths.key, AGENTCA_BUNDLE: paths.bundle };
          try {
            exec(o.exec, { env, timeout: 60_000 }, (err, _stdout, stderr) => {
              if (err) log('exec-failed', { code: err.code ?? null, signal: err.signal ?? null, stderr: String(stderr).slice(0, 500) });
            });
          } catch (e) {
            log('exec-failed', { message: (e as Error).message });
          }
        }
        if (target !== undefined) {
          try {
            process.kill(target.pid, target.signal);
          } catch (e) {
            log('signal-failed', { pid: target.pid, signal: target.signal, code: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
          }
        }
      };

      identity.on('rotated', ({ serial, notAfter }) => {
        try {
          writeFiles();
        } catch (e) {
          log('write-failed', { serial, code: (e as NodeJS.ErrnoException).code ?? null, message: (e as Error).message });
          return;
        }
        log('rotated', { serial, notAfter: notAfter.toISOString() });
        notify();
      });
      let lastFailure: AgentCAClientError | null = null;
      identity.on('renewal-failed', ({ error, retryInMs }) => {
        lastFailure = error;
        log('renewal-failed', { code: error.code, status: error.status, message: error.message, retryInMs });
      });
      identity.on('expired', () => log('expired', { serial: identity.serial, notAfter: identity.notAfter.toISOString() }));

      // The SDK's timers are unref'd: this keeps the sidecar alive until a signal ends it, or
      // renewal stops for good (the CA refused for good, or the certificate expired unrenewed):
      // then the sidecar exits non-zero so its supervisor sees it, instead of serving stale files.
      const keepAlive = setInterval(() => {}, 1 << 30);
      await new Promise<void>((resolve, reject) => {
        let stopping = false;
        const fail = (err: Error): void => {
          if (stopping) return;
          stopping = true;
          identity.close();
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          clearInterval(keepAlive);
          reject(err);
        };
        identity.on('renewal-failed', ({ error, retryInMs }) => {
          if (retryInMs === null) fail(toCliError(new AgentCAClientError(error.code, `renewal refused for good: ${error.message}`, error.status)));
        });
        identity.on('expired', () => {
          const last = lastFailure ? `; last attempt: ${lastFailure.message}` : '';
          fail(new Unavailable('ERR_CERTIFICATE_EXPIRED', `certificate ${identity.serial} expired at ${identity.notAfter.toISOString()} without a successful renewal${last}`));
        });
        const stop = (signal: NodeJS.Signals): void => {
          if (stopping) return;
          stopping = true;
          log('stopping', { signal });
          const done = (): void => {
            identity.close();
            process.off('SIGTERM', stop);
            process.off('SIGINT', stop);
            clearInterval(keepAlive);
            log('stopped');
            resolve();
          };
          if (!o.retireOnExit) return done();
          identity.retire().then(
            (a) => log('retired', { instanceId: a.instanceId, revoked: a.revoked, changed: a.changed }),
            (e) => log('retire-failed', { code: (e as AgentCAClientError).code ?? null, message: (e as Error).message }),
          ).finally(done);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });
}
