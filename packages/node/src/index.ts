/** @agentca/node — agentca on Node: the CA directory, its config, the encrypted key store. */
export * from './ca-dir.ts';
export * from './config.ts';
export * from './atomic-file.ts';
export * from './passphrase.ts';
export * from './keystore/index.ts';
export { KeyObjectSigner } from './keystore/file-signer.ts';
export * from './crypto/node-crypto-backend.ts';
export * from './revocation-runtime.ts';
export * from './logger.ts';
export * from './jwks.ts';
