/**
 * A lean, strict DER codec for the hot paths (CSR check, certificate and CRL encoding).
 * The writer builds definite-length DER from parts; the reader accepts only DER (definite,
 * minimal lengths, low tag numbers) and never recurses on its own, so hostile nesting costs
 * nothing: callers walk exactly the structures they expect.
 */
import { InvalidRequest } from '../errors.ts';
import { concatBytes } from '../encoding.ts';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---------------------------------------------------------------- writer

function lengthBytes(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  if (n < 0x100) return Uint8Array.of(0x81, n);
  if (n < 0x10000) return Uint8Array.of(0x82, n >> 8, n & 0xff);
  if (n < 0x1000000) return Uint8Array.of(0x83, n >> 16, (n >> 8) & 0xff, n & 0xff);
  return Uint8Array.of(0x84, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

/** One TLV with the given tag around already-encoded content. */
export function tlv(tag: number, content: Uint8Array): Uint8Array {
  const len = lengthBytes(content.length);
  const out = new Uint8Array(1 + len.length + content.length);
  out[0] = tag;
  out.set(len, 1);
  out.set(content, 1 + len.length);
  return out;
}

/** The header (tag + length) of a TLV whose content is written separately (streaming encoders). */
export function header(tag: number, contentLength: number): Uint8Array {
  const len = lengthBytes(contentLength);
  const out = new Uint8Array(1 + len.length);
  out[0] = tag;
  out.set(len, 1);
  return out;
}

/** One TLV around the concatenation of `parts`, in one allocation and one copy of each part (a CRL's TBS can be tens of megabytes). */
function constructed(tag: number, parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (let i = 0; i < parts.length; i++) n += parts[i]!.length;
  const h = n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : n < 0x1000000 ? 5 : 6;
  const out = new Uint8Array(h + n);
  out[0] = tag;
  if (n < 0x80) out[1] = n;
  else {
    out[1] = 0x80 | (h - 2);
    for (let i = h - 1, v = n; i >= 2; i--, v = Math.floor(v / 256)) out[i] = v & 0xff;
  }
  let o = h;
  for (let i = 0; i < parts.length; i++) {
    out.set(parts[i]!, o);
    o += parts[i]!.length;
  }
  return out;
}

export const seq = (...parts: Uint8Array[]): Uint8Array => constructed(TAG.SEQUENCE, parts);
export const set = (...parts: Uint8Array[]): Uint8Array => constructed(TAG.SET, parts);
/** [n] EXPLICIT: constructed context tag around a full TLV. */
export const explicit = (n: number, inner: Uint8Array): Uint8Array => tlv(0xa0 | n, inner);
/** [n] IMPLICIT primitive context tag around content bytes. */
export const implicitPrimitive = (n: number, content: Uint8Array): Uint8Array => tlv(0x80 | n, content);
export const octetString = (b: Uint8Array): Uint8Array => tlv(TAG.OCTET_STRING, b);
export const derNull = (): Uint8Array => Uint8Array.of(TAG.NULL, 0);
export const boolean = (v: boolean): Uint8Array => Uint8Array.of(TAG.BOOLEAN, 1, v ? 0xff : 0);
const TEXT = new TextEncoder();
export const utf8 = (s: string): Uint8Array => tlv(TAG.UTF8_STRING, TEXT.encode(s));
export const ia5 = (s: string): Uint8Array => {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) throw new TypeError('IA5String must be ASCII');
  return tlv(TAG.IA5_STRING, TEXT.encode(s));
};

/** A BIT STRING with no unused bits (keys, signatures). */
export const bitString = (b: Uint8Array): Uint8Array => {
  const c = new Uint8Array(b.length + 1);
  c.set(b, 1);
  return tlv(TAG.BIT_STRING, c);
};

/** A positive INTEGER from big-endian magnitude bytes, in minimal two's-complement form. */
export function unsignedInteger(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  if (m.length === 0) return Uint8Array.of(TAG.INTEGER, 1, 0);
  if (m[0]! & 0x80) return tlv(TAG.INTEGER, concatBytes([Uint8Array.of(0), m]));
  return tlv(TAG.INTEGER, m);
}

export function smallInteger(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('smallInteger takes a non-negative safe integer');
  const bytes: number[] = [];
  let v = n;
  do {
    bytes.unshift(v % 256);
    v = Math.floor(v / 256);
  } while (v > 0);
  return unsignedInteger(Uint8Array.from(bytes));
}

const oidCache = new Map<string, Uint8Array>();

export function oid(dotted: string): Uint8Array {
  const hit = oidCache.get(dotted);
  if (hit) return hit;
  const arcs = dotted.split('.').map((a) => BigInt(a));
  if (arcs.length < 2) throw new TypeError(`bad OID ${dotted}`);
  const body: number[] = [];
  const push = (v: bigint) => {
    const stack = [Number(v & 0x7fn)];
    v >>= 7n;
    while (v > 0n) {
      stack.unshift(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    body.push(...stack);
  };
  push(arcs[0]! * 40n + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  const out = tlv(TAG.OID, Uint8Array.from(body));
  oidCache.set(dotted, out);
  return out;
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always whole seconds, Z. */
export function time(d: Date): Uint8Array {
  const y = d.getUTCFullYear();
  // Written byte by byte (two of these per certificate): the tag, the length, then the digits.
  const utc = y >= 1950 && y < 2050;
  const n = utc ? 13 : 15;
  const out = new Uint8Array(2 + n);
  out[0] = utc ? TAG.UTC_TIME : TAG.GENERALIZED_TIME;
  out[1] = n;
  let i = 2;
  if (!utc) i = put2(out, i, (y / 100) | 0);
  i = put2(out, i, y % 100);
  i = put2(out, i, d.getUTCMonth() + 1);
  i = put2(out, i, d.getUTCDate());
  i = put2(out, i, d.getUTCHours());
  i = put2(out, i, d.getUTCMinutes());
  i = put2(out, i, d.getUTCSeconds());
  out[i] = 0x5a; // 'Z'
  return out;
}

// Module-level, not closures: under tsx (how agentca runs) every named inner function is
// renamed with Object.defineProperty each time it is created, which perf showed on hot paths.
function put2(out: Uint8Array, i: number, v: number): number {
  out[i] = 0x30 + ((v / 10) | 0);
  out[i + 1] = 0x30 + (v % 10);
  return i + 2;
}

export function algorithmIdentifier(algOid: string, params: 'null' | 'absent' | Uint8Array): Uint8Array {
  if (params === 'absent') return seq(oid(algOid));
  return seq(oid(algOid), params === 'null' ? derNull() : params);
}

// ---------------------------------------------------------------- reader

/** One element as found in a buffer: the tag byte and where its content lies. */
export interface DerElement {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset one past the last content byte. */
  end: number;
}

function bad(what: string): never {
  throw new InvalidRequest('ERR_DER_MALFORMED', `malformed DER: ${what}`);
}

/** Reads the element at `offset`, which must end at or before `limit`. */
export function readElement(buf: Uint8Array, offset: number, limit: number = buf.length): DerElement {
  if (offset + 2 > limit) bad('truncated element');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) bad('high tag numbers are not supported');
  let p = offset + 1;
  const first = buf[p++]!;
  let len: number;
  if (first < 0x80) {
    len = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) bad('indefinite length is not DER');
    if (n > 4) bad('length too large');
    if (p + n > limit) bad('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++]!;
    if (buf[offset + 2] === 0 || len < 0x80 || (n > 1 && len < 1 << (8 * (n - 1)))) bad('non-minimal length');
  }
  if (p + len > limit) bad('truncated content');
  return { tag, start: offset, contentStart: p, end: p + len };
}

/** The children of a constructed element, in order. */
export function children(buf: Uint8Array, parent: DerElement): DerElement[] {
  if ((parent.tag & 0x20) === 0) bad('expected a constructed element');
  const out: DerElement[] = [];
  let p = parent.contentStart;
  while (p < parent.end) {
    const el = readElement(buf, p, parent.end);
    out.push(el);
    p = el.end;
  }
  return out;
}

/** Reads a whole buffer as exactly one element with no trailing bytes. */
export function readTop(buf: Uint8Array, expectTag: number): DerElement {
  const el = readElement(buf, 0);
  if (el.tag !== expectTag) bad(`expected tag 0x${expectTag.toString(16)}, found 0x${el.tag.toString(16)}`);
  if (el.end !== buf.length) bad('trailing bytes after the top-level element');
  return el;
}

export function expectTag(el: DerElement | undefined, tag: number, what: string): DerElement {
  if (!el) bad(`${what} is missing`);
  if (el.tag !== tag) bad(`${what}: expected tag 0x${tag.toString(16)}, found 0x${el.tag.toString(16)}`);
  return el;
}

export const content = (buf: Uint8Array, el: DerElement): Uint8Array => buf.subarray(el.contentStart, el.end);
export const whole = (buf: Uint8Array, el: DerElement): Uint8Array => buf.subarray(el.start, el.end);

export function readOid(buf: Uint8Array, el: DerElement): string {
  if (el.tag !== TAG.OID) bad('expected an OBJECT IDENTIFIER');
  const start = el.contentStart;
  const len = el.end - start;
  if (len === 0 || len > 64) bad('bad OBJECT IDENTIFIER length');
  // Certificates and CSRs repeat a few dozen OIDs: decoded ones are remembered (bounded, so
  // a peer sending endless new OIDs only ever pays for decoding them), keyed by a hash of the
  // bytes and confirmed byte for byte (no string is built to look one up).
  let h = len;
  for (let i = start; i < el.end; i++) h = (Math.imul(h, 31) + buf[i]!) | 0;
  for (let e = OID_CACHE.get(h); e !== undefined; e = e.next) {
    if (e.bytes.length === len && sameBytes(e.bytes, buf, start)) return e.text;
  }
  const c = buf.slice(start, el.end);
  const text = decodeOid(c);
  if (oidCacheSize < OID_CACHE_MAX) {
    OID_CACHE.set(h, { bytes: c, text, next: OID_CACHE.get(h) });
    oidCacheSize++;
  }
  return text;
}

interface OidEntry {
  bytes: Uint8Array;
  text: string;
  next: OidEntry | undefined;
}
const OID_CACHE = new Map<number, OidEntry>();
const OID_CACHE_MAX = 512;
let oidCacheSize = 0;

function sameBytes(a: Uint8Array, buf: Uint8Array, at: number): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== buf[at + i]) return false;
  return true;
}

function decodeOid(c: Uint8Array): string {
  const arcs: bigint[] = [];
  let v = 0n;
  let fresh = true;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (fresh && b === 0x80) bad('non-minimal OID arc');
    v = (v << 7n) | BigInt(b & 0x7f);
    fresh = false;
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
      fresh = true;
    }
  }
  if (!fresh) bad('truncated OID arc');
  const first = arcs.shift()!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs].join('.');
}

/** A non-negative INTEGER's magnitude (no sign pad); negative or non-minimal → error. */
export function readUnsignedInteger(buf: Uint8Array, el: DerElement): Uint8Array {
  if (el.tag !== TAG.INTEGER) bad('expected an INTEGER');
  const c = content(buf, el);
  if (c.length === 0) bad('empty INTEGER');
  if (c[0]! & 0x80) bad('negative INTEGER');
  if (c.length > 1 && c[0] === 0 && (c[1]! & 0x80) === 0) bad('non-minimal INTEGER');
  return c[0] === 0 && c.length > 1 ? c.subarray(1) : c;
}

export function readSmallInteger(buf: Uint8Array, el: DerElement): number {
  const m = readUnsignedInteger(buf, el);
  if (m.length > 6) bad('INTEGER out of range');
  let n = 0;
  for (const b of m) n = n * 256 + b;
  return n;
}

/** A BIT STRING's bytes; only whole bytes (no unused bits) unless `allowUnused`. */
export function readBitString(buf: Uint8Array, el: DerElement, allowUnused = false): { bytes: Uint8Array; unused: number } {
  if (el.tag !== TAG.BIT_STRING) bad('expected a BIT STRING');
  const c = content(buf, el);
  if (c.length === 0) bad('empty BIT STRING');
  const unused = c[0]!;
  if (unused > 7 || (unused > 0 && (c.length === 1 || !allowUnused))) bad('bad BIT STRING padding');
  if (unused > 0 && (c[c.length - 1]! & ((1 << unused) - 1)) !== 0) bad('non-zero BIT STRING padding');
  return { bytes: c.subarray(1), unused };
}

export function readBoolean(buf: Uint8Array, el: DerElement): boolean {
  if (el.tag !== TAG.BOOLEAN || el.end - el.contentStart !== 1) bad('expected a BOOLEAN');
  const v = buf[el.contentStart];
  if (v !== 0 && v !== 0xff) bad('BOOLEAN must be 00 or ff in DER');
  return v === 0xff;
}

export function readString(buf: Uint8Array, el: DerElement): string {
  const c = content(buf, el);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(c);
  } catch {
    bad('invalid UTF-8 in a string');
  }
}

/** UTCTime or GeneralizedTime in the RFC 5280 DER forms (seconds, Z). */
export function readTime(buf: Uint8Array, el: DerElement): Date {
  // YYMMDDHHMMSSZ (UTCTime) or YYYYMMDDHHMMSSZ (GeneralizedTime), read from the bytes: digits
  // only, 'Z' last, nothing else (RFC 5280 §4.1.2.5).
  const len = el.end - el.contentStart;
  const utc = el.tag === TAG.UTC_TIME;
  if (!((utc && len === 13) || (el.tag === TAG.GENERALIZED_TIME && len === 15)) || buf[el.end - 1] !== 0x5a) bad('bad time');
  let i = el.contentStart;
  let y = read2(buf, i);
  i += 2;
  if (utc) y += y < 50 ? 2000 : 1900;
  else {
    y = y * 100 + read2(buf, i);
    i += 2;
  }
  const mo = read2(buf, i);
  const d = read2(buf, i + 2);
  const h = read2(buf, i + 4);
  const mi = read2(buf, i + 6);
  const se = read2(buf, i + 8);
  // Not Date.UTC alone: it maps years 0-99 to 1900-1999, and a GeneralizedTime year is literal.
  const back = new Date(Date.UTC(y, mo - 1, d, h, mi, se));
  if (y < 100) back.setUTCFullYear(y, mo - 1, d);
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) bad('time out of range');
  return back;
}

/** Two ASCII digits at `i` as a number. */
function read2(buf: Uint8Array, i: number): number {
  const a = buf[i]! - 0x30;
  const b = buf[i + 1]! - 0x30;
  if (a < 0 || a > 9 || b < 0 || b > 9) bad('bad time');
  return a * 10 + b;
}
