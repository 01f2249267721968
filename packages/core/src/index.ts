/**
 * @agentca/core — the CA as a library: WebCrypto only, no file system, no SQL driver, no HTTP.
 * Storage, keys, clock and randomness come in through the ports.
 */
export * from './errors.ts';
export * from './encoding.ts';
export * from './duration.ts';
export * from './ports/clock.ts';
export * from './ports/random.ts';
export * from './ports/signer.ts';
export * from './ports/crypto-backend.ts';
export * from './ports/audit-store.ts';
export * from './ports/certificate-store.ts';
export * from './ports/revocation-store.ts';
export * from './ports/crl-store.ts';
export * from './ports/token-store.ts';
export * from './ports/store-counters.ts';
export * from './identity/spiffe-id.ts';
export * from './profile/profile.ts';
export * from './audit/chain.ts';
export * from './issuance/attestation.ts';
export * from './issuance/issuer.ts';
export * from './issuance/serial.ts';
export * from './issuance/verify-issued.ts';
export * from './ca/authority.ts';
export * from './ca/hierarchy.ts';
export * from './ca/init.ts';
export * from './x509/algorithms.ts';
export * from './x509/pem.ts';
export * from './x509/csr.ts';
export * from './x509/spki.ts';
export * from './x509/certificate.ts';
export * from './x509/extensions.ts';
export * from './x509/extension-values.ts';
export * from './x509/general-names.ts';
export * from './x509/name.ts';
export * from './x509/signature.ts';
export { TAG } from './x509/der.ts';
export * from './ca/webcrypto-signer.ts';
export * from './x509/csr-builder.ts';
export * from './revocation/reasons.ts';
export * from './revocation/revocation-service.ts';
export * from './revocation/crl.ts';
export * from './revocation/crl-publisher.ts';
export * from './revocation/ocsp.ts';
export * from './revocation/ocsp-responder-certificate.ts';
export * from './attestation/join-token.ts';
export * from './attestation/jwt.ts';
