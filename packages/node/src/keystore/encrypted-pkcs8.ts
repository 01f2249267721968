import { createCipheriv, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/**
 * PBKDF2-HMAC-SHA256 work factor for new key files (OWASP Password Storage Cheat Sheet,
 * 2023). node:crypto's own `export({ cipher, passphrase })` uses OpenSSL's default of 2048
 * iterations with an 8-byte salt, which makes an 8-character passphrase cheap to guess
 * offline; so we write the PBES2 container ourselves and let OpenSSL read it.
 */
export const PBKDF2_ITERATIONS = 600_000;
/** NIST SP 800-132 asks for at least 128 bits of salt. */
const SALT_BYTES = 16;

const PEM_LABEL = 'ENCRYPTED PRIVATE KEY';

// DER of the OIDs (RFC 8018 appendix A and C; NIST CSOR for AES).
const OID_PBES2 = Buffer.from('06092a864886f70d01050d', 'hex'); // 1.2.840.113549.1.5.13
const OID_PBKDF2 = Buffer.from('06092a864886f70d01050c', 'hex'); // 1.2.840.113549.1.5.12
const OID_HMAC_SHA256 = Buffer.from('06082a864886f70d0209', 'hex'); // 1.2.840.113549.2.9
const OID_AES256_CBC = Buffer.from('060960864801650304012a', 'hex'); // 2.16.840.1.101.3.4.1.42
const DER_NULL = Buffer.from('0500', 'hex');

/**
 * Encrypts a PKCS#8 PrivateKeyInfo (DER) into an EncryptedPrivateKeyInfo (RFC 5958 §3)
 * with PBES2 (RFC 8018 §6.2): PBKDF2-HMAC-SHA256 and AES-256-CBC.
 */
export async function encryptPrivateKeyInfo(pkcs8: Uint8Array, passphrase: string): Promise<Buffer> {
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(16);
  const key = await pbkdf2Async(passphrase, salt, PBKDF2_ITERATIONS, 32, 'sha256');
  try {
    const cipher = createCipheriv('aes-256-cbc', key, iv);
    const encrypted = Buffer.concat([cipher.update(pkcs8), cipher.final()]);
    const pbkdf2Params = der(0x30, der(0x04, salt), derInteger(PBKDF2_ITERATIONS), der(0x30, OID_HMAC_SHA256, DER_NULL));
    const pbes2Params = der(0x30, der(0x30, OID_PBKDF2, pbkdf2Params), der(0x30, OID_AES256_CBC, der(0x04, iv)));
    return der(0x30, der(0x30, OID_PBES2, pbes2Params), der(0x04, encrypted));
  } finally {
    key.fill(0);
  }
}

export function encodeEncryptedPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${PEM_LABEL}-----\n${lines.join('\n')}\n-----END ${PEM_LABEL}-----\n`;
}

export type PemReadResult =
  | { kind: 'encrypted'; der: Buffer }
  | { kind: 'unencrypted' }
  | { kind: 'malformed'; reason: string };

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)\r?\n?-----END ([A-Z0-9 ]+)-----/g;
const UNENCRYPTED_LABELS = new Set(['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY']);

/**
 * Reads a key file's text: exactly one PEM block, labelled ENCRYPTED PRIVATE KEY, whose
 * DER is a well-formed EncryptedPrivateKeyInfo. The structural check is what lets the
 * caller tell a damaged file from a wrong passphrase: PKCS#8 encryption has no MAC, so a
 * wrong key only shows as a bad padding or, one time in ~256, as garbage plaintext.
 */
export function readEncryptedPem(text: string): PemReadResult {
  const blocks = [...text.matchAll(PEM_BLOCK)];
  if (blocks.length === 0) return { kind: 'malformed', reason: 'no complete PEM block' };
  if (blocks.length > 1) return { kind: 'malformed', reason: 'more than one PEM block' };
  const [, begin, body, end] = blocks[0]!;
  if (begin !== end) return { kind: 'malformed', reason: 'mismatched PEM labels' };
  if (begin !== PEM_LABEL) {
    return UNENCRYPTED_LABELS.has(begin!) ? { kind: 'unencrypted' } : { kind: 'malformed', reason: `unexpected PEM block ${begin}` };
  }
  const b64 = body!.replace(/\r?\n/g, '');
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(b64)) {
    return { kind: 'malformed', reason: 'invalid base64' };
  }
  const derBytes = Buffer.from(b64, 'base64');
  if (!isEncryptedPrivateKeyInfo(derBytes)) return { kind: 'malformed', reason: 'truncated or damaged' };
  return { kind: 'encrypted', der: derBytes };
}

/** SEQUENCE { AlgorithmIdentifier SEQUENCE { OID, ... }, OCTET STRING }, with exact lengths. */
function isEncryptedPrivateKeyInfo(buf: Buffer): boolean {
  const outer = readTlv(buf, 0);
  if (!outer || outer.tag !== 0x30 || outer.end !== buf.length) return false;
  const alg = readTlv(buf, outer.start);
  if (!alg || alg.tag !== 0x30 || alg.end > outer.end) return false;
  const oid = readTlv(buf, alg.start);
  if (!oid || oid.tag !== 0x06 || oid.end > alg.end) return false;
  const data = readTlv(buf, alg.end);
  return !!data && data.tag === 0x04 && data.end === outer.end && data.end > data.start;
}

function readTlv(buf: Buffer, offset: number): { tag: number; start: number; end: number } | null {
  if (offset + 2 > buf.length) return null;
  const tag = buf[offset]!;
  const first = buf[offset + 1]!;
  let length: number;
  let start: number;
  if (first < 0x80) {
    length = first;
    start = offset + 2;
  } else {
    const n = first & 0x7f;
    if (n === 0 || n > 4 || offset + 2 + n > buf.length) return null;
    length = buf.readUIntBE(offset + 2, n);
    start = offset + 2 + n;
  }
  const end = start + length;
  return end <= buf.length ? { tag, start, end } : null;
}

function der(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function derInteger(n: number): Buffer {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  if (bytes.length === 0 || bytes[0]! & 0x80) bytes.unshift(0);
  return der(0x02, Buffer.from(bytes));
}
