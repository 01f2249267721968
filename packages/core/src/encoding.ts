/** Byte ↔ text encodings used across core, without Node's Buffer (core runs on WebCrypto alone). */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]!];
  return s;
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError('not a hex string');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
/** The base64 of every 12-bit value: two characters per lookup. */
const B64_PAIRS = Array.from({ length: 4096 }, (_, i) => B64[i >> 6]! + B64[i & 63]!);

export function toBase64(bytes: Uint8Array): string {
  // Certificates and responses (up to a few KiB) by table, ~5x faster than btoa; CRLs by btoa.
  if (bytes.length <= 0x10000) return toBase64Small(bytes);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

function toBase64Small(b: Uint8Array): string {
  const n = b.length;
  const full = n - (n % 3);
  let out = '';
  for (let i = 0; i < full; i += 3) {
    const v = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    out += B64_PAIRS[v >>> 12]! + B64_PAIRS[v & 4095]!;
  }
  if (n - full === 1) out += `${B64_PAIRS[b[full]! << 4]!}==`;
  else if (n - full === 2) {
    const v = (b[full]! << 8) | b[full + 1]!;
    out += `${B64_PAIRS[v >>> 4]!}${B64[(v & 15) << 2]!}=`;
  }
  return out;
}

/** Strict base64 (standard alphabet, padding optional); throws TypeError on anything else. */
export function fromBase64(b64: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.replace(/=+$/, '').length % 4 === 1) throw new TypeError('not base64');
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export async function sha256(data: Uint8Array | string): Promise<Uint8Array> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes as BufferSource));
}

export async function sha1(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-1', data as BufferSource));
}
