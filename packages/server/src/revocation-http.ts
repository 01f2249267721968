/**
 * The plain-HTTP revocation listener: `GET /crl` (DER), `GET /crl.pem` (the proxy bundle),
 * `GET /root.crl` (the root's CRL, where the intermediate's CRL distribution point points),
 * `POST /ocsp` and `GET /ocsp/{base64}` (RFC 6960 Appendix A, RFC 5019 §5), `GET /healthz`.
 * Plain HTTP on purpose: CRLs and OCSP responses are signed, and relying parties fetch them
 * without TLS (RFC 5280 §8, RFC 6960 Appendix A). Thin: the bytes come from core.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock, OcspAnswer } from '@agentca/core';

/** The CRL as served: the issuing CA's CRL (DER) and the proxy bundle (issuing CA CRL then root CRL, PEM). */
export interface ServedCrl {
  der: Uint8Array;
  pem: string;
  thisUpdate: Date;
  nextUpdate: Date;
  crlNumber: bigint;
}

/** A CRL on its own (the root's). */
export interface ServedRootCrl {
  der: Uint8Array;
  thisUpdate: Date;
  nextUpdate: Date;
}

/** What the listener needs of an OCSP responder; `OcspResponder` from @agentca/core is one. */
export interface OcspAnswerer {
  /** A DER OCSPResponse and its times for any input; never rejects. */
  answer(request: Uint8Array): Promise<OcspAnswer>;
}

export interface RevocationHandlerOptions {
  /** The current CRL, or null before the first one is signed (answered 503). */
  crl: () => ServedCrl | null;
  /** The root's CRL for `GET /root.crl` (null before it exists: 503); without it the route is 404. */
  rootCrl?: () => ServedRootCrl | null;
  ocsp: OcspAnswerer;
  clock: Clock;
  /** Upper bound of Cache-Control max-age, seconds (default 30): a revocation reaches caches within it. */
  maxAgeSeconds?: number;
  /** Extra fields for `GET /healthz`. */
  health?: () => object;
  /** Largest request body accepted (default 10 KB; an OCSP request is a few hundred bytes). */
  maxBodyBytes?: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const OCSP_RESPONSE = 'application/ocsp-response';
const GET_HEAD = 'GET, HEAD';
const NO_STORE = 'no-store';
const EMPTY = new Uint8Array(0);

interface Validators {
  etag: string;
  lastModified: string;
  /** Last-Modified in whole seconds, for If-Modified-Since. */
  modifiedMs: number;
  expires: string;
  nextUpdateMs: number;
}

function validators(etagHex: string, thisUpdate: Date, nextUpdate: Date): Validators {
  return {
    etag: `"${etagHex}"`,
    lastModified: thisUpdate.toUTCString(),
    modifiedMs: Math.floor(thisUpdate.getTime() / 1000) * 1000,
    expires: nextUpdate.toUTCString(),
    nextUpdateMs: nextUpdate.getTime(),
  };
}

/** RFC 9110 §13.1.2 (weak comparison) and §13.1.3; If-None-Match wins when both are sent. */
function notModified(req: IncomingMessage, v: Validators): boolean {
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) {
    for (const tag of inm.split(',')) {
      const t = tag.trim();
      if (t === '*' || t === v.etag || t === `W/${v.etag}`) return true;
    }
    return false;
  }
  const ims = req.headers['if-modified-since'];
  if (ims === undefined) return false;
  const at = Date.parse(ims);
  return !Number.isNaN(at) && v.modifiedMs <= at;
}

const sha1Hex = (data: Uint8Array | string): string => createHash('sha1').update(data).digest('hex');

/** The base64 of a GET request path, with the encodings clients and proxies are known to produce. */
export function decodeOcspGetPath(encoded: string): Uint8Array | null {
  let s: string;
  try {
    s = decodeURIComponent(encoded); // %2B %2F %3D, and clients that encode everything
  } catch {
    return null;
  }
  // `+` turned into a space (form decoding on the way), line-wrapped base64, base64url,
  // the leading slash of a URL that already ended in one, missing padding.
  s = s.replace(/[\r\n\t]/g, '').replace(/ /g, '+').replace(/-/g, '+').replace(/_/g, '/').replace(/^\/+/, '').replace(/=+$/, '');
  if (s.length === 0 || s.length % 4 === 1 || !/^[A-Za-z0-9+/]+$/.test(s)) return null;
  return new Uint8Array(Buffer.from(s, 'base64'));
}

/**
 * A `node:http` request handler for the revocation routes. Every response carries caching
 * headers derived from the signed object: `Cache-Control: max-age=min(maxAge, seconds to
 * nextUpdate), public, no-transform, must-revalidate`, an ETag (SHA-1 of the bytes), Last-Modified
 * (thisUpdate) and Expires (nextUpdate), and conditional GETs answer 304 (RFC 5019 §6.2). OCSP
 * answers with a nonce, and OCSP errors, are `no-store`. Malformed OCSP input is answered the
 * OCSP way (200 with `malformedRequest`); no input yields a 5xx. Bodies above `maxBodyBytes`
 * get 413 and the connection is closed without reading the rest.
 *
 * @example
 * const server = http.createServer(revocationHandler({ crl: () => runtime.crl(), ocsp: runtime.ocsp, clock: systemClock }));
 */
export function revocationHandler(o: RevocationHandlerOptions): Handler {
  const maxAge = Math.max(0, Math.floor(o.maxAgeSeconds ?? 30));
  const maxBody = o.maxBodyBytes ?? 10 * 1024;
  const clock = o.clock;

  const cacheControlFull = `max-age=${maxAge}, public, no-transform, must-revalidate`;
  const cacheControl = (nextUpdateMs: number): string => {
    const left = Math.floor((nextUpdateMs - clock.now().getTime()) / 1000);
    if (left >= maxAge) return cacheControlFull;
    return `max-age=${Math.max(0, left)}, public, no-transform, must-revalidate`;
  };
  // Cached OCSP answers are shared objects: their header values are computed once.
  const ocspValidators = new WeakMap<OcspAnswer, Validators>();

  // The CRL provider may build a new object per call: memoise on the bytes, one slot each.
  let derMemo: { der: Uint8Array; etag: string } | null = null;
  let rootMemo: { der: Uint8Array; etag: string } | null = null;
  let pemMemo: { pem: string; body: Buffer; etag: string } | null = null;

  function sendSigned(req: IncomingMessage, res: ServerResponse, type: string, body: Uint8Array, v: Validators): void {
    const headers: Record<string, string | number> = {
      'cache-control': cacheControl(v.nextUpdateMs),
      etag: v.etag,
      'last-modified': v.lastModified,
      expires: v.expires,
    };
    if ((req.method === 'GET' || req.method === 'HEAD') && notModified(req, v)) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    headers['content-type'] = type;
    headers['content-length'] = body.length;
    res.writeHead(200, headers);
    res.end(body);
  }

  function current<T>(provider: () => T | null): T | null {
    try {
      return provider();
    } catch {
      return null;
    }
  }

  function serveRootCrl(req: IncomingMessage, res: ServerResponse, provider: () => ServedRootCrl | null): void {
    const crl = current(() => provider());
    if (!crl) return plain(res, 503, 'no root CRL has been published yet\n', { 'retry-after': '1' });
    if (rootMemo?.der !== crl.der) rootMemo = { der: crl.der, etag: sha1Hex(crl.der) };
    sendSigned(req, res, 'application/pkix-crl', crl.der, validators(rootMemo.etag, crl.thisUpdate, crl.nextUpdate));
  }

  function serveCrl(req: IncomingMessage, res: ServerResponse, pem: boolean): void {
    const crl = current(() => o.crl());
    if (!crl) return plain(res, 503, 'no CRL has been published yet\n', { 'retry-after': '1' });
    if (pem) {
      if (pemMemo?.pem !== crl.pem) pemMemo = { pem: crl.pem, body: Buffer.from(crl.pem, 'utf8'), etag: sha1Hex(crl.pem) };
      sendSigned(req, res, 'application/x-pem-file', pemMemo.body, validators(pemMemo.etag, crl.thisUpdate, crl.nextUpdate));
    } else {
      if (derMemo?.der !== crl.der) derMemo = { der: crl.der, etag: sha1Hex(crl.der) };
      sendSigned(req, res, 'application/pkix-crl', crl.der, validators(derMemo.etag, crl.thisUpdate, crl.nextUpdate));
    }
  }

  function sendOcsp(req: IncomingMessage, res: ServerResponse, a: OcspAnswer): void {
    if (res.writableEnded || res.destroyed) return;
    if (a.status === 'successful' && !a.nonce && a.etag && a.thisUpdate && a.nextUpdate) {
      let v = ocspValidators.get(a);
      if (!v) ocspValidators.set(a, (v = validators(a.etag, a.thisUpdate, a.nextUpdate)));
      sendSigned(req, res, OCSP_RESPONSE, a.der, v);
      return;
    }
    res.writeHead(200, { 'content-type': OCSP_RESPONSE, 'content-length': a.der.length, 'cache-control': NO_STORE });
    res.end(a.der);
  }

  function answerOcsp(req: IncomingMessage, res: ServerResponse, request: Uint8Array): void {
    o.ocsp.answer(request).then(
      (a) => sendOcsp(req, res, a),
      () => {
        // OcspAnswerer.answer never rejects; an implementation that does is answered as internalError.
        if (!res.headersSent) sendOcsp(req, res, { der: Uint8Array.of(0x30, 0x03, 0x0a, 0x01, 2), status: 'internalError', nonce: false });
      },
    );
  }

  function postOcsp(req: IncomingMessage, res: ServerResponse): void {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxBody) {
      tooLarge(req, res);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (c: Buffer) => {
      if (refused) return;
      size += c.length;
      if (size > maxBody) {
        refused = true;
        tooLarge(req, res);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (refused) return;
      answerOcsp(req, res, chunks.length === 1 ? chunks[0]! : chunks.length === 0 ? EMPTY : Buffer.concat(chunks, size));
    });
  }

  function health(res: ServerResponse): void {
    let body: string;
    try {
      const crl = o.crl();
      body = JSON.stringify({
        status: 'ok',
        crl: crl ? { crlNumber: crl.crlNumber.toString(), thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.nextUpdate.toISOString() } : null,
        ...(o.health ? o.health() : {}),
      });
    } catch {
      plain(res, 503, '{"status":"error"}\n', { 'content-type': 'application/json' });
      return;
    }
    plain(res, 200, `${body}\n`, { 'content-type': 'application/json' });
  }

  return function handle(req, res) {
    try {
      route(req, res);
    } catch {
      // Nothing above throws on input; this only guards a fault of our own from killing the process.
      if (!res.headersSent) plain(res, 503, 'temporarily unavailable\n', { connection: 'close' });
      else res.destroy();
    }
  };

  function route(req: IncomingMessage, res: ServerResponse): void {
    req.on('error', () => {}); // a client that vanishes mid-body is not our error
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const method = req.method;
    const read = method === 'GET' || method === 'HEAD';

    if (path === '/ocsp' || path === '/ocsp/') {
      if (method === 'POST') return postOcsp(req, res);
      if (read && path === '/ocsp/') return answerOcsp(req, res, EMPTY);
      return notAllowed(req, res, 'POST');
    }
    if (path.startsWith('/ocsp/')) {
      if (!read) return notAllowed(req, res, GET_HEAD);
      return answerOcsp(req, res, decodeOcspGetPath(path.slice(6)) ?? EMPTY);
    }
    if (path === '/crl' || path === '/crl.pem') {
      if (!read) return notAllowed(req, res, GET_HEAD);
      return serveCrl(req, res, path === '/crl.pem');
    }
    if (path === '/root.crl' && o.rootCrl) {
      if (!read) return notAllowed(req, res, GET_HEAD);
      return serveRootCrl(req, res, o.rootCrl);
    }
    if (path === '/healthz') {
      if (!read) return notAllowed(req, res, GET_HEAD);
      return health(res);
    }
    plain(res, 404, 'not found\n', hasBody(req) ? { connection: 'close' } : {});
  }
}

function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

function plain(res: ServerResponse, status: number, text: string, extra: Record<string, string>): void {
  const body = Buffer.from(text, 'utf8');
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length, 'cache-control': NO_STORE, ...extra });
  res.end(body);
}

function notAllowed(req: IncomingMessage, res: ServerResponse, allow: string): void {
  plain(res, 405, 'method not allowed\n', { allow, ...(hasBody(req) ? { connection: 'close' } : {}) });
}

/** 413, then the connection closes once the answer is out: the rest of the body is never read. */
function tooLarge(req: IncomingMessage, res: ServerResponse): void {
  if (res.headersSent) return;
  plain(res, 413, 'request body too large\n', { connection: 'close' });
  req.pause();
}

export interface RevocationServerOptions extends RevocationHandlerOptions {
  /** Default 127.0.0.1: the listener is for relying parties on the host or behind a proxy. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Time allowed to send the headers, ms (default 10 s); slow-loris clients are cut off. */
  headersTimeoutMs?: number;
  /** Time allowed for the whole request, ms (default 15 s). */
  requestTimeoutMs?: number;
}

export interface RevocationServer {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/**
 * Starts the plain-HTTP revocation listener.
 *
 * @example
 * const srv = await startRevocationServer({ port: 8080, crl: () => runtime.crl(), ocsp: runtime.ocsp, clock: systemClock });
 * // … later
 * await srv.close();
 */
export async function startRevocationServer(o: RevocationServerOptions): Promise<RevocationServer> {
  const server = createServer(
    { headersTimeout: o.headersTimeoutMs ?? 10_000, requestTimeout: o.requestTimeoutMs ?? 15_000, keepAliveTimeout: 5_000 },
    revocationHandler(o),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
