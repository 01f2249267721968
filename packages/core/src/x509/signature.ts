/**
 * The one place core verifies a signature: X.509 signature bytes (DER ECDSA, raw Ed25519,
 * PKCS#1 v1.5 RSA) over data, with a key from an SPKI. WebCrypto is passed in per call.
 */
import { InvalidRequest } from '../errors.ts';
import type { SignatureScheme } from './algorithms.ts';
import { TAG, children, expectTag, readElement, readUnsignedInteger } from './der.ts';
import type { PublicKeyInfo } from './spki.ts';
import type { CryptoBackend } from '../ports/crypto-backend.ts';

/** DER Ecdsa-Sig-Value → IEEE P1363 r‖s, as WebCrypto wants it. */
export function ecdsaDerToRaw(sig: Uint8Array, coordBytes: number): Uint8Array {
  const top = readElement(sig, 0);
  if (top.end !== sig.length) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: trailing bytes after ECDSA signature');
  const [rEl, sEl, extra] = children(sig, expectTag(top, TAG.SEQUENCE, 'ECDSA signature'));
  if (extra) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: extra field in ECDSA signature');
  const r = readUnsignedInteger(sig, expectTag(rEl, TAG.INTEGER, 'ECDSA r'));
  const s = readUnsignedInteger(sig, expectTag(sEl, TAG.INTEGER, 'ECDSA s'));
  if (r.length > coordBytes || s.length > coordBytes) throw new InvalidRequest('ERR_DER_MALFORMED', 'ECDSA signature values are too long');
  const out = new Uint8Array(coordBytes * 2);
  out.set(r, coordBytes - r.length);
  out.set(s, 2 * coordBytes - s.length);
  return out;
}

function importParams(key: PublicKeyInfo, scheme: SignatureScheme): { imp: AlgorithmIdentifier | EcKeyImportParams | RsaHashedImportParams; ver: AlgorithmIdentifier | EcdsaParams } {
  switch (key.family) {
    case 'ec-p256':
    case 'ec-p384':
      return {
        imp: { name: 'ECDSA', namedCurve: key.family === 'ec-p256' ? 'P-256' : 'P-384' },
        ver: { name: 'ECDSA', hash: scheme.hash! },
      };
    case 'ed25519':
      return { imp: { name: 'Ed25519' }, ver: { name: 'Ed25519' } };
    case 'rsa':
      return { imp: { name: 'RSASSA-PKCS1-v1_5', hash: scheme.hash! }, ver: { name: 'RSASSA-PKCS1-v1_5' } };
  }
}

/** Whether `scheme` is a signature algorithm for a key of this family. */
export function schemeFitsKey(scheme: SignatureScheme, key: PublicKeyInfo): boolean {
  if (key.family === 'ec-p256' || key.family === 'ec-p384') return scheme.family === 'ec-p256' || scheme.family === 'ec-p384';
  return scheme.family === key.family;
}

/**
 * Imports a public key for verification. EC keys go in as the raw point: OpenSSL 3 decodes an
 * SPKI several times slower than a bare point, and this runs once per CSR.
 */
export async function importVerifyKey(crypto: Crypto, key: PublicKeyInfo, scheme: SignatureScheme): Promise<CryptoKey> {
  const { imp } = importParams(key, scheme);
  const isEc = key.family === 'ec-p256' || key.family === 'ec-p384';
  try {
    return await crypto.subtle.importKey(isEc ? 'raw' : 'spki', (isEc ? key.keyBytes : key.spki) as BufferSource, imp, false, ['verify']);
  } catch {
    throw new InvalidRequest('ERR_CSR_KEY_INVALID', `the ${key.family} public key is not valid`);
  }
}

/**
 * True when `signature` is a valid `scheme` signature of `data` by `key`. A signature whose
 * encoding is broken counts as invalid, not as an error. Pass `cryptoKey` when the key is
 * used again (a CA key), to import it once.
 */
export async function verifySignature(
  crypto: Crypto,
  key: PublicKeyInfo,
  scheme: SignatureScheme,
  data: Uint8Array,
  signature: Uint8Array,
  cryptoKey?: CryptoKey,
): Promise<boolean> {
  if (!schemeFitsKey(scheme, key)) return false;
  let sig = signature;
  if (key.family === 'ec-p256' || key.family === 'ec-p384') {
    try {
      sig = ecdsaDerToRaw(signature, key.bits / 8);
    } catch {
      return false;
    }
  }
  const { ver } = importParams(key, scheme);
  const k = cryptoKey ?? (await importVerifyKey(crypto, key, scheme));
  return crypto.subtle.verify(ver, k, sig as BufferSource, data as BufferSource);
}

/** The CryptoBackend over WebCrypto (`globalThis.crypto` by default). Keys used again can be cached by the caller. */
export function webCryptoBackend(crypto: Crypto = globalThis.crypto): CryptoBackend {
  return {
    verify: (key, scheme, data, signature) => verifySignature(crypto, key, scheme, data, signature),
    digest: async (alg, data) => new Uint8Array(await crypto.subtle.digest(alg, data as BufferSource)),
  };
}
