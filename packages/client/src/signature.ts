/**
 * The one place the revocation checkers verify a signature (CRLs, OCSP responses), and the few
 * certificate fields they compare by their DER: subject Name, subjectPublicKey, extensions.
 */
import { createHash, verify, type KeyObject, type X509Certificate } from 'node:crypto';
import { children, content, readTlv, whole, type Tlv } from './der.ts';

/** Signature algorithms by the content of their OID, and the key type each needs. */
const SIGNATURE_ALGORITHMS: Record<string, { hash: string | null; key: 'ec' | 'rsa' | 'ed25519' }> = {
  '2a8648ce3d040302': { hash: 'sha256', key: 'ec' }, // ecdsa-with-SHA256
  '2a8648ce3d040303': { hash: 'sha384', key: 'ec' }, // ecdsa-with-SHA384
  '2a8648ce3d040304': { hash: 'sha512', key: 'ec' }, // ecdsa-with-SHA512
  '2a864886f70d01010b': { hash: 'sha256', key: 'rsa' }, // sha256WithRSAEncryption
  '2a864886f70d01010c': { hash: 'sha384', key: 'rsa' }, // sha384WithRSAEncryption
  '2a864886f70d01010d': { hash: 'sha512', key: 'rsa' }, // sha512WithRSAEncryption
  '2b6570': { hash: null, key: 'ed25519' }, // id-Ed25519
};

/**
 * Throws `${what}: …` unless `signature` over `data` verifies with `key` under the algorithm whose
 * OID content is `algorithmOidHex`, and that algorithm fits the key's type.
 */
export function verifySignature(what: string, algorithmOidHex: string, data: Buffer, signature: Buffer, key: KeyObject): void {
  const alg = SIGNATURE_ALGORITHMS[algorithmOidHex];
  if (!alg) throw new Error(`${what}: unsupported signature algorithm (OID ${algorithmOidHex})`);
  const keyType = key.asymmetricKeyType;
  if (keyType !== alg.key) throw new Error(`${what}: signature algorithm does not match the signer's ${keyType} key`);
  if (!verify(alg.hash, data, key, signature)) throw new Error(`${what}: signature does not verify`);
}

export function sha1(data: Uint8Array): Buffer {
  return createHash('sha1').update(data).digest();
}

/** The fields of a certificate's tbsCertificate, as TLVs of `cert.raw`. */
function tbsFields(cert: X509Certificate): { buf: Buffer; fields: Tlv[]; first: number } {
  const buf = cert.raw;
  const tbs = children(buf, readTlv(buf, 0))[0]!;
  const fields = children(buf, tbs);
  return { buf, fields, first: fields[0]?.tag === 0xa0 ? 1 : 0 }; // [0] version
}

/** The DER of the subject Name of a certificate. */
export function subjectDer(cert: X509Certificate): Buffer {
  const { buf, fields, first } = tbsFields(cert);
  // serialNumber, signature, issuer, validity, subject
  return Buffer.from(whole(buf, fields[first + 4]!));
}

/** The subjectPublicKey BIT STRING's bits (what an OCSP issuerKeyHash and a byKey ResponderID hash). */
export function publicKeyBits(cert: X509Certificate): Buffer {
  const { buf, fields, first } = tbsFields(cert);
  const spki = children(buf, fields[first + 5]!);
  const bits = spki[1]!;
  if (bits.tag !== 0x03 || buf[bits.start] !== 0) throw new Error('certificate: malformed subjectPublicKey');
  return Buffer.from(buf.subarray(bits.start + 1, bits.end));
}

/** Whether the certificate carries an extension whose OID content is `oidHex`. */
export function hasExtension(cert: X509Certificate, oidHex: string): boolean {
  const { buf, fields } = tbsFields(cert);
  const wrapper = fields.find((f) => f.tag === 0xa3);
  if (!wrapper) return false;
  const list = children(buf, wrapper)[0];
  if (!list) return false;
  return children(buf, list).some((ext) => content(buf, children(buf, ext)[0]!).toString('hex') === oidHex);
}
