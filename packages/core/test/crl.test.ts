/**
 * CRLs from the lean encoder, read and used by independent consumers: openssl (`crl`, `verify`
 * with CRL_CHECK and CRL_CHECK_ALL), GnuTLS certtool, @peculiar/x509 and asn1js, for every CA
 * key type; the DER shape RFC 5280 §5 asks for; and the cost at 100,000 entries.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Authority,
  DEFAULT_PROFILE,
  FixedClock,
  INTERMEDIATE_KEY,
  InvalidRequest,
  ROOT_KEY,
  createHierarchy,
  keyIdentifier,
  parseCertificate,
  signatureSchemeFor,
  toPem,
  webCryptoRandom,
  type IssuedCertificate,
  type RevocationReason,
  type Signer,
} from '../src/index.ts';
import { CRL_EXT, buildCrl, encodeTbsCertList, type CrlEntry, type CrlInput } from '../src/revocation/crl.ts';
import { time } from '../src/x509/der.ts';
import { encodeName } from '../src/x509/name.ts';
import { MemoryKeyStore, memoryStore } from './fakes.ts';
import { decodeAuthorityKeyId, decodeCrl, decodeEnumerated, decodeInteger } from './support/crl-asn1.ts';
import { certtoolAt, opensslCrlEntries, run } from './support/crl-tools.ts';
import { caughtSync, expectAgentError } from './support/errors.ts';
import { genKey, makeCsr, openssl, tempDir } from './support/openssl.ts';
import { Prng, seedFrom } from './support/prng.ts';

const NOW = new Date('2030-03-04T05:06:07Z');
const DAY = 86_400_000;
const TD = 'example.org';
const CA_ALGS = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as const;

/** RFC 5280 §5.3.1 CRLReason, written out here rather than read from reasons.ts. */
const RFC_REASON_CODE: Record<RevocationReason, number> = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
  aACompromise: 10,
};
const REASONS = Object.keys(RFC_REASON_CODE) as RevocationReason[];

/** How `openssl crl -text` names each reason (OpenSSL's crl_reasons table). */
const OPENSSL_REASON: Record<RevocationReason, string | null> = {
  unspecified: null,
  keyCompromise: 'Key Compromise',
  cACompromise: 'CA Compromise',
  affiliationChanged: 'Affiliation Changed',
  superseded: 'Superseded',
  cessationOfOperation: 'Cessation Of Operation',
  certificateHold: 'Certificate Hold',
  privilegeWithdrawn: 'Privilege Withdrawn',
  aACompromise: 'AA Compromise',
};

const OPENSSL_SIGNATURE: Record<(typeof CA_ALGS)[number], string> = {
  'ec-p256': 'ecdsa-with-SHA256',
  'ec-p384': 'ecdsa-with-SHA384',
  ed25519: 'ED25519',
  'rsa-2048': 'sha256WithRSAEncryption',
};

const PECULIAR_SIGNATURE: Record<(typeof CA_ALGS)[number], object> = {
  'ec-p256': { name: 'ECDSA', hash: { name: 'SHA-256' } },
  'ec-p384': { name: 'ECDSA', hash: { name: 'SHA-384' } },
  ed25519: { name: 'Ed25519' },
  'rsa-2048': { name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } },
};

const SIGNATURE_OID: Record<(typeof CA_ALGS)[number], string> = {
  'ec-p256': '1.2.840.10045.4.3.2',
  'ec-p384': '1.2.840.10045.4.3.3',
  ed25519: '1.3.101.112',
  'rsa-2048': '1.2.840.113549.1.1.11',
};

const UNLIMITED_ASN1 = { berOptions: { maxDepth: Infinity, maxNodes: Infinity, maxContentLength: Infinity } };

const dir = tempDir('crl');
afterAll(() => dir.remove());

let fileNo = 0;
function writeFile(name: string, content: string | Uint8Array): string {
  const path = join(dir.path, `${++fileNo}-${name}`);
  writeFileSync(path, content);
  return path;
}

const hexOf = (b: Uint8Array | ArrayBuffer) => Buffer.from(b instanceof Uint8Array ? b : new Uint8Array(b)).toString('hex');
const attime = String(NOW.getTime() / 1000);
const wholeSecond = (d: Date) => new Date(Math.floor(d.getTime() / 1000) * 1000);

/** The CRL input for a CA certificate and its key, as the CRL publisher fills it. */
async function crlInput(caCertificate: Uint8Array, signer: Signer, entries: readonly CrlEntry[], o: Partial<CrlInput> = {}): Promise<CrlInput> {
  return {
    issuerName: parseCertificate(caCertificate).subject,
    issuerKeyId: await keyIdentifier(signer.publicKey),
    thisUpdate: NOW,
    nextUpdate: new Date(NOW.getTime() + DAY),
    crlNumber: 42n,
    entries,
    ...o,
  };
}

/** A serial in agentca's stored form: 0x4a then 16 random bytes. */
const agentcaSerial = (rng: Prng) => `4a${hexOf(rng.bytes(16))}`;

interface Ca {
  alg: (typeof CA_ALGS)[number];
  root: Uint8Array;
  intermediate: Uint8Array;
  rootSigner: Signer;
  intSigner: Signer;
  authority: Authority;
}

async function makeCa(alg: (typeof CA_ALGS)[number]): Promise<Ca> {
  const clock = new FixedClock(NOW);
  const keys = new MemoryKeyStore();
  const { root, intermediate } = await createHierarchy({ trustDomain: TD, keyAlgorithm: alg, keys, clock, random: webCryptoRandom });
  const intSigner = await keys.open(INTERMEDIATE_KEY);
  const rootSigner = await keys.open(ROOT_KEY);
  const authority = await Authority.open({
    trustDomain: TD,
    issuer: { certificate: intermediate, signer: intSigner },
    roots: [root],
    profiles: [DEFAULT_PROFILE],
    store: memoryStore(),
    clock,
  });
  return { alg, root, intermediate, rootSigner, intSigner, authority };
}

function issueLeaf(ca: Ca, name: string): Promise<IssuedCertificate> {
  const key = genKey(dir.path, 'ec-p256', `${ca.alg}-${name}`);
  return ca.authority.issue({
    csr: makeCsr(dir.path, key).pem,
    attestation: { spiffeId: `spiffe://${TD}/agent/${name}`, profile: 'default', method: 'operator', actor: 'operator' },
  });
}

/** `openssl crl -text` of DER bytes. */
function opensslCrlText(der: Uint8Array): string {
  return openssl(['crl', '-inform', 'DER', '-in', writeFile('crl.der', der), '-text', '-noout'], dir.path).stdout;
}

const colonHex = (hex: string) => hex.toUpperCase().match(/../g)!.join(':');

function opensslCrlNumber(text: string): bigint {
  const v = text.match(/X509v3 CRL Number:\s*\n\s*(\S+)/)?.[1];
  if (!v) throw new Error('no CRL number in the openssl output');
  return BigInt(v);
}

describe.each(CA_ALGS)('a CRL signed by a %s intermediate', (alg) => {
  let ca: Ca;
  let leafA: IssuedCertificate;
  let leafB: IssuedCertificate;
  let crl: Uint8Array;
  const p = {} as Record<'root' | 'int' | 'caChain' | 'crl' | 'rootCrl' | 'leafA' | 'leafB' | 'leafAInt' | 'leafBInt', string>;

  beforeAll(async () => {
    ca = await makeCa(alg);
    leafA = await issueLeaf(ca, 'a');
    leafB = await issueLeaf(ca, 'b');
    crl = await buildCrl(await crlInput(ca.intermediate, ca.intSigner, [{ serial: leafA.serial, revokedAt: new Date(NOW.getTime() - 30_000), reason: 'keyCompromise' }]), ca.intSigner);
    // The root's CRL lists nothing: CRL_CHECK_ALL only needs one to exist and be signed by the root.
    const rootCrl = await buildCrl(await crlInput(ca.root, ca.rootSigner, [], { crlNumber: 1n, nextUpdate: new Date(NOW.getTime() + 30 * DAY) }), ca.rootSigner);
    const pem = (der: Uint8Array) => toPem('CERTIFICATE', der);
    p.root = writeFile('root.pem', pem(ca.root));
    p.int = writeFile('int.pem', pem(ca.intermediate));
    p.caChain = writeFile('root+int.pem', pem(ca.root) + pem(ca.intermediate));
    p.crl = writeFile('crl.pem', toPem('X509 CRL', crl));
    p.rootCrl = writeFile('root-crl.pem', toPem('X509 CRL', rootCrl));
    p.leafA = writeFile('leaf-a.pem', pem(leafA.der));
    p.leafB = writeFile('leaf-b.pem', pem(leafB.der));
    p.leafAInt = writeFile('leaf-a+int.pem', pem(leafA.der) + pem(ca.intermediate));
    p.leafBInt = writeFile('leaf-b+int.pem', pem(leafB.der) + pem(ca.intermediate));
  });

  it('openssl reads version 2, the issuer, both dates, the CRL number, the AKI and the revoked serial with its reason', () => {
    const text = opensslCrlText(crl);
    const intSubject = openssl(['x509', '-in', p.int, '-noout', '-subject', '-nameopt', 'RFC2253'], dir.path).stdout.trim().replace(/^subject=/, '');
    const intSki = new x509.X509Certificate(ca.intermediate as BufferSource).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    expect(text).toContain('Version 2 (0x1)');
    expect(text).toMatch(new RegExp(`Signature Algorithm: ${OPENSSL_SIGNATURE[alg]}\\n`));
    expect(openssl(['crl', '-in', p.crl, '-noout', '-issuer', '-nameopt', 'RFC2253'], dir.path).stdout.trim()).toBe(`issuer=${intSubject}`);
    expect(text).toContain('Last Update: Mar  4 05:06:07 2030 GMT');
    expect(text).toContain('Next Update: Mar  5 05:06:07 2030 GMT');
    expect(opensslCrlNumber(text)).toBe(42n);
    expect(text).toMatch(new RegExp(`X509v3 Authority Key Identifier: *\\n\\s*(keyid:)?${colonHex(intSki)}\\n`));
    expect(text).not.toMatch(/critical/);
    expect(opensslCrlEntries(text)).toEqual([
      { serial: leafA.serial.toUpperCase(), revocationDate: 'Mar  4 05:05:37 2030 GMT', reason: 'Key Compromise', hasEntryExtensions: true },
    ]);
  });

  it('openssl verifies the CRL signature against the CA certificates, and refuses a tampered CRL', () => {
    // `openssl crl -CAfile` exits 0 either way: the verdict is in the output.
    expect(run('openssl', ['crl', '-in', p.crl, '-CAfile', p.caChain, '-noout'], dir.path).output).toContain('verify OK');
    const tampered = crl.slice();
    tampered[tampered.length - 5]! ^= 1;
    const out = run('openssl', ['crl', '-inform', 'DER', '-in', writeFile('tampered.der', tampered), '-CAfile', p.caChain, '-noout'], dir.path).output;
    expect(out).toContain('verify failure');
    expect(out).not.toContain('verify OK');
    // Signed by the intermediate: the root alone is not its issuer.
    expect(run('openssl', ['crl', '-in', p.crl, '-CAfile', p.root, '-noout'], dir.path).output).not.toContain('verify OK');
  });

  it('openssl verify -crl_check: the revoked leaf fails with error 23, the other passes', () => {
    const base = ['verify', '-attime', attime, '-crl_check', '-CAfile', p.root, '-untrusted', p.int, '-CRLfile', p.crl];
    const a = run('openssl', [...base, p.leafA], dir.path);
    expect(a.status).toBe(2);
    expect(a.output).toContain('error 23 at 0 depth lookup: certificate revoked');
    const b = run('openssl', [...base, p.leafB], dir.path);
    expect(b.status).toBe(0);
    expect(b.stdout.trim()).toBe(`${p.leafB}: OK`);
  });

  it('openssl verify -crl_check_all with the root CRL: the revoked leaf fails with error 23, the other passes; without it even the good leaf fails (error 3)', () => {
    const base = ['verify', '-attime', attime, '-crl_check_all', '-CAfile', p.root, '-untrusted', p.int, '-CRLfile', p.crl];
    const a = run('openssl', [...base, '-CRLfile', p.rootCrl, p.leafA], dir.path);
    expect(a.status).toBe(2);
    expect(a.output).toContain('error 23 at 0 depth lookup: certificate revoked');
    const b = run('openssl', [...base, '-CRLfile', p.rootCrl, p.leafB], dir.path);
    expect(b.status).toBe(0);
    expect(b.stdout.trim()).toBe(`${p.leafB}: OK`);
    // As nginx's ssl_crl does: every level needs its CRL.
    const noRootCrl = run('openssl', [...base, p.leafB], dir.path);
    expect(noRootCrl.status).toBe(2);
    expect(noRootCrl.output).toContain('error 3 at 1 depth lookup: unable to get certificate CRL');
  });

  it('certtool --verify reports the chain of the revoked leaf revoked and the other verified; --verify-crl checks the signature', () => {
    const at = new Date(NOW.getTime() + 10_000);
    const a = certtoolAt(at, ['--verify', '--load-ca-certificate', p.root, '--load-crl', p.crl, '--infile', p.leafAInt], dir.path);
    expect(a.status).toBe(1);
    expect(a.output).toMatch(/Chain verification output: Not verified\. .*The certificate chain is revoked\./);
    const b = certtoolAt(at, ['--verify', '--load-ca-certificate', p.root, '--load-crl', p.crl, '--infile', p.leafBInt], dir.path);
    expect(b.status).toBe(0);
    expect(b.output).toContain('Chain verification output: Verified. The certificate is trusted.');
    // `--verify` does not check the CRL's own signature (a tampered CRL still revokes), so
    // the signature is checked on its own, against the intermediate.
    const v = certtoolAt(at, ['--verify-crl', '--load-ca-certificate', p.int, '--infile', p.crl], dir.path);
    expect(v.status).toBe(0);
    expect(v.output).toContain('Verification output: Verified.');
    expect(v.output.match(/Serial Number \(hex\): (\S+)/)![1]).toBe(leafA.serial);
    expect(v.output).toMatch(/CRL Number \(not critical\): 2a\b/);
    const wrongCa = certtoolAt(at, ['--verify-crl', '--load-ca-certificate', p.root, '--infile', p.crl], dir.path);
    expect(wrongCa.status).not.toBe(0);
    expect(wrongCa.output).toContain('Verification output: Not verified.');
  });

  it('a 1,000-entry CRL reads back field for field through @peculiar/x509, and its signature verifies', async () => {
    const rng = new Prng(0xc41 + CA_ALGS.indexOf(alg));
    const entries: CrlEntry[] = Array.from({ length: 1000 }, (_, i) => ({
      serial: agentcaSerial(rng),
      // A burst in one second, then spread over a day, some with milliseconds.
      revokedAt: new Date(NOW.getTime() - (i < 300 ? 5000 : rng.int(DAY)) - rng.int(1000)),
      reason: REASONS[i % REASONS.length]!,
    }));
    const input = await crlInput(ca.intermediate, ca.intSigner, entries, { crlNumber: 123_456_789_012n });
    const der = await buildCrl(input, ca.intSigner);
    const parsed = new x509.X509Crl(der as BufferSource, UNLIMITED_ASN1);
    const int = new x509.X509Certificate(ca.intermediate as BufferSource);
    const root = new x509.X509Certificate(ca.root as BufferSource);

    expect(parsed.version).toBe(1); // v2
    expect(parsed.signatureAlgorithm).toMatchObject(PECULIAR_SIGNATURE[alg]);
    expect(parsed.issuer).toBe(int.subject);
    expect(parsed.thisUpdate.getTime()).toBe(NOW.getTime());
    expect(parsed.nextUpdate?.getTime()).toBe(NOW.getTime() + DAY);
    expect(await parsed.verify({ publicKey: int.publicKey })).toBe(true);
    expect(await parsed.verify({ publicKey: root.publicKey })).toBe(false);

    expect(parsed.extensions.map((e) => [e.type, e.critical])).toEqual([
      ['2.5.29.35', false],
      [CRL_EXT.cRLNumber, false],
    ]);
    expect(parsed.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(int.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
    expect(decodeInteger(new Uint8Array(parsed.getExtension(CRL_EXT.cRLNumber)!.value))).toBe(123_456_789_012n);

    expect(parsed.entries).toHaveLength(1000);
    const got = parsed.entries.map((e) => ({
      serial: e.serialNumber.toLowerCase(),
      revokedAt: e.revocationDate.getTime(),
      reason: e.reason ?? null,
      extensions: e.extensions.map((x) => [x.type, x.critical]),
    }));
    const want = entries.map((e) => ({
      serial: e.serial,
      revokedAt: wholeSecond(e.revokedAt).getTime(),
      reason: e.reason === 'unspecified' ? null : RFC_REASON_CODE[e.reason],
      extensions: e.reason === 'unspecified' ? [] : [[CRL_EXT.reasonCode, false]],
    }));
    expect(got).toEqual(want);
  });
});

describe('the DER of a CRL', () => {
  let signer: Signer;
  let caCert: Uint8Array;
  let caPath: string;
  const rng = new Prng(0x5eed);

  beforeAll(async () => {
    const keys = new MemoryKeyStore();
    const { root, intermediate } = await createHierarchy({ trustDomain: TD, keyAlgorithm: 'ec-p256', keys, clock: new FixedClock(NOW), random: webCryptoRandom });
    signer = await keys.open(INTERMEDIATE_KEY);
    caCert = intermediate;
    caPath = writeFile('ec-root+int.pem', toPem('CERTIFICATE', root) + toPem('CERTIFICATE', intermediate));
  });

  const build = async (entries: CrlEntry[], o: Partial<CrlInput> = {}) => {
    const der = await buildCrl(await crlInput(caCert, signer, entries, o), signer);
    return { der, decoded: decodeCrl(der) };
  };

  it('with no entries has no revokedCertificates field at all', async () => {
    const { der, decoded } = await build([]);
    expect(decoded.fieldKinds).toEqual(['Integer', 'Sequence', 'Sequence', 'UTCTime', 'UTCTime', '[0]']);
    expect(decoded.entries).toBeNull();
    // openssl asn1parse agrees: after the two times comes the [0] of crlExtensions, at depth 2.
    const lines = openssl(['asn1parse', '-inform', 'DER', '-in', writeFile('empty.der', der)], dir.path).stdout.split('\n');
    const depth2 = lines.filter((l) => /d=2/.test(l)).map((l) => l.replace(/^.*(prim|cons): +/, '').trim().split(/\s+/)[0]);
    expect(depth2.slice(0, 6)).toEqual(['INTEGER', 'SEQUENCE', 'SEQUENCE', 'UTCTIME', 'UTCTIME', 'cont']);
    expect(opensslCrlText(der)).toContain('No Revoked Certificates.');
  });

  it('writes version 1 (v2), the issuer Name byte for byte, and the same algorithm inside and outside', async () => {
    const { der, decoded } = await build([]);
    expect(decoded.version).toBe(1);
    expect(decoded.issuer).toEqual(parseCertificate(caCert).subject);
    expect(decoded.signatureOid).toBe(SIGNATURE_OID['ec-p256']);
    expect(decoded.outerSignatureOid).toBe(decoded.signatureOid);
    const asPeculiar = new x509.X509Crl(der as BufferSource);
    expect(asPeculiar.issuer).toBe(new x509.X509Certificate(caCert as BufferSource).subject);
  });

  it('leaves crlEntryExtensions out for unspecified, and writes reasonCode alone, non-critical, as the RFC 5280 ENUMERATED for every other reason', async () => {
    const entries = REASONS.map((reason, i) => ({ serial: `4a${i.toString(16).padStart(2, '0')}`, revokedAt: NOW, reason }));
    const { der, decoded } = await build(entries);
    expect(decoded.entries).toHaveLength(REASONS.length);
    decoded.entries!.forEach((e, i) => {
      const reason = REASONS[i]!;
      if (reason === 'unspecified') {
        expect(e.extensions).toBeNull();
        return;
      }
      expect(e.extensions).toHaveLength(1);
      expect(e.extensions![0]!.oid).toBe(CRL_EXT.reasonCode);
      expect(e.extensions![0]!.critical).toBe(false);
      expect(decodeEnumerated(e.extensions![0]!.value)).toBe(RFC_REASON_CODE[reason]);
    });
    const shown = opensslCrlEntries(opensslCrlText(der));
    expect(shown.map((e) => e.reason)).toEqual(REASONS.map((r) => OPENSSL_REASON[r]));
    expect(shown.map((e) => e.hasEntryExtensions)).toEqual(REASONS.map((r) => r !== 'unspecified'));
  });

  it('writes authorityKeyIdentifier (keyIdentifier only) and cRLNumber, both non-critical, and nothing else', async () => {
    const { decoded } = await build([]);
    expect(decoded.crlExtensions!.map((e) => [e.oid, e.critical])).toEqual([
      ['2.5.29.35', false],
      [CRL_EXT.cRLNumber, false],
    ]);
    const ski = new x509.X509Certificate(caCert as BufferSource).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    expect(decodeAuthorityKeyId(decoded.crlExtensions![0]!.value)).toBe(ski);
  });

  it.each([0n, 1n, 127n, 128n, 255n, 256n, 65_535n, 2n ** 63n, 2n ** 64n + 1n, 2n ** 159n - 1n])('carries CRL number %s, as asn1js and openssl read it', async (n) => {
    const { der, decoded } = await build([], { crlNumber: n });
    const value = decoded.crlExtensions!.find((e) => e.oid === CRL_EXT.cRLNumber)!.value;
    expect(decodeInteger(value)).toBe(n);
    expect(value.length - 2).toBeLessThanOrEqual(20); // RFC 5280 §5.2.3
    expect(opensslCrlNumber(opensslCrlText(der))).toBe(n);
  });

  it('switches from UTCTime to GeneralizedTime at 2050 and back below 1950, in both update fields and entries', async () => {
    const at = (iso: string) => new Date(iso);
    const entries: CrlEntry[] = [
      { serial: '01', revokedAt: at('1949-12-31T23:59:59Z'), reason: 'superseded' },
      { serial: '02', revokedAt: at('1950-01-01T00:00:00Z'), reason: 'superseded' },
      { serial: '03', revokedAt: at('2049-12-31T23:59:59.999Z'), reason: 'superseded' },
      { serial: '04', revokedAt: at('2050-01-01T00:00:00Z'), reason: 'superseded' },
      { serial: '05', revokedAt: at('2100-02-28T12:34:56Z'), reason: 'unspecified' },
    ];
    const { der, decoded } = await build(entries, { thisUpdate: at('2049-12-31T23:59:59Z'), nextUpdate: at('2050-01-01T00:00:00Z') });
    expect(decoded.thisUpdate).toMatchObject({ tag: 'UTCTime', date: at('2049-12-31T23:59:59Z') });
    expect(decoded.nextUpdate).toMatchObject({ tag: 'GeneralizedTime', date: at('2050-01-01T00:00:00Z') });
    expect(decoded.entries!.map((e) => e.revocationDate.tag)).toEqual(['GeneralizedTime', 'UTCTime', 'UTCTime', 'GeneralizedTime', 'GeneralizedTime']);
    expect(decoded.entries!.map((e) => e.revocationDate.date.toISOString())).toEqual(entries.map((e) => wholeSecond(e.revokedAt).toISOString()));
    const shown = opensslCrlEntries(opensslCrlText(der)).map((e) => e.revocationDate);
    expect(shown).toEqual(['Dec 31 23:59:59 1949 GMT', 'Jan  1 00:00:00 1950 GMT', 'Dec 31 23:59:59 2049 GMT', 'Jan  1 00:00:00 2050 GMT', 'Feb 28 12:34:56 2100 GMT']);
  });

  it('encodes every revocation time as der.time does, also when seconds share a cache slot', async () => {
    const seconds: number[] = [];
    const base = Math.floor(NOW.getTime() / 1000);
    // The same slot over and over (4096 s apart), interleaved.
    for (let k = 0; k < 40; k++) seconds.push(base + (k % 5) * 4096, base - (k % 3) * 4096 * 7);
    // Random seconds over years 0000-9999, including negative epoch seconds and leap days.
    const from = Date.UTC(2000, 0, 1) / 1000 - 2000 * 365.2425 * 86400;
    const span = 9999 * 365.2425 * 86400;
    for (let k = 0; k < 400; k++) seconds.push(Math.floor(from + (rng.next() / 2 ** 32) * span));
    seconds.push(Date.UTC(2000, 1, 29, 23, 59, 59) / 1000, Date.UTC(1900, 1, 28) / 1000, -62_167_219_200, 253_402_300_799);
    const entries = seconds.map((s, i) => ({ serial: (0x1000 + i).toString(16).padStart(4, '0'), revokedAt: new Date(s * 1000 + (i % 1000)), reason: 'unspecified' as const }));
    const { decoded } = await build(entries);
    expect(decoded.entries).toHaveLength(entries.length);
    const got = decoded.entries!.map((e) => hexOf(e.revocationDate.der));
    expect(got).toEqual(seconds.map((s) => hexOf(time(new Date(s * 1000)))));
  });

  it('keeps the entries in the order given', async () => {
    const serials = ['ff01', '01', '4a00', '7f', '80', '4a0000000000000000000000000000000001'];
    const { decoded } = await build(serials.map((serial) => ({ serial, revokedAt: NOW, reason: 'keyCompromise' })));
    expect(decoded.entries!.map((e) => e.serialContentHex)).toEqual(['00ff01', '01', '4a00', '7f', '0080', '4a0000000000000000000000000000000001']);
  });

  it('writes serials as minimal positive INTEGERs (sign pad when the top bit is set), 1 to 20 bytes, that openssl prints back', async () => {
    const serials = ['01', '7f', '80', 'ff', `4a${'ab'.repeat(16)}`, `ff${'00'.repeat(19)}`, `7f${'ff'.repeat(19)}`, `01${'00'.repeat(19)}`];
    const { der, decoded } = await build(serials.map((serial) => ({ serial, revokedAt: NOW, reason: 'unspecified' })));
    expect(decoded.entries!.map((e) => e.serialContentHex)).toEqual(serials.map((s) => (parseInt(s[0]!, 16) >= 8 ? `00${s}` : s)));
    expect(opensslCrlEntries(opensslCrlText(der)).map((e) => e.serial)).toEqual(serials.map((s) => s.toUpperCase()));
  });

  describe('refuses input it cannot encode faithfully', () => {
    const scheme = signatureSchemeFor('ec-p256');
    const input = (o: Partial<CrlInput>): CrlInput => ({
      issuerName: encodeName({ commonName: 'ca' }),
      issuerKeyId: Uint8Array.of(1, 2, 3),
      thisUpdate: NOW,
      nextUpdate: new Date(NOW.getTime() + DAY),
      crlNumber: 1n,
      entries: [],
      ...o,
    });
    const SERIAL_MSG = 'a serial must be 1 to 20 bytes of lower-case hex without a leading zero byte';
    const entry = (o: Partial<CrlEntry>): CrlEntry => ({ serial: '4a01', revokedAt: NOW, reason: 'keyCompromise', ...o });

    it.each([
      ['upper-case hex', '4A01'],
      ['an odd number of digits', '4a0'],
      ['a leading zero byte', '004a'],
      ['the serial zero', '00'],
      ['an empty serial', ''],
      ['21 bytes', `4a${'00'.repeat(20)}`],
      ['a non-hex character', '4a0g'],
      ['a non-ASCII character', '4a0\u0661'],
      ['separators', '4a:01'],
    ])('a serial with %s (ERR_SERIAL_INVALID)', (_label, serial) => {
      const e = caughtSync(() => encodeTbsCertList(input({ entries: [entry({}), entry({ serial })] }), scheme));
      expectAgentError(e, InvalidRequest, 'ERR_SERIAL_INVALID', SERIAL_MSG);
    });

    it.each([
      ['an unknown reason', { entries: [entry({ reason: 'removeFromCRL' as RevocationReason })] }, 'unknown revocation reason "removeFromCRL"'],
      ['an inherited property name as reason', { entries: [entry({ reason: 'toString' as RevocationReason })] }, 'unknown revocation reason "toString"'],
      ['an invalid revocation date', { entries: [entry({ revokedAt: new Date(NaN) })] }, 'a revocation date must be a valid date in the years 0000 to 9999'],
      ['a revocation date in year 10000', { entries: [entry({ revokedAt: new Date(Date.UTC(10000, 0, 1)) })] }, 'a revocation date must be a valid date in the years 0000 to 9999'],
      ['an invalid thisUpdate', { thisUpdate: new Date('nope') }, 'thisUpdate must be a valid date in the years 0000 to 9999'],
      ['nextUpdate equal to thisUpdate', { nextUpdate: new Date(NOW.getTime() + 999) }, 'nextUpdate must be at least one second after thisUpdate'],
      ['nextUpdate before thisUpdate', { nextUpdate: new Date(NOW.getTime() - DAY) }, 'nextUpdate must be at least one second after thisUpdate'],
      ['a negative CRL number', { crlNumber: -1n }, 'the CRL number must be a non-negative integer of at most 20 octets'],
      ['a 21-octet CRL number', { crlNumber: 2n ** 159n }, 'the CRL number must be a non-negative integer of at most 20 octets'],
      ['an empty key identifier', { issuerKeyId: new Uint8Array(0) }, 'the issuer key identifier is empty'],
      ['an issuer that is not a Name', { issuerName: Uint8Array.of(0x0c, 1, 0x41) }, 'the issuer name is not a DER Name'],
      ['an issuer with trailing bytes', { issuerName: Uint8Array.of(0x30, 0, 0) }, 'the issuer name is not a DER Name'],
    ] as [string, Partial<CrlInput>, string][])('%s (ERR_CRL_INPUT_INVALID)', (_label, o, message) => {
      const e = caughtSync(() => encodeTbsCertList(input(o), scheme));
      expectAgentError(e, InvalidRequest, 'ERR_CRL_INPUT_INVALID', message);
    });
  });

  describe('at scale and at random', () => {
    const scheme = signatureSchemeFor('ec-p256');
    const headerLength = (n: number) => 1 + (n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x1000000 ? 4 : 5);
    /** An entry's DER length by RFC 5280 §5.1 and X.690, worked out here from the input alone. */
    const entryLength = (e: CrlEntry) => {
      const serial = e.serial.length / 2 + (parseInt(e.serial[0]!, 16) >= 8 ? 1 : 0);
      const y = e.revokedAt.getUTCFullYear();
      const timeLength = y >= 1950 && y < 2050 ? 15 : 17;
      const reason = e.reason === 'unspecified' ? 0 : 14; // SEQUENCE { SEQUENCE { OID(5), OCTET STRING { ENUMERATED(3) }(5) } }
      return 2 + (2 + serial) + timeLength + reason;
    };

    it('encodes 100,000 entries in well under a second into exactly the sum of their parts, and openssl parses the CRL', async () => {
      const rng = new Prng(100_000);
      const entries: CrlEntry[] = Array.from({ length: 100_000 }, (_, i) => ({
        serial: agentcaSerial(rng),
        revokedAt: new Date(NOW.getTime() - rng.int(3600) * 1000 - (i % 997)),
        reason: REASONS[rng.int(REASONS.length)]!,
      }));
      const input = await crlInput(caCert, signer, entries);
      const t0 = performance.now();
      const tbs = encodeTbsCertList(input, scheme);
      const ms = performance.now() - t0;
      expect(ms, `encoding took ${ms.toFixed(0)} ms`).toBeLessThan(1000);

      // Linear memory: the TBS is the fixed fields plus one SEQUENCE of the entries, not a byte more.
      const fixed = encodeTbsCertList({ ...input, entries: [] }, scheme);
      const fixedContent = fixed.length - (fixed[1]! < 0x80 ? 2 : 2 + (fixed[1]! & 0x7f));
      expect(headerLength(fixedContent) + fixedContent).toBe(fixed.length);
      let list = 0;
      for (const e of entries) list += entryLength(e);
      const content = fixedContent + headerLength(list) + list;
      expect(tbs.length).toBe(headerLength(content) + content);

      const der = await buildCrl(input, signer);
      const derPath = writeFile('100k.der', der);
      const parse = run('openssl', ['crl', '-inform', 'DER', '-in', derPath, '-noout'], dir.path);
      expect(parse.status, parse.stderr).toBe(0);
      const text = run('openssl', ['crl', '-inform', 'DER', '-in', derPath, '-text', '-noout'], dir.path);
      expect(text.status).toBe(0);
      expect(text.stdout.match(/Serial Number: /g)).toHaveLength(100_000);
      expect(run('openssl', ['crl', '-inform', 'DER', '-in', derPath, '-CAfile', caPath, '-noout'], dir.path).output).toContain('verify OK');
    });

    const seed = seedFrom('CRL_SEED');
    it(`random entry lists always give a CRL openssl parses and verifies, with every entry in order (seed ${seed}, CRL_SEED to replay)`, async () => {
      const prng = new Prng(seed);
      const randomSecond = () =>
        prng.int(10) === 0
          ? Date.UTC(1900, 0, 1) / 1000 + prng.int(50 * 365 * 86400) // before 1950: GeneralizedTime
          : Date.UTC(1950, 0, 1) / 1000 + prng.int(2 ** 32 - 1) * 2; // 1950 to about 2222
      const randomSerial = () => {
        const bytes = prng.bytes(1 + prng.int(20));
        bytes[0] = 1 + prng.int(255);
        return hexOf(bytes);
      };
      for (let round = 0; round < 25; round++) {
        const n = prng.pick([0, 1, 2, prng.int(50), prng.int(500)]);
        const pool = Array.from({ length: 1 + prng.int(8) }, randomSecond);
        const entries: CrlEntry[] = Array.from({ length: n }, () => ({
          serial: randomSerial(),
          revokedAt: new Date((prng.int(2) ? prng.pick(pool) : randomSecond()) * 1000 + prng.int(1000)),
          reason: prng.pick(REASONS),
        }));
        const der = await buildCrl(await crlInput(caCert, signer, entries, { crlNumber: BigInt(prng.next()) }), signer);
        const label = `seed ${seed}, round ${round}, ${n} entries`;
        const derPath = writeFile(`random-${round}.der`, der);
        const text = run('openssl', ['crl', '-inform', 'DER', '-in', derPath, '-text', '-noout'], dir.path);
        expect(text.status, `${label}: ${text.stderr}`).toBe(0);
        const shown = opensslCrlEntries(text.stdout);
        expect(shown.length, label).toBe(n);
        expect(shown.map((e) => e.serial), label).toEqual(entries.map((e) => e.serial.toUpperCase()));
        expect(shown.map((e) => e.reason), label).toEqual(entries.map((e) => OPENSSL_REASON[e.reason]));
        expect(decodeCrl(der).entries?.map((e) => e.revocationDate.date.getTime()) ?? [], label).toEqual(entries.map((e) => wholeSecond(e.revokedAt).getTime()));
        expect(run('openssl', ['crl', '-inform', 'DER', '-in', derPath, '-CAfile', caPath, '-noout'], dir.path).output, label).toContain('verify OK');
      }
    });
  });
});
