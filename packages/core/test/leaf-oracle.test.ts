/**
 * Leaves from the lean issuance pipeline, read back by independent implementations:
 * @peculiar/x509 (fields and signatures), asn1js (raw extension list) and openssl (parse and
 * chain verification), for every CA key type × every subject key type. Plus the policy edges
 * of issuance: what the CSR asks for is never granted, and notAfter is clamped.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Authority,
  DEFAULT_PROFILE,
  EXT,
  FixedClock,
  INTERMEDIATE_KEY,
  InvalidRequest,
  PolicyDenied,
  parseCertificate,
  createHierarchy,
  decodeAgentcaIdentity,
  toHex,
  toPem,
  webCryptoRandom,
  type Attestation,
  type IssuedCertificate,
  type KeyAlgorithm,
  type Signer,
} from '../src/index.ts';
import { describe as inspectDescribe } from '../src/x509/inspect.ts';
import { MemoryKeyStore, memoryStore } from './fakes.ts';
import { caught, caughtSync, expectAgentError } from './support/errors.ts';
import { children, readElement, seq, time } from '../src/x509/der.ts';
import { genKey, makeCsr, openssl, publicKeyDer, tempDir } from './support/openssl.ts';

const NOW = new Date('2030-03-04T05:06:07Z');
const TD = 'example.org';
const CA_ALGS = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as const;
const SUBJECT_KINDS = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
type SubjectKind = (typeof SUBJECT_KINDS)[number];

/** How @peculiar/x509 names the signature algorithm of each CA key type. */
const SIGNATURE_ALGORITHM: Record<(typeof CA_ALGS)[number], object> = {
  'ec-p256': { name: 'ECDSA', hash: { name: 'SHA-256' } },
  'ec-p384': { name: 'ECDSA', hash: { name: 'SHA-384' } },
  ed25519: { name: 'Ed25519' },
  'rsa-2048': { name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } },
};

const dir = tempDir('leaf-oracle');
const subjects = {} as Record<SubjectKind, { key: string; spki: Uint8Array; csr: string }>;

beforeAll(() => {
  for (const kind of SUBJECT_KINDS) {
    const key = genKey(dir.path, kind);
    // The CSR's subject must never reach the certificate.
    subjects[kind] = { key, spki: publicKeyDer(dir.path, key), csr: makeCsr(dir.path, key, { subject: '/O=evil corp/CN=admin' }).pem };
  }
});
afterAll(() => dir.remove());

interface Ca {
  alg: KeyAlgorithm;
  root: Uint8Array;
  intermediate: Uint8Array;
  signer: Signer;
  authority: Authority;
  store: ReturnType<typeof memoryStore>;
  clock: FixedClock;
}

async function makeCa(alg: KeyAlgorithm, o: { intermediateTtlSeconds?: number } = {}): Promise<Ca> {
  const clock = new FixedClock(NOW);
  const keys = new MemoryKeyStore();
  const { root, intermediate } = await createHierarchy({ trustDomain: TD, keyAlgorithm: alg, keys, clock, random: webCryptoRandom, ...o });
  const signer = await keys.open(INTERMEDIATE_KEY);
  const { authority, store } = await openAuthority({ root, intermediate, signer, clock });
  return { alg, root, intermediate, signer, authority, store, clock };
}

/** An Authority over a fresh in-memory store, so that "nothing stored" can be asserted exactly. */
async function openAuthority(c: Pick<Ca, 'root' | 'intermediate' | 'signer' | 'clock'>): Promise<{ authority: Authority; store: ReturnType<typeof memoryStore> }> {
  const store = memoryStore();
  const authority = await Authority.open({
    trustDomain: TD,
    issuer: { certificate: c.intermediate, signer: c.signer },
    roots: [c.root],
    profiles: [DEFAULT_PROFILE],
    store,
    clock: c.clock,
  });
  return { authority, store };
}

const attestation = (spiffeId: string, extra: Partial<Attestation> = {}): Attestation => ({
  spiffeId,
  profile: 'default',
  method: 'operator',
  actor: 'operator',
  ...extra,
});

/** The extensions as asn1js (4.x) reads them from the DER, in order. */
function rawExtensions(der: Uint8Array): { oid: string; critical: boolean; value: Uint8Array }[] {
  const cert = asn1js.fromBER(der).result as asn1js.Sequence;
  const tbs = cert.valueBlock.value[0] as asn1js.Sequence;
  const tagged = tbs.valueBlock.value.find((b) => b.idBlock.tagClass === 3 && b.idBlock.tagNumber === 3) as asn1js.Constructed;
  const list = tagged.valueBlock.value[0] as asn1js.Sequence;
  return list.valueBlock.value.map((e) => {
    const parts = (e as asn1js.Sequence).valueBlock.value;
    const critical = parts[1] instanceof asn1js.Boolean ? parts[1].getValue() : false;
    const value = parts[parts.length - 1] as asn1js.OctetString;
    return { oid: (parts[0] as asn1js.ObjectIdentifier).getValue(), critical, value: new Uint8Array(value.valueBlock.valueHexView) };
  });
}

/** The TBS fields, algorithm and signature of a certificate, as whole TLVs. */
function rawCertificateParts(der: Uint8Array): { tbsParts: Uint8Array[]; algorithm: Uint8Array; signature: Uint8Array } {
  const [tbs, algorithm, signature] = children(der, readElement(der, 0));
  return {
    tbsParts: children(der, tbs!).map((p) => der.slice(p.start, p.end)),
    algorithm: der.slice(algorithm!.start, algorithm!.end),
    signature: der.slice(signature!.start, signature!.end),
  };
}

/** RFC 5280 §4.2.1.2 method 1, computed with asn1js + node:crypto (not the lean code). */
function keyIdOf(spki: Uint8Array): string {
  const seq = asn1js.fromBER(spki).result as asn1js.Sequence;
  const bits = seq.valueBlock.value[1] as asn1js.BitString;
  return createHash('sha1').update(bits.valueBlock.valueHexView).digest('hex');
}

let fileNo = 0;
function writePem(der: Uint8Array): string {
  const path = join(dir.path, `cert-${++fileNo}.pem`);
  writeFileSync(path, toPem('CERTIFICATE', der));
  return path;
}

interface Expected {
  spiffeId: string;
  subjectKind: SubjectKind;
  ttlSeconds: number;
  taskId?: string | null;
  onBehalfOf?: string | null;
  instanceId?: string;
}

/** Compares an issued leaf with what was asked for, field by field, through @peculiar/x509. */
async function expectLeaf(ca: Ca, issued: IssuedCertificate, want: Expected): Promise<x509.X509Certificate> {
  const leaf = new x509.X509Certificate(issued.der as BufferSource);
  const int = new x509.X509Certificate(ca.intermediate as BufferSource);
  const root = new x509.X509Certificate(ca.root as BufferSource);
  const isRsa = want.subjectKind.startsWith('rsa');

  expect(leaf.serialNumber.toLowerCase()).toBe(issued.serial);
  // 0x4a, NOW in 1/64 s units (three octets), 128 random bits.
  expect(issued.serial).toMatch(new RegExp(`^4a${(Math.floor((NOW.getTime() * 64) / 1000) % 2 ** 24).toString(16).padStart(6, '0')}[0-9a-f]{32}$`));
  expect(leaf.issuer).toBe(int.subject);
  expect(leaf.issuer).toBe(`O=${TD}, CN=agentca intermediate CA ${TD}`);
  expect(leaf.subject).toBe('');
  expect(leaf.notBefore.getTime()).toBe(NOW.getTime() - 60_000);
  expect(leaf.notAfter.getTime()).toBe(NOW.getTime() + want.ttlSeconds * 1000);
  expect(issued.notBefore.getTime()).toBe(leaf.notBefore.getTime());
  expect(issued.notAfter.getTime()).toBe(leaf.notAfter.getTime());
  expect(new Uint8Array(leaf.publicKey.rawData)).toEqual(subjects[want.subjectKind].spki);
  expect(leaf.signatureAlgorithm).toMatchObject(SIGNATURE_ALGORITHM[ca.alg as (typeof CA_ALGS)[number]]);

  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
  expect(san?.critical).toBe(true);
  expect(san?.names.items.map((n) => [n.type, n.value])).toEqual([['url', want.spiffeId]]);

  const bc = leaf.getExtension(x509.BasicConstraintsExtension);
  expect(bc?.critical).toBe(true);
  expect(bc?.ca).toBe(false);
  expect(bc?.pathLength).toBeUndefined();

  const ku = leaf.getExtension(x509.KeyUsagesExtension);
  expect(ku?.critical).toBe(true);
  expect(ku?.usages).toBe(x509.KeyUsageFlags.digitalSignature | (isRsa ? x509.KeyUsageFlags.keyEncipherment : 0));
  expect(ku!.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)).toBe(0);

  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  expect(eku?.critical).toBe(false);
  expect(eku?.usages).toEqual([x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth]);

  const ski = leaf.getExtension(x509.SubjectKeyIdentifierExtension);
  expect(ski?.critical).toBe(false);
  expect(ski?.keyId).toBe(keyIdOf(subjects[want.subjectKind].spki));
  const intSki = int.getExtension(x509.SubjectKeyIdentifierExtension);
  expect(intSki?.keyId).toBe(keyIdOf(new Uint8Array(int.publicKey.rawData)));
  expect(leaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(intSki?.keyId);
  expect(int.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(root.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);

  // @peculiar/x509 2.2 re-encodes each extension with asn1js 3.1, which cannot write OID arcs
  // above 2^49, so it reports the agentca extension with an empty type: read that one with asn1js 4.
  const raw = rawExtensions(issued.der);
  expect(raw.map((e) => e.oid)).toEqual([
    EXT.basicConstraints,
    EXT.keyUsage,
    EXT.extKeyUsage,
    EXT.subjectKeyIdentifier,
    EXT.authorityKeyIdentifier,
    EXT.subjectAltName,
    EXT.agentcaIdentity,
  ]);
  expect(leaf.extensions.map((e) => e.critical)).toEqual(raw.map((e) => e.critical));
  const agentca = raw.find((e) => e.oid === EXT.agentcaIdentity)!;
  expect(agentca.critical).toBe(false);
  const ident = decodeAgentcaIdentity(agentca.value);
  expect(ident).toEqual({ instanceId: issued.instanceId, taskId: want.taskId ?? null, onBehalfOf: want.onBehalfOf ?? null });
  if (want.instanceId) expect(issued.instanceId).toBe(want.instanceId);
  else {
    // A UUIDv7 of NOW.
    const ms = NOW.getTime().toString(16).padStart(12, '0');
    expect(issued.instanceId).toMatch(new RegExp(`^${ms.slice(0, 8)}-${ms.slice(8)}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`));
  }

  expect(await leaf.verify({ publicKey: int.publicKey, signatureOnly: true })).toBe(true);
  expect(await leaf.verify({ publicKey: root.publicKey, signatureOnly: true })).toBe(false);
  expect(await int.verify({ publicKey: root.publicKey, signatureOnly: true })).toBe(true);
  expect(await root.verify({ publicKey: root.publicKey, signatureOnly: true })).toBe(true);
  expect(int.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: true, pathLength: 0, critical: true });
  expect(issued.chain).toEqual([ca.intermediate]);
  return leaf;
}

/** openssl parses the leaf and verifies the chain at the fixed clock. */
function expectOpensslAccepts(ca: Ca, issued: IssuedCertificate, spiffeId: string): void {
  const leafPath = writePem(issued.der);
  const text = openssl(['x509', '-in', leafPath, '-noout', '-text'], dir.path).stdout;
  expect(text).toContain(`URI:${spiffeId}`);
  expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
  expect(text).toMatch(/X509v3 Subject Alternative Name: critical/);
  expect(text).toContain('TLS Web Client Authentication, TLS Web Server Authentication');
  expect(text).toContain(`${EXT.agentcaIdentity}:`);
  expect(text).toMatch(/Subject: *\n/);
  const rootPath = writePem(ca.root);
  const intPath = writePem(ca.intermediate);
  const verify = openssl(['verify', '-attime', String(NOW.getTime() / 1000), '-CAfile', rootPath, '-untrusted', intPath, leafPath], dir.path);
  expect(verify.stdout.trim()).toBe(`${leafPath}: OK`);
}

describe.each(CA_ALGS)('a %s CA', (caAlg) => {
  let ca: Ca;
  beforeAll(async () => {
    ca = await makeCa(caAlg);
  });

  it.each(SUBJECT_KINDS)('issues a leaf for a %s key that the oracles read back field by field', async (kind) => {
    const spiffeId = `spiffe://${TD}/agent/${kind}`;
    const issued = await ca.authority.issue({ csr: subjects[kind].csr, attestation: attestation(spiffeId), ttlSeconds: 1800 });
    expect(issued.spiffeId).toBe(spiffeId);
    await expectLeaf(ca, issued, { spiffeId, subjectKind: kind, ttlSeconds: 1800 });
    expectOpensslAccepts(ca, issued, spiffeId);
    const stored = await ca.store.certificates.get(issued.serial);
    expect(stored?.der).toEqual(issued.der);
    expect(stored?.keyFingerprint).toBe(createHash('sha256').update(subjects[kind].spki).digest('hex'));
  });
});

describe('issuance policy', () => {
  let ca: Ca;
  beforeAll(async () => {
    ca = await makeCa('ec-p256');
  });
  const freshAuthority = () => openAuthority(ca);

  const ID = `spiffe://${TD}/agent/a`;

  it('never grants CA:TRUE, even when the CSR asks for it (and audits the request)', async () => {
    const { authority, store } = await freshAuthority();
    const csr = makeCsr(dir.path, subjects['ec-p256'].key, { addext: ['basicConstraints=critical,CA:TRUE,pathlen:3', 'keyUsage=critical,keyCertSign,cRLSign'] }).pem;
    const issued = await authority.issue({ csr, attestation: attestation(ID) });
    const leaf = await expectLeaf(ca, issued, { spiffeId: ID, subjectKind: 'ec-p256', ttlSeconds: DEFAULT_PROFILE.defaultTtl });
    expect(leaf.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    expect(store.audit.events.map((e) => [e.type, e.outcome, e.detail?.csrRequestedCa])).toEqual([['issue', 'ok', true]]);
  });

  it('accepts a CSR that repeats the attested SPIFFE ID', async () => {
    const { authority } = await freshAuthority();
    const csr = makeCsr(dir.path, subjects.ed25519.key, { addext: [`subjectAltName=URI:${ID}`] }).pem;
    await expectLeaf(ca, await authority.issue({ csr, attestation: attestation(ID) }), { spiffeId: ID, subjectKind: 'ed25519', ttlSeconds: 3600 });
  });

  it.each([
    ['a SAN URI of another identity', `URI:spiffe://${TD}/admin/root`, `"spiffe://${TD}/admin/root"`],
    ['a second SAN URI', `URI:${ID},URI:spiffe://${TD}/agent/b`, `"spiffe://${TD}/agent/b"`],
    ['a DNS SAN that was not attested', 'DNS:evil.example.org', '"evil.example.org"'],
    ['an IP SAN', 'IP:10.0.0.1', '"10.0.0.1"'],
    ['an email SAN', 'email:a@example.org', '"a name of another kind"'],
  ])('refuses %s with PolicyDenied ERR_CSR_SAN_MISMATCH, stores nothing and audits the denial', async (_label, san, shown) => {
    const { authority, store } = await freshAuthority();
    const csr = makeCsr(dir.path, subjects['ec-p384'].key, { addext: [`subjectAltName=${san}`] }).pem;
    const e = await caught(() => authority.issue({ csr, attestation: attestation(ID, { actor: 'token:t-1', method: 'join-token' }) }));
    expectAgentError(e, PolicyDenied, 'ERR_CSR_SAN_MISMATCH', `the CSR asks for ${shown}, which is not the attested identity ${ID}`);
    expect(store.certificates.certs.size).toBe(0);
    expect(store.certificates.reserved.size).toBe(0);
    expect(store.audit.events).toHaveLength(1);
    expect(store.audit.events[0]).toMatchObject({
      type: 'deny',
      outcome: 'denied',
      actor: 'token:t-1',
      spiffeId: ID,
      code: 'ERR_CSR_SAN_MISMATCH',
      detail: { method: 'join-token', profile: 'default' },
    });
    expect(store.audit.events[0]!.serial ?? null).toBeNull();
    expect(await authority.verifyAudit()).toMatchObject({ ok: true, events: 1 });
  });

  it('clamps notAfter at the task deadline (whole seconds) and carries task and principal', async () => {
    const { authority, store } = await freshAuthority();
    const deadline = new Date(NOW.getTime() + 600_700);
    const issued = await authority.issue({
      csr: subjects['rsa-2048'].csr,
      attestation: attestation(ID, { taskId: 'task-1', taskDeadline: deadline, onBehalfOf: 'user:alice@example.org', instanceId: 'inst-7' }),
    });
    expect(issued.notAfter.toISOString()).toBe(new Date(NOW.getTime() + 600_000).toISOString());
    await expectLeaf(ca, issued, { spiffeId: ID, subjectKind: 'rsa-2048', ttlSeconds: 600, taskId: 'task-1', onBehalfOf: 'user:alice@example.org', instanceId: 'inst-7' });
    expect(issued.taskId).toBe('task-1');
    expect((await store.certificates.get(issued.serial))?.taskId).toBe('task-1');
  });

  it('does not clamp when the task deadline is after the TTL', async () => {
    const { authority } = await freshAuthority();
    const issued = await authority.issue({
      csr: subjects['ec-p256'].csr,
      attestation: attestation(ID, { taskId: 'task-2', taskDeadline: new Date(NOW.getTime() + 86_400_000) }),
      ttlSeconds: 900,
    });
    await expectLeaf(ca, issued, { spiffeId: ID, subjectKind: 'ec-p256', ttlSeconds: 900, taskId: 'task-2' });
  });

  it('refuses a task whose deadline has passed', async () => {
    const { authority, store } = await freshAuthority();
    const deadline = new Date(NOW.getTime() - 1000);
    const e = await caught(() => authority.issue({ csr: subjects['ec-p256'].csr, attestation: attestation(ID, { taskId: 'task-3', taskDeadline: deadline }) }));
    expectAgentError(e, PolicyDenied, 'ERR_TASK_EXPIRED', `task task-3 ended at ${deadline.toISOString()}`);
    expect(store.certificates.certs.size).toBe(0);
  });

  it("clamps notAfter at the issuing CA's notAfter", async () => {
    const short = await makeCa('ec-p384', { intermediateTtlSeconds: 1200 });
    const issued = await short.authority.issue({ csr: subjects['ec-p256'].csr, attestation: attestation(ID) });
    const int = new x509.X509Certificate(short.intermediate as BufferSource);
    expect(int.notAfter.getTime()).toBe(NOW.getTime() + 1_200_000);
    const leaf = await expectLeaf(short, issued, { spiffeId: ID, subjectKind: 'ec-p256', ttlSeconds: 1200 });
    expect(leaf.notAfter.getTime()).toBe(int.notAfter.getTime());
    // Once the CA has expired nothing more can be issued.
    short.clock.advance(1_200_000);
    const e = await caught(() => short.authority.issue({ csr: subjects['ec-p256'].csr, attestation: attestation(ID) }));
    expectAgentError(e, PolicyDenied, 'ERR_CA_EXPIRING', 'the issuing CA expires before the certificate could be valid');
  });

  it('refuses a TTL above the profile maximum with PolicyDenied ERR_TTL_TOO_LONG', async () => {
    const { authority, store } = await freshAuthority();
    const ttl = DEFAULT_PROFILE.maxTtl + 1;
    const e = await caught(() => authority.issue({ csr: subjects.ed25519.csr, attestation: attestation(ID), ttlSeconds: ttl }));
    expectAgentError(e, PolicyDenied, 'ERR_TTL_TOO_LONG', `a TTL of ${ttl}s exceeds the maximum of profile default (${DEFAULT_PROFILE.maxTtl}s)`);
    expect(store.certificates.certs.size).toBe(0);
    expect(store.audit.events.map((ev) => [ev.type, ev.code])).toEqual([['deny', 'ERR_TTL_TOO_LONG']]);
  });

  it('issues exactly the profile maximum TTL', async () => {
    const { authority } = await freshAuthority();
    const issued = await authority.issue({ csr: subjects.ed25519.csr, attestation: attestation(ID), ttlSeconds: DEFAULT_PROFILE.maxTtl });
    await expectLeaf(ca, issued, { spiffeId: ID, subjectKind: 'ed25519', ttlSeconds: DEFAULT_PROFILE.maxTtl });
  });

  it('`agentca inspect` shows the instance from the agentca extension', async () => {
    const { authority } = await freshAuthority();
    const issued = await authority.issue({ csr: subjects['ec-p256'].csr, attestation: attestation(ID, { taskId: 'task-9' }) });
    const [d] = inspectDescribe(new TextEncoder().encode(toPem('CERTIFICATE', issued.der)));
    expect(d?.fields).toContainEqual(['SAN URI', `${ID} (critical)`]);
    expect(d?.fields).toContainEqual(['instance', issued.instanceId]);
    expect(d?.fields).toContainEqual(['task', 'task-9']);
  });
});

describe('parts of the leaf encoded once per profile and key family', () => {
  it('follow the profile and the key: two profiles and two key families, interleaved, each get their own extKeyUsage and keyUsage', async () => {
    const ca = await makeCa('ec-p256');
    const clientOnly = { ...DEFAULT_PROFILE, name: 'client-only', extKeyUsage: ['clientAuth'] as const };
    const authority = await Authority.open({
      trustDomain: TD,
      issuer: { certificate: ca.intermediate, signer: ca.signer },
      roots: [ca.root],
      profiles: [DEFAULT_PROFILE, { ...clientOnly, extKeyUsage: [...clientOnly.extKeyUsage] }],
      store: memoryStore(),
      clock: ca.clock,
      urls: { crl: ['http://ca.example.org/crl'], ocsp: ['http://ca.example.org/ocsp'] },
    });
    const seen: string[] = [];
    for (const [profile, kind] of [
      ['default', 'ec-p256'],
      ['client-only', 'rsa-2048'],
      ['default', 'rsa-2048'],
      ['client-only', 'ec-p256'],
      ['default', 'ec-p256'],
    ] as const) {
      const issued = await authority.issue({ csr: subjects[kind].csr, attestation: { ...attestation(`spiffe://${TD}/agent/${profile}`), profile } });
      const leaf = new x509.X509Certificate(issued.der as BufferSource);
      const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages.join(',');
      const ku = leaf.getExtension(x509.KeyUsagesExtension)!.usages;
      const crl = leaf.getExtension(x509.CRLDistributionPointsExtension);
      expect(crl, 'CRL distribution point on every leaf').toBeDefined();
      seen.push(`${profile}/${kind}: eku ${eku}; keyEncipherment ${(ku & x509.KeyUsageFlags.keyEncipherment) !== 0}`);
    }
    expect(seen).toEqual([
      'default/ec-p256: eku 1.3.6.1.5.5.7.3.2,1.3.6.1.5.5.7.3.1; keyEncipherment false',
      'client-only/rsa-2048: eku 1.3.6.1.5.5.7.3.2; keyEncipherment true',
      'default/rsa-2048: eku 1.3.6.1.5.5.7.3.2,1.3.6.1.5.5.7.3.1; keyEncipherment true',
      'client-only/ec-p256: eku 1.3.6.1.5.5.7.3.2; keyEncipherment false',
      'default/ec-p256: eku 1.3.6.1.5.5.7.3.2,1.3.6.1.5.5.7.3.1; keyEncipherment false',
    ]);
  });
});

describe('the lean certificate parser', () => {
  it('refuses a validity without notAfter as malformed DER, not with a TypeError', async () => {
    const ca = await makeCa('ec-p256');
    const cert = rawCertificateParts(ca.intermediate);
    const oneTime = seq(time(NOW));
    const tbs = seq(...cert.tbsParts.map((p, i) => (i === 4 ? oneTime : p)));
    const der = seq(tbs, cert.algorithm, cert.signature);
    const e = caughtSync(() => parseCertificate(der));
    expectAgentError(e, InvalidRequest, 'ERR_DER_MALFORMED', 'malformed DER: validity needs notBefore and notAfter');
  });
});

describe('the oracle itself', () => {
  it('notices a certificate altered after signing', async () => {
    const ca = await makeCa('ed25519');
    const issued = await ca.authority.issue({ csr: subjects['ec-p256'].csr, attestation: attestation(`spiffe://${TD}/agent/x`) });
    const tampered = issued.der.slice();
    const at = toHex(tampered).indexOf(toHex(new TextEncoder().encode('/agent/x'))) / 2;
    tampered[at + 7] = 'y'.charCodeAt(0);
    const leaf = new x509.X509Certificate(tampered as BufferSource);
    const int = new x509.X509Certificate(ca.intermediate as BufferSource);
    expect(leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.items[0]?.value).toBe(`spiffe://${TD}/agent/y`);
    expect(await leaf.verify({ publicKey: int.publicKey, signatureOnly: true })).toBe(false);
  });
});
