/** Just enough DER (X.690) to write a PKCS#10 or OCSP request and to read a CRL or an OCSP response. */

export function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

export const seq = (...content: Uint8Array[]): Buffer => tlv(0x30, ...content);

export interface DerNode {
  tag: number;
  /** Offset of the content in the input. */
  start: number;
  end: number;
}

/** A TLV with the offset of its tag byte, so its whole encoding (as signed) can be cut out. */
export interface Tlv extends DerNode {
  at: number;
}

/** Reads the TLV at `offset`; throws on anything truncated or indefinite-length. */
export function readTlv(buf: Uint8Array, offset: number): Tlv {
  if (offset + 2 > buf.length) throw new RangeError('der: truncated');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new RangeError('der: multi-byte tags are not supported');
  let len = buf[offset + 1]!;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > buf.length) throw new RangeError('der: bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > buf.length) throw new RangeError('der: truncated');
  return { tag, at: offset, start: p, end: p + len };
}

/** The TLVs directly inside `node`, each with its header offset. */
export function children(buf: Uint8Array, node: DerNode): Tlv[] {
  const out: Tlv[] = [];
  for (let p = node.start; p < node.end; ) {
    const c = readTlv(buf, p);
    if (c.end > node.end) throw new RangeError('der: child overruns its parent');
    out.push(c);
    p = c.end;
  }
  return out;
}

/** The whole encoding (tag, length, content) of `node`. */
export function whole(buf: Buffer, node: Tlv): Buffer {
  return buf.subarray(node.at, node.end);
}

/** The content of `node`. */
export function content(buf: Buffer, node: DerNode): Buffer {
  return buf.subarray(node.start, node.end);
}

/** `node` when it has tag `tag`; throws `message` otherwise. */
export function expectTag<T extends DerNode>(node: T | undefined, tag: number, message: string): T {
  if (!node || node.tag !== tag) throw new Error(message);
  return node;
}

/** The one top-level SEQUENCE of `buf`, with nothing after it. */
export function readTopSequence(buf: Buffer, what: string): Tlv {
  if (buf[0] !== 0x30) throw new Error(`${what}: not a DER SEQUENCE`);
  const top = readTlv(buf, 0);
  if (top.end !== buf.length) throw new Error(`${what}: trailing data`);
  return top;
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as RFC 5280 restricts them. */
export function readTime(buf: Buffer, node: DerNode, what = 'der'): Date {
  const s = buf.subarray(node.start, node.end).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (node.tag === 0x17 && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (node.tag === 0x18 && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    year = Number(m[1]);
  } else {
    throw new Error(`${what}: bad time`);
  }
  const d = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (Number.isNaN(d)) throw new Error(`${what}: bad time`);
  return new Date(d);
}

export const isTime = (n: DerNode | undefined): boolean => n !== undefined && (n.tag === 0x17 || n.tag === 0x18);
