/**
 * The OCSP responder against openssl: requests made by `openssl ocsp -reqout`, responses read
 * back and verified by `openssl ocsp -respin` with the chain alone (root as the trust anchor,
 * the delegated responder certificate carried in the response), for an EC and an RSA CA.
 * Plus the pre-signed cache: reuse, shared misses, staleness, invalidation and rotation.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Authority,
  DEFAULT_PROFILE,
  FixedClock,
  INTERMEDIATE_KEY,
  InternalError,
  InvalidRequest,
  Unavailable,
  createHierarchy,
  generateWebCryptoSigner,
  parseCertificate,
  toHex,
  toPem,
  webCryptoRandom,
  type KeyAlgorithm,
  type Signer,
} from '../src/index.ts';
import { OcspResponder, type OcspCertStatus, type OcspResponderOptions } from '../src/revocation/ocsp.ts';
import { OCSP_NOCHECK_OID, createOcspResponderCertificate } from '../src/revocation/ocsp-responder-certificate.ts';
import { EXT, EKU } from '../src/x509/extensions.ts';
import { TAG, children, explicit, octetString, oid, readElement, readTop, seq, tlv, unsignedInteger, type DerElement } from '../src/x509/der.ts';
import { MemoryKeyStore, memoryStore } from './fakes.ts';
import { caughtSync, expectAgentError } from './support/errors.ts';
import { genKey, makeCsr, openssl, tempDir } from './support/openssl.ts';

// openssl checks thisUpdate/nextUpdate and the responder certificate against its own clock:
// the fixed clock starts at the real time (whole seconds) and only moves when a test says so.
const START = new Date(Math.floor(Date.now() / 1000) * 1000);
const TD = 'example.org';
const dir = tempDir('ocsp');
afterAll(() => dir.remove());

let fileNo = 0;
function write(name: string, data: Uint8Array | string): string {
  const path = join(dir.path, `${++fileNo}-${name}`);
  writeFileSync(path, data);
  return path;
}

/** A signer that counts its signatures. */
function counting(inner: Signer): Signer & { calls: number } {
  const s = {
    calls: 0,
    algorithm: inner.algorithm,
    publicKey: inner.publicKey,
    sign(data: Uint8Array) {
      s.calls++;
      return inner.sign(data);
    },
  };
  return s;
}

interface Ca {
  root: Uint8Array;
  intermediate: Uint8Array;
  intSigner: Signer;
  authority: Authority;
  rootPem: string;
  intPem: string;
}

async function makeCa(alg: KeyAlgorithm, clock: FixedClock): Promise<Ca> {
  const keys = new MemoryKeyStore();
  const { root, intermediate } = await createHierarchy({ trustDomain: TD, keyAlgorithm: alg, keys, clock, random: webCryptoRandom });
  const intSigner = await keys.open(INTERMEDIATE_KEY);
  const authority = await Authority.open({
    trustDomain: TD,
    issuer: { certificate: intermediate, signer: intSigner },
    roots: [root],
    profiles: [DEFAULT_PROFILE],
    store: memoryStore(),
    clock,
  });
  return { root, intermediate, intSigner, authority, rootPem: write('root.pem', toPem('CERTIFICATE', root)), intPem: write('int.pem', toPem('CERTIFICATE', intermediate)) };
}

const csrKey = () => genKey(dir.path, 'ec-p256', `leaf-${++fileNo}`);

async function issueLeaf(ca: Ca, name: string): Promise<{ serial: string; pem: string; der: Uint8Array }> {
  const csr = makeCsr(dir.path, csrKey()).pem;
  const issued = await ca.authority.issue({
    csr,
    attestation: { spiffeId: `spiffe://${TD}/agent/${name}`, profile: 'default', method: 'operator', actor: 'test' },
    ttlSeconds: 3600,
  });
  return { serial: issued.serial, der: issued.der, pem: write(`${name}.pem`, toPem('CERTIFICATE', issued.der)) };
}

/** `openssl ocsp -reqout`: the request bytes exactly as openssl builds them. */
function opensslRequest(ca: Ca, target: { cert?: string | string[]; serial?: string }, o: { nonce?: boolean; sha256?: boolean; extra?: string[] } = {}): { der: Uint8Array; path: string } {
  const path = join(dir.path, `${++fileNo}-req.der`);
  const args = ['ocsp', '-issuer', ca.intPem, '-reqout', path];
  if (o.sha256) args.push('-sha256'); // before -cert: it picks the CertID digest
  for (const c of [target.cert ?? []].flat()) args.push('-cert', c);
  if (target.serial) args.push('-serial', `0x${target.serial}`);
  args.push(o.nonce ? '-nonce' : '-no_nonce');
  args.push(...(o.extra ?? []));
  openssl(args, dir.path);
  return { der: new Uint8Array(readFileSync(path)), path };
}

/**
 * `openssl ocsp -respin … -resp_text`: status lines on stdout, verification verdict on stderr.
 * With `reqin` (for the nonce check) pass no target: `-cert` would make openssl build a new
 * request, with a nonce of its own.
 */
function opensslCheck(ca: Ca, response: Uint8Array, target: { cert?: string; serial?: string }, o: { reqin?: string; extra?: string[] } = {}): { out: string; err: string; status: number | null } {
  const resp = write('resp.der', response);
  const args = ['ocsp', '-respin', resp, '-issuer', ca.intPem, '-CAfile', ca.rootPem, '-resp_text', ...(o.extra ?? [])];
  if (target.cert) args.push('-cert', target.cert);
  if (target.serial) args.push('-serial', `0x${target.serial}`);
  if (o.reqin) args.push('-reqin', o.reqin);
  const r = spawnSync('openssl', args, { cwd: dir.path, encoding: 'utf8', timeout: 60_000 });
  return { out: r.stdout, err: r.stderr, status: r.status };
}

const opensslDate = (d: Date) => {
  const m = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getUTCMonth()]!;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${m} ${String(d.getUTCDate()).padStart(2, ' ')} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} ${d.getUTCFullYear()} GMT`;
};

// ---------------------------------------------------------------- an independent reading of the response

interface ReadResponse {
  status: number;
  certId?: Uint8Array;
  certStatus?: 'good' | 'revoked' | 'unknown';
  reasonCode?: number | null;
  nonce?: Uint8Array | null;
  certs?: number;
  thisUpdate?: string;
  nextUpdate?: string;
}

/** Reads an OCSPResponse with the DER walker (openssl is the real oracle; this one gives structured fields). */
function readResponse(der: Uint8Array): ReadResponse {
  const top = readTop(der, TAG.SEQUENCE);
  const [st, rb] = children(der, top);
  expect(st!.tag).toBe(TAG.ENUMERATED);
  const status = der[st!.contentStart]!;
  if (!rb) return { status };
  const [respBytes] = children(der, rb);
  const [, octets] = children(der, respBytes!);
  const basic = der.subarray(octets!.contentStart, octets!.end);
  const [tbs, , , certs] = children(basic, readTop(basic, TAG.SEQUENCE));
  const parts = children(basic, tbs!);
  const [single] = children(basic, parts[2]!);
  const [certId, cs, tu, nu] = children(basic, single!);
  let reasonCode: number | null = null;
  if (cs!.tag === 0xa1) {
    const r = children(basic, cs!)[1];
    if (r) reasonCode = basic[children(basic, r)[0]!.contentStart]!;
  }
  let nonce: Uint8Array | null = null;
  if (parts[3]) {
    const [list] = children(basic, parts[3]);
    for (const ext of children(basic, list!)) {
      const [id, v] = children(basic, ext);
      if (toHex(basic.subarray(id!.start, id!.end)) === toHex(oid('1.3.6.1.5.5.7.48.1.2'))) nonce = basic.slice(v!.contentStart, v!.end);
    }
  }
  const text = (e: DerElement) => new TextDecoder().decode(basic.subarray(e.contentStart, e.end));
  return {
    status,
    certId: basic.slice(certId!.start, certId!.end),
    certStatus: cs!.tag === 0x80 ? 'good' : cs!.tag === 0xa1 ? 'revoked' : 'unknown',
    reasonCode,
    nonce,
    certs: certs ? children(basic, children(basic, certs)[0]!).length : 0,
    thisUpdate: text(tu!),
    nextUpdate: text(children(basic, nu!)[0]!),
  };
}

/** The CertID TLV of an OCSPRequest with one Request. */
function requestCertId(req: Uint8Array): Uint8Array {
  const [tbs] = children(req, readElement(req, 0));
  const list = children(req, tbs!).find((e) => e.tag === TAG.SEQUENCE)!;
  const [request] = children(req, list);
  const [certId] = children(req, request!);
  return req.slice(certId!.start, certId!.end);
}

/** The nonce extension's extnValue in a request made by openssl. */
function nonceExtnValue(req: Uint8Array): Uint8Array | null {
  const [tbs] = children(req, readElement(req, 0));
  const exts = children(req, tbs!).find((e) => e.tag === 0xa2);
  if (!exts) return null;
  for (const ext of children(req, children(req, exts)[0]!)) {
    const [id, v] = children(req, ext);
    if (toHex(req.subarray(id!.start, id!.end)) === toHex(oid('1.3.6.1.5.5.7.48.1.2'))) return req.slice(v!.contentStart, v!.end);
  }
  return null;
}

/** An OCSPRequest around given CertIDs, with an optional nonce extnValue (whole, as sent). */
function craftRequest(certIds: Uint8Array[], o: { nonceExtnValue?: Uint8Array; extensions?: Uint8Array[] } = {}): Uint8Array {
  const exts = [...(o.extensions ?? [])];
  if (o.nonceExtnValue) exts.push(seq(oid('1.3.6.1.5.5.7.48.1.2'), octetString(o.nonceExtnValue)));
  const tbs = seq(seq(...certIds.map((c) => seq(c))), ...(exts.length ? [explicit(2, seq(...exts))] : []));
  return seq(tbs);
}

/** A CertID with the hashes taken from `like` and another serial. */
function withSerial(like: Uint8Array, serial: Uint8Array): Uint8Array {
  const parts = children(like, readElement(like, 0)).slice(0, 3).map((e) => like.slice(e.start, e.end));
  return seq(...parts, unsignedInteger(serial));
}

const ERROR = (n: number) => Uint8Array.of(0x30, 0x03, 0x0a, 0x01, n);

// ---------------------------------------------------------------- per CA key type

describe.each(['ec-p256', 'rsa-2048'] as const)('OCSP for a %s CA', (alg) => {
  const clock = new FixedClock(START);
  let ca: Ca;
  let foreign: Ca;
  let responderSigner: Signer & { calls: number };
  let responderCert: Uint8Array;
  let responderPem: string;
  let statuses: Map<string, OcspCertStatus>;
  let ocsp: OcspResponder;
  let lookups: string[];
  const leaves: Record<'good' | 'revoked' | 'later' | 'unspecified', { serial: string; pem: string; der: Uint8Array }> = {} as never;
  const REVOKED_AT = new Date(START.getTime() - 3_600_000);

  const newResponder = (o: Partial<OcspResponderOptions> = {}) =>
    new OcspResponder({
      issuerCertificate: ca.intermediate,
      responder: { certificate: responderCert, signer: responderSigner },
      lookup: (serial) => {
        lookups.push(serial);
        return statuses.get(serial) ?? { status: 'unknown' };
      },
      clock,
      ...o,
    });

  beforeAll(async () => {
    ca = await makeCa(alg, clock);
    foreign = await makeCa(alg, clock); // same names, other keys
    for (const name of ['good', 'revoked', 'later', 'unspecified'] as const) leaves[name] = await issueLeaf(ca, name);
    responderSigner = counting(await generateWebCryptoSigner('ec-p256'));
    responderCert = await createOcspResponderCertificate({
      issuerCertificate: ca.intermediate,
      issuerSigner: ca.intSigner,
      responderPublicKey: responderSigner.publicKey,
      notBefore: new Date(START.getTime() - 60_000),
      notAfter: new Date(START.getTime() + 86_400_000),
      random: webCryptoRandom,
    });
    responderPem = write('responder.pem', toPem('CERTIFICATE', responderCert));
    statuses = new Map([
      [leaves.good.serial, { status: 'good' }],
      [leaves.revoked.serial, { status: 'revoked', revokedAt: REVOKED_AT, reason: 'keyCompromise' }],
      [leaves.later.serial, { status: 'good' }],
      [leaves.unspecified.serial, { status: 'revoked', revokedAt: REVOKED_AT, reason: 'unspecified' }],
    ]);
    lookups = [];
    ocsp = newResponder();
    await ocsp.ready();
  });

  it('issues a delegated responder certificate that openssl accepts for OCSP signing', () => {
    const text = openssl(['x509', '-in', responderPem, '-noout', '-text'], dir.path).stdout;
    expect(text).toMatch(/Subject: CN ?= ?agentca OCSP responder/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \n\s+OCSP Signing\n/);
    expect(text).toContain('OCSP No Check');
    expect(text).toContain('X509v3 Subject Key Identifier');
    expect(text).toContain('X509v3 Authority Key Identifier');
    const verify = openssl(['verify', '-CAfile', ca.rootPem, '-untrusted', ca.intPem, '-purpose', 'ocsphelper', responderPem], dir.path);
    expect(verify.stdout.trim()).toBe(`${responderPem}: OK`);
    const c = parseCertificate(responderCert);
    expect(c.extensions.get(OCSP_NOCHECK_OID)).toEqual({ critical: false, value: Uint8Array.of(0x05, 0x00) });
    expect(c.extensions.get(EXT.extKeyUsage)?.critical).toBe(false);
    expect(toHex(c.extensions.get(EXT.extKeyUsage)!.value)).toBe(toHex(seq(oid(EKU.ocspSigning))));
    expect(c.notAfter.getTime()).toBe(START.getTime() + 86_400_000);
  });

  it('answers good for an issued certificate, verified by openssl through the chain', async () => {
    const req = opensslRequest(ca, { cert: leaves.good.pem });
    const resp = await ocsp.respond(req.der);
    const r = opensslCheck(ca, resp, { cert: leaves.good.pem });
    expect(r.err).toContain('Response verify OK');
    expect(r.out).toContain(`${leaves.good.pem}: good`);
    expect(r.out).toContain(`This Update: ${opensslDate(clock.now())}`);
    expect(r.out).toContain(`Next Update: ${opensslDate(new Date(clock.now().getTime() + 3_600_000))}`);
    expect(r.out).toMatch(/Responder Id: [0-9A-F]{40}/);
    expect(r.out).toContain('OCSP Response Status: successful (0x0)');
    const read = readResponse(resp);
    expect(read.certId).toEqual(requestCertId(req.der));
    expect(read.certs).toBe(1);
    expect(read.nonce).toBeNull();
  });

  it('answers revoked with the revocation time and reason', async () => {
    const req = opensslRequest(ca, { cert: leaves.revoked.pem });
    const r = opensslCheck(ca, await ocsp.respond(req.der), { cert: leaves.revoked.pem });
    expect(r.err).toContain('Response verify OK');
    expect(r.out).toContain(`${leaves.revoked.pem}: revoked`);
    expect(r.out).toContain('Reason: keyCompromise');
    expect(r.out).toContain(`Revocation Time: ${opensslDate(REVOKED_AT)}`);
  });

  it('leaves the reason out for an unspecified revocation (RFC 5280 §5.3.1)', async () => {
    const req = opensslRequest(ca, { cert: leaves.unspecified.pem });
    const resp = await ocsp.respond(req.der);
    const r = opensslCheck(ca, resp, { cert: leaves.unspecified.pem });
    expect(r.out).toContain(`${leaves.unspecified.pem}: revoked`);
    expect(r.out).not.toContain('Reason:');
    expect(readResponse(resp).reasonCode).toBeNull();
  });

  it('answers unknown for a serial this CA never issued', async () => {
    const serial = `4a${'ab'.repeat(16)}`;
    const req = opensslRequest(ca, { serial });
    const resp = await ocsp.respond(req.der);
    const r = opensslCheck(ca, resp, { serial });
    expect(r.err).toContain('Response verify OK');
    expect(r.out).toContain(`0x${serial}: unknown`);
    expect(lookups).toContain(serial);
  });

  it('answers unauthorized, unsigned, for a certificate of another CA with the same names', async () => {
    const other = await issueLeaf(foreign, 'foreign');
    const req = opensslRequest(foreign, { cert: other.pem });
    const resp = await ocsp.respond(req.der);
    expect(resp).toEqual(ERROR(6));
    expect(opensslCheck(foreign, resp, { cert: other.pem }).out).toContain('Responder Error: unauthorized (6)');
    // Same issuer name (so the name hash matches), other key: the key hash decides.
    expect(toHex(requestCertId(req.der)).slice(0, 60)).toBe(toHex(requestCertId(opensslRequest(ca, { cert: leaves.good.pem }).der)).slice(0, 60));
  });

  it('echoes the nonce, which openssl checks against its request', async () => {
    const req = opensslRequest(ca, { cert: leaves.good.pem }, { nonce: true });
    const resp = await ocsp.respond(req.der);
    const r = opensslCheck(ca, resp, {}, { reqin: req.path });
    expect(r.err).toContain('Response verify OK');
    expect(r.err).not.toMatch(/nonce/i);
    expect(r.out).toContain('Cert Status: good');
    expect(r.out).toContain('OCSP Nonce');
    expect(readResponse(resp).nonce).toEqual(nonceExtnValue(req.der));
    // openssl does notice a missing or a different nonce: the same request answered without one, and another request's.
    const plain = await ocsp.respond(opensslRequest(ca, { cert: leaves.good.pem }).der);
    expect(opensslCheck(ca, plain, {}, { reqin: req.path }).err).toContain('WARNING: no nonce in response');
    const other = await ocsp.respond(opensslRequest(ca, { cert: leaves.good.pem }, { nonce: true }).der);
    expect(opensslCheck(ca, other, {}, { reqin: req.path }).err).toContain('Nonce Verify error');
  });

  it('answers SHA-256 CertIDs, echoing them', async () => {
    for (const name of ['good', 'revoked'] as const) {
      const req = opensslRequest(ca, { cert: leaves[name].pem }, { sha256: true });
      const resp = await ocsp.respond(req.der);
      const r = opensslCheck(ca, resp, { cert: leaves[name].pem }, { extra: ['-sha256'] });
      expect(r.err).toContain('Response verify OK');
      expect(r.out).toContain(`${leaves[name].pem}: ${name}`);
      expect(readResponse(resp).certId).toEqual(requestCertId(req.der));
      expect(toHex(requestCertId(req.der))).toContain(toHex(oid('2.16.840.1.101.3.4.2.1')));
    }
  });

  it('answers a signed request, ignoring its signature', async () => {
    const key = genKey(dir.path, 'ec-p256', `requestor-${alg}`);
    const cert = join(dir.path, `requestor-${alg}.pem`);
    openssl(['req', '-x509', '-new', '-key', key, '-subj', '/CN=requestor', '-days', '1', '-out', cert], dir.path);
    const req = opensslRequest(ca, { cert: leaves.good.pem }, { extra: ['-signer', cert, '-signkey', key] });
    expect(openssl(['ocsp', '-reqin', req.path, '-req_text'], dir.path).stdout).toContain('Signature Algorithm');
    const r = opensslCheck(ca, await ocsp.respond(req.der), { cert: leaves.good.pem });
    expect(r.out).toContain(`${leaves.good.pem}: good`);
  });

  it('refuses more than one Request per OCSPRequest (RFC 5019 §2.1.1) with malformedRequest', async () => {
    const req = opensslRequest(ca, { cert: [leaves.good.pem, leaves.revoked.pem] });
    expect(await ocsp.respond(req.der)).toEqual(ERROR(1));
  });

  it('checks the nonce: 1 to 128 octets, once', async () => {
    const certId = requestCertId(opensslRequest(ca, { cert: leaves.good.pem }).der);
    const nonce = (n: number) => octetString(new Uint8Array(n).fill(7));
    for (const n of [1, 16, 32, 128]) {
      const resp = await ocsp.respond(craftRequest([certId], { nonceExtnValue: nonce(n) }));
      expect(readResponse(resp)).toMatchObject({ status: 0, certStatus: 'good', nonce: nonce(n) });
    }
    expect(await ocsp.respond(craftRequest([certId], { nonceExtnValue: nonce(0) }))).toEqual(ERROR(1));
    expect(await ocsp.respond(craftRequest([certId], { nonceExtnValue: nonce(129) }))).toEqual(ERROR(1));
    expect(await ocsp.respond(craftRequest([certId], { nonceExtnValue: Uint8Array.of(1, 2, 3) }))).toEqual(ERROR(1)); // not an OCTET STRING
    const twice = seq(seq(seq(seq(certId))), explicit(2, seq(seq(oid('1.3.6.1.5.5.7.48.1.2'), octetString(nonce(8))), seq(oid('1.3.6.1.5.5.7.48.1.2'), octetString(nonce(8))))));
    expect(await ocsp.respond(twice)).toEqual(ERROR(1));
    // Other extensions are ignored (RFC 6960 §4.4.3 preferred signature algorithms, here).
    const other = seq(oid('1.3.6.1.5.5.7.48.1.8'), octetString(seq()));
    expect(readResponse(await ocsp.respond(craftRequest([certId], { extensions: [other] }))).certStatus).toBe('good');
  });

  it('refuses CertIDs whose hashes do not fit their algorithm, and answers unauthorized for other algorithms', async () => {
    const certId = requestCertId(opensslRequest(ca, { cert: leaves.good.pem }).der);
    const [alg0, name, key, serial] = children(certId, readElement(certId, 0)).map((e) => certId.slice(e.start, e.end));
    const short = seq(alg0!, octetString(new Uint8Array(19)), key!, serial!);
    expect(await ocsp.respond(craftRequest([short]))).toEqual(ERROR(1));
    const sha384 = seq(seq(oid('2.16.840.1.101.3.4.2.2'), Uint8Array.of(5, 0)), name!, key!, serial!);
    expect(await ocsp.respond(craftRequest([sha384]))).toEqual(ERROR(6));
    const badParams = seq(seq(oid('1.3.14.3.2.26'), Uint8Array.of(2, 1, 0)), name!, key!, serial!);
    expect(await ocsp.respond(craftRequest([badParams]))).toEqual(ERROR(1));
    const noParams = seq(seq(oid('1.3.14.3.2.26')), name!, key!, serial!);
    expect(readResponse(await ocsp.respond(craftRequest([noParams]))).certStatus).toBe('good');
  });

  it('answers unknown, without a lookup, for serials agentca cannot have issued', async () => {
    const certId = requestCertId(opensslRequest(ca, { cert: leaves.good.pem }).der);
    const [a, n, k] = children(certId, readElement(certId, 0)).map((e) => certId.slice(e.start, e.end));
    lookups.length = 0;
    const negative = seq(a!, n!, k!, tlv(TAG.INTEGER, Uint8Array.of(0xff, 0x01)));
    const tooLong = seq(a!, n!, k!, unsignedInteger(new Uint8Array(21).fill(0x4a)));
    for (const c of [negative, tooLong]) expect(readResponse(await ocsp.respond(craftRequest([c]))).certStatus).toBe('unknown');
    expect(lookups).toEqual([]);
    const nonMinimal = seq(a!, n!, k!, tlv(TAG.INTEGER, Uint8Array.of(0x00, 0x4a)));
    expect(await ocsp.respond(craftRequest([nonMinimal]))).toEqual(ERROR(1));
    // The lookup gets serials as stored: lowercase hex, without the 00 sign pad.
    const padded = seq(a!, n!, k!, tlv(TAG.INTEGER, Uint8Array.of(0x00, 0x80, 0xab)));
    expect(readResponse(await ocsp.respond(craftRequest([padded]))).certStatus).toBe('unknown');
    expect(lookups).toEqual(['80ab']);
  });

  it('can be signed by the issuing CA itself', async () => {
    const direct = newResponder({ responder: { certificate: ca.intermediate, signer: ca.intSigner } });
    const resp = await direct.respond(opensslRequest(ca, { cert: leaves.revoked.pem }).der);
    expect(readResponse(resp).certs).toBe(0);
    const r = opensslCheck(ca, resp, { cert: leaves.revoked.pem });
    expect(r.err).toContain('Response verify OK');
    expect(r.out).toContain(`${leaves.revoked.pem}: revoked`);
  });

  describe('the pre-signed cache', () => {
    it('serves the same bytes without signing again, and shares one signature between concurrent misses', async () => {
      const o = newResponder();
      const req = opensslRequest(ca, { cert: leaves.good.pem }).der;
      const before = responderSigner.calls;
      const all = await Promise.all(Array.from({ length: 20 }, () => o.respond(req)));
      expect(responderSigner.calls - before).toBe(1);
      for (const r of all) expect(r).toBe(all[0]);
      const again = await o.respond(req.slice());
      expect(again).toEqual(all[0]);
      expect(responderSigner.calls - before).toBe(1);
      expect(o.cachedResponses).toBe(1);
    });

    it('signs every nonce request fresh', async () => {
      const o = newResponder();
      const before = responderSigner.calls;
      const a = await o.respond(opensslRequest(ca, { cert: leaves.good.pem }, { nonce: true }).der);
      const b = await o.respond(opensslRequest(ca, { cert: leaves.good.pem }, { nonce: true }).der);
      expect(responderSigner.calls - before).toBe(2);
      expect(readResponse(a).nonce).not.toEqual(readResponse(b).nonce);
      expect(o.cachedResponses).toBe(0);
    });

    it('re-signs once half the validity has passed', async () => {
      const c = new FixedClock(START);
      const o = newResponder({ clock: c, validitySeconds: 600 });
      const req = opensslRequest(ca, { cert: leaves.good.pem }).der;
      const first = await o.respond(req);
      const before = responderSigner.calls;
      c.advance(299_000);
      expect(await o.respond(req)).toBe(first);
      expect(responderSigner.calls).toBe(before);
      c.advance(1_000);
      const fresh = await o.respond(req);
      expect(responderSigner.calls).toBe(before + 1);
      expect(readResponse(fresh).thisUpdate).not.toBe(readResponse(first).thisUpdate);
      expect(await o.respond(req)).toBe(fresh);
    });

    it('reflects a revocation on the next request after invalidate(serial)', async () => {
      const o = newResponder();
      const req = opensslRequest(ca, { cert: leaves.later.pem }).der;
      const req256 = opensslRequest(ca, { cert: leaves.later.pem }, { sha256: true }).der;
      expect(readResponse(await o.respond(req)).certStatus).toBe('good');
      expect(readResponse(await o.respond(req256)).certStatus).toBe('good');
      const revokedAt = new Date(clock.now().getTime());
      statuses.set(leaves.later.serial, { status: 'revoked', revokedAt, reason: 'cessationOfOperation' });
      try {
        expect(readResponse(await o.respond(req)).certStatus).toBe('good'); // cached until told
        o.invalidate(leaves.later.serial);
        expect(o.cachedResponses).toBe(0);
        const resp = await o.respond(req);
        const r = opensslCheck(ca, resp, { cert: leaves.later.pem });
        expect(r.out).toContain(`${leaves.later.pem}: revoked`);
        expect(r.out).toContain('Reason: cessationOfOperation');
        expect(r.out).toContain(`Revocation Time: ${opensslDate(revokedAt)}`);
        expect(readResponse(await o.respond(req256)).certStatus).toBe('revoked');
      } finally {
        statuses.set(leaves.later.serial, { status: 'good' });
      }
    });

    it('does not cache an answer whose lookup raced an invalidation', async () => {
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let status: OcspCertStatus = { status: 'good' };
      const o = newResponder({
        lookup: async () => {
          const seen = status;
          await gate;
          return seen;
        },
      });
      const req = opensslRequest(ca, { cert: leaves.later.pem }).der;
      const pending = o.respond(req);
      await new Promise((r) => setTimeout(r, 10));
      status = { status: 'revoked', revokedAt: clock.now(), reason: 'superseded' };
      o.invalidate(leaves.later.serial);
      release();
      expect(readResponse(await pending).certStatus).toBe('good'); // read before the revocation
      expect(readResponse(await o.respond(req)).certStatus).toBe('revoked');
    });

    it('stays within its size, dropping the least recently used', async () => {
      const o = newResponder({ cacheSize: 4 });
      const certId = requestCertId(opensslRequest(ca, { cert: leaves.good.pem }).der);
      const hot = craftRequest([certId]);
      const hotFirst = await o.respond(hot);
      for (let i = 0; i < 20; i++) {
        await o.respond(craftRequest([withSerial(certId, Uint8Array.of(0x4a, i, 1, 2, 3))]));
        expect(await o.respond(hot)).toBe(hotFirst);
        expect(o.cachedResponses).toBeLessThanOrEqual(4);
      }
    });

    it('drops everything when the responder rotates, and signs with the new one', async () => {
      const o = newResponder();
      const req = opensslRequest(ca, { cert: leaves.good.pem }).der;
      const old = await o.respond(req);
      const next = counting(await generateWebCryptoSigner(alg));
      const nextCert = await createOcspResponderCertificate({
        issuerCertificate: ca.intermediate,
        issuerSigner: ca.intSigner,
        responderPublicKey: next.publicKey,
        notBefore: new Date(START.getTime() - 60_000),
        notAfter: new Date(START.getTime() + 86_400_000),
        random: webCryptoRandom,
      });
      await o.setResponder(nextCert, next);
      expect(o.cachedResponses).toBe(0);
      const resp = await o.respond(req);
      expect(resp).not.toEqual(old);
      expect(next.calls).toBe(1);
      const r = opensslCheck(ca, resp, { cert: leaves.good.pem });
      expect(r.err).toContain('Response verify OK');
      expect(r.out).toContain(`${leaves.good.pem}: good`);
    });
  });

  it('refuses a responder pair that cannot sign for this CA, keeping the current one', async () => {
    const o = newResponder();
    const stranger = await generateWebCryptoSigner('ec-p256');
    expectAgentError(caughtSync(() => o.setResponder(responderCert, stranger)), InternalError, 'ERR_KEY_PAIR_MISMATCH', 'the OCSP responder signer does not hold the key of the responder certificate');
    const foreignResponder = await createOcspResponderCertificate({
      issuerCertificate: foreign.intermediate,
      issuerSigner: foreign.intSigner,
      responderPublicKey: stranger.publicKey,
      notBefore: START,
      notAfter: new Date(START.getTime() + 3_600_000),
      random: webCryptoRandom,
    });
    expectAgentError(
      caughtSync(() => o.setResponder(foreignResponder, stranger)),
      InvalidRequest,
      'ERR_CERTIFICATE_INVALID',
      'the OCSP responder certificate must be the issuing CA or be issued by it with id-kp-OCSPSigning',
    );
    // A leaf of the right CA without OCSPSigning is refused as well.
    expect(() => o.setResponder(leaves.good.der, stranger)).toThrow();
    expect(readResponse(await o.respond(opensslRequest(ca, { cert: leaves.good.pem }).der)).certStatus).toBe('good');
    // A bad initial responder makes ready() reject and every answer an internalError.
    const broken = newResponder({ responder: { certificate: responderCert, signer: stranger } });
    await expect(broken.ready()).rejects.toMatchObject({ code: 'ERR_KEY_PAIR_MISMATCH' });
    expect(await broken.respond(opensslRequest(ca, { cert: leaves.good.pem }).der)).toEqual(ERROR(2));
  });

  it('answers tryLater when the store is unavailable and internalError for other faults of its own, then recovers', async () => {
    let fault: Error | null = new Unavailable('ERR_STORE_UNAVAILABLE', 'the store is down');
    const o = newResponder({
      lookup: () => {
        if (fault) throw fault;
        return { status: 'good' };
      },
    });
    const req = opensslRequest(ca, { cert: leaves.good.pem }).der;
    expect(await o.respond(req)).toEqual(ERROR(3));
    fault = new TypeError('bug');
    expect(await o.respond(req)).toEqual(ERROR(2));
    fault = null;
    expect(readResponse(await o.respond(req)).certStatus).toBe('good');
    const liar = newResponder({ lookup: () => ({ status: 'fine' }) as unknown as OcspCertStatus });
    expect(await liar.respond(req)).toEqual(ERROR(2));
    const failingSigner = newResponder({ responder: { certificate: responderCert, signer: { ...responderSigner, sign: () => Promise.reject(new Error('hsm gone')) } } });
    expect(await failingSigner.respond(req)).toEqual(ERROR(2));
  });
});

describe('OcspResponder options', () => {
  it('refuses a validity outside 1 s – 7 days', async () => {
    const clock = new FixedClock(START);
    const ca = await makeCa('ec-p256', clock);
    for (const v of [0, 1.5, 7 * 86400 + 1]) {
      const e = caughtSync(
        () => new OcspResponder({ issuerCertificate: ca.intermediate, responder: { certificate: ca.intermediate, signer: ca.intSigner }, lookup: () => ({ status: 'good' }), clock, validitySeconds: v }),
      );
      expectAgentError(e, InvalidRequest, 'ERR_TTL_INVALID', `the OCSP validity must be a whole number of seconds from 1 to 604800, not ${v}`);
    }
  });

  it('clamps nextUpdate at the responder certificate notAfter', async () => {
    const clock = new FixedClock(START);
    const ca = await makeCa('ec-p256', clock);
    const signer = await generateWebCryptoSigner('ec-p256');
    const cert = await createOcspResponderCertificate({
      issuerCertificate: ca.intermediate,
      issuerSigner: ca.intSigner,
      responderPublicKey: signer.publicKey,
      notBefore: START,
      notAfter: new Date(START.getTime() + 600_000),
      random: webCryptoRandom,
    });
    const o = new OcspResponder({ issuerCertificate: ca.intermediate, responder: { certificate: cert, signer }, lookup: () => ({ status: 'good' }), clock });
    const leaf = await issueLeaf(ca, 'clamp');
    const a = await o.answer(opensslRequest(ca, { cert: leaf.pem }).der);
    expect(a.nextUpdate!.getTime() - a.thisUpdate!.getTime()).toBe(600_000);
    expect(a.etag).toMatch(/^[0-9a-f]{40}$/);
  });

  it('refuses to issue a responder certificate with a signer that is not the issuing CA', async () => {
    const clock = new FixedClock(START);
    const ca = await makeCa('ec-p256', clock);
    const other = await generateWebCryptoSigner('ec-p256');
    const e = await createOcspResponderCertificate({
      issuerCertificate: ca.intermediate,
      issuerSigner: other,
      responderPublicKey: other.publicKey,
      notBefore: START,
      notAfter: START,
      random: webCryptoRandom,
    }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'ERR_KEY_PAIR_MISMATCH', message: 'the issuer signer does not hold the key of the issuing CA certificate' });
  });
});
