import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { signatureSchemeFor, type KeyAlgorithm } from '@agentca/core';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Generates a key pair for `alg` on libuv's threadpool. */
export function generateKeyObjects(alg: KeyAlgorithm): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  switch (alg) {
    case 'ec-p256':
      return generateKeyPairAsync('ec', { namedCurve: 'P-256' });
    case 'ec-p384':
      return generateKeyPairAsync('ec', { namedCurve: 'P-384' });
    case 'ed25519':
      return generateKeyPairAsync('ed25519', {});
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096':
      return generateKeyPairAsync('rsa', { modulusLength: Number(alg.slice(4)), publicExponent: 0x10001 });
  }
}

/** The agentca algorithm a private key belongs to, or null when agentca does not sign with it. */
export function keyAlgorithmOf(key: KeyObject): KeyAlgorithm | null {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (details.namedCurve === 'prime256v1') return 'ec-p256';
      if (details.namedCurve === 'secp384r1') return 'ec-p384';
      return null;
    case 'ed25519':
      return 'ed25519';
    case 'rsa':
      if (details.modulusLength === 2048) return 'rsa-2048';
      if (details.modulusLength === 3072) return 'rsa-3072';
      if (details.modulusLength === 4096) return 'rsa-4096';
      return null;
    default:
      return null;
  }
}

/** A short, secret-free description of a key's type for error messages: `rsa 1024 bits`, `ec prime192v1`. */
export function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  const type = key.asymmetricKeyType ?? 'unknown';
  if (details.namedCurve) return `${type} ${details.namedCurve}`;
  if (details.modulusLength) return `${type} ${details.modulusLength} bits`;
  return type;
}

/** node:crypto digest name for the algorithm's X.509 signature scheme; null for Ed25519. */
export function nodeHashFor(alg: KeyAlgorithm): 'sha256' | 'sha384' | 'sha512' | null {
  switch (signatureSchemeFor(alg).hash) {
    case 'SHA-256':
      return 'sha256';
    case 'SHA-384':
      return 'sha384';
    case 'SHA-512':
      return 'sha512';
    case null:
      return null;
  }
}
