export { FileKeyStore, type FileKeyStoreOptions } from './file-key-store.ts';
export { KeyObjectSigner } from './file-signer.ts';
export { PBKDF2_ITERATIONS } from './encrypted-pkcs8.ts';
export { generateKeyObjects } from './key-algorithms.ts';
