/** Just enough DER (X.690) to write a PKCS#10 request and walk a CRL. */

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

/** Reads the TLV at `offset`; throws on anything truncated or indefinite-length. */
export function readTlv(buf: Uint8Array, offset: number): DerNode {
  if (offset + 2 > buf.length) throw new RangeError('der: truncated');
  const tag = buf[offset]!;
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
  return { tag, start: p, end: p + len };
}

/** The TLVs directly inside `node`. */
export function children(buf: Uint8Array, node: DerNode): DerNode[] {
  const out: DerNode[] = [];
  for (let p = node.start; p < node.end; ) {
    const c = readTlv(buf, p);
    out.push(c);
    p = c.end;
  }
  return out;
}
