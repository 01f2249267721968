import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { boundedFetch } from './bounded-fetch.ts';
import type { TLSSocket } from 'node:tls';
import { children, expectTag as expectDer, isTime, readTime as readDerTime, readTlv, whole, type DerNode } from './der.ts';
import { subjectDer, verifySignature } from './signature.ts';

/** Options of a {@link CrlChecker}. */
export interface CrlCheckerOptions {
  /** Where the issuing CA's CRL is served, DER (`agentca serve`: `http://127.0.0.1:8080/crl`). */
  url: string;
  /** The issuing CA's certificate (the intermediate), PEM: every CRL must be signed by its key. */
  issuerCertificatePem: string;
  /** How often to fetch the CRL. Default 1000 ms. A nextUpdate that comes sooner is honoured. */
  refreshMs?: number;
  /** Timeout of each fetch. Default 3000 ms. */
  timeoutMs?: number;
  /** The clock, ms since the epoch (tests). Default `Date.now`. */
  now?: () => number;
}

/** What the checker holds: the last CRL that verified. */
export interface CrlInfo {
  thisUpdate: Date;
  /** `null` when the CRL has none (then it never goes stale). */
  nextUpdate: Date | null;
  /** The cRLNumber extension, when present. */
  crlNumber: bigint | null;
  /** Serials of the revoked certificates, normalised (see {@link normalizeSerial}). */
  revoked: ReadonlySet<string>;
}

/** Events of a {@link CrlChecker}. */
export interface CrlCheckerEvents {
  /** A newer CRL verified and is now the one in use. */
  updated: [CrlInfo];
  /** A fetch failed, or a CRL was refused (bad signature, malformed, older than the one held); the last good CRL stays in use. */
  error: [Error];
}

/** Revocation status of a serial: `unknown` when there is no CRL or the last good one is past its nextUpdate. */
export type RevocationStatus = 'good' | 'revoked' | 'unknown';

/** Lowercase hex without leading zeros (`"0"` for zero): the form both a CRL entry and `getPeerCertificate().serialNumber` are compared in. */
export function normalizeSerial(hex: string): string {
  const h = hex.replace(/[:\s]/g, '').toLowerCase().replace(/^0+/, '');
  return h === '' ? '0' : h;
}

const OID_CRL_NUMBER = '551d14'; // 2.5.29.20

/** A CertificateList (RFC 5280 §5.1) as read, before its signature is checked. */
export interface ParsedCrl extends CrlInfo {
  /** The DER of tbsCertList, as signed. */
  tbs: Buffer;
  /** The signature algorithm OID's content, hex. */
  signatureAlgorithm: string;
  signature: Buffer;
  /** The DER of the issuer Name. */
  issuer: Buffer;
}

function expectTag<T extends DerNode>(node: T | undefined, tag: number, what: string): T {
  return expectDer(node, tag, `crl: expected ${what}`);
}

/** UTCTime or GeneralizedTime, as RFC 5280 restricts them. */
export function readTime(buf: Buffer, node: DerNode): Date {
  return readDerTime(buf, node, 'crl');
}

/** Reads a DER CRL: tbsCertList fields, the signature algorithm and value. Throws on anything malformed. */
export function parseCrl(der: Uint8Array): ParsedCrl {
  const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  const top = expectTag(readTlv(buf, 0), 0x30, 'CertificateList');
  if (top.end !== buf.length) throw new Error('crl: trailing data');
  const [tbsNode, algNode, sigNode, ...rest] = children(buf, top);
  if (rest.length) throw new Error('crl: extra fields');
  expectTag(tbsNode, 0x30, 'tbsCertList');
  expectTag(algNode, 0x30, 'signatureAlgorithm');
  expectTag(sigNode, 0x03, 'signatureValue');
  const outerOid = expectTag(children(buf, algNode!)[0], 0x06, 'algorithm OID');
  const signatureAlgorithm = buf.subarray(outerOid.start, outerOid.end).toString('hex');
  if (buf[sigNode!.start] !== 0) throw new Error('crl: signature has unused bits');
  const signature = Buffer.from(buf.subarray(sigNode!.start + 1, sigNode!.end));

  const f = children(buf, tbsNode!);
  let i = 0;
  if (f[i]?.tag === 0x02) i++; // version v2
  const innerAlg = expectTag(f[i++], 0x30, 'tbs signature');
  const innerOid = expectTag(children(buf, innerAlg)[0], 0x06, 'tbs algorithm OID');
  if (!whole(buf, innerAlg).equals(whole(buf, algNode!)) || buf.subarray(innerOid.start, innerOid.end).toString('hex') !== signatureAlgorithm)
    throw new Error('crl: signature algorithms differ');
  const issuer = Buffer.from(whole(buf, expectTag(f[i++], 0x30, 'issuer')));
  if (!isTime(f[i])) throw new Error('crl: expected thisUpdate');
  const thisUpdate = readTime(buf, f[i++]!);
  let nextUpdate: Date | null = null;
  if (isTime(f[i])) nextUpdate = readTime(buf, f[i++]!);
  const revoked = new Set<string>();
  if (f[i]?.tag === 0x30) {
    for (const entry of children(buf, f[i++]!)) {
      const [serial, date] = children(buf, expectTag(entry, 0x30, 'revoked entry'));
      expectTag(serial, 0x02, 'userCertificate');
      if (!isTime(date)) throw new Error('crl: expected revocationDate');
      revoked.add(normalizeSerial(buf.subarray(serial!.start, serial!.end).toString('hex')));
    }
  }
  let crlNumber: bigint | null = null;
  if (f[i]?.tag === 0xa0) {
    const exts = expectTag(children(buf, f[i++]!)[0], 0x30, 'crlExtensions');
    for (const ext of children(buf, exts)) {
      const parts = children(buf, expectTag(ext, 0x30, 'extension'));
      const oid = expectTag(parts[0], 0x06, 'extension OID');
      if (buf.subarray(oid.start, oid.end).toString('hex') !== OID_CRL_NUMBER) continue;
      const value = expectTag(parts[parts.length - 1], 0x04, 'extension value');
      const int = expectTag(readTlv(buf, value.start), 0x02, 'cRLNumber');
      crlNumber = BigInt('0x' + (buf.subarray(int.start, int.end).toString('hex') || '0'));
    }
  }
  if (i !== f.length) throw new Error('crl: unexpected field in tbsCertList');
  return { tbs: Buffer.from(whole(buf, tbsNode!)), signatureAlgorithm, signature, issuer, thisUpdate, nextUpdate, crlNumber, revoked };
}

/** Throws unless `crl` is signed by `issuer`'s key with the algorithm it names, and names `issuer` as its issuer. */
export function verifyCrlSignature(crl: ParsedCrl, issuer: X509Certificate): void {
  if (!crl.issuer.equals(subjectDer(issuer))) throw new Error('crl: issued by another CA');
  verifySignature('crl', crl.signatureAlgorithm, crl.tbs, crl.signature, issuer.publicKey);
}

/**
 * Revocation checking for services that authorise agents by SPIFFE ID: fetches the issuing
 * CA's CRL (from `agentca serve`'s `/crl`) every `refreshMs`, accepts only CRLs signed by
 * `issuerCertificatePem`, and answers per serial. It fails closed: before the first good CRL,
 * and once the last good one is past its nextUpdate, every serial is `unknown`.
 *
 * A fetch that fails or a CRL that is refused keeps the last good CRL and is reported with an
 * `error` event. Unlike a plain EventEmitter, the checker does not throw when nothing listens
 * for `error`: a service must not crash because the CA is unreachable.
 *
 * @example
 * ```ts
 * const checker = new CrlChecker({ url: 'http://ca.internal:8080/crl', issuerCertificatePem: intermediatePem });
 * checker.on('error', (e) => log.warn(e.message)).start();
 * https.createServer(identity.serverOptions(), (req, res) =>
 *   res.writeHead(authorizePeerWithRevocation(req.socket as tls.TLSSocket, ['spiffe://example.org/agent/caller'], checker) ? 200 : 403).end());
 * ```
 */
export class CrlChecker extends EventEmitter<CrlCheckerEvents> {
  readonly url: string;
  readonly refreshMs: number;
  readonly timeoutMs: number;
  readonly issuer: X509Certificate;
  #now: () => number;
  #crl: CrlInfo | null = null;
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #inflight: Promise<boolean> | null = null;

  constructor(options: CrlCheckerOptions) {
    super();
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('CrlChecker: url must be http: or https:');
    this.url = options.url;
    this.refreshMs = options.refreshMs ?? 1000;
    this.timeoutMs = options.timeoutMs ?? 3000;
    if (!(this.refreshMs > 0) || !(this.timeoutMs > 0)) throw new RangeError('CrlChecker: refreshMs and timeoutMs must be positive');
    this.issuer = new X509Certificate(options.issuerCertificatePem);
    this.#now = options.now ?? Date.now;
  }

  /** The CRL in use, or `null` before the first good one. */
  get crl(): CrlInfo | null {
    return this.#crl;
  }

  /** Fetches now, then every `refreshMs` (sooner when the CRL's nextUpdate comes first). Idempotent. */
  start(): this {
    if (this.#running) return this;
    this.#running = true;
    void this.#tick();
    return this;
  }

  /** Stops fetching; the CRL held keeps answering until it goes stale. */
  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Fetches the CRL once; resolves to whether a new CRL was accepted. Never rejects. */
  refresh(): Promise<boolean> {
    this.#inflight ??= this.#fetch()
      .then((der) => this.load(der))
      .catch((e: unknown) => {
        this.#report(e);
        return false;
      })
      .finally(() => (this.#inflight = null));
    return this.#inflight;
  }

  /**
   * Verifies a DER CRL and, when it is good and not older than the one held, uses it. Returns
   * whether it was accepted; a refusal is reported with an `error` event.
   */
  load(der: Uint8Array): boolean {
    try {
      const parsed = parseCrl(der);
      verifyCrlSignature(parsed, this.issuer);
      const held = this.#crl;
      if (held) {
        if (held.crlNumber !== null && parsed.crlNumber !== null) {
          if (parsed.crlNumber < held.crlNumber) throw new Error(`crl: number ${parsed.crlNumber} is older than the ${held.crlNumber} held`);
          if (parsed.crlNumber === held.crlNumber) return false;
        } else if (parsed.thisUpdate < held.thisUpdate) {
          throw new Error('crl: older than the one held');
        }
      }
      const info: CrlInfo = { thisUpdate: parsed.thisUpdate, nextUpdate: parsed.nextUpdate, crlNumber: parsed.crlNumber, revoked: parsed.revoked };
      this.#crl = info;
      this.emit('updated', info);
      return true;
    } catch (e) {
      this.#report(e);
      return false;
    }
  }

  /** `revoked` when the serial is on the current CRL, `good` when not, `unknown` when there is no current CRL. */
  status(serialHex: string): RevocationStatus {
    const crl = this.#crl;
    if (!crl) return 'unknown';
    if (crl.nextUpdate && this.#now() > crl.nextUpdate.getTime()) return 'unknown';
    return crl.revoked.has(normalizeSerial(serialHex)) ? 'revoked' : 'good';
  }

  /**
   * True when the socket has a peer certificate, issued by this checker's CA, whose serial is
   * `good`. It does not check the chain or the SPIFFE ID: see {@link authorizePeerWithRevocation}.
   */
  isAllowed(socket: TLSSocket): boolean {
    const cert = socket.getPeerCertificate?.();
    if (!cert || !cert.serialNumber || !cert.raw) return false;
    try {
      if (!new X509Certificate(cert.raw).checkIssued(this.issuer)) return false;
    } catch {
      return false;
    }
    return this.status(cert.serialNumber) === 'good';
  }

  async #tick(): Promise<void> {
    await this.refresh();
    if (!this.#running) return;
    let delay = this.refreshMs;
    const next = this.#crl?.nextUpdate?.getTime();
    if (next !== undefined) {
      const untilNext = next - this.#now();
      if (untilNext > 0 && untilNext < delay) delay = untilNext;
    }
    this.#timer = setTimeout(() => void this.#tick(), delay);
    this.#timer.unref();
  }

  #fetch(): Promise<Buffer> {
    return boundedFetch(this.url, {
      method: 'GET',
      headers: { accept: 'application/pkix-crl' },
      timeoutMs: this.timeoutMs,
      maxBytes: 64 * 1024 * 1024,
      what: 'crl',
      tooLarge: 'too large',
    });
  }

  #report(e: unknown): void {
    const error = e instanceof Error ? e : new Error(String(e));
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}
