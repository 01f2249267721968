import type { SignatureScheme } from '../x509/algorithms.ts';
import type { PublicKeyInfo } from '../x509/spki.ts';

/**
 * The crypto the issuance pipeline needs besides the CA signer: signature verification (a
 * CSR's proof of possession, the CA's own signatures) and digests (key identifiers). Core ships
 * a WebCrypto implementation; a runtime may inject a faster one (the Node package verifies on
 * worker threads and hashes synchronously).
 */
export interface CryptoBackend {
  /**
   * True when `signature` (X.509 encoding: DER for ECDSA) is a valid `scheme` signature of
   * `data` by `key`; false for a wrong or malformed signature. Throws InvalidRequest
   * `ERR_CSR_KEY_INVALID` when the key itself is unusable (e.g. an EC point off the curve).
   */
  verify(key: PublicKeyInfo, scheme: SignatureScheme, data: Uint8Array, signature: Uint8Array): Promise<boolean>;
  digest(algorithm: 'SHA-1' | 'SHA-256', data: Uint8Array): Promise<Uint8Array>;
}
