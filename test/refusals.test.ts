/**
 * Every way `agentca issue` (and init) refuses: a non-zero exit, exactly one stderr line
 * `error: <message> (<code>)` with the expected stable code, nothing on stdout, no --out file,
 * and nothing stored. The refusals share one CA and run side by side. "Nothing stored" is
 * checked after each refusal in the store itself (no certificate row and no reserved serial:
 * cheap enough to do every time, and stricter than the inventory), and through
 * `agentca list --json` before and after all of them — a certificate stored by any refusal
 * would still be there for that final count.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, initCa, listed, makeCsr, ok, pemBlocks, removeTempDirs, run, runCli, storeCounts, tempDir, type RunOptions } from './support/cli.ts';

const TD = 'example.org';
const ID = `spiffe://${TD}/agent/a`;

let ca: string;
let csrs: Record<'good' | 'badSignature' | 'garbage' | 'binary' | 'empty' | 'noEndLine' | 'truncatedDer' | 'rsa1024' | 'otherUri' | 'dnsSan', string>;
let baseline: number;
let stored: { certificates: number; serials: number };

/** Re-encodes DER as a PEM block, 64 columns. */
function pem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`;
}

function derOf(pemText: string): Buffer {
  const block = pemBlocks(pemText, 'CERTIFICATE REQUEST')[0]!;
  return Buffer.from(block.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

beforeAll(async () => {
  const root = tempDir('refusals');
  ca = await initCa(join(root, 'ca'), { trustDomain: TD });
  const w = join(root, 'csr');
  mkdirSync(w);
  const [good, forSignature, rsa1024, otherUri, dnsSan] = await Promise.all([
    makeCsr(w, 'good', 'ec-p256'),
    makeCsr(w, 'for-signature', 'ec-p256'),
    makeCsr(w, 'rsa1024', 'rsa-1024'),
    makeCsr(w, 'other-uri', 'ec-p256', ['-addext', `subjectAltName=URI:spiffe://${TD}/agent/someone-else`]),
    makeCsr(w, 'dns-san', 'ec-p256', ['-addext', 'subjectAltName=DNS:attacker.example.com']),
  ]);

  // The signature is the last element of the CSR: a BIT STRING wrapping, for ECDSA,
  // SEQUENCE { r INTEGER, s INTEGER }. The final byte is inside s, so flipping a bit of it
  // keeps the DER well-formed and only breaks proof of possession.
  const der = derOf(readFileSync(forSignature.csr, 'utf8'));
  der[der.length - 1]! ^= 0x01;
  const badSignature = join(w, 'bad-signature.csr');
  writeFileSync(badSignature, pem('CERTIFICATE REQUEST', der));
  const check = await run('openssl', ['req', '-in', badSignature, '-noout', '-verify']);
  expect(check.stdout + check.stderr, 'openssl agrees the signature is broken').toMatch(/verify failure/i);
  expect(check.stdout + check.stderr).not.toMatch(/verify OK/i);

  const goodPem = readFileSync(good.csr, 'utf8');
  const goodDer = derOf(goodPem);
  const files = {
    garbage: 'this is not a certificate request\n',
    binary: randomBytes(300),
    empty: '',
    noEndLine: goodPem.split('\n').slice(0, 3).join('\n') + '\n',
    truncatedDer: pem('CERTIFICATE REQUEST', goodDer.subarray(0, Math.floor(goodDer.length / 2))),
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(w, `${name}.csr`), content);

  csrs = {
    good: good.csr,
    badSignature,
    garbage: join(w, 'garbage.csr'),
    binary: join(w, 'binary.csr'),
    empty: join(w, 'empty.csr'),
    noEndLine: join(w, 'noEndLine.csr'),
    truncatedDer: join(w, 'truncatedDer.csr'),
    rsa1024: rsa1024.csr,
    otherUri: otherUri.csr,
    dnsSan: dnsSan.csr,
  };
  baseline = (await listed(ca)).length;
  expect(baseline, 'the admin certificate from init').toBe(1);
  stored = await storeCounts(ca);
  expect(stored).toEqual({ certificates: 1, serials: 1 });
}, 120_000);

afterAll(removeTempDirs);

/** Runs `agentca issue` expecting refusal `code`; checks nothing was written or stored. Returns the message. */
async function refuseIssue(args: { csr?: string; id?: string; extra?: string[]; dir?: string }, code: string, opts: RunOptions = {}): Promise<string> {
  const out = join(tempDir('out'), 'chain.pem');
  const id = args.id ?? ID;
  const r = await runCli(['issue', '--dir', args.dir ?? ca, '--csr', args.csr ?? csrs.good, '--id', id, '--out', out, ...(args.extra ?? [])], opts);
  const message = expectOneLineError(r, code);
  expect(r.stdout).toBe('');
  expect(existsSync(out), '--out is not written').toBe(false);
  expect(await storeCounts(ca), 'no certificate stored, no serial reserved').toEqual(stored);
  return message;
}

describe.concurrent('the CSR', () => {
  it('a broken signature (no proof of possession) → ERR_CSR_SIGNATURE', async () => {
    await refuseIssue({ csr: csrs.badSignature }, 'ERR_CSR_SIGNATURE');
  });

  it.each([
    ['a text file that is not PEM', 'garbage'],
    ['random bytes', 'binary'],
    ['an empty file', 'empty'],
    ['a PEM block cut off before its END line', 'noEndLine'],
    ['a PEM block whose DER is cut in half', 'truncatedDer'],
  ] as const)('%s → ERR_CSR_MALFORMED', async (_, which) => {
    await refuseIssue({ csr: csrs[which] }, 'ERR_CSR_MALFORMED');
  });

  it('an RSA-1024 key → ERR_KEY_TOO_SMALL', async () => {
    const message = await refuseIssue({ csr: csrs.rsa1024 }, 'ERR_KEY_TOO_SMALL');
    expect(message).toContain('1024');
  });

  it('a CSR asking for another SPIFFE ID → ERR_CSR_SAN_MISMATCH', async () => {
    const message = await refuseIssue({ csr: csrs.otherUri }, 'ERR_CSR_SAN_MISMATCH');
    expect(message).toContain(`spiffe://${TD}/agent/someone-else`);
  });

  it('a CSR asking for a DNS name the operator did not grant → ERR_CSR_SAN_MISMATCH', async () => {
    await refuseIssue({ csr: csrs.dnsSan }, 'ERR_CSR_SAN_MISMATCH');
  });
});

const LONG_PREFIX = `spiffe://${TD}/agent/`;
/** One byte over the SPIFFE limit of 2048. */
const LONG_ID = LONG_PREFIX + 'a'.repeat(2049 - LONG_PREFIX.length);

describe.concurrent('malformed SPIFFE IDs → ERR_SPIFFE_ID_INVALID', () => {
  it.each([
    ['upper-case scheme', `SPIFFE://${TD}/agent/a`],
    ['mixed-case scheme', `Spiffe://${TD}/agent/a`],
    ['another scheme', `https://${TD}/agent/a`],
    ['a character not allowed in a trust domain', 'spiffe://exa$mple.org/agent/a'],
    ['an upper-case trust domain', 'spiffe://Example.org/agent/a'],
    ['an empty trust domain', 'spiffe:///agent/a'],
    ['userinfo', `spiffe://operator@${TD}/agent/a`],
    ['a port', `spiffe://${TD}:8443/agent/a`],
    ['percent-encoding', `spiffe://${TD}/agent/a%2Fb`],
    ['a query', `spiffe://${TD}/agent/a?x=1`],
    ['a fragment', `spiffe://${TD}/agent/a#frag`],
    ['an empty segment', `spiffe://${TD}/agent//a`],
    ["a '.' segment", `spiffe://${TD}/agent/./a`],
    ["a '..' segment", `spiffe://${TD}/agent/../a`],
    ['a trailing slash', `spiffe://${TD}/agent/a/`],
    ['no path (the trust domain ID)', `spiffe://${TD}`],
    ['a path of just /', `spiffe://${TD}/`],
    ['a wildcard segment', `spiffe://${TD}/agent/*`],
    ['2049 bytes, over the 2048-byte limit', LONG_ID],
    ['a Cyrillic look-alike letter in the trust domain (U+0430 for a)', 'spiffe://ex\u0430mple.org/agent/a'],
    ['a Cyrillic look-alike letter in the path (U+043E for o)', `spiffe://${TD}/agent/b\u043Et`],
    ['a newline', `spiffe://${TD}/agent/a\nb`],
  ])('%s', async (_, id) => {
    await refuseIssue({ id }, 'ERR_SPIFFE_ID_INVALID');
  });
});

describe.concurrent('policy', () => {
  it.each([
    ['another trust domain', 'spiffe://other.org/agent/a'],
    ['a subdomain of the trust domain', `spiffe://sub.${TD}/agent/a`],
    ['a name that starts with the trust domain', `spiffe://${TD}.evil.com/agent/a`],
  ])('%s → ERR_SPIFFE_ID_TRUST_DOMAIN', async (_, id) => {
    await refuseIssue({ id }, 'ERR_SPIFFE_ID_TRUST_DOMAIN');
  });

  it('--ttl 48h, above the default profile maximum of 24h, is refused (not clamped) → ERR_TTL_TOO_LONG', async () => {
    const message = await refuseIssue({ id: `spiffe://${TD}/agent/ttl-48h`, extra: ['--ttl', '48h'] }, 'ERR_TTL_TOO_LONG');
    expect(message).toContain('86400');
  });

  it('--ttl 30s, below the minimum → ERR_TTL_INVALID', async () => {
    await refuseIssue({ id: `spiffe://${TD}/agent/ttl-30s`, extra: ['--ttl', '30s'] }, 'ERR_TTL_INVALID');
  });

  it('an unknown profile → ERR_PROFILE_UNKNOWN', async () => {
    await refuseIssue({ id: `spiffe://${TD}/agent/no-profile`, extra: ['--profile', 'nope'] }, 'ERR_PROFILE_UNKNOWN');
  });

  it('/agentca/** with the default profile → ERR_SPIFFE_ID_NOT_ALLOWED', async () => {
    await refuseIssue({ id: `spiffe://${TD}/agentca/x` }, 'ERR_SPIFFE_ID_NOT_ALLOWED');
  });

  it('/admin/x with the default profile → ERR_SPIFFE_ID_NOT_ALLOWED, recorded as a deny event', async () => {
    const id = `spiffe://${TD}/admin/x`;
    const message = await refuseIssue({ id }, 'ERR_SPIFFE_ID_NOT_ALLOWED');
    expect(message).toBe(`${id} is not allowed by profile default`);

    const events = JSON.parse(await ok('agentca', ['audit', 'tail', '--dir', ca, '--json', '-n', '100000'])) as Record<string, unknown>[];
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'deny', outcome: 'denied', actor: 'operator', spiffeId: id, serial: null, code: 'ERR_SPIFFE_ID_NOT_ALLOWED' }),
    );
  });
});

describe.concurrent('the CA key and directory', () => {
  it('a wrong passphrase → ERR_KEY_PASSPHRASE, and the passphrase is not echoed', async () => {
    const wrong = 'wrong-horse-battery-staple';
    const message = await refuseIssue({ id: `spiffe://${TD}/agent/wrong-pass` }, 'ERR_KEY_PASSPHRASE', { env: { AGENTCA_PASSPHRASE: wrong } });
    expect(message).not.toContain(wrong);
  });

  it('no passphrase → ERR_PASSPHRASE_REQUIRED', async () => {
    await refuseIssue({ id: `spiffe://${TD}/agent/no-pass` }, 'ERR_PASSPHRASE_REQUIRED', { env: { AGENTCA_PASSPHRASE: undefined } });
  });

  it('an empty passphrase → ERR_PASSPHRASE_REQUIRED', async () => {
    await refuseIssue({ id: `spiffe://${TD}/agent/empty-pass` }, 'ERR_PASSPHRASE_REQUIRED', { env: { AGENTCA_PASSPHRASE: '' } });
  });

  it('a passphrase under 8 characters → ERR_PASSPHRASE_TOO_SHORT', async () => {
    const message = await refuseIssue({ id: `spiffe://${TD}/agent/short-pass` }, 'ERR_PASSPHRASE_TOO_SHORT', { env: { AGENTCA_PASSPHRASE: 'pw-1234' } });
    expect(message).not.toContain('pw-1234');
  });

  it.each([
    ['issue', (d: string) => ['issue', '--dir', d, '--csr', csrs.good, '--id', ID]],
    ['list', (d: string) => ['list', '--dir', d]],
    ['bundle', (d: string) => ['bundle', '--dir', d]],
    ['audit verify', (d: string) => ['audit', 'verify', '--dir', d]],
    ['audit tail', (d: string) => ['audit', 'tail', '--dir', d]],
  ])('%s with --dir naming no CA → ERR_CA_NOT_INITIALISED, and creates nothing', async (_, argv) => {
    const parent = tempDir('no-ca');
    const dir = join(parent, 'missing');
    expectOneLineError(await runCli(argv(dir)), 'ERR_CA_NOT_INITIALISED');
    expect(existsSync(dir)).toBe(false);

    expectOneLineError(await runCli(argv(parent)), 'ERR_CA_NOT_INITIALISED');
    expect(readdirSync(parent), 'an empty directory stays empty').toEqual([]);
  });

  it('init over an existing CA → ERR_CA_EXISTS, leaving it untouched', async () => {
    const before = ['root.pem', 'intermediate.pem', 'agentca.json', 'keys/root.key.pem', 'keys/intermediate.key.pem'].map((f) => readFileSync(join(ca, f)));
    for (const keyAlg of ['ec-p256', 'rsa-2048']) {
      const r = await runCli(['init', '--dir', ca, '--trust-domain', 'other.org', '--key-alg', keyAlg]);
      expectOneLineError(r, 'ERR_CA_EXISTS');
      expect(r.stdout).toBe('');
    }
    const after = ['root.pem', 'intermediate.pem', 'agentca.json', 'keys/root.key.pem', 'keys/intermediate.key.pem'].map((f) => readFileSync(join(ca, f)));
    expect(after).toEqual(before);
    expect(await storeCounts(ca)).toEqual(stored);
  });

  it('init with an unknown --key-alg → ERR_KEY_ALGORITHM_UNSUPPORTED, creating nothing', async () => {
    const parent = tempDir('bad-alg');
    for (const alg of ['dsa', 'rsa-1024', 'ec-p521', 'EC-P256']) {
      const r = await runCli(['init', '--dir', join(parent, 'ca'), '--trust-domain', TD, '--key-alg', alg]);
      expect(expectOneLineError(r, 'ERR_KEY_ALGORITHM_UNSUPPORTED')).toContain(alg);
    }
    expect(readdirSync(parent)).toEqual([]);
  });

  it('init with an invalid trust domain → ERR_TRUST_DOMAIN_INVALID, creating nothing', async () => {
    const parent = tempDir('bad-td');
    for (const td of ['Example.org', 'exa$mple.org', 'ex\u0430mple.org', '']) {
      expectOneLineError(await runCli(['init', '--dir', join(parent, 'ca'), '--trust-domain', td]), 'ERR_TRUST_DOMAIN_INVALID');
    }
    expect(readdirSync(parent)).toEqual([]);
  });
});

describe('after every refusal', () => {
  it('`agentca list --json` shows only the admin certificate, as before', async () => {
    const rows = await listed(ca);
    expect(rows).toHaveLength(baseline);
    expect(rows.map((c) => c.spiffeId)).toEqual([`spiffe://${TD}/admin/operator`]);
  });

  it('the audit chain still verifies, with a deny event for each refused issue that reached the CA', async () => {
    expect(await ok('agentca', ['audit', 'verify', '--dir', ca])).toMatch(/^audit log ok: \d+ events/);
    const events = JSON.parse(await ok('agentca', ['audit', 'tail', '--dir', ca, '--json', '-n', '100000'])) as { type: string; code: string | null }[];
    const denied = new Set(events.filter((e) => e.type === 'deny').map((e) => e.code));
    for (const code of ['ERR_CSR_SIGNATURE', 'ERR_CSR_MALFORMED', 'ERR_KEY_TOO_SMALL', 'ERR_CSR_SAN_MISMATCH', 'ERR_SPIFFE_ID_INVALID', 'ERR_SPIFFE_ID_TRUST_DOMAIN', 'ERR_TTL_TOO_LONG', 'ERR_SPIFFE_ID_NOT_ALLOWED'])
      expect(denied, code).toContain(code);
    expect(events.filter((e) => e.type === 'issue')).toHaveLength(1);
  });
});
