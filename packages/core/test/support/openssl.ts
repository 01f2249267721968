/**
 * Run-time fixtures from the openssl CLI: keys and PKCS#10 requests made by an implementation
 * independent of the lean encoder. Every caller works in its own temp dir (parallel-safe).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type OpensslKeyKind =
  | 'ec-p256'
  | 'ec-p384'
  | 'ed25519'
  | 'rsa-1024'
  | 'rsa-2048'
  | 'rsa-3072'
  | 'rsa-4096'
  | 'ec-p192'
  | 'ec-secp256k1'
  | 'ed448';

const GENPKEY_ARGS: Record<OpensslKeyKind, string[]> = {
  'ec-p256': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'ec-p384': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  ed25519: ['-algorithm', 'ED25519'],
  'rsa-1024': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'],
  'rsa-2048': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
  'rsa-3072': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072'],
  'rsa-4096': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:4096'],
  'ec-p192': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime192v1'],
  'ec-secp256k1': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1'],
  ed448: ['-algorithm', 'ED448'],
};

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `agentca-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Runs openssl in `cwd`; throws with its stderr when it fails, so a broken fixture is obvious. */
export function openssl(args: string[], cwd: string, input?: string | Uint8Array): { stdout: string; stderr: string } {
  const r = spawnSync('openssl', args, { cwd, input, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`openssl ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** Generates a private key (PEM) in `dir` and returns its path. */
export function genKey(dir: string, kind: OpensslKeyKind, name: string = kind): string {
  const path = join(dir, `${name}.key.pem`);
  openssl(['genpkey', ...GENPKEY_ARGS[kind], '-out', path], dir);
  return path;
}

export interface CsrOptions {
  subject?: string;
  /** Each becomes one `-addext` (e.g. `subjectAltName=URI:spiffe://example.org/a`). */
  addext?: string[];
  /** Extra arguments for `openssl req` (e.g. `-sigopt rsa_padding_mode:pss`). */
  extra?: string[];
}

let counter = 0;

/** A CSR for `keyPath` made by `openssl req`, as PEM text and DER bytes. */
export function makeCsr(dir: string, keyPath: string, o: CsrOptions = {}): { pem: string; der: Uint8Array } {
  const base = join(dir, `req-${process.pid}-${++counter}`);
  const args = ['req', '-new', '-key', keyPath, '-subj', o.subject ?? '/CN=agentca-test-subject', '-out', `${base}.pem`];
  for (const e of o.addext ?? []) args.push('-addext', e);
  args.push(...(o.extra ?? []));
  openssl(args, dir);
  openssl(['req', '-in', `${base}.pem`, '-outform', 'DER', '-out', `${base}.der`], dir);
  return { pem: readFileSync(`${base}.pem`, 'utf8'), der: new Uint8Array(readFileSync(`${base}.der`)) };
}

/** The SubjectPublicKeyInfo DER of a private key, as openssl writes it. */
export function publicKeyDer(dir: string, keyPath: string): Uint8Array {
  const out = join(dir, `pub-${process.pid}-${++counter}.der`);
  openssl(['pkey', '-in', keyPath, '-pubout', '-outform', 'DER', '-out', out], dir);
  return new Uint8Array(readFileSync(out));
}
