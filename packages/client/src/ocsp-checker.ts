import { EventEmitter } from 'node:events';
import { randomBytes, X509Certificate } from 'node:crypto';
import { boundedFetch } from './bounded-fetch.ts';
import type { TLSSocket } from 'node:tls';
import { children, content, expectTag as expectDer, isTime, readTime, readTopSequence, seq, tlv, whole, type DerNode, type Tlv } from './der.ts';
import { normalizeSerial, type RevocationStatus } from './crl-checker.ts';
import { hasExtension, publicKeyBits, sha1, subjectDer, verifySignature } from './signature.ts';

/** Options of an {@link OcspChecker}. */
export interface OcspCheckerOptions {
  /** The CA's OCSP responder (`agentca serve`: `http://127.0.0.1:8080/ocsp`). Requests are POSTed. */
  url: string;
  /** The issuing CA's certificate (the intermediate), PEM: the certificates checked are issued by it, and it or its delegated responder signs every answer. */
  issuerCertificatePem: string;
  /**
   * Longest an answer is reused before it is asked again, even when its nextUpdate is later. Default
   * 30 000 ms, the `max-age` `agentca serve` sends: a revocation is seen within about that long.
   * When the responder cannot be reached, an answer is used up to its nextUpdate.
   */
  maxAgeMs?: number;
  /** Timeout of each request. Default 3000 ms. */
  timeoutMs?: number;
  /** Send a nonce (RFC 8954) and require it echoed: no replayed answer, at one signature per request on the CA. Default false (RFC 5019). */
  nonce?: boolean;
  /** Tolerated clock difference with the responder, for thisUpdate and the responder certificate's validity. Default 300 000 ms. */
  clockSkewMs?: number;
  /** Most answers kept; the oldest go first. Default 10 000. */
  cacheSize?: number;
  /** The clock, ms since the epoch (tests). Default `Date.now`. */
  now?: () => number;
}

/** A verified OCSP answer for one certificate (RFC 6960 §4.2.2.3). */
export interface OcspAnswerInfo {
  /** `unknown`: the responder does not know the certificate (never issued by this CA). */
  certStatus: 'good' | 'revoked' | 'unknown';
  thisUpdate: Date;
  nextUpdate: Date | null;
  /** When the answer was received (the checker's clock). */
  receivedAt: Date;
  revokedAt?: Date;
  /** CRLReason code (RFC 5280 §5.3.1) when the responder gave one. */
  reason?: number;
  /** Who signed it: the issuing CA itself or its delegated responder certificate. */
  signedBy: 'issuer' | 'delegated';
}

/** Events of an {@link OcspChecker}. */
export interface OcspCheckerEvents {
  /** A verified answer arrived and is cached. */
  answer: [{ serial: string } & OcspAnswerInfo];
  /** A request failed or an answer was refused (bad signature, stale, not for the certificate asked about…). */
  error: [Error];
}

const OID = {
  basic: '2b0601050507300101', // 1.3.6.1.5.5.7.48.1.1 id-pkix-ocsp-basic
  nonce: '2b0601050507300102', // 1.3.6.1.5.5.7.48.1.2 id-pkix-ocsp-nonce
  nocheck: '2b0601050507300105', // 1.3.6.1.5.5.7.48.1.5 id-pkix-ocsp-nocheck
  sha1: '2b0e03021a', // 1.3.14.3.2.26
  ocspSigning: '1.3.6.1.5.5.7.3.9',
} as const;

/** OCSPResponseStatus names (RFC 6960 §4.2.1), for error messages. */
const RESPONSE_STATUS = ['successful', 'malformedRequest', 'internalError', 'tryLater', '(4)', 'sigRequired', 'unauthorized'];

const oidTlv = (hex: string): Buffer => tlv(0x06, Buffer.from(hex, 'hex'));

/** INTEGER content bytes of a serial written in hex (two's complement, minimal). */
export function serialInteger(serialHex: string): Buffer {
  let h = normalizeSerial(serialHex);
  if (!/^[0-9a-f]+$/.test(h)) throw new TypeError(`not a hex serial: ${JSON.stringify(serialHex)}`);
  if (h.length % 2) h = '0' + h;
  const b = Buffer.from(h, 'hex');
  return b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b;
}

/** What the request asked about, to find the SingleResponse that answers it. */
interface CertIdParts {
  nameHash: Buffer;
  keyHash: Buffer;
  serial: Buffer;
}

/** An OCSPRequest (RFC 6960 §4.1.1) for one certificate, SHA-1 CertID (RFC 5019 §2.1.1), with an optional nonce. */
export function buildOcspRequest(certId: CertIdParts, nonce: Buffer | null): Buffer {
  const id = seq(seq(oidTlv(OID.sha1), Buffer.from([0x05, 0x00])), tlv(0x04, certId.nameHash), tlv(0x04, certId.keyHash), tlv(0x02, certId.serial));
  const extensions = nonce ? [tlv(0xa2, seq(seq(oidTlv(OID.nonce), tlv(0x04, tlv(0x04, nonce)))))] : [];
  return seq(seq(seq(seq(id)), ...extensions));
}

function expectTag<T extends DerNode>(node: T | undefined, tag: number, what: string): T {
  return expectDer(node, tag, `ocsp: expected ${what}`);
}

interface ParsedResponse {
  tbs: Buffer;
  signatureAlgorithm: string;
  signature: Buffer;
  responderId: { byName: Buffer } | { byKey: Buffer };
  certs: X509Certificate[];
  singles: { certId: CertIdParts & { hashOid: string }; status: OcspAnswerInfo['certStatus']; revokedAt?: Date; reason?: number; thisUpdate: Date; nextUpdate: Date | null }[];
  /** The nonce extension's extnValue, when present. */
  nonce: Buffer | null;
}

/** Reads an OCSPResponse carrying a BasicOCSPResponse (RFC 6960 §4.2.1). Throws on anything else. */
export function parseOcspResponse(der: Uint8Array): ParsedResponse {
  const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  const top = readTopSequence(buf, 'ocsp');
  const [statusNode, bytesWrapper, ...rest] = children(buf, top);
  const status = expectTag(statusNode, 0x0a, 'responseStatus');
  const code = content(buf, status);
  if (code.length !== 1) throw new Error('ocsp: bad responseStatus');
  if (code[0] !== 0) throw new Error(`ocsp: the responder answered ${RESPONSE_STATUS[code[0]!] ?? `status ${code[0]}`}`);
  if (rest.length) throw new Error('ocsp: extra fields');
  const responseBytes = expectTag(children(buf, expectTag(bytesWrapper, 0xa0, 'responseBytes'))[0], 0x30, 'ResponseBytes');
  const [typeNode, valueNode] = children(buf, responseBytes);
  if (content(buf, expectTag(typeNode, 0x06, 'responseType')).toString('hex') !== OID.basic) throw new Error('ocsp: not a basic response');
  const basicBuf = Buffer.from(content(buf, expectTag(valueNode, 0x04, 'response')));
  return parseBasic(basicBuf);
}

function parseBasic(buf: Buffer): ParsedResponse {
  const top = readTopSequence(buf, 'ocsp');
  const [tbsNode, algNode, sigNode, certsNode, ...rest] = children(buf, top);
  if (rest.length) throw new Error('ocsp: extra fields in BasicOCSPResponse');
  expectTag(tbsNode, 0x30, 'tbsResponseData');
  const signatureAlgorithm = content(buf, expectTag(children(buf, expectTag(algNode, 0x30, 'signatureAlgorithm'))[0], 0x06, 'algorithm OID')).toString('hex');
  expectTag(sigNode, 0x03, 'signature');
  if (buf[sigNode!.start] !== 0) throw new Error('ocsp: signature has unused bits');
  const signature = Buffer.from(buf.subarray(sigNode!.start + 1, sigNode!.end));
  const certs: X509Certificate[] = [];
  if (certsNode) {
    const list = expectTag(children(buf, expectTag(certsNode, 0xa0, 'certs'))[0], 0x30, 'certs');
    for (const c of children(buf, list)) certs.push(new X509Certificate(whole(buf, expectTag(c, 0x30, 'certificate'))));
  }

  const f = children(buf, tbsNode!);
  let i = 0;
  if (f[i]?.tag === 0xa0) {
    const v = expectTag(children(buf, f[i++]!)[0], 0x02, 'version');
    if (content(buf, v).toString('hex') !== '00') throw new Error('ocsp: unsupported version');
  }
  const rid = f[i++];
  let responderId: ParsedResponse['responderId'];
  if (rid?.tag === 0xa1) responderId = { byName: Buffer.from(whole(buf, expectTag(children(buf, rid)[0], 0x30, 'responder name'))) };
  else if (rid?.tag === 0xa2) responderId = { byKey: Buffer.from(content(buf, expectTag(children(buf, rid)[0], 0x04, 'responder key hash'))) };
  else throw new Error('ocsp: expected responderID');
  expectTag(f[i++], 0x18, 'producedAt');
  const singles = children(buf, expectTag(f[i++], 0x30, 'responses')).map((s) => readSingle(buf, s));
  let nonce: Buffer | null = null;
  if (f[i]?.tag === 0xa1) {
    for (const ext of children(buf, expectTag(children(buf, f[i++]!)[0], 0x30, 'responseExtensions'))) {
      const parts = children(buf, expectTag(ext, 0x30, 'extension'));
      if (content(buf, expectTag(parts[0], 0x06, 'extension OID')).toString('hex') !== OID.nonce) continue;
      nonce = Buffer.from(content(buf, expectTag(parts[parts.length - 1], 0x04, 'extension value')));
    }
  }
  if (i !== f.length) throw new Error('ocsp: unexpected field in ResponseData');
  return { tbs: Buffer.from(whole(buf, tbsNode!)), signatureAlgorithm, signature, responderId, certs, singles, nonce };
}

function readSingle(buf: Buffer, node: Tlv): ParsedResponse['singles'][number] {
  const [idNode, statusNode, thisNode, ...more] = children(buf, expectTag(node, 0x30, 'SingleResponse'));
  const [alg, nameHash, keyHash, serial] = children(buf, expectTag(idNode, 0x30, 'CertID'));
  const certId = {
    hashOid: content(buf, expectTag(children(buf, expectTag(alg, 0x30, 'hashAlgorithm'))[0], 0x06, 'hash OID')).toString('hex'),
    nameHash: Buffer.from(content(buf, expectTag(nameHash, 0x04, 'issuerNameHash'))),
    keyHash: Buffer.from(content(buf, expectTag(keyHash, 0x04, 'issuerKeyHash'))),
    serial: Buffer.from(content(buf, expectTag(serial, 0x02, 'serialNumber'))),
  };
  let status: OcspAnswerInfo['certStatus'];
  let revokedAt: Date | undefined;
  let reason: number | undefined;
  if (statusNode?.tag === 0x80) status = 'good';
  else if (statusNode?.tag === 0x82) status = 'unknown';
  else if (statusNode?.tag === 0xa1) {
    status = 'revoked';
    const [time, why] = children(buf, statusNode);
    revokedAt = readTime(buf, expectTag(time, 0x18, 'revocationTime'), 'ocsp');
    if (why) {
      const e = expectTag(children(buf, expectTag(why, 0xa0, 'revocationReason'))[0], 0x0a, 'CRLReason');
      reason = buf[e.start];
    }
  } else throw new Error('ocsp: expected certStatus');
  if (!isTime(thisNode)) throw new Error('ocsp: expected thisUpdate');
  const thisUpdate = readTime(buf, thisNode!, 'ocsp');
  let nextUpdate: Date | null = null;
  if (more[0]?.tag === 0xa0) nextUpdate = readTime(buf, expectTag(children(buf, more.shift()!)[0], 0x18, 'nextUpdate'), 'ocsp');
  if (more.length && more[0]!.tag !== 0xa1) throw new Error('ocsp: unexpected field in SingleResponse');
  return { certId, status, ...(revokedAt ? { revokedAt } : {}), ...(reason !== undefined ? { reason } : {}), thisUpdate, nextUpdate };
}

interface CacheEntry extends OcspAnswerInfo {
  /** Until when the answer is used without asking again. */
  freshUntil: number;
  /** Until when it may be used when the responder cannot be reached: its nextUpdate. */
  usableUntil: number;
}

/**
 * Revocation checking by OCSP (RFC 6960, RFC 5019), the alternative to a {@link CrlChecker} for
 * services that would rather ask per caller than hold the CRL: it asks the CA's responder about a
 * serial, verifies the answer, and caches it. An answer is accepted only when
 *
 * - it is signed by the issuing CA, or by a delegated responder certificate issued by that CA
 *   (its signature checked), valid now, with id-kp-OCSPSigning and id-pkix-ocsp-nocheck;
 * - it answers the CertID asked about (SHA-1 hashes of this issuer, the serial);
 * - it is fresh: thisUpdate not in the future, nextUpdate not past (beyond `clockSkewMs`), and,
 *   with `nonce`, it echoes the nonce sent.
 *
 * It fails closed: when no acceptable answer can be had (responder down, `tryLater`, a refused
 * answer) and no cached one is before its nextUpdate, the status is `unknown`. A cached answer is
 * asked again after `maxAgeMs`. Like {@link CrlChecker}, it does not throw when nothing listens
 * for `error`.
 *
 * @example
 * ```ts
 * const ocsp = new OcspChecker({ url: 'http://ca.internal:8080/ocsp', issuerCertificatePem: intermediatePem });
 * ocsp.on('error', (e) => log.warn(e.message));
 * https.createServer(identity.serverOptions(), async (req, res) => {
 *   const ok = await authorizePeerWithRevocation(req.socket as tls.TLSSocket, ['spiffe://example.org/agent/caller'], ocsp);
 *   res.writeHead(ok ? 200 : 403).end();
 * });
 * ```
 */
export class OcspChecker extends EventEmitter<OcspCheckerEvents> {
  readonly url: string;
  readonly issuer: X509Certificate;
  readonly maxAgeMs: number;
  readonly timeoutMs: number;
  readonly nonce: boolean;
  readonly clockSkewMs: number;
  readonly cacheSize: number;
  readonly #now: () => number;
  readonly #nameHash: Buffer;
  readonly #keyHash: Buffer;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inflight = new Map<string, Promise<RevocationStatus>>();

  constructor(options: OcspCheckerOptions) {
    super();
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('OcspChecker: url must be http: or https:');
    this.url = options.url;
    this.maxAgeMs = options.maxAgeMs ?? 30_000;
    this.timeoutMs = options.timeoutMs ?? 3000;
    this.nonce = options.nonce ?? false;
    this.clockSkewMs = options.clockSkewMs ?? 300_000;
    this.cacheSize = options.cacheSize ?? 10_000;
    if (!(this.maxAgeMs >= 0) || !(this.timeoutMs > 0) || !(this.clockSkewMs >= 0) || !(this.cacheSize >= 1))
      throw new RangeError('OcspChecker: maxAgeMs and clockSkewMs must be ≥ 0, timeoutMs and cacheSize positive');
    this.issuer = new X509Certificate(options.issuerCertificatePem);
    this.#now = options.now ?? Date.now;
    this.#nameHash = sha1(subjectDer(this.issuer));
    this.#keyHash = sha1(publicKeyBits(this.issuer));
  }

  /** The cached answer for a serial, if any (whether or not still fresh). */
  cached(serialHex: string): OcspAnswerInfo | undefined {
    const e = this.#cache.get(normalizeSerial(serialHex));
    if (!e) return undefined;
    const { freshUntil: _f, usableUntil: _u, ...info } = e;
    return info;
  }

  /** Forgets every cached answer. */
  clear(): void {
    this.#cache.clear();
  }

  /**
   * The revocation status of a serial of this issuer: `good` or `revoked` from a verified answer,
   * `unknown` when the responder does not know it or no acceptable answer can be had. Never rejects;
   * concurrent calls for one serial share one request.
   */
  status(serialHex: string): Promise<RevocationStatus> {
    const serial = normalizeSerial(serialHex);
    const now = this.#now();
    const hit = this.#cache.get(serial);
    if (hit && now < hit.freshUntil) return Promise.resolve(statusOf(hit));
    let pending = this.#inflight.get(serial);
    if (!pending) {
      pending = this.query(serial)
        .then((a) => statusOf(a))
        .catch((e: unknown) => {
          this.#report(e);
          // A signed answer before its nextUpdate still says what the CA said; past it, nothing.
          const held = this.#cache.get(serial);
          return held && this.#now() < held.usableUntil ? statusOf(held) : 'unknown';
        })
        .finally(() => this.#inflight.delete(serial));
      this.#inflight.set(serial, pending);
    }
    return pending;
  }

  /**
   * True when the socket has a peer certificate issued by this checker's CA whose serial is `good`.
   * It does not check the chain or the SPIFFE ID: see {@link authorizePeerWithRevocation}.
   */
  async isAllowed(socket: TLSSocket): Promise<boolean> {
    const cert = socket.getPeerCertificate?.();
    if (!cert || !cert.serialNumber || !cert.raw) return false;
    try {
      if (!new X509Certificate(cert.raw).checkIssued(this.issuer)) return false;
    } catch {
      return false;
    }
    return (await this.status(cert.serialNumber)) === 'good';
  }

  /**
   * Asks the responder about a serial now, bypassing the cache, and caches the answer. Rejects when
   * no acceptable answer comes (the reason in the message).
   */
  async query(serialHex: string): Promise<OcspAnswerInfo> {
    const serial = normalizeSerial(serialHex);
    const certId: CertIdParts = { nameHash: this.#nameHash, keyHash: this.#keyHash, serial: serialInteger(serial) };
    const nonce = this.nonce ? randomBytes(16) : null;
    const der = await this.#post(buildOcspRequest(certId, nonce));
    const info = this.#verify(der, certId, nonce);
    const receivedAt = info.receivedAt.getTime();
    const expires = info.nextUpdate?.getTime() ?? receivedAt + this.maxAgeMs;
    this.#cache.delete(serial);
    while (this.#cache.size >= this.cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(serial, { ...info, freshUntil: Math.min(expires, receivedAt + this.maxAgeMs), usableUntil: expires });
    this.emit('answer', { serial, ...info });
    return info;
  }

  #verify(der: Buffer, asked: CertIdParts, nonce: Buffer | null): OcspAnswerInfo {
    const r = parseOcspResponse(der);
    const now = this.#now();
    const signer = this.#signer(r, now);
    verifySignature('ocsp', r.signatureAlgorithm, r.tbs, r.signature, signer.cert.publicKey);
    if (nonce && !(r.nonce && r.nonce.equals(tlv(0x04, nonce)))) throw new Error('ocsp: the answer does not echo the nonce sent');
    const single = r.singles.find(
      (s) => s.certId.hashOid === OID.sha1 && s.certId.nameHash.equals(asked.nameHash) && s.certId.keyHash.equals(asked.keyHash) && s.certId.serial.equals(asked.serial),
    );
    if (!single) throw new Error('ocsp: the answer is not about the certificate asked about');
    if (single.thisUpdate.getTime() > now + this.clockSkewMs) throw new Error(`ocsp: thisUpdate ${single.thisUpdate.toISOString()} is in the future`);
    if (single.nextUpdate && single.nextUpdate.getTime() + this.clockSkewMs < now) throw new Error(`ocsp: stale answer (nextUpdate ${single.nextUpdate.toISOString()})`);
    if (!single.nextUpdate && single.thisUpdate.getTime() + this.maxAgeMs + this.clockSkewMs < now) throw new Error('ocsp: stale answer (no nextUpdate, old thisUpdate)');
    return {
      certStatus: single.status,
      thisUpdate: single.thisUpdate,
      nextUpdate: single.nextUpdate,
      receivedAt: new Date(now),
      ...(single.revokedAt ? { revokedAt: single.revokedAt } : {}),
      ...(single.reason !== undefined ? { reason: single.reason } : {}),
      signedBy: signer.delegated ? 'delegated' : 'issuer',
    };
  }

  /** The certificate whose key must have signed `r`: the issuer, or a delegated responder it issued (RFC 6960 §4.2.2.2). */
  #signer(r: ParsedResponse, now: number): { cert: X509Certificate; delegated: boolean } {
    const names = (c: X509Certificate): boolean =>
      'byName' in r.responderId ? r.responderId.byName.equals(subjectDer(c)) : r.responderId.byKey.equals(sha1(publicKeyBits(c)));
    if (names(this.issuer)) return { cert: this.issuer, delegated: false };
    const cert = r.certs.find(names);
    if (!cert) throw new Error('ocsp: signed by a responder that is neither the issuing CA nor a certificate in the answer');
    if (!cert.checkIssued(this.issuer) || !cert.verify(this.issuer.publicKey)) throw new Error('ocsp: the responder certificate is not issued by the issuing CA');
    if (!(cert.keyUsage ?? []).includes(OID.ocspSigning)) throw new Error('ocsp: the responder certificate lacks id-kp-OCSPSigning');
    if (Date.parse(cert.validFrom) > now + this.clockSkewMs || Date.parse(cert.validTo) < now) throw new Error('ocsp: the responder certificate is not valid now');
    // Without nocheck the responder's own revocation would need checking, which we cannot: fail closed.
    if (!hasExtension(cert, OID.nocheck)) throw new Error('ocsp: the responder certificate lacks id-pkix-ocsp-nocheck');
    return { cert, delegated: true };
  }

  #post(body: Buffer): Promise<Buffer> {
    return boundedFetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response', 'content-length': body.length },
      body,
      timeoutMs: this.timeoutMs,
      maxBytes: 64 * 1024,
      what: 'ocsp',
      tooLarge: 'answer too large',
    });
  }

  #report(e: unknown): void {
    const error = e instanceof Error ? e : new Error(String(e));
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}

function statusOf(a: OcspAnswerInfo): RevocationStatus {
  return a.certStatus === 'good' ? 'good' : a.certStatus === 'revoked' ? 'revoked' : 'unknown';
}
