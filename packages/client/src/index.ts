/**
 * `@agentca/client`: the workload SDK of agentca. A key made in this process, a SPIFFE
 * certificate for it from `agentca serve`, renewed over mTLS before it expires, and TLS
 * material that follows every rotation (a SecureContext, an https.Agent, an undici dispatcher, https
 * server options), and peer checks: SPIFFE ID allow-lists, revocation by CRL or OCSP. Uses only
 * node: built-ins and undici, and no agentca package.
 *
 * @example The Node SDK in ten lines
 * ```ts
 * import https from 'node:https';
 * import { readFileSync } from 'node:fs';
 * import { fetch } from 'undici';
 * import { AgentIdentity, authorizePeer } from '@agentca/client';
 *
 * const id = await AgentIdentity.bootstrap({ server: 'https://ca.internal:8443', caBundle: readFileSync('bundle.pem', 'utf8'), token: process.env.AGENTCA_TOKEN });
 * const server = https.createServer(id.serverOptions(), (req, res) =>
 *   res.writeHead(authorizePeer(req.socket as any, ['spiffe://example.org/agent/caller']) ? 200 : 403).end());
 * id.keepCurrent(server.listen(9443));
 * https.get('https://billing.internal:9443/', { agent: id.httpsAgent() });
 * await fetch('https://billing.internal:9443/', { dispatcher: id.dispatcher() });
 * process.on('SIGTERM', () => id.retire().finally(() => process.exit(0)));
 * ```
 * @packageDocumentation
 */
export { AgentIdentity, type AgentIdentityEvents, type BootstrapOptions } from './identity.ts';
export { AgentCAClientError } from './errors.ts';
export { authorizePeer, authorizePeerWithRevocation, peerSpiffeId, type PeerPolicy } from './peer.ts';
export { createCsr, generateWorkloadKey, type WorkloadKey } from './csr.ts';
export { renewalDelayMs, retryDelayMs, type RenewalPolicy, type RetryPolicy } from './rotation.ts';
export type { IssuedCertificate, RetireAnswer } from './api.ts';
export { CrlChecker, normalizeSerial, type CrlCheckerOptions, type CrlCheckerEvents, type CrlInfo, type RevocationStatus } from './crl-checker.ts';
export { OcspChecker, type OcspCheckerOptions, type OcspCheckerEvents, type OcspAnswerInfo } from './ocsp-checker.ts';
