import type { KeyAlgorithm } from '../x509/algorithms.ts';

/**
 * A key the CA may sign with. The private key stays behind this interface: a key store
 * hands out signers, never key material.
 */
export interface Signer {
  readonly algorithm: KeyAlgorithm;
  /** SubjectPublicKeyInfo, DER. */
  readonly publicKey: Uint8Array;
  /**
   * Signs `data` with the algorithm's X.509 signature scheme (ECDSA with the curve's hash,
   * Ed25519, RSA PKCS#1 v1.5 with SHA-256) and returns the signature as X.509 carries it:
   * DER `Ecdsa-Sig-Value` for ECDSA, raw bytes otherwise.
   */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** Where CA keys live. Implementations never export a private key. */
export interface KeyStore {
  /** Creates a new key under `name`; fails with Conflict if the name is taken. */
  generate(name: string, algorithm: KeyAlgorithm): Promise<Signer>;
  /** Opens an existing key; fails with Unavailable if it is missing, corrupt or locked. */
  open(name: string): Promise<Signer>;
}
