/**
 * Certificate revocation lists (RFC 5280 §5) on the lean DER path. A CRL lists every revoked,
 * unexpired certificate of one CA, so it has to stay cheap at a million entries: lengths are
 * computed in a first pass and the whole TBSCertList is written into one buffer in a second,
 * with no per-entry allocation.
 */
import { InternalError, InvalidRequest } from '../errors.ts';
import type { Signer } from '../ports/signer.ts';
import { signatureSchemeFor, type SignatureScheme } from '../x509/algorithms.ts';
import { signTbs, signatureAlgorithm } from '../x509/certificate.ts';
import { TAG, explicit, header, readTop, seq, time, tlv, unsignedInteger } from '../x509/der.ts';
import { authorityKeyIdentifier, extension } from '../x509/extensions.ts';
import { REVOCATION_REASONS, type RevocationReason } from './reasons.ts';

/** Extension OIDs that only appear in CRLs (RFC 5280 §5.2, §5.3). */
export const CRL_EXT = {
  cRLNumber: '2.5.29.20',
  reasonCode: '2.5.29.21',
} as const;

export interface CrlEntry {
  /** Serial as stored: lower-case hex, whole bytes, no leading zero byte. */
  serial: string;
  revokedAt: Date;
  reason: RevocationReason;
}

export interface CrlInput {
  /** The issuer Name, DER: the CA certificate's subject, byte for byte. */
  issuerName: Uint8Array;
  /** The CA's subject key identifier, written as the CRL's authorityKeyIdentifier. */
  issuerKeyId: Uint8Array;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Strictly increasing per issuer (RFC 5280 §5.2.3); at most 20 octets. */
  crlNumber: bigint;
  /** Written in the order given (the revocation store hands them out in serial order). */
  entries: readonly CrlEntry[];
}

const V2 = Uint8Array.of(TAG.INTEGER, 1, 1);
const MAX_CRL_NUMBER = 1n << 159n;
/** 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z: the years a four-digit GeneralizedTime can carry. */
const MIN_TIME_MS = -62_167_219_200_000;
const END_TIME_MS = 253_402_300_800_000;
/** RFC 5280 §5.1.2.4 / §4.1.2.5: UTCTime for 1950 through 2049, GeneralizedTime outside. */
const UTC_FROM_S = -631_152_000;
const UTC_UNTIL_S = 2_524_608_000;

/**
 * `crlEntryExtensions` holding only reasonCode, per reason; null for `unspecified`, which RFC
 * 5280 §5.3.1 asks to leave out (and an empty Extensions SEQUENCE is not allowed at all).
 */
const REASON_EXTENSIONS = new Map<string, Uint8Array | null>(
  (Object.entries(REVOCATION_REASONS) as [RevocationReason, number][]).map(([name, code]) => [
    name,
    code === 0 ? null : seq(extension(CRL_EXT.reasonCode, false, tlv(TAG.ENUMERATED, Uint8Array.of(code)))),
  ]),
);

/** Hex digit values for lower-case ASCII; 0xff for anything else (stored serials are lower case). */
const HEX_VALUE = new Uint8Array(128).fill(0xff);
for (let i = 0; i < 10; i++) HEX_VALUE[0x30 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[0x61 + i] = 10 + i;

function badInput(message: string): never {
  throw new InvalidRequest('ERR_CRL_INPUT_INVALID', message);
}

function badSerial(): never {
  throw new InvalidRequest('ERR_SERIAL_INVALID', 'a serial must be 1 to 20 bytes of lower-case hex without a leading zero byte');
}

function checkTime(d: Date, what: string): number {
  const ms = d instanceof Date ? d.getTime() : NaN;
  if (!(ms >= MIN_TIME_MS && ms < END_TIME_MS)) badInput(`${what} must be a valid date in the years 0000 to 9999`);
  return ms;
}

/** The INTEGER content length of a stored serial (its bytes plus a sign pad); checks the spelling up to the first byte. */
function serialContentLength(serial: string): number {
  if (typeof serial !== 'string') badSerial();
  const n = serial.length;
  if (n < 2 || n > 40 || (n & 1) !== 0) badSerial();
  const c = serial.charCodeAt(0);
  const hi = c < 128 ? HEX_VALUE[c]! : 0xff;
  if (hi > 15 || (hi === 0 && serial.charCodeAt(1) === 0x30)) badSerial();
  return (n >> 1) + (hi >= 8 ? 1 : 0);
}

function reasonExtension(reason: string): Uint8Array | null {
  const ext = REASON_EXTENSIONS.get(reason);
  if (ext === undefined) badInput(`unknown revocation reason ${JSON.stringify(reason)}`);
  return ext;
}

function twoDigits(b: Uint8Array, p: number, v: number): number {
  b[p] = 0x30 + ((v / 10) | 0);
  b[p + 1] = 0x30 + (v % 10);
  return p + 2;
}

/**
 * Writes the Time TLV of whole second `s` (RFC 5280 §4.1.2.5: UTCTime 1950-2049, else
 * GeneralizedTime; always seconds and Z) at `b[at]`, with integer calendar arithmetic (days to
 * civil date after H. Hinnant) instead of Date getters and strings: on a CRL this runs per entry.
 */
function writeTime(b: Uint8Array, at: number, s: number): number {
  const days = Math.floor(s / 86400);
  const sec = s - days * 86400;
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  let p = at;
  if (year >= 1950 && year < 2050) {
    b[p++] = TAG.UTC_TIME;
    b[p++] = 13;
  } else {
    b[p++] = TAG.GENERALIZED_TIME;
    b[p++] = 15;
    p = twoDigits(b, p, (year / 100) | 0);
  }
  p = twoDigits(b, p, year % 100);
  p = twoDigits(b, p, month);
  p = twoDigits(b, p, day);
  p = twoDigits(b, p, (sec / 3600) | 0);
  p = twoDigits(b, p, ((sec % 3600) / 60) | 0);
  p = twoDigits(b, p, sec % 60);
  b[p++] = 0x5a; // Z
  return p;
}

/**
 * A direct-mapped cache of encoded revocation times, one slot per second modulo its size:
 * revocations come in bursts (a task or an instance revoked at once), so most entries hit.
 */
class TimeCache {
  static readonly SLOTS = 4096;
  static readonly SLOT_BYTES = 17;
  readonly #keys = new Float64Array(TimeCache.SLOTS).fill(NaN);
  readonly #bytes = new Uint8Array(TimeCache.SLOTS * TimeCache.SLOT_BYTES);

  /** Copies the Time TLV of whole second `s` to `out[p]` and returns the offset after it. */
  write(out: Uint8Array, p: number, s: number): number {
    const slot = ((s % TimeCache.SLOTS) + TimeCache.SLOTS) % TimeCache.SLOTS;
    const at = slot * TimeCache.SLOT_BYTES;
    const b = this.#bytes;
    if (this.#keys[slot] !== s) {
      writeTime(b, at, s);
      this.#keys[slot] = s;
    }
    const n = b[at + 1]! + 2;
    for (let i = 0; i < n; i++) out[p + i] = b[at + i]!;
    return p + n;
  }
}

/** A non-negative bigint's big-endian bytes (at least one). */
function bigintBytes(n: bigint): Uint8Array {
  const bytes: number[] = [];
  let v = n;
  do {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  } while (v > 0n);
  return Uint8Array.from(bytes);
}

/**
 * The DER `TBSCertList` of a v2 CRL (RFC 5280 §5.1.2): `revokedCertificates` is absent when
 * there are no entries; an entry carries `crlEntryExtensions` (reasonCode alone) unless its
 * reason is `unspecified`; `crlExtensions` are authorityKeyIdentifier and cRLNumber, both
 * non-critical. Linear in the number of entries, and one allocation for the whole list.
 *
 * @throws InvalidRequest `ERR_SERIAL_INVALID` for a serial not in stored form,
 *   `ERR_CRL_INPUT_INVALID` for a bad date, reason, CRL number, issuer name or key identifier;
 *   InternalError `ERR_CRL_LENGTH_MISMATCH` if the two passes ever disagree (an encoder bug).
 * @example
 * const tbs = encodeTbsCertList({ issuerName, issuerKeyId, thisUpdate, nextUpdate, crlNumber: 7n,
 *   entries: [{ serial: '4a0f…', revokedAt, reason: 'keyCompromise' }] }, signatureSchemeFor('ec-p256'));
 */
export function encodeTbsCertList(input: CrlInput, scheme: SignatureScheme): Uint8Array {
  const thisMs = checkTime(input.thisUpdate, 'thisUpdate');
  const nextMs = checkTime(input.nextUpdate, 'nextUpdate');
  if (Math.floor(nextMs / 1000) <= Math.floor(thisMs / 1000)) badInput('nextUpdate must be at least one second after thisUpdate');
  if (typeof input.crlNumber !== 'bigint' || input.crlNumber < 0n || input.crlNumber >= MAX_CRL_NUMBER)
    badInput('the CRL number must be a non-negative integer of at most 20 octets');
  if (!(input.issuerKeyId instanceof Uint8Array) || input.issuerKeyId.length === 0) badInput('the issuer key identifier is empty');
  try {
    readTop(input.issuerName, TAG.SEQUENCE);
  } catch {
    badInput('the issuer name is not a DER Name');
  }

  const head = [V2, signatureAlgorithm(scheme), input.issuerName, time(input.thisUpdate), time(input.nextUpdate)];
  const extensions = explicit(
    0,
    seq(
      authorityKeyIdentifier(input.issuerKeyId),
      extension(CRL_EXT.cRLNumber, false, unsignedInteger(bigintBytes(input.crlNumber))),
    ),
  );

  // Pass 1: check every entry and add up the lengths. Entry content is at most 2+21 + 2+15 + 14
  // bytes, so each entry's SEQUENCE header is two bytes.
  const entries = input.entries;
  let listLength = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const serialLength = serialContentLength(e.serial);
    const s = Math.floor(checkTime(e.revokedAt, 'a revocation date') / 1000);
    const ext = reasonExtension(e.reason);
    listLength += 4 + serialLength + (s >= UTC_FROM_S && s < UTC_UNTIL_S ? 15 : 17) + (ext ? ext.length : 0);
  }
  const listHeader = entries.length > 0 ? header(TAG.SEQUENCE, listLength) : new Uint8Array(0);

  let bodyLength = listHeader.length + listLength + extensions.length;
  for (const h of head) bodyLength += h.length;
  const tbsHeader = header(TAG.SEQUENCE, bodyLength);
  const out = new Uint8Array(tbsHeader.length + bodyLength);
  let p = 0;
  for (const part of [tbsHeader, ...head, listHeader]) {
    out.set(part, p);
    p += part.length;
  }

  // Pass 2: write the entries.
  const times = new TimeCache();
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const serial = e.serial;
    const hexLength = serial.length;
    const pad = HEX_VALUE[serial.charCodeAt(0)]! >= 8 ? 1 : 0;
    const serialLength = (hexLength >> 1) + pad;
    const s = Math.floor(e.revokedAt.getTime() / 1000);
    const ext = REASON_EXTENSIONS.get(e.reason)!;
    out[p] = TAG.SEQUENCE;
    out[p + 1] = 2 + serialLength + (s >= UTC_FROM_S && s < UTC_UNTIL_S ? 15 : 17) + (ext ? ext.length : 0);
    out[p + 2] = TAG.INTEGER;
    out[p + 3] = serialLength;
    p += 4;
    if (pad) out[p++] = 0;
    for (let j = 0; j < hexLength; j += 2) {
      const c1 = serial.charCodeAt(j);
      const c2 = serial.charCodeAt(j + 1);
      const hi = c1 < 128 ? HEX_VALUE[c1]! : 0xff;
      const lo = c2 < 128 ? HEX_VALUE[c2]! : 0xff;
      if ((hi | lo) > 15) badSerial();
      out[p++] = (hi << 4) | lo;
    }
    p = times.write(out, p, s);
    if (ext) {
      for (let j = 0; j < ext.length; j++) out[p + j] = ext[j]!;
      p += ext.length;
    }
  }

  out.set(extensions, p);
  p += extensions.length;
  // Typed arrays drop writes past their end silently: a miscount must not pass as a short CRL.
  if (p !== out.length) throw new InternalError('ERR_CRL_LENGTH_MISMATCH', `the CRL encoder wrote ${p} bytes of ${out.length}`);
  return out;
}

/**
 * A signed v2 CRL, DER: {@link encodeTbsCertList} signed by `signer` with the scheme of its
 * key (the issuing CA's key; the CRL's `signature` field names the same algorithm).
 *
 * @example
 * const der = await buildCrl({ issuerName: parseCertificate(caCert).subject, issuerKeyId: await keyIdentifier(signer.publicKey),
 *   thisUpdate: now, nextUpdate: new Date(now.getTime() + 86_400_000), crlNumber: 8n, entries }, signer);
 */
export async function buildCrl(input: CrlInput, signer: Signer): Promise<Uint8Array> {
  return signTbs(encodeTbsCertList(input, signatureSchemeFor(signer.algorithm)), signer);
}
