/**
 * OcspChecker against a real `agentca serve` (its delegated responder): good, revoked within a
 * second of `agentca revoke` and refused over mTLS, nonces, caching, fail closed when the
 * responder is away or the answer is tampered with, replayed, stale or forged (even by a leaf of
 * the same CA). Then against `openssl ocsp` as the responder, with responder certificates made by
 * openssl: what RFC 6960 §4.2.2.2 accepts, and the three ways a delegated responder falls short.
 */
import { sign, X509Certificate, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Server as HttpServer } from 'node:http';
import { createServer, get, type Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, removeTempDirs, tempDir } from '../../../test/support/cli.ts';
import { freePort, startServe, waitFor, type Served } from '../../../test/support/serve.ts';
import { AgentIdentity, authorizePeerWithRevocation, OcspChecker, type OcspCheckerOptions } from '../src/index.ts';
import { seq, tlv } from '../src/der.ts';
import { parseOcspResponse, serialInteger } from '../src/ocsp-checker.ts';
import { publicKeyBits, sha1, subjectDer } from '../src/signature.ts';

let work: string;
let dir: string;
let serve: Served;
let caBundle: string;
let ocspUrl: string;
let intermediatePem: string;
const identities: AgentIdentity[] = [];
const closers: (() => void)[] = [];

async function boot(id: string): Promise<AgentIdentity> {
  const token = (await ok('agentca', ['token', 'create', '--dir', dir, '--id', id])).trim().split('\n')[0]!;
  const identity = await AgentIdentity.bootstrap({ server: serve.apiUrl, caBundle, token });
  identities.push(identity);
  return identity;
}

function checker(options: Partial<OcspCheckerOptions> & { url: string }, errors: Error[] = []): OcspChecker {
  const c = new OcspChecker({ issuerCertificatePem: intermediatePem, timeoutMs: 2000, ...options });
  c.on('error', (e) => errors.push(e));
  return c;
}

/** A local OCSP endpoint whose answer the test decides; counts the requests it gets. */
interface Fixture {
  url: string;
  requests: number;
  answer: (request: Buffer) => Promise<{ status: number; body: Buffer }>;
}

async function fixture(answer: Fixture['answer'] = forward): Promise<Fixture> {
  const f = { url: '', requests: 0, answer } as Fixture;
  const s: HttpServer = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      f.requests++;
      void f.answer(Buffer.concat(chunks)).then(
        ({ status, body }) => res.writeHead(status, { 'content-type': 'application/ocsp-response' }).end(body),
        () => res.destroy(),
      );
    });
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  closers.push(() => s.close());
  f.url = `http://127.0.0.1:${(s.address() as AddressInfo).port}/ocsp`;
  return f;
}

/** Passes the request to the real responder. */
function forward(request: Buffer): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(ocspUrl, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(request);
  });
}

/** The genuine answer of the real responder about a serial, no nonce. */
async function genuineAnswer(serialHex: string): Promise<Buffer> {
  let captured: Buffer | undefined;
  const f = await fixture(async (r) => {
    const a = await forward(r);
    captured = a.body;
    return a;
  });
  await checker({ url: f.url }).query(serialHex);
  return captured!;
}

const generalizedTime = (d: Date): Buffer => tlv(0x18, Buffer.from(d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z', 'latin1'));

/** A BasicOCSPResponse saying `good`, signed by `key`, naming `responderKeyBits` as responder, carrying `certs`. */
function forge(o: { issuer: X509Certificate; serialHex: string; key: KeyObject; responderKeyBits: Buffer; certs: Buffer[]; thisUpdate?: Date }): Buffer {
  const thisUpdate = o.thisUpdate ?? new Date(Math.floor(Date.now() / 1000) * 1000);
  const nextUpdate = new Date(thisUpdate.getTime() + 3_600_000);
  const certId = seq(seq(tlv(0x06, Buffer.from('2b0e03021a', 'hex')), Buffer.from([5, 0])), tlv(0x04, sha1(subjectDer(o.issuer))), tlv(0x04, sha1(publicKeyBits(o.issuer))), tlv(0x02, serialInteger(o.serialHex)));
  const single = seq(certId, Buffer.from([0x80, 0]), generalizedTime(thisUpdate), tlv(0xa0, generalizedTime(nextUpdate)));
  const tbs = seq(tlv(0xa2, tlv(0x04, sha1(o.responderKeyBits))), generalizedTime(thisUpdate), seq(single));
  const basic = seq(tbs, seq(tlv(0x06, Buffer.from('2a8648ce3d040302', 'hex'))), tlv(0x03, Buffer.from([0]), sign('sha256', tbs, o.key)), tlv(0xa0, seq(...o.certs)));
  return seq(tlv(0x0a, Buffer.from([0])), tlv(0xa0, seq(tlv(0x06, Buffer.from('2b0601050507300101', 'hex')), tlv(0x04, basic))));
}

beforeAll(async () => {
  work = tempDir('ocsp-checker');
  dir = join(work, 'ca');
  await ok('agentca', ['init', '--trust-domain', 'example.org', '--dir', dir]);
  caBundle = await ok('agentca', ['bundle', '--dir', dir]);
  serve = await startServe(dir, ['--listen', `127.0.0.1:${await freePort()}`]);
  ocspUrl = `${serve.url.replace(/\/$/, '')}/ocsp`;
  intermediatePem = readFileSync(join(dir, 'intermediate.pem'), 'utf8');
}, 60_000);

afterAll(async () => {
  for (const close of closers) close();
  for (const i of identities) i.close();
  await serve?.stop();
  removeTempDirs();
});

async function service(identity: AgentIdentity, allow: string[], c: OcspChecker): Promise<string> {
  const s = createServer(identity.serverOptions(), (req, res) => {
    void authorizePeerWithRevocation(req.socket as TLSSocket, allow, c).then((allowed) => res.writeHead(allowed ? 200 : 403).end());
  });
  identity.keepCurrent(s);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  closers.push(() => s.close());
  return `https://127.0.0.1:${(s.address() as AddressInfo).port}/`;
}

function call(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    }).on('error', reject);
  });
}

describe('OcspChecker against agentca serve', () => {
  it('says good (delegated responder), then revoked within 1 s of agentca revoke; the service refuses the caller', async () => {
    const errors: Error[] = [];
    const c = checker({ url: ocspUrl, maxAgeMs: 100 }, errors);
    const svc = await boot('spiffe://example.org/svc/ocsp-guarded');
    const agent = await boot('spiffe://example.org/agent/ocsp-revokee');
    const url = await service(svc, [agent.spiffeId], c);
    const httpsAgent = agent.httpsAgent({ keepAlive: false });
    expect(await call(url, httpsAgent)).toBe(200);
    expect(c.cached(agent.serial)).toMatchObject({ certStatus: 'good', signedBy: 'delegated' });
    const { thisUpdate, nextUpdate } = c.cached(agent.serial)!;
    expect(nextUpdate!.getTime() - thisUpdate.getTime()).toBe(3_600_000);

    await ok('agentca', ['revoke', '--dir', dir, '--serial', agent.serial, '--reason', 'keyCompromise']);
    const revokedAt = Date.now();
    await waitFor('revoked', async () => (await c.status(agent.serial)) === 'revoked', 5000, 20);
    expect(Date.now() - revokedAt).toBeLessThan(1000);
    expect(c.cached(agent.serial)).toMatchObject({ certStatus: 'revoked', reason: 1 });
    expect(Math.abs(c.cached(agent.serial)!.revokedAt!.getTime() - revokedAt)).toBeLessThan(5000);
    expect(await c.status(agent.serial.toUpperCase())).toBe('revoked');
    expect(await call(url, httpsAgent)).toBe(403);
    // A bystander stays good; a serial the CA never issued is unknown, which refuses.
    expect(await c.status(svc.serial)).toBe('good');
    expect(await c.status('7f' + 'ab'.repeat(16))).toBe('unknown');
    expect(c.cached('7f' + 'ab'.repeat(16))?.certStatus).toBe('unknown');
    expect(errors).toEqual([]);
  }, 30_000);

  it('sends a nonce when asked and refuses an answer that does not echo it (a replay)', async () => {
    const agent = await boot('spiffe://example.org/agent/ocsp-nonce');
    expect(await checker({ url: ocspUrl, nonce: true }).status(agent.serial)).toBe('good');
    const replayed = await genuineAnswer(agent.serial);
    const f = await fixture(async () => ({ status: 200, body: replayed }));
    // The replayed answer is genuine and fresh: without a nonce it is accepted…
    expect(await checker({ url: f.url }).status(agent.serial)).toBe('good');
    // …with one, it is refused.
    const errors: Error[] = [];
    expect(await checker({ url: f.url, nonce: true }, errors).status(agent.serial)).toBe('unknown');
    expect(errors.map((e) => e.message)).toEqual(['ocsp: the answer does not echo the nonce sent']);
  }, 30_000);

  it('caches for maxAgeMs, keeps a signed answer until its nextUpdate while the responder is away, then fails closed', async () => {
    const agent = await boot('spiffe://example.org/agent/ocsp-cached');
    const f = await fixture();
    let now = Date.now();
    const errors: Error[] = [];
    const c = checker({ url: f.url, maxAgeMs: 60_000, now: () => now }, errors);
    const [a, b, d] = await Promise.all([c.status(agent.serial), c.status(agent.serial), c.status(agent.serial)]);
    expect([a, b, d]).toEqual(['good', 'good', 'good']);
    expect(await c.status(agent.serial)).toBe('good');
    expect(f.requests).toBe(1);
    now += 61_000;
    expect(await c.status(agent.serial)).toBe('good');
    expect(f.requests).toBe(2);

    f.answer = async () => ({ status: 503, body: Buffer.alloc(0) });
    now += 61_000;
    expect(await c.status(agent.serial)).toBe('good');
    expect(f.requests).toBe(3);
    expect(errors.at(-1)!.message).toMatch(/answered 503/);
    now = c.cached(agent.serial)!.nextUpdate!.getTime() + 1;
    expect(await c.status(agent.serial)).toBe('unknown');

    // Nothing listening: unknown at once, and isAllowed refuses.
    const deadErrors: Error[] = [];
    const dead = checker({ url: `http://127.0.0.1:${await freePort()}/ocsp` }, deadErrors);
    expect(await dead.status(agent.serial)).toBe('unknown');
    expect(deadErrors[0]!.message).toMatch(/ECONNREFUSED/);
    expect(await dead.isAllowed({ getPeerCertificate: () => ({}) } as unknown as TLSSocket)).toBe(false);
  }, 30_000);

  it('refuses an answer tampered with, about another certificate, stale, or from the future', async () => {
    const a = await boot('spiffe://example.org/agent/ocsp-a');
    const b = await boot('spiffe://example.org/agent/ocsp-b');
    const genuine = await genuineAnswer(a.serial);
    const { thisUpdate } = parseOcspResponse(genuine).singles[0]!;
    let body = genuine;
    const f = await fixture(async () => ({ status: 200, body }));
    const refusal = async (serial: string, options: Partial<OcspCheckerOptions> = {}): Promise<string> => {
      const errors: Error[] = [];
      const c = checker({ url: f.url, ...options }, errors);
      expect(await c.status(serial)).toBe('unknown');
      expect(c.cached(serial)).toBeUndefined();
      return errors.map((e) => e.message).join('; ');
    };

    // Control: the genuine answer, served by the fixture, is accepted.
    expect(await checker({ url: f.url }).status(a.serial)).toBe('good');
    // One second later in the signed thisUpdate (still a well-formed time).
    const stamp = Buffer.from(thisUpdate.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z', 'latin1');
    const at = genuine.indexOf(stamp);
    expect(at).toBeGreaterThan(0);
    body = Buffer.from(genuine);
    body[at + 13] = body[at + 13] === 0x30 ? 0x31 : 0x30;
    expect(await refusal(a.serial)).toBe('ocsp: signature does not verify');
    body = genuine;
    expect(await refusal(b.serial)).toBe('ocsp: the answer is not about the certificate asked about');
    expect(await refusal(a.serial, { now: () => thisUpdate.getTime() + 3_600_000 + 300_001 })).toMatch(/^ocsp: stale answer \(nextUpdate /);
    expect(await refusal(a.serial, { now: () => thisUpdate.getTime() - 30_000, clockSkewMs: 0 })).toMatch(/^ocsp: thisUpdate .* is in the future$/);
    body = Buffer.from('not an ocsp response');
    expect(await refusal(a.serial)).toBe('ocsp: not a DER SEQUENCE');
    body = Buffer.from('30030a0103', 'hex');
    expect(await refusal(a.serial)).toBe('ocsp: the responder answered tryLater');
  }, 40_000);

  it('refuses an answer forged by a leaf of the same CA, whether it names itself or the issuing CA as the responder', async () => {
    const forger = await boot('spiffe://example.org/agent/ocsp-forger');
    const victim = await boot('spiffe://example.org/agent/ocsp-victim');
    const issuer = new X509Certificate(intermediatePem);
    const leaf = new X509Certificate(forger.certificate);
    let body = forge({ issuer, serialHex: victim.serial, key: forger.privateKey, responderKeyBits: publicKeyBits(leaf), certs: [leaf.raw] });
    const f = await fixture(async () => ({ status: 200, body }));
    const errors: Error[] = [];
    expect(await checker({ url: f.url }, errors).status(victim.serial)).toBe('unknown');
    body = forge({ issuer, serialHex: victim.serial, key: forger.privateKey, responderKeyBits: publicKeyBits(issuer), certs: [] });
    expect(await checker({ url: f.url }, errors).status(victim.serial)).toBe('unknown');
    expect(errors.map((e) => e.message)).toEqual(['ocsp: the responder certificate lacks id-kp-OCSPSigning', 'ocsp: signature does not verify']);
  }, 30_000);
});

describe('OcspChecker against openssl ocsp', () => {
  let o: string;
  let caPem: string;
  const SERIAL_GOOD = '1234';
  const SERIAL_REVOKED = '00a5f0';

  /** A responder key and certificate issued by the openssl CA with the given extensions. */
  async function responder(name: string, ext: string, ca = 'ca'): Promise<void> {
    writeFileSync(join(o, `${name}.ext`), ext);
    await ok('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(o, `${name}.key`), '-subj', `/CN=${name}`, '-out', join(o, `${name}.csr`)]);
    await ok('openssl', ['x509', '-req', '-in', join(o, `${name}.csr`), '-CA', join(o, `${ca}.pem`), '-CAkey', join(o, `${ca}.key`), '-days', '1', '-extfile', join(o, `${name}.ext`), '-out', join(o, `${name}.pem`)]);
  }

  /** A fixture that answers each request with `openssl ocsp` signing as `signer`. */
  async function opensslResponder(signer: string, extra: string[] = []): Promise<Fixture> {
    let n = 0;
    return fixture(async (request) => {
      const req = join(o, `req-${++n}-${signer}.der`);
      const resp = `${req}.resp`;
      writeFileSync(req, request);
      await ok('openssl', ['ocsp', '-index', join(o, 'index.txt'), '-CA', join(o, 'ca.pem'), '-rsigner', join(o, `${signer}.pem`), '-rkey', join(o, `${signer}.key`), '-reqin', req, '-respout', resp, '-nmin', '30', ...extra]);
      return { status: 200, body: readFileSync(resp) };
    });
  }

  beforeAll(async () => {
    o = tempDir('openssl-ocsp');
    // impostor-ca has the name of ca and another key.
    for (const [ca, cn] of [['ca', 'ca'], ['other-ca', 'other-ca'], ['impostor-ca', 'ca']]) {
      await ok('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(o, `${ca}.key`), '-out', join(o, `${ca}.pem`), '-subj', `/CN=${cn}`, '-days', '2',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    }
    caPem = readFileSync(join(o, 'ca.pem'), 'utf8');
    const base = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n';
    await responder('delegated', `${base}extendedKeyUsage=OCSPSigning\nnoCheck=ignored\n`);
    await responder('no-eku', `${base}extendedKeyUsage=serverAuth\nnoCheck=ignored\n`);
    await responder('no-nocheck', `${base}extendedKeyUsage=OCSPSigning\n`);
    await responder('foreign', `${base}extendedKeyUsage=OCSPSigning\nnoCheck=ignored\n`, 'other-ca');
    // Without an AKI, the name alone matches ca (checkIssued passes): only the signature tells.
    await responder('impostor', `${base}extendedKeyUsage=OCSPSigning\nnoCheck=ignored\nauthorityKeyIdentifier=none\nsubjectKeyIdentifier=none\n`, 'impostor-ca');
    const revokedAt = new Date(Date.now() - 3_600_000).toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
    writeFileSync(join(o, 'index.txt'), `V\t301231235959Z\t\t${SERIAL_GOOD.toUpperCase()}\tunknown\t/CN=good\nR\t301231235959Z\t${revokedAt},keyCompromise\tA5F0\tunknown\t/CN=revoked\n`);
  }, 60_000);

  it('accepts answers signed by a delegated responder (by name) and by the CA itself (by key)', async () => {
    for (const [signer, extra, signedBy] of [['delegated', [], 'delegated'], ['ca', ['-resp_key_id'], 'issuer']] as const) {
      const f = await opensslResponder(signer, [...extra]);
      const errors: Error[] = [];
      const c = checker({ url: f.url, issuerCertificatePem: caPem, nonce: true }, errors);
      expect(await c.status(SERIAL_GOOD)).toBe('good');
      expect(c.cached(SERIAL_GOOD)).toMatchObject({ certStatus: 'good', signedBy });
      expect(await c.status(SERIAL_REVOKED)).toBe('revoked');
      expect(c.cached(SERIAL_REVOKED)).toMatchObject({ certStatus: 'revoked', reason: 1 });
      expect(await c.status('99')).toBe('unknown');
      expect(errors).toEqual([]);
    }
  }, 30_000);

  it('refuses a delegated responder without id-kp-OCSPSigning, without nocheck, issued by another CA, or by one with the same name', async () => {
    const messages: string[] = [];
    for (const signer of ['no-eku', 'no-nocheck', 'foreign', 'impostor']) {
      const errors: Error[] = [];
      const c = checker({ url: (await opensslResponder(signer)).url, issuerCertificatePem: caPem }, errors);
      expect(await c.status(SERIAL_GOOD)).toBe('unknown');
      messages.push(errors.map((e) => e.message).join('; '));
    }
    expect(messages).toEqual([
      'ocsp: the responder certificate lacks id-kp-OCSPSigning',
      'ocsp: the responder certificate lacks id-pkix-ocsp-nocheck',
      'ocsp: the responder certificate is not issued by the issuing CA',
      'ocsp: the responder certificate is not issued by the issuing CA',
    ]);
  }, 30_000);

  it('a CA that is not agentca’s issuer is answered unauthorized by agentca serve, which is unknown', async () => {
    const errors: Error[] = [];
    const c = checker({ url: ocspUrl, issuerCertificatePem: caPem }, errors);
    expect(await c.status(SERIAL_GOOD)).toBe('unknown');
    expect(errors.map((e) => e.message)).toEqual(['ocsp: the responder answered unauthorized']);
  });
});
