/**
 * A Signer over a WebCrypto key pair (non-extractable keys stay non-extractable): for services
 * that embed the core with keys from WebCrypto, and for tests.
 */
import type { Signer } from '../ports/signer.ts';
import { unsignedInteger, seq } from '../x509/der.ts';
import { signatureSchemeFor, type KeyAlgorithm } from '../x509/algorithms.ts';

/** IEEE P1363 r‖s → DER Ecdsa-Sig-Value, as X.509 carries it. */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return seq(unsignedInteger(raw.subarray(0, half)), unsignedInteger(raw.subarray(half)));
}

function params(alg: KeyAlgorithm): { gen: RsaHashedKeyGenParams | EcKeyGenParams | AlgorithmIdentifier; sign: AlgorithmIdentifier | EcdsaParams } {
  switch (alg) {
    case 'ec-p256':
      return { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } };
    case 'ec-p384':
      return { gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } };
    case 'ed25519':
      return { gen: { name: 'Ed25519' }, sign: { name: 'Ed25519' } };
    default:
      return {
        gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: Number(alg.slice(4)), publicExponent: Uint8Array.of(1, 0, 1), hash: 'SHA-256' },
        sign: { name: 'RSASSA-PKCS1-v1_5' },
      };
  }
}

export async function generateWebCryptoSigner(algorithm: KeyAlgorithm, crypto: Crypto = globalThis.crypto): Promise<Signer> {
  const p = params(algorithm);
  const pair = (await crypto.subtle.generateKey(p.gen, false, ['sign', 'verify'])) as CryptoKeyPair;
  return webCryptoSigner(algorithm, pair, crypto);
}

export async function webCryptoSigner(algorithm: KeyAlgorithm, pair: CryptoKeyPair, crypto: Crypto = globalThis.crypto): Promise<Signer> {
  const publicKey = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey));
  const p = params(algorithm);
  const isEc = signatureSchemeFor(algorithm).family.startsWith('ec-');
  return {
    algorithm,
    publicKey,
    async sign(data) {
      const sig = new Uint8Array(await crypto.subtle.sign(p.sign, pair.privateKey, data as BufferSource));
      return isEc ? ecdsaRawToDer(sig) : sig;
    },
  };
}
