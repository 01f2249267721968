/**
 * @agentca/server — agentca over HTTP. So far: the plain-HTTP revocation listener (CRL, OCSP).
 */
export * from './revocation-http.ts';
export * from './api/index.ts';
