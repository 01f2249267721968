/**
 * What `agentca issue` emits, checked by three independent validators (OpenSSL, GnuTLS and
 * Python cryptography, through ../shared/conformance/check-chain.sh) for every CA key type,
 * with CSRs made by `openssl req` as a workload would make them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_CHAIN, initCa, makeCsr, ok, pemBlocks, removeTempDirs, run, tempDir, type KeyType } from './support/cli.ts';

const TD = 'example.org';
const KEY_TYPES = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
type CaKeyType = (typeof KEY_TYPES)[number];

let root: string;
const caDirs = new Map<CaKeyType, string>();

beforeAll(async () => {
  root = tempDir('conformance');
  // One CA per key type, made side by side: RSA-4096 key generation dominates.
  await Promise.all(KEY_TYPES.map(async (k) => caDirs.set(k, await initCa(join(root, `ca-${k}`), { trustDomain: TD, keyAlg: k }))));
}, 180_000);

afterAll(removeTempDirs);

interface Issued {
  leaf: string;
  intermediates: string;
  roots: string;
  chainPem: string;
}

/** `agentca issue` into a chain file, split into leaf / intermediate, plus `agentca bundle`. */
async function issue(ca: string, csr: string, id: string, name: string): Promise<Issued> {
  const work = tempDir(name);
  const out = join(work, 'chain.pem');
  await ok('agentca', ['issue', '--dir', ca, '--csr', csr, '--id', id, '--out', out]);
  const chainPem = readFileSync(out, 'utf8');
  const certs = pemBlocks(chainPem);
  expect(certs, 'the chain file holds the leaf then the intermediate').toHaveLength(2);
  expect(certs[1]).toBe(readFileSync(join(ca, 'intermediate.pem'), 'utf8'));
  const leaf = join(work, 'leaf.pem');
  const intermediates = join(work, 'intermediates.pem');
  const roots = join(work, 'roots.pem');
  writeFileSync(leaf, certs[0]!);
  writeFileSync(intermediates, certs[1]!);
  await ok('agentca', ['bundle', '--dir', ca, '--out', roots]);
  expect(pemBlocks(readFileSync(roots, 'utf8')).length).toBeGreaterThanOrEqual(1);
  return { leaf, intermediates, roots, chainPem };
}

async function checkChain(c: Issued, id: string): Promise<{ code: number | null; lines: string[] }> {
  const r = await run(CHECK_CHAIN, [c.leaf, c.intermediates, c.roots, '--id', id, '--max-ttl', '3600']);
  return { code: r.code, lines: r.stdout.trimEnd().split('\n') };
}

const ALL_OK = ['openssl: ok', 'gnutls: ok', 'python-cryptography: ok'];

async function publicKeyOf(args: string[]): Promise<string> {
  return ok('openssl', args);
}

describe.concurrent('every CA key type, with a CSR of the same type', () => {
  it.each(KEY_TYPES)('%s: issue → bundle → check-chain.sh', async (k) => {
    const ca = caDirs.get(k)!;
    const id = `spiffe://${TD}/agent/conformance-${k}`;
    const { csr, key } = await makeCsr(tempDir(`csr-${k}`), 'workload', k as KeyType);
    const c = await issue(ca, csr, id, `issue-${k}`);

    // The CSR contributes its public key, and nothing else: the CN it asked for is dropped.
    expect(await publicKeyOf(['x509', '-in', c.leaf, '-noout', '-pubkey'])).toBe(await publicKeyOf(['pkey', '-in', key, '-pubout']));
    expect((await ok('openssl', ['x509', '-in', c.leaf, '-noout', '-subject'])).trim()).toBe('subject=');

    const r = await checkChain(c, id);
    if (k !== 'ed25519') {
      expect(r.lines).toEqual(ALL_OK);
      expect(r.code).toBe(0);
      return;
    }
    // Python cryptography's verifier applies a WebPKI policy (CA/B Forum key rules) that
    // forbids Ed25519 keys outright, so it refuses an Ed25519 chain whatever its content.
    // OpenSSL and GnuTLS validate it. The python line must carry that one failure only —
    // anything after it would be a SPIFFE-rule failure from validate_svid.py.
    expect(r.lines).toHaveLength(3);
    expect(r.lines[0]).toBe('openssl: ok');
    expect(r.lines[1]).toBe('gnutls: ok');
    expect(r.lines[2]).toMatch(
      /^python-cryptography: FAIL: path validation failed: validation failed: candidates exhausted: Forbidden public key algorithm: AlgorithmIdentifier \{[^}]*params: Ed25519 \} ?$/,
    );
    expect(r.code).not.toBe(0);
  });
});

describe.concurrent('CSR content does not reach the certificate', () => {
  it('a CSR asking for CA:TRUE (and repeating the attested SAN) gets a CA:FALSE leaf that validates', async () => {
    const id = `spiffe://${TD}/agent/a`;
    const { csr } = await makeCsr(tempDir('csr-ca'), 'wants-ca', 'ec-p256', [
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      `subjectAltName=URI:${id}`,
    ]);
    expect(await ok('openssl', ['req', '-in', csr, '-noout', '-text'])).toContain('CA:TRUE');
    const c = await issue(caDirs.get('ec-p256')!, csr, id, 'issue-ca-request');

    const text = await ok('openssl', ['x509', '-in', c.leaf, '-noout', '-text']);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).not.toContain('CA:TRUE');
    expect(text).not.toContain('Certificate Sign');
    expect(text).not.toContain('ignored-by-the-ca');
    expect(text.match(/URI:[^\s,]+/g)).toEqual([`URI:${id}`]);

    const r = await checkChain(c, id);
    expect(r.lines).toEqual(ALL_OK);
    expect(r.code).toBe(0);
  });

  it.each([
    ['rsa-2048', 'Key Encipherment'],
    ['ec-p384', null],
  ] as const)('an ec-p256 CA issues for a %s CSR', async (k, extraUsage) => {
    const id = `spiffe://${TD}/agent/mixed-${k}`;
    const { csr, key } = await makeCsr(tempDir(`csr-mixed-${k}`), 'workload', k);
    const c = await issue(caDirs.get('ec-p256')!, csr, id, `issue-mixed-${k}`);
    expect(await publicKeyOf(['x509', '-in', c.leaf, '-noout', '-pubkey'])).toBe(await publicKeyOf(['pkey', '-in', key, '-pubout']));

    const text = await ok('openssl', ['x509', '-in', c.leaf, '-noout', '-text']);
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    // PRODUCT §3: digitalSignature, plus keyEncipherment for RSA keys only.
    const usage = /X509v3 Key Usage: critical\s+(.+)/.exec(text)?.[1]?.trim();
    expect(usage).toBe(extraUsage ? `Digital Signature, ${extraUsage}` : 'Digital Signature');

    const r = await checkChain(c, id);
    expect(r.lines).toEqual(ALL_OK);
    expect(r.code).toBe(0);
  });
});
