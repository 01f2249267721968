/**
 * The one table of key and signature algorithms agentca accepts. Everything that turns an
 * algorithm name into OIDs, WebCrypto parameters or limits reads it from here.
 */

export type KeyAlgorithm = 'ec-p256' | 'ec-p384' | 'ed25519' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

/** The family of a subject key, as a profile allows it. */
export type KeyFamily = 'ec-p256' | 'ec-p384' | 'ed25519' | 'rsa';

export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048', 'rsa-3072', 'rsa-4096'];

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
  ed25519: '1.3.101.112',
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
  ecdsaWithSHA512: '1.2.840.10045.4.3.4',
} as const;

/** RSA keys below this size are refused everywhere (subject keys and CA keys). */
export const MIN_RSA_BITS = 2048;
/** Larger RSA keys only cost verification time; refuse absurd sizes from the network. */
export const MAX_RSA_BITS = 8192;

export interface SignatureScheme {
  /** AlgorithmIdentifier OID written in certificates and CRLs. */
  oid: string;
  /** Whether the AlgorithmIdentifier carries an explicit NULL parameter (RSA PKCS#1 v1.5 does). */
  nullParams: boolean;
  /** Digest name for node:crypto / WebCrypto; null for Ed25519. */
  hash: 'SHA-256' | 'SHA-384' | 'SHA-512' | null;
  family: KeyFamily;
}

/** Signature schemes a CSR may be signed with. */
export const CSR_SIGNATURE_SCHEMES: Readonly<Record<string, SignatureScheme>> = {
  [OID.ecdsaWithSHA256]: { oid: OID.ecdsaWithSHA256, nullParams: false, hash: 'SHA-256', family: 'ec-p256' },
  [OID.ecdsaWithSHA384]: { oid: OID.ecdsaWithSHA384, nullParams: false, hash: 'SHA-384', family: 'ec-p256' },
  [OID.ecdsaWithSHA512]: { oid: OID.ecdsaWithSHA512, nullParams: false, hash: 'SHA-512', family: 'ec-p256' },
  [OID.ed25519]: { oid: OID.ed25519, nullParams: false, hash: null, family: 'ed25519' },
  [OID.sha256WithRSA]: { oid: OID.sha256WithRSA, nullParams: true, hash: 'SHA-256', family: 'rsa' },
  [OID.sha384WithRSA]: { oid: OID.sha384WithRSA, nullParams: true, hash: 'SHA-384', family: 'rsa' },
  [OID.sha512WithRSA]: { oid: OID.sha512WithRSA, nullParams: true, hash: 'SHA-512', family: 'rsa' },
};

/** The scheme a CA key of each algorithm signs with. */
export function signatureSchemeFor(alg: KeyAlgorithm): SignatureScheme {
  switch (alg) {
    case 'ec-p256':
      return { oid: OID.ecdsaWithSHA256, nullParams: false, hash: 'SHA-256', family: 'ec-p256' };
    case 'ec-p384':
      return { oid: OID.ecdsaWithSHA384, nullParams: false, hash: 'SHA-384', family: 'ec-p384' };
    case 'ed25519':
      return { oid: OID.ed25519, nullParams: false, hash: null, family: 'ed25519' };
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096':
      return { oid: OID.sha256WithRSA, nullParams: true, hash: 'SHA-256', family: 'rsa' };
  }
}

export function rsaBits(alg: KeyAlgorithm): number | null {
  return alg.startsWith('rsa-') ? Number(alg.slice(4)) : null;
}

export function isKeyAlgorithm(s: string): s is KeyAlgorithm {
  return (KEY_ALGORITHMS as readonly string[]).includes(s);
}
