/**
 * The revocation listener over real sockets on 127.0.0.1: every route, the caching headers and
 * conditional GETs, the GET encodings clients are known to produce, body limits, and
 * `openssl ocsp -url` end to end (good, then revoked once the status changes and the cache is
 * invalidated). No path, method or body may produce a 5xx.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FixedClock,
  INTERMEDIATE_KEY,
  OcspResponder,
  createHierarchy,
  createOcspResponderCertificate,
  encodeTbsCertificate,
  generateWebCryptoSigner,
  newSerial,
  parseCertificate,
  serialHex,
  signTbs,
  signatureSchemeFor,
  toPem,
  webCryptoRandom,
  type KeyAlgorithm,
  type KeyStore,
  type OcspAnswer,
  type OcspCertStatus,
  type Signer,
} from '@agentca/core';
import { decodeOcspGetPath, startRevocationServer, type RevocationServer, type ServedCrl, type ServedRootCrl } from '../src/index.ts';

const START = new Date(Math.floor(Date.now() / 1000) * 1000);
const MALFORMED = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x01]);

class TestKeyStore implements KeyStore {
  keys = new Map<string, Signer>();
  async generate(name: string, alg: KeyAlgorithm) {
    const s = await generateWebCryptoSigner(alg);
    this.keys.set(name, s);
    return s;
  }
  async open(name: string) {
    return this.keys.get(name)!;
  }
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function send(port: number, o: { method?: string; path: string; headers?: Record<string, string | number>; body?: Uint8Array }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path, headers: o.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Sends raw bytes on a fresh connection and returns everything the server wrote back before closing. */
function raw(port: number, bytes: string | Uint8Array): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.write(bytes);
    setTimeout(() => s.end(), 300);
  });
}

/** The response status and, when successful, the certStatus tag and echoed nonce, read by openssl. */
function opensslReads(dir: string, resp: Uint8Array): string {
  const f = join(dir, `resp-${randomBytes(4).toString('hex')}.der`);
  writeFileSync(f, resp);
  const r = spawnSync('openssl', ['ocsp', '-respin', f, '-resp_text', '-noverify'], { encoding: 'utf8' });
  return r.stdout + r.stderr;
}

describe('the revocation listener', () => {
  const clock = new FixedClock(START);
  let dir: string;
  let srv: RevocationServer;
  let ocsp: OcspResponder;
  let crl: ServedCrl | null;
  let rootCrl: ServedRootCrl | null = null;
  const statuses = new Map<string, OcspCertStatus>();
  let paths: { root: string; int: string; good: string; other: string };
  let goodSerial: string;
  let otherSerial: string;
  let healthCalls = 0;

  /** A leaf certificate of the issuing CA (built directly: the listener only needs a serial and an issuer). */
  async function leaf(intermediate: Uint8Array, intSigner: Signer): Promise<{ der: Uint8Array; serial: string }> {
    const int = parseCertificate(intermediate);
    const key = await generateWebCryptoSigner('ec-p256');
    const serial = newSerial(webCryptoRandom, new Date());
    const tbs = encodeTbsCertificate({
      serial,
      scheme: signatureSchemeFor(intSigner.algorithm),
      issuer: int.subject,
      notBefore: new Date(START.getTime() - 60_000),
      notAfter: new Date(START.getTime() + 3_600_000),
      subject: Uint8Array.of(0x30, 0),
      spki: key.publicKey,
      extensions: [],
    });
    return { der: await signTbs(tbs, intSigner), serial: serialHex(serial) };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agentca-revocation-http-'));
    const keys = new TestKeyStore();
    const { root, intermediate } = await createHierarchy({ trustDomain: 'example.org', keyAlgorithm: 'ec-p256', keys, clock, random: webCryptoRandom });
    const intSigner = await keys.open(INTERMEDIATE_KEY);
    const good = await leaf(intermediate, intSigner);
    const other = await leaf(intermediate, intSigner);
    goodSerial = good.serial;
    otherSerial = other.serial;
    statuses.set(goodSerial, { status: 'good' });
    statuses.set(otherSerial, { status: 'good' });
    paths = { root: join(dir, 'root.pem'), int: join(dir, 'int.pem'), good: join(dir, 'good.pem'), other: join(dir, 'other.pem') };
    writeFileSync(paths.root, toPem('CERTIFICATE', root));
    writeFileSync(paths.int, toPem('CERTIFICATE', intermediate));
    writeFileSync(paths.good, toPem('CERTIFICATE', good.der));
    writeFileSync(paths.other, toPem('CERTIFICATE', other.der));
    const responder = await generateWebCryptoSigner('ec-p256');
    const certificate = await createOcspResponderCertificate({
      issuerCertificate: intermediate,
      issuerSigner: intSigner,
      responderPublicKey: responder.publicKey,
      notBefore: new Date(START.getTime() - 60_000),
      notAfter: new Date(START.getTime() + 86_400_000),
      random: webCryptoRandom,
    });
    ocsp = new OcspResponder({ issuerCertificate: intermediate, responder: { certificate, signer: responder }, lookup: (s) => statuses.get(s) ?? { status: 'unknown' }, clock });
    // The listener passes CRL bytes through untouched; these stand in for a signed CRL.
    crl = {
      der: new Uint8Array(randomBytes(400)),
      pem: '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n-----BEGIN X509 CRL-----\nBBBB\n-----END X509 CRL-----\n',
      thisUpdate: new Date(START.getTime() - 5_000),
      nextUpdate: new Date(START.getTime() + 3_600_000),
      crlNumber: 7n,
    };
    rootCrl = { der: new Uint8Array(randomBytes(200)), thisUpdate: new Date(START.getTime() - 86_400_000), nextUpdate: new Date(START.getTime() + 30 * 86_400_000) };
    srv = await startRevocationServer({
      crl: () => crl,
      rootCrl: () => rootCrl,
      ocsp,
      clock,
      health: () => ({ role: 'revocation', checks: ++healthCalls }),
    });
  });

  afterAll(async () => {
    await srv?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const opensslRequest = (cert: string, nonce = false): Uint8Array => {
    const out = join(dir, `req-${randomBytes(4).toString('hex')}.der`);
    const r = spawnSync('openssl', ['ocsp', '-issuer', paths.int, '-cert', cert, nonce ? '-nonce' : '-no_nonce', '-reqout', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return new Uint8Array(readFileSync(out));
  };

  it('listens on 127.0.0.1 by default, with header and request timeouts', () => {
    expect(srv.server.address()).toMatchObject({ address: '127.0.0.1' });
    expect(srv.server.headersTimeout).toBe(10_000);
    expect(srv.server.requestTimeout).toBe(15_000);
  });

  describe('GET /crl and /crl.pem', () => {
    it('serves the DER CRL with caching headers', async () => {
      const r = await send(srv.port, { path: '/crl' });
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('application/pkix-crl');
      expect(new Uint8Array(r.body)).toEqual(crl!.der);
      expect(r.headers['cache-control']).toBe('max-age=30, public, no-transform, must-revalidate');
      expect(r.headers.etag).toBe(`"${createHash('sha1').update(crl!.der).digest('hex')}"`);
      expect(r.headers['last-modified']).toBe(crl!.thisUpdate.toUTCString());
      expect(r.headers.expires).toBe(crl!.nextUpdate.toUTCString());
      expect(Number(r.headers['content-length'])).toBe(crl!.der.length);
    });

    it('serves the PEM bundle for proxies', async () => {
      const r = await send(srv.port, { path: '/crl.pem' });
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('application/x-pem-file');
      expect(r.body.toString()).toBe(crl!.pem);
      expect(r.headers.etag).toBe(`"${createHash('sha1').update(crl!.pem).digest('hex')}"`);
      expect(r.headers['last-modified']).toBe(crl!.thisUpdate.toUTCString());
    });

    it('caps max-age at the seconds left to nextUpdate, and at 0 once it has passed', async () => {
      const saved = crl!;
      try {
        crl = { ...saved, nextUpdate: new Date(START.getTime() + 12_500) };
        expect((await send(srv.port, { path: '/crl' })).headers['cache-control']).toBe('max-age=12, public, no-transform, must-revalidate');
        crl = { ...saved, nextUpdate: new Date(START.getTime() - 1_000) };
        expect((await send(srv.port, { path: '/crl.pem' })).headers['cache-control']).toBe('max-age=0, public, no-transform, must-revalidate');
      } finally {
        crl = saved;
      }
    });

    it('answers conditional GETs with 304', async () => {
      const first = await send(srv.port, { path: '/crl' });
      const etag = first.headers.etag!;
      const hit = await send(srv.port, { path: '/crl', headers: { 'if-none-match': etag } });
      expect(hit.status).toBe(304);
      expect(hit.body.length).toBe(0);
      expect(hit.headers.etag).toBe(etag);
      expect(hit.headers['cache-control']).toBe('max-age=30, public, no-transform, must-revalidate');
      expect((await send(srv.port, { path: '/crl', headers: { 'if-none-match': `"x", W/${etag}` } })).status).toBe(304);
      expect((await send(srv.port, { path: '/crl', headers: { 'if-none-match': '"other"' } })).status).toBe(200);
      // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
      expect((await send(srv.port, { path: '/crl', headers: { 'if-none-match': '"other"', 'if-modified-since': START.toUTCString() } })).status).toBe(200);
      expect((await send(srv.port, { path: '/crl.pem', headers: { 'if-modified-since': crl!.thisUpdate.toUTCString() } })).status).toBe(304);
      expect((await send(srv.port, { path: '/crl.pem', headers: { 'if-modified-since': new Date(crl!.thisUpdate.getTime() - 1000).toUTCString() } })).status).toBe(200);
      expect((await send(srv.port, { path: '/crl', headers: { 'if-modified-since': 'yesterday-ish' } })).status).toBe(200);
    });

    it('answers HEAD with the headers alone', async () => {
      const r = await send(srv.port, { method: 'HEAD', path: '/crl' });
      expect(r.status).toBe(200);
      expect(r.body.length).toBe(0);
      expect(Number(r.headers['content-length'])).toBe(crl!.der.length);
    });

    it('answers 503 before the first CRL exists, and healthz still answers', async () => {
      const saved = crl;
      crl = null;
      try {
        for (const path of ['/crl', '/crl.pem']) {
          const r = await send(srv.port, { path });
          expect(r.status).toBe(503);
          expect(r.headers['retry-after']).toBe('1');
        }
        const h = await send(srv.port, { path: '/healthz' });
        expect(h.status).toBe(200);
        expect(JSON.parse(h.body.toString())).toMatchObject({ status: 'ok', crl: null });
      } finally {
        crl = saved;
      }
    });
  });

  it('serves the root CRL at /root.crl, where the intermediate CRL distribution point points', async () => {
    const r = await send(srv.port, { path: '/root.crl' });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/pkix-crl');
    expect(new Uint8Array(r.body)).toEqual(rootCrl!.der);
    expect(r.headers.etag).toBe(`"${createHash('sha1').update(rootCrl!.der).digest('hex')}"`);
    expect(r.headers['last-modified']).toBe(rootCrl!.thisUpdate.toUTCString());
    expect(r.headers['cache-control']).toBe('max-age=30, public, no-transform, must-revalidate');
    expect((await send(srv.port, { path: '/root.crl', headers: { 'if-none-match': r.headers.etag! } })).status).toBe(304);
    expect((await send(srv.port, { method: 'POST', path: '/root.crl', body: Uint8Array.of(1) })).headers.allow).toBe('GET, HEAD');
    const saved = rootCrl;
    rootCrl = null;
    try {
      expect((await send(srv.port, { path: '/root.crl' })).status).toBe(503);
    } finally {
      rootCrl = saved;
    }
  });

  it('GET /healthz reports the CRL and the extra fields', async () => {
    const r = await send(srv.port, { path: '/healthz' });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['cache-control']).toBe('no-store');
    const body = JSON.parse(r.body.toString());
    expect(body).toMatchObject({ status: 'ok', role: 'revocation', crl: { crlNumber: '7', nextUpdate: crl!.nextUpdate.toISOString() } });
    expect(body.checks).toBeGreaterThan(0);
  });

  describe('OCSP', () => {
    it('answers POST /ocsp with a cacheable response for a nonce-less request', async () => {
      const req = opensslRequest(paths.good);
      const r = await send(srv.port, { method: 'POST', path: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, body: req });
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('application/ocsp-response');
      expect(opensslReads(dir, r.body)).toContain('Cert Status: good');
      const a = await ocsp.answer(req);
      expect(new Uint8Array(r.body)).toEqual(a.der);
      expect(r.headers.etag).toBe(`"${a.etag}"`);
      expect(r.headers['last-modified']).toBe(a.thisUpdate!.toUTCString());
      expect(r.headers.expires).toBe(a.nextUpdate!.toUTCString());
      expect(r.headers['cache-control']).toBe('max-age=30, public, no-transform, must-revalidate');
      // POST /ocsp/ too (clients append the slash of a base URL).
      const slash = await send(srv.port, { method: 'POST', path: '/ocsp/', body: req });
      expect(new Uint8Array(slash.body)).toEqual(a.der);
    });

    it('marks nonce answers and error answers no-store', async () => {
      const withNonce = await send(srv.port, { method: 'POST', path: '/ocsp', body: opensslRequest(paths.good, true) });
      expect(withNonce.status).toBe(200);
      expect(withNonce.headers['cache-control']).toBe('no-store');
      expect(withNonce.headers.etag).toBeUndefined();
      expect(opensslReads(dir, withNonce.body)).toContain('OCSP Nonce');
      const junk = await send(srv.port, { method: 'POST', path: '/ocsp', body: new Uint8Array(randomBytes(300)) });
      expect(junk.status).toBe(200);
      expect(junk.body).toEqual(MALFORMED);
      expect(junk.headers['cache-control']).toBe('no-store');
    });

    it('answers junk bodies with malformedRequest and 200, never a 5xx', async () => {
      const bodies = [new Uint8Array(0), Uint8Array.of(0x30), new Uint8Array(10 * 1024), new Uint8Array(randomBytes(10 * 1024)), new TextEncoder().encode('{"json":true}')];
      for (const body of bodies) {
        const r = await send(srv.port, { method: 'POST', path: '/ocsp', body });
        expect(r.status).toBe(200);
        expect(r.body).toEqual(MALFORMED);
      }
      const chunked = await new Promise<Reply>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: srv.port, method: 'POST', path: '/ocsp', agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        });
        req.on('error', reject);
        req.write(opensslRequest(paths.good).subarray(0, 20));
        req.end(opensslRequest(paths.good).subarray(20));
      });
      expect(chunked.status).toBe(200);
      expect(opensslReads(dir, chunked.body)).toContain('Cert Status: good');
    });

    it('refuses bodies over 10 KB with 413 and closes the connection without reading them', async () => {
      const declared = await new Promise<Reply>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port: srv.port, method: 'POST', path: '/ocsp', headers: { 'content-length': 50 * 1024 * 1024 }, agent: false },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
          },
        );
        req.on('error', reject);
        req.write(new Uint8Array(100)); // and never the other 50 MB
      });
      expect(declared.status).toBe(413);
      expect(declared.headers.connection).toBe('close');
      const chunked = await new Promise<number>((resolve) => {
        const req = httpRequest({ host: '127.0.0.1', port: srv.port, method: 'POST', path: '/ocsp', agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', () => {});
        let sent = 0;
        const pump = () => {
          while (sent < 1024 * 1024 && req.write(new Uint8Array(4096))) sent += 4096;
          if (sent < 1024 * 1024) req.once('drain', pump);
        };
        pump();
      });
      expect(chunked).toBe(413);
      const exactlyLimit = await send(srv.port, { method: 'POST', path: '/ocsp', body: new Uint8Array(10 * 1024) });
      expect(exactlyLimit.status).toBe(200);
      expect((await send(srv.port, { path: '/healthz' })).status).toBe(200);
    });

    it('decodes GET /ocsp/{base64} in every encoding clients are known to send', async () => {
      // A request whose base64 holds '+', '/' and padding: craft nonces until it does.
      let req: Uint8Array;
      let b64: string;
      let nonceLen = 16;
      for (;;) {
        const base = opensslRequest(paths.good);
        // openssl's request ends with the CertID: append a nonce extension to its TBSRequest by hand.
        const nonce = Buffer.concat([Buffer.from([0x04, nonceLen]), randomBytes(nonceLen)]);
        const ext = der(0x30, Buffer.concat([Buffer.from([0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02]), der(0x04, nonce)]));
        const tbsContent = Buffer.from(base.subarray(4, base.length)); // 30 LL 30 LL …: short-form lengths for this size
        expect(base[1]! < 0x80 && base[3]! < 0x80).toBe(true);
        req = der(0x30, der(0x30, Buffer.concat([tbsContent, der(0xa2, der(0x30, ext))])));
        b64 = Buffer.from(req).toString('base64');
        if (b64.includes('+') && b64.includes('/') && b64.endsWith('=')) break;
        nonceLen = 16 + ((nonceLen + 1) % 16);
      }
      const variants: [string, string][] = [
        ['as is', `/ocsp/${b64}`],
        ['percent-encoded', `/ocsp/${encodeURIComponent(b64)}`],
        ['+ seen as a space', `/ocsp/${b64.replace(/\+/g, '%20')}`],
        ['no padding', `/ocsp/${b64.replace(/=+$/, '')}`],
        ['base64url', `/ocsp/${b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')}`],
        ['double slash', `/ocsp//${b64}`],
        ['percent-encoded lowercase', `/ocsp/${encodeURIComponent(b64).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())}`],
      ];
      for (const [label, path] of variants) {
        const r = await send(srv.port, { path });
        expect(r.status, label).toBe(200);
        const text = opensslReads(dir, r.body);
        expect(text, label).toContain('Cert Status: good');
        expect(text, label).toContain('OCSP Nonce');
        expect(r.headers['cache-control'], label).toBe('no-store');
      }
      for (const path of ['/ocsp/', '/ocsp/!!!!', '/ocsp/%zz', '/ocsp/QUJD', '/ocsp/A', `/ocsp/${'A'.repeat(8000)}`]) {
        const r = await send(srv.port, { path });
        expect(r.status, path).toBe(200);
        expect(r.body, path).toEqual(MALFORMED);
      }
    });

    it('serves GET answers with validators and 304s', async () => {
      const req = opensslRequest(paths.other);
      const path = `/ocsp/${encodeURIComponent(Buffer.from(req).toString('base64'))}`;
      const r = await send(srv.port, { path });
      expect(r.status).toBe(200);
      expect(opensslReads(dir, r.body)).toContain('Cert Status: good');
      const etag = r.headers.etag!;
      expect(etag).toMatch(/^"[0-9a-f]{40}"$/);
      expect((await send(srv.port, { path, headers: { 'if-none-match': etag } })).status).toBe(304);
      expect((await send(srv.port, { path, headers: { 'if-modified-since': r.headers['last-modified']! } })).status).toBe(304);
      const head = await send(srv.port, { method: 'HEAD', path });
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
    });

    it('answers openssl ocsp -url end to end: good, then revoked after the status changes and the cache is invalidated', async () => {
      // Asynchronously: the listener runs in this process and must keep serving while openssl waits.
      const ask = (cert: string, nonce: boolean) =>
        new Promise<{ out: string; err: string }>((resolve) => {
          execFile(
            'openssl',
            ['ocsp', '-url', `http://127.0.0.1:${srv.port}/ocsp`, '-issuer', paths.int, '-cert', cert, '-CAfile', paths.root, nonce ? '-nonce' : '-no_nonce'],
            { encoding: 'utf8', timeout: 30_000 },
            (_e, out, err) => resolve({ out, err }),
          );
        });
      for (const nonce of [true, false]) {
        const r = await ask(paths.good, nonce);
        expect(r.err).toContain('Response verify OK');
        expect(r.out).toContain(`${paths.good}: good`);
      }
      const revokedAt = new Date(START.getTime() - 30_000);
      statuses.set(goodSerial, { status: 'revoked', revokedAt, reason: 'keyCompromise' });
      try {
        expect((await ask(paths.good, false)).out).toContain(`${paths.good}: good`); // the pre-signed answer, until told
        ocsp.invalidate(goodSerial);
        for (const nonce of [false, true]) {
          const r = await ask(paths.good, nonce);
          expect(r.err).toContain('Response verify OK');
          expect(r.out).toContain(`${paths.good}: revoked`);
          expect(r.out).toContain('Reason: keyCompromise');
        }
      } finally {
        statuses.set(goodSerial, { status: 'good' });
        ocsp.invalidate(goodSerial);
      }
    });
  });

  describe('other methods and paths', () => {
    it('answers 405 with Allow', async () => {
      const cases: [string, string, string][] = [
        ['POST', '/crl', 'GET, HEAD'],
        ['DELETE', '/crl.pem', 'GET, HEAD'],
        ['PUT', '/healthz', 'GET, HEAD'],
        ['GET', '/ocsp', 'POST'],
        ['PUT', '/ocsp', 'POST'],
        ['POST', `/ocsp/${Buffer.from(opensslRequest(paths.good)).toString('base64')}`, 'GET, HEAD'],
        ['OPTIONS', '/crl', 'GET, HEAD'],
      ];
      for (const [method, path, allow] of cases) {
        const r = await send(srv.port, { method, path, body: method === 'GET' ? undefined : Uint8Array.of(1) });
        expect(r.status, `${method} ${path}`).toBe(405);
        expect(r.headers.allow, `${method} ${path}`).toBe(allow);
      }
    });

    it('answers 404 elsewhere', async () => {
      for (const path of ['/', '/crl/', '/crl.der', '//crl', '/CRL', '/ocspx', '/healthz/x', '/../etc/passwd', '/%00', '/v1/sign']) {
        expect((await send(srv.port, { path })).status, path).toBe(404);
      }
      expect((await send(srv.port, { method: 'POST', path: '/v1/sign', body: new Uint8Array(100) })).status).toBe(404);
    });

    it('ignores a query string', async () => {
      expect((await send(srv.port, { path: '/crl?x=1' })).status).toBe(200);
    });

    it('never answers 5xx, whatever the method, path or body', async () => {
      const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
      const paths = ['/', '/crl', '/crl.pem', '/ocsp', '/ocsp/', '/ocsp/MA==', '/ocsp/%', '/ocsp/%2', '/healthz', '/x', '/ocsp/' + 'B'.repeat(1000), '/crl?%', '/ocsp?a=b'];
      for (const method of methods) {
        for (const path of paths) {
          const body = method === 'GET' || method === 'HEAD' ? undefined : new Uint8Array(randomBytes(Math.floor(Math.random() * 2000)));
          const r = await send(srv.port, { method, path, body });
          expect(r.status, `${method} ${path}`).toBeLessThan(500);
        }
      }
      // Requests node's parser refuses get its 400, and the listener lives on.
      expect(await raw(srv.port, 'GET /crl HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
      expect(await raw(srv.port, 'BREW /ocsp HTCPCP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
      expect(await raw(srv.port, '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03')).not.toMatch(/^HTTP\/1\.1 5/);
      expect((await send(srv.port, { path: '/healthz' })).status).toBe(200);
    });
  });
});

describe('an OCSP answerer that misbehaves', () => {
  it('is answered as internalError, not as a 5xx', async () => {
    const srv = await startRevocationServer({
      crl: () => {
        throw new Error('crl store down');
      },
      ocsp: { answer: () => Promise.reject(new Error('bug')) as Promise<OcspAnswer> },
      clock: new FixedClock(START),
    });
    try {
      const r = await send(srv.port, { method: 'POST', path: '/ocsp', body: Uint8Array.of(1) });
      expect(r.status).toBe(200);
      expect(r.body).toEqual(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x02]));
      expect((await send(srv.port, { path: '/crl' })).status).toBe(503);
      expect((await send(srv.port, { path: '/healthz' })).status).toBe(503);
      expect((await send(srv.port, { path: '/root.crl' })).status).toBe(404); // no root CRL provider, no route
    } finally {
      await srv.close();
    }
  });
});

describe('decodeOcspGetPath', () => {
  it('tolerates the encodings of the field and refuses what is not base64', () => {
    const bytes = Uint8Array.of(0xfb, 0xff, 0xbf, 0x30, 0x03);
    const std = Buffer.from(bytes).toString('base64'); // "+/+/MAM="
    expect(std).toBe('+/+/MAM=');
    for (const s of [std, encodeURIComponent(std), std.replace(/\+/g, ' '), std.replace(/\+/g, '%20'), '-_-_MAM', '+/+/MAM', `//${std}`, `+/+/\nMAM=`]) {
      expect(decodeOcspGetPath(s), s).toEqual(bytes);
    }
    for (const s of ['', '%', 'A', 'AB*C', '====', 'QUJD=x']) expect(decodeOcspGetPath(s), s).toBeNull();
  });
});

function der(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), content]);
}
