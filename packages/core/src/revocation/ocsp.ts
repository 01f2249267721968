/**
 * OCSP (RFC 6960) on the RFC 5019 profile, bytes in → bytes out: one Request per OCSPRequest,
 * SHA-1 or SHA-256 CertIDs, a nonce echoed when sent, BasicOCSPResponse signed by a delegated
 * responder (or the issuing CA itself). The transport (HTTP POST/GET) lives in the server.
 */
import { InternalError, InvalidRequest, Unavailable } from '../errors.ts';
import { bytesEqual, concatBytes, sha1, sha256, toHex } from '../encoding.ts';
import type { Clock } from '../ports/clock.ts';
import type { Signer } from '../ports/signer.ts';
import { signatureSchemeFor } from '../x509/algorithms.ts';
import { parseCertificate, signatureAlgorithm } from '../x509/certificate.ts';
import { decodeAuthorityKeyIdentifier, decodeExtKeyUsage, decodeSubjectKeyIdentifier } from '../x509/extension-values.ts';
import { EXT } from '../x509/extensions.ts';
import { parseSpkiDer } from '../x509/spki.ts';
import {
  TAG,
  bitString,
  explicit,
  octetString,
  oid,
  readBoolean,
  readElement,
  readTop,
  seq,
  tlv,
  type DerElement,
} from '../x509/der.ts';
import { REVOCATION_REASONS, type RevocationReason } from './reasons.ts';

/** OCSPResponseStatus (RFC 6960 §4.2.1); 4 is unused. */
export const OCSP_RESPONSE_STATUS = {
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  sigRequired: 5,
  unauthorized: 6,
} as const;
export type OcspResponseStatus = keyof typeof OCSP_RESPONSE_STATUS;

export const OCSP_OID = {
  basic: '1.3.6.1.5.5.7.48.1.1',
  nonce: '1.3.6.1.5.5.7.48.1.2',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
} as const;

/** What the CA knows of one serial. `unknown`: never issued by this CA. */
export type OcspCertStatus = { status: 'good' } | { status: 'revoked'; revokedAt: Date; reason: RevocationReason } | { status: 'unknown' };

/** A digest, synchronous or not (`CryptoBackend['digest']` fits). */
export type OcspDigest = (algorithm: 'SHA-1' | 'SHA-256', data: Uint8Array) => Promise<Uint8Array> | Uint8Array;

/** One answer: the DER OCSPResponse and what an HTTP layer needs to set caching headers. */
export interface OcspAnswer {
  readonly der: Uint8Array;
  readonly status: OcspResponseStatus;
  /** Successful responses only. */
  readonly certStatus?: OcspCertStatus['status'];
  readonly producedAt?: Date;
  readonly thisUpdate?: Date;
  readonly nextUpdate?: Date;
  /** True when the response echoes the request's nonce: unique to one request, never to be cached. */
  readonly nonce: boolean;
  /** Lowercase hex SHA-1 of `der`, for successful responses without a nonce (an HTTP ETag). */
  readonly etag?: string;
}

export interface OcspResponderOptions {
  /** The issuing CA certificate (DER): requests for any other issuer are `unauthorized`. */
  issuerCertificate: Uint8Array;
  /**
   * Who signs: a delegated responder certificate issued by the issuing CA with
   * id-kp-OCSPSigning (see `createOcspResponderCertificate`), or the issuing CA itself.
   */
  responder: { certificate: Uint8Array; signer: Signer };
  /** The status of a serial (lowercase hex, no 00 pad, as stored). An `Unavailable` error answers `tryLater`. */
  lookup(serialHex: string): Promise<OcspCertStatus> | OcspCertStatus;
  clock: Clock;
  /** nextUpdate − thisUpdate, seconds; default 3600. */
  validitySeconds?: number;
  /** SHA-1 / SHA-256; WebCrypto by default. Used for the issuer hashes, the responder ID and ETags. */
  digest?: OcspDigest;
  /** Most pre-signed responses kept (least recently used go first); default 10,000. */
  cacheSize?: number;
}

const MAX_REQUEST_BYTES = 64 * 1024;
const MAX_EXTENSIONS = 32;
const MAX_NONCE_BYTES = 128;
/** RFC 5280 §4.1.2.2: serials are at most 20 octets; a longer one was never issued here. */
const MAX_SERIAL_BYTES = 20;
/** CertIDs longer than this are answered but not cached (the key is the CertID itself). */
const MAX_CACHED_CERT_ID_BYTES = 256;

const errorAnswers = new Map<OcspResponseStatus, OcspAnswer>(
  (Object.keys(OCSP_RESPONSE_STATUS) as OcspResponseStatus[])
    .filter((s) => s !== 'successful')
    .map((s) => [s, Object.freeze({ der: Uint8Array.of(0x30, 0x03, TAG.ENUMERATED, 0x01, OCSP_RESPONSE_STATUS[s]), status: s, nonce: false })]),
);
const errorAnswer = (s: Exclude<OcspResponseStatus, 'successful'>): OcspAnswer => errorAnswers.get(s)!;

const oidContent = (dotted: string): Uint8Array => oid(dotted).subarray(2);
const NONCE_OID = oidContent(OCSP_OID.nonce);
const SHA1_OID = oidContent(OCSP_OID.sha1);
const SHA256_OID = oidContent(OCSP_OID.sha256);

/** Thrown inside the request parser only; never escapes `respond`. */
class Malformed {}
const malformed = (): never => {
  throw new Malformed();
};

/** The CertID bytes as a string key (one char per byte: half the length of hex, one call). */
const cacheKey = (certId: Uint8Array): string => String.fromCharCode.apply(null, certId as unknown as number[]);

interface ParsedRequest {
  /** The CertID TLV, echoed byte for byte in the SingleResponse and used as the cache key. */
  certId: Uint8Array;
  hash: 'SHA-1' | 'SHA-256' | null;
  issuerNameHash: Uint8Array;
  issuerKeyHash: Uint8Array;
  /** Lowercase hex magnitude; null for a serial agentca cannot have issued (negative or over 20 octets). */
  serialHex: string | null;
  /** The nonce extension's extnValue content (an OCTET STRING TLV), echoed as is. */
  nonce: Uint8Array | null;
}

function el(buf: Uint8Array, offset: number, limit: number): DerElement {
  if (offset >= limit) malformed();
  return readElement(buf, offset, limit);
}

function contentEquals(buf: Uint8Array, e: DerElement, want: Uint8Array): boolean {
  if (e.end - e.contentStart !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (buf[e.contentStart + i] !== want[i]) return false;
  return true;
}

function expect(e: DerElement, tag: number): DerElement {
  if (e.tag !== tag) malformed();
  return e;
}

/** The only child of `parent`, which must have exactly one. */
function onlyChild(buf: Uint8Array, parent: DerElement): DerElement {
  const c = el(buf, parent.contentStart, parent.end);
  if (c.end !== parent.end) malformed();
  return c;
}

/**
 * Walks exactly the RFC 6960 §4.1.1 structure and nothing else: the DER reader never recurses on
 * its own, so hostile nesting or length costs no more than the bytes it takes to send it.
 */
function parseRequest(req: Uint8Array): ParsedRequest {
  if (req.length > MAX_REQUEST_BYTES) malformed();
  const top = readTop(req, TAG.SEQUENCE);
  const tbs = expect(el(req, top.contentStart, top.end), TAG.SEQUENCE);
  if (tbs.end !== top.end) {
    // optionalSignature [0] EXPLICIT: accepted and ignored (RFC 5019 §2.1.2).
    const sig = el(req, tbs.end, top.end);
    if (sig.tag !== 0xa0 || sig.end !== top.end) malformed();
  }
  let p = tbs.contentStart;
  let part = el(req, p, tbs.end);
  if (part.tag === 0xa0) {
    const v = expect(onlyChild(req, part), TAG.INTEGER);
    if (v.end - v.contentStart !== 1 || req[v.contentStart] !== 0) malformed();
    part = el(req, (p = part.end), tbs.end);
  }
  if (part.tag === 0xa1) part = el(req, (p = part.end), tbs.end); // requestorName: not used
  const list = expect(part, TAG.SEQUENCE);
  p = list.end;
  let nonce: Uint8Array | null = null;
  if (p < tbs.end) {
    const exts = expect(el(req, p, tbs.end), 0xa2);
    if (exts.end !== tbs.end) malformed();
    nonce = readNonce(req, expect(onlyChild(req, exts), TAG.SEQUENCE));
  }
  // RFC 5019 §2.1.1: exactly one Request.
  const request = expect(onlyChild(req, list), TAG.SEQUENCE);
  const certIdEl = expect(el(req, request.contentStart, request.end), TAG.SEQUENCE);
  if (certIdEl.end !== request.end) {
    const single = el(req, certIdEl.end, request.end); // singleRequestExtensions [0]: none understood
    if (single.tag !== 0xa0 || single.end !== request.end) malformed();
  }
  const alg = expect(el(req, certIdEl.contentStart, certIdEl.end), TAG.SEQUENCE);
  const algOid = expect(el(req, alg.contentStart, alg.end), TAG.OID);
  if (algOid.end !== alg.end) {
    const params = el(req, algOid.end, alg.end);
    if (params.tag !== TAG.NULL || params.end !== params.contentStart || params.end !== alg.end) malformed();
  }
  const hash = contentEquals(req, algOid, SHA1_OID) ? 'SHA-1' : contentEquals(req, algOid, SHA256_OID) ? 'SHA-256' : null;
  const nameHash = expect(el(req, alg.end, certIdEl.end), TAG.OCTET_STRING);
  const keyHash = expect(el(req, nameHash.end, certIdEl.end), TAG.OCTET_STRING);
  const serialEl = expect(el(req, keyHash.end, certIdEl.end), TAG.INTEGER);
  if (serialEl.end !== certIdEl.end) malformed();
  const hashLen = hash === 'SHA-1' ? 20 : hash === 'SHA-256' ? 32 : -1;
  if (hashLen > 0 && (nameHash.end - nameHash.contentStart !== hashLen || keyHash.end - keyHash.contentStart !== hashLen)) malformed();
  return {
    certId: req.subarray(certIdEl.start, certIdEl.end),
    hash,
    issuerNameHash: req.subarray(nameHash.contentStart, nameHash.end),
    issuerKeyHash: req.subarray(keyHash.contentStart, keyHash.end),
    serialHex: serialHex(req, serialEl),
    nonce,
  };
}

function serialHex(buf: Uint8Array, e: DerElement): string | null {
  const len = e.end - e.contentStart;
  if (len === 0) malformed();
  const b0 = buf[e.contentStart]!;
  if (len > 1) {
    const b1 = buf[e.contentStart + 1]!;
    if ((b0 === 0 && (b1 & 0x80) === 0) || (b0 === 0xff && (b1 & 0x80) !== 0)) malformed(); // non-minimal INTEGER
  }
  if (b0 & 0x80) return null;
  const start = b0 === 0 && len > 1 ? e.contentStart + 1 : e.contentStart;
  if (e.end - start > MAX_SERIAL_BYTES) return null;
  return toHex(buf.subarray(start, e.end));
}

/** The nonce's extnValue (RFC 8954: an OCTET STRING, here of 1–128 octets); other extensions are ignored. */
function readNonce(buf: Uint8Array, list: DerElement): Uint8Array | null {
  let nonce: Uint8Array | null = null;
  let n = 0;
  for (let p = list.contentStart; p < list.end; ) {
    if (++n > MAX_EXTENSIONS) malformed();
    const ext = expect(el(buf, p, list.end), TAG.SEQUENCE);
    p = ext.end;
    const id = expect(el(buf, ext.contentStart, ext.end), TAG.OID);
    let v = el(buf, id.end, ext.end);
    if (v.tag === TAG.BOOLEAN) {
      readBoolean(buf, v);
      v = el(buf, v.end, ext.end);
    }
    if (expect(v, TAG.OCTET_STRING).end !== ext.end) malformed();
    if (!contentEquals(buf, id, NONCE_OID)) continue;
    if (nonce) malformed();
    const inner = buf.subarray(v.contentStart, v.end);
    const octets = readTop(inner, TAG.OCTET_STRING);
    const len = octets.end - octets.contentStart;
    if (len < 1 || len > MAX_NONCE_BYTES) malformed();
    nonce = inner;
  }
  return nonce;
}

// ---------------------------------------------------------------- encoding

const enc = new TextEncoder();
/** RFC 6960 writes every time as GeneralizedTime, whole seconds, Z. */
function generalizedTime(d: Date): Uint8Array {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const s = iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) + 'Z';
  return tlv(TAG.GENERALIZED_TIME, enc.encode(s));
}

function certStatusBytes(s: OcspCertStatus): Uint8Array {
  switch (s.status) {
    case 'good':
      return Uint8Array.of(0x80, 0x00);
    case 'unknown':
      return Uint8Array.of(0x82, 0x00);
    case 'revoked': {
      if (!(s.revokedAt instanceof Date) || Number.isNaN(s.revokedAt.getTime())) throw new TypeError('revokedAt is not a valid date');
      const code = REVOCATION_REASONS[s.reason];
      if (code === undefined) throw new TypeError(`unknown revocation reason ${String(s.reason)}`);
      const time = generalizedTime(s.revokedAt);
      // RFC 5280 §5.3.1: unspecified is expressed by leaving the reason out.
      return tlv(0xa1, code === 0 ? time : concatBytes([time, explicit(0, tlv(TAG.ENUMERATED, Uint8Array.of(code)))]));
    }
  }
}

interface ResponderState {
  certificate: Uint8Array;
  signer: Signer;
  /** ResponderID byKey: [2] EXPLICIT KeyHash (SHA-1 of the responder's subjectPublicKey). */
  responderId: Uint8Array;
  signatureAlgorithm: Uint8Array;
  /** `certs` [0] of the BasicOCSPResponse; empty when the issuing CA signs itself. */
  certs: Uint8Array;
  notAfter: number;
}

interface CheckedResponder {
  certificate: Uint8Array;
  signer: Signer;
  byIssuer: boolean;
  keyBits: Uint8Array;
  notAfter: number;
}

interface IssuerHashes {
  'SHA-1': { name: Uint8Array; key: Uint8Array };
  'SHA-256': { name: Uint8Array; key: Uint8Array };
}

interface InFlight {
  serialHex: string | null;
  promise: Promise<OcspAnswer>;
}

interface CacheEntry {
  answer: OcspAnswer;
  serialHex: string | null;
  /** Half-way between thisUpdate and nextUpdate: re-signed from then on. */
  staleAt: number;
  /** When it was last put at the back of the cache's order. */
  seq: number;
}

const defaultDigest: OcspDigest = (alg, data) => (alg === 'SHA-1' ? sha1(data) : sha256(data));

/**
 * An OCSP responder for one issuing CA.
 *
 * Responses to requests without a nonce (what browsers, proxies and RFC 5019 clients send) are
 * signed once per CertID and served from a bounded cache until half their validity has passed,
 * so a hot serial costs no signature at all; concurrent misses for one CertID share one
 * signature. `invalidate(serial)` drops a serial's responses when its status changes, and
 * `setResponder` (rotation) drops them all. Requests with a nonce are signed fresh every time:
 * the nonce proves freshness to the client, at the cost of one signature per request, which is
 * why an RFC 5019 deployment (and a flood of them) should prefer nonce-less requests. Responses
 * for serials never issued (`unknown`) are cached too; the least recently used entries go first
 * when the cache is full, so random serials cannot grow memory or evict a hot entry for long.
 *
 * `respond` never throws: junk, truncated, over-nested or multi-request input answers
 * `malformedRequest`, a CertID for another issuer `unauthorized`, a failing store `tryLater`
 * (an `Unavailable` error) and any other fault of our own `internalError`.
 *
 * @example
 * const ocsp = new OcspResponder({ issuerCertificate: intermediate,
 *   responder: { certificate: responderCert, signer: responderSigner },
 *   lookup: async (serial) => statusFromStore(serial), clock: systemClock });
 * const der = await ocsp.respond(requestBytes); // DER OCSPResponse, always
 * ocsp.invalidate(serial); // after revoking it
 */
export class OcspResponder {
  readonly #issuerName: Uint8Array;
  readonly #issuerKeyBits: Uint8Array;
  readonly #issuerCertificate: Uint8Array;
  readonly #issuerKeyId: Uint8Array | null;
  readonly #lookup: OcspResponderOptions['lookup'];
  readonly #clock: Clock;
  readonly #validityMs: number;
  readonly #digest: OcspDigest;
  readonly #cacheSize: number;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #bySerial = new Map<string, Set<string>>();
  readonly #inFlight = new Map<string, InFlight>();
  #epoch = 0;
  #seq = 0;
  #hashes: IssuerHashes | null = null;
  #state: ResponderState | null = null;
  readonly #ready: Promise<void>;

  /**
   * Throws InvalidRequest `ERR_DER_MALFORMED` for an issuer certificate that does not parse and
   * `ERR_TTL_INVALID` for a validity outside 1 s – 7 days. Problems with the responder
   * certificate surface from `ready()` (and make `respond` answer `internalError`).
   */
  constructor(o: OcspResponderOptions) {
    const issuer = parseCertificate(o.issuerCertificate);
    this.#issuerCertificate = o.issuerCertificate;
    const ski = issuer.extensions.get(EXT.subjectKeyIdentifier);
    this.#issuerKeyId = ski ? decodeSubjectKeyIdentifier(ski.value) : null;
    this.#issuerName = issuer.subject;
    this.#issuerKeyBits = parseSpkiDer(issuer.spki).keyBytes;
    this.#lookup = o.lookup;
    this.#clock = o.clock;
    const validity = o.validitySeconds ?? 3600;
    if (!Number.isInteger(validity) || validity < 1 || validity > 7 * 86400) {
      throw new InvalidRequest('ERR_TTL_INVALID', `the OCSP validity must be a whole number of seconds from 1 to ${7 * 86400}, not ${validity}`);
    }
    this.#validityMs = validity * 1000;
    this.#digest = o.digest ?? defaultDigest;
    this.#cacheSize = Math.max(1, Math.floor(o.cacheSize ?? 10_000));
    this.#ready = this.#init(o.responder);
    this.#ready.catch(() => {}); // surfaced by ready() and as internalError answers
  }

  async #init(responder: OcspResponderOptions['responder']): Promise<void> {
    const checked = this.#checkResponder(responder.certificate, responder.signer);
    const [n1, k1, n256, k256] = await Promise.all([
      this.#digest('SHA-1', this.#issuerName),
      this.#digest('SHA-1', this.#issuerKeyBits),
      this.#digest('SHA-256', this.#issuerName),
      this.#digest('SHA-256', this.#issuerKeyBits),
    ]);
    this.#hashes = { 'SHA-1': { name: n1, key: k1 }, 'SHA-256': { name: n256, key: k256 } };
    this.#state = await this.#responderState(checked);
  }

  /** Resolves once the issuer hashes and the responder are set up; rejects if the responder is unusable. */
  ready(): Promise<void> {
    return this.#ready;
  }

  #checkResponder(certificate: Uint8Array, signer: Signer): CheckedResponder {
    const cert = parseCertificate(certificate);
    if (!bytesEqual(cert.spki, signer.publicKey)) {
      throw new InternalError('ERR_KEY_PAIR_MISMATCH', 'the OCSP responder signer does not hold the key of the responder certificate');
    }
    const byIssuer = bytesEqual(certificate, this.#issuerCertificate);
    if (!byIssuer) {
      // A sanity check of our own configuration, not of network input: the name and the key
      // identifier (CA names repeat across CAs of one trust domain) and the EKU.
      const eku = cert.extensions.get(EXT.extKeyUsage);
      const aki = cert.extensions.get(EXT.authorityKeyIdentifier);
      const issuedByUs =
        bytesEqual(cert.issuer, this.#issuerName) &&
        (this.#issuerKeyId === null || (aki !== undefined && bytesEqual(decodeAuthorityKeyIdentifier(aki.value) ?? new Uint8Array(0), this.#issuerKeyId)));
      if (!issuedByUs || !eku || !decodeExtKeyUsage(eku.value).includes('ocspSigning')) {
        throw new InvalidRequest('ERR_CERTIFICATE_INVALID', 'the OCSP responder certificate must be the issuing CA or be issued by it with id-kp-OCSPSigning');
      }
    }
    return { certificate, signer, byIssuer, keyBits: parseSpkiDer(cert.spki).keyBytes, notAfter: cert.notAfter.getTime() };
  }

  async #responderState(c: CheckedResponder): Promise<ResponderState> {
    const keyHash = await this.#digest('SHA-1', c.keyBits);
    return {
      certificate: c.certificate,
      signer: c.signer,
      responderId: tlv(0xa2, octetString(keyHash)),
      signatureAlgorithm: signatureAlgorithm(signatureSchemeFor(c.signer.algorithm)),
      certs: c.byIssuer ? new Uint8Array(0) : explicit(0, seq(c.certificate)),
      notAfter: c.notAfter,
    };
  }

  /**
   * Switches to a new responder certificate and key (rotation) and drops every cached response;
   * the returned promise resolves once the new responder signs. An unusable pair throws
   * synchronously and keeps the current responder: InternalError `ERR_KEY_PAIR_MISMATCH`,
   * InvalidRequest `ERR_CERTIFICATE_INVALID` or `ERR_DER_MALFORMED`.
   */
  setResponder(certificate: Uint8Array, signer: Signer): Promise<void> {
    const checked = this.#checkResponder(certificate, signer);
    const done = (async () => {
      await this.#ready.catch(() => {});
      this.#state = await this.#responderState(checked);
      this.#epoch++;
      this.#cache.clear();
      this.#bySerial.clear();
      this.#inFlight.clear();
    })();
    done.catch(() => {}); // a caller that does not await it must not crash the process
    return done;
  }

  /** Drops the cached responses for one serial (lowercase hex, no 00 pad): call it when the serial's status changes. */
  invalidate(serialHex: string): void {
    this.#epoch++;
    const keys = this.#bySerial.get(serialHex);
    if (keys) {
      for (const k of keys) this.#cache.delete(k);
      this.#bySerial.delete(serialHex);
    }
    for (const [k, f] of this.#inFlight) if (f.serialHex === serialHex) this.#inFlight.delete(k);
  }

  /** How many responses are cached (for metrics and tests). */
  get cachedResponses(): number {
    return this.#cache.size;
  }

  /** A DER OCSPResponse for any input; never throws. */
  async respond(request: Uint8Array): Promise<Uint8Array> {
    return (await this.answer(request)).der;
  }

  /** Like `respond`, with the response's times and ETag for an HTTP layer; never throws. */
  async answer(request: Uint8Array): Promise<OcspAnswer> {
    let parsed: ParsedRequest;
    try {
      parsed = parseRequest(request);
    } catch {
      return errorAnswer('malformedRequest'); // ours, or the DER reader's InvalidRequest
    }
    try {
      if (this.#hashes === null || this.#state === null) await this.#ready;
      const h = parsed.hash ? this.#hashes![parsed.hash] : null;
      if (!h || !bytesEqual(h.name, parsed.issuerNameHash) || !bytesEqual(h.key, parsed.issuerKeyHash)) return errorAnswer('unauthorized');
      const uncacheable = parsed.nonce !== null || parsed.certId.length > MAX_CACHED_CERT_ID_BYTES;
      const key = uncacheable ? '' : cacheKey(parsed.certId);
      if (!uncacheable) {
        const hit = this.#cache.get(key);
        if (hit && this.#clock.now().getTime() < hit.staleAt) {
          // Approximate LRU: an entry moves to the back only once it has drifted into the older
          // half, so a hot entry (hit at least once per cacheSize/2 misses) is never evicted.
          if (this.#seq - hit.seq > this.#cacheSize >> 1) {
            this.#cache.delete(key);
            this.#cache.set(key, hit);
            hit.seq = ++this.#seq;
          }
          return hit.answer;
        }
        const pending = this.#inFlight.get(key);
        if (pending) return await pending.promise;
      }
      // A miss: the answer outlives this call, so it must not alias the caller's buffer.
      parsed = { ...parsed, certId: parsed.certId.slice(), nonce: parsed.nonce && parsed.nonce.slice() };
      if (uncacheable) return await this.#sign(parsed, await this.#status(parsed.serialHex), this.#state!);
      const flight = { serialHex: parsed.serialHex } as InFlight;
      flight.promise = this.#fill(key, parsed, flight);
      this.#inFlight.set(key, flight);
      return await flight.promise;
    } catch (e) {
      return errorAnswer(e instanceof Unavailable ? 'tryLater' : 'internalError');
    }
  }

  async #fill(key: string, parsed: ParsedRequest, flight: InFlight): Promise<OcspAnswer> {
    const epoch = this.#epoch;
    const state = this.#state!;
    try {
      const answer = await this.#sign(parsed, await this.#status(parsed.serialHex), state);
      if (this.#epoch === epoch && answer.status === 'successful') this.#store(key, parsed.serialHex, answer);
      return answer;
    } finally {
      if (this.#inFlight.get(key) === flight) this.#inFlight.delete(key);
    }
  }

  #store(key: string, serialHex: string | null, answer: OcspAnswer): void {
    const old = this.#cache.get(key);
    if (old) this.#cache.delete(key);
    while (this.#cache.size >= this.#cacheSize) {
      const [oldest, entry] = this.#cache.entries().next().value as [string, CacheEntry];
      this.#cache.delete(oldest);
      this.#unindex(entry.serialHex, oldest);
    }
    const tu = answer.thisUpdate!.getTime();
    this.#cache.set(key, { answer, serialHex, staleAt: tu + (answer.nextUpdate!.getTime() - tu) / 2, seq: ++this.#seq });
    if (serialHex !== null) {
      let keys = this.#bySerial.get(serialHex);
      if (!keys) this.#bySerial.set(serialHex, (keys = new Set()));
      keys.add(key);
    }
  }

  #unindex(serialHex: string | null, key: string): void {
    if (serialHex === null) return;
    const keys = this.#bySerial.get(serialHex);
    if (!keys) return;
    keys.delete(key);
    if (keys.size === 0) this.#bySerial.delete(serialHex);
  }

  async #status(serialHex: string | null): Promise<OcspCertStatus> {
    if (serialHex === null) return { status: 'unknown' };
    const s = await this.#lookup(serialHex);
    if (!s || (s.status !== 'good' && s.status !== 'revoked' && s.status !== 'unknown')) {
      throw new TypeError(`the status lookup answered ${JSON.stringify(s)} for serial ${serialHex}`); // answered as internalError
    }
    return s;
  }

  async #sign(parsed: ParsedRequest, status: OcspCertStatus, state: ResponderState): Promise<OcspAnswer> {
    const nowMs = Math.floor(this.#clock.now().getTime() / 1000) * 1000;
    const thisUpdate = new Date(nowMs);
    // A response never outlives the certificate that vouches for its signature.
    const nextUpdate = new Date(Math.max(nowMs, Math.min(nowMs + this.#validityMs, Math.floor(state.notAfter / 1000) * 1000)));
    const single = seq(parsed.certId, certStatusBytes(status), generalizedTime(thisUpdate), explicit(0, generalizedTime(nextUpdate)));
    const extensions = parsed.nonce ? explicit(1, seq(seq(oid(OCSP_OID.nonce), octetString(parsed.nonce)))) : new Uint8Array(0);
    const tbs = seq(state.responderId, generalizedTime(thisUpdate), seq(single), extensions);
    const signature = await state.signer.sign(tbs);
    const basic = seq(tbs, state.signatureAlgorithm, bitString(signature), state.certs);
    const der = seq(Uint8Array.of(TAG.ENUMERATED, 1, 0), explicit(0, seq(oid(OCSP_OID.basic), octetString(basic))));
    const etag = parsed.nonce ? undefined : toHex(await this.#digest('SHA-1', der));
    return Object.freeze({ der, status: 'successful', certStatus: status.status, producedAt: thisUpdate, thisUpdate, nextUpdate, nonce: parsed.nonce !== null, etag });
  }
}
