/**
 * SubjectPublicKeyInfo: what key a CSR carries, checked against the algorithm table before
 * anything else touches it.
 */
import { InvalidRequest, PolicyDenied } from '../errors.ts';
import { MAX_RSA_BITS, MIN_RSA_BITS, OID, type KeyFamily } from './algorithms.ts';
import { TAG, children, expectTag, readBitString, readElement, readOid, readUnsignedInteger, type DerElement } from './der.ts';

export interface PublicKeyInfo {
  family: KeyFamily;
  /** Modulus size for RSA, curve size for EC, 256 for Ed25519. */
  bits: number;
  /** The SPKI DER, exactly as received. */
  spki: Uint8Array;
  /** The subjectPublicKey BIT STRING's bytes (the SKI is computed over these). */
  keyBytes: Uint8Array;
}

function bitLength(m: Uint8Array): number {
  let i = 0;
  while (i < m.length && m[i] === 0) i++;
  if (i === m.length) return 0;
  return (m.length - i - 1) * 8 + (32 - Math.clz32(m[i]!));
}

/** Parses and checks a SubjectPublicKeyInfo element inside `buf`. */
export function parseSpki(buf: Uint8Array, el: DerElement): PublicKeyInfo {
  expectTag(el, TAG.SEQUENCE, 'subjectPublicKeyInfo');
  const [algEl, keyEl, extra] = children(buf, el);
  if (extra) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: extra field in subjectPublicKeyInfo');
  const [oidEl, paramsEl, extraParam] = children(buf, expectTag(algEl, TAG.SEQUENCE, 'key algorithm'));
  if (extraParam) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: extra field in key algorithm');
  const algOid = readOid(buf, expectTag(oidEl, TAG.OID, 'key algorithm OID'));
  const keyBytes = readBitString(buf, expectTag(keyEl, TAG.BIT_STRING, 'subjectPublicKey')).bytes;
  const spki = buf.subarray(el.start, el.end);

  if (algOid === OID.ecPublicKey) {
    if (!paramsEl || paramsEl.tag !== TAG.OID) throw new PolicyDenied('ERR_KEY_ALGORITHM_NOT_ALLOWED', 'EC keys must name their curve (P-256 or P-384)');
    const curve = readOid(buf, paramsEl);
    const size = curve === OID.prime256v1 ? 256 : curve === OID.secp384r1 ? 384 : 0;
    if (!size) throw new PolicyDenied('ERR_KEY_ALGORITHM_NOT_ALLOWED', `EC curve ${curve} is not allowed (use P-256 or P-384)`);
    const coord = size / 8;
    if (keyBytes.length !== 1 + 2 * coord || keyBytes[0] !== 0x04)
      throw new InvalidRequest('ERR_CSR_KEY_INVALID', `the P-${size} public key is not an uncompressed point`);
    return { family: size === 256 ? 'ec-p256' : 'ec-p384', bits: size, spki, keyBytes };
  }
  if (algOid === OID.ed25519) {
    if (paramsEl) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: Ed25519 keys take no parameters');
    if (keyBytes.length !== 32) throw new InvalidRequest('ERR_CSR_KEY_INVALID', 'the Ed25519 public key is not 32 bytes');
    return { family: 'ed25519', bits: 256, spki, keyBytes };
  }
  if (algOid === OID.rsaEncryption) {
    if (!paramsEl || paramsEl.tag !== TAG.NULL || paramsEl.end !== paramsEl.contentStart)
      throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: rsaEncryption needs NULL parameters');
    const rsa = readElement(keyBytes, 0);
    if (rsa.end !== keyBytes.length) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: trailing bytes after RSAPublicKey');
    const [nEl, eEl, more] = children(keyBytes, expectTag(rsa, TAG.SEQUENCE, 'RSAPublicKey'));
    if (more) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: extra field in RSAPublicKey');
    const n = readUnsignedInteger(keyBytes, expectTag(nEl, TAG.INTEGER, 'RSA modulus'));
    const e = readUnsignedInteger(keyBytes, expectTag(eEl, TAG.INTEGER, 'RSA exponent'));
    const bits = bitLength(n);
    if (bits < MIN_RSA_BITS) throw new PolicyDenied('ERR_KEY_TOO_SMALL', `RSA keys need at least ${MIN_RSA_BITS} bits, this one has ${bits}`);
    if (bits > MAX_RSA_BITS) throw new PolicyDenied('ERR_KEY_TOO_LARGE', `RSA keys may have at most ${MAX_RSA_BITS} bits, this one has ${bits}`);
    const eLast = e[e.length - 1]!;
    if ((eLast & 1) === 0 || (e.length === 1 && eLast < 3) || e.length > 8)
      throw new InvalidRequest('ERR_CSR_KEY_INVALID', 'the RSA public exponent is not acceptable');
    return { family: 'rsa', bits, spki, keyBytes };
  }
  throw new PolicyDenied('ERR_KEY_ALGORITHM_NOT_ALLOWED', `key algorithm ${algOid} is not allowed (use ECDSA P-256/P-384, Ed25519 or RSA)`);
}

export function parseSpkiDer(spki: Uint8Array): PublicKeyInfo {
  const el = readElement(spki, 0);
  if (el.end !== spki.length) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: trailing bytes after subjectPublicKeyInfo');
  return parseSpki(spki, el);
}

