/**
 * Drives the real `agentca` binary (node packages/cli/bin/agentca.js) and the tools we check
 * its output with (openssl, sqlite3, ../shared/conformance/check-chain.sh). Every run gets a
 * passphrase in its environment unless a test takes it away, and no AGENTCA_* variable of the
 * developer's shell leaks in.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const AGENTCA_BIN = join(repoRoot, 'packages/cli/bin/agentca.js');
/** CI clones the repo next to a copy of shared/, so `../shared` is right locally and in CI. */
export const CHECK_CHAIN = resolve(repoRoot, '../shared/conformance/check-chain.sh');
export const PASSPHRASE = 'correct-horse-battery';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Merged over the base environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  input?: string | Uint8Array;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs any program to completion; never throws on a non-zero exit. */
export function run(command: string, args: readonly string[], opts: RunOptions & { baseEnv?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...(opts.baseEnv ?? process.env) };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd ?? scratchCwd(), env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ').slice(0, 200)} did not finish within ${opts.timeoutMs ?? 90_000} ms`));
    }, opts.timeoutMs ?? 90_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => {
      /* the child may exit before reading its input */
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs `agentca ARGS` from source, with AGENTCA_PASSPHRASE set and no other AGENTCA_* variable. */
export function runCli(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const baseEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AGENTCA_')) baseEnv[k] = v;
  baseEnv.AGENTCA_PASSPHRASE = PASSPHRASE;
  return run(process.execPath, [AGENTCA_BIN, ...args], { ...opts, baseEnv });
}

/** Runs a command and fails the test (with its stderr) unless it exits 0. */
export async function ok(command: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = command === 'agentca' ? await runCli(args, opts) : await run(command, args, opts);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ').slice(0, 300)} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

let scratch: string | undefined;
/** The working directory of every run: empty, so a forgotten --dir never writes into the repo. */
function scratchCwd(): string {
  scratch ??= tempDir('cwd');
  return scratch;
}

const made: string[] = [];
/** A fresh directory under os.tmpdir(); removed by {@link removeTempDirs}. */
export function tempDir(label: string): string {
  const d = mkdtempSync(join(tmpdir(), `agentca-e2e-${label}-`));
  made.push(d);
  return d;
}

export function removeTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
  scratch = undefined;
}

/** Creates a CA in `dir` (which must not exist yet) and returns `dir`. */
export async function initCa(dir: string, opts: { trustDomain?: string; keyAlg?: string } = {}): Promise<string> {
  await ok('agentca', ['init', '--dir', dir, '--trust-domain', opts.trustDomain ?? 'example.org', ...(opts.keyAlg ? ['--key-alg', opts.keyAlg] : [])]);
  return dir;
}

/** Number of certificates `agentca list --json` shows, and their SPIFFE IDs. */
export async function listed(dir: string): Promise<{ serial: string; spiffeId: string; instanceId: string; notAfter: string; status: string }[]> {
  return JSON.parse(await ok('agentca', ['list', '--dir', dir, '--json', '--limit', '1000000']));
}

/**
 * Rows in the store's certificates and serials tables, read with the sqlite3 shell (another
 * connection; WAL readers never block the CLI). A serial is reserved before signing, so an
 * unchanged serial count means a request did not even get that far.
 */
export async function storeCounts(dir: string): Promise<{ certificates: number; serials: number }> {
  // The CLI may be writing (WAL): wait for its lock instead of failing with SQLITE_BUSY.
  const out = await ok('sqlite3', ['-cmd', '.timeout 10000', join(dir, 'agentca.db'), 'SELECT (SELECT count(*) FROM certificates), (SELECT count(*) FROM serials)']);
  const [certificates, serials] = out.trim().split('|').map(Number);
  return { certificates: certificates!, serials: serials! };
}

export type KeyType = 'ec-p256' | 'ec-p384' | 'ed25519' | 'rsa-1024' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

function newKeyArgs(k: KeyType): string[] {
  if (k === 'ec-p256') return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  if (k === 'ec-p384') return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'];
  if (k === 'ed25519') return ['-newkey', 'ed25519'];
  return ['-newkey', `rsa:${k.slice('rsa-'.length)}`];
}

/**
 * Makes a key and a PKCS#10 request with `openssl req`, as a workload would; returns the paths.
 * `extra` adds e.g. `-addext` options.
 */
export async function makeCsr(dir: string, name: string, key: KeyType, extra: string[] = []): Promise<{ csr: string; key: string }> {
  const csr = join(dir, `${name}.csr`);
  const keyFile = join(dir, `${name}.key.pem`);
  await ok('openssl', ['req', '-new', ...newKeyArgs(key), '-nodes', '-keyout', keyFile, '-out', csr, '-subj', '/CN=ignored-by-the-ca', ...extra]);
  return { csr, key: keyFile };
}

/** The PEM blocks of `text`, each with its BEGIN/END lines and a final newline. */
export function pemBlocks(text: string, label = 'CERTIFICATE'): string[] {
  const re = new RegExp(`-----BEGIN ${label}-----\\r?\\n[\\s\\S]*?-----END ${label}-----\\r?\\n?`, 'g');
  return (text.match(re) ?? []).map((b) => (b.endsWith('\n') ? b : b + '\n'));
}

/**
 * The CLI's failure contract (PRODUCT §5, STYLE "Errors"): a non-zero exit and exactly one
 * line on stderr, `error: <message> (<code>)`, with the expected code. Returns the message.
 */
export function expectOneLineError(r: RunResult, code: string): string {
  expect(r.code, `exit code; stderr: ${r.stderr}`).not.toBe(0);
  expect(r.code).not.toBeNull();
  expect(r.stderr.endsWith('\n'), `stderr ends with a newline: ${JSON.stringify(r.stderr)}`).toBe(true);
  const lines = r.stderr.slice(0, -1).split('\n');
  expect(lines, 'stderr is exactly one line').toHaveLength(1);
  const m = /^error: (.+) \((ERR_[A-Z_]+)\)$/.exec(lines[0]!);
  expect(m, `stderr matches "error: <message> (<code>)": ${lines[0]}`).not.toBeNull();
  expect(m![2]).toBe(code);
  return m![1]!;
}
