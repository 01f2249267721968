import { constants, createPublicKey, sign, type KeyObject, type SignKeyObjectInput } from 'node:crypto';
import { inspect } from 'node:util';
import { InternalError, type KeyAlgorithm, type Signer } from '@agentca/core';
import { describeKey, keyAlgorithmOf, nodeHashFor } from './key-algorithms.ts';

/**
 * A Signer over a node:crypto private KeyObject. The KeyObject lives in a private field:
 * no property, getter, `JSON.stringify` or `util.inspect` reaches it.
 */
export class KeyObjectSigner implements Signer {
  readonly algorithm: KeyAlgorithm;
  readonly #spki: Uint8Array;
  readonly #key: KeyObject;
  readonly #hash: 'sha256' | 'sha384' | 'sha512' | null;

  /**
   * Throws InternalError `ERR_KEY_ALGORITHM_MISMATCH` when `privateKey` is not a private
   * `algorithm` key, `ERR_KEY_PAIR_MISMATCH` when `publicKey` is not its public half.
   */
  constructor(algorithm: KeyAlgorithm, privateKey: KeyObject, publicKey: KeyObject) {
    if (privateKey.type !== 'private' || keyAlgorithmOf(privateKey) !== algorithm) {
      throw new InternalError('ERR_KEY_ALGORITHM_MISMATCH', `a ${privateKey.type} ${describeKey(privateKey)} key cannot sign as ${algorithm}`);
    }
    const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
    if (!spki.equals(publicKey.export({ type: 'spki', format: 'der' }))) {
      throw new InternalError('ERR_KEY_PAIR_MISMATCH', `the public key does not match the ${algorithm} private key`);
    }
    this.algorithm = algorithm;
    this.#key = privateKey;
    this.#hash = nodeHashFor(algorithm);
    this.#spki = new Uint8Array(spki);
  }

  /** SubjectPublicKeyInfo, DER; a fresh copy on every read. */
  get publicKey(): Uint8Array {
    return this.#spki.slice();
  }

  sign(data: Uint8Array): Promise<Uint8Array> {
    const input: SignKeyObjectInput = { key: this.#key };
    if (this.#key.asymmetricKeyType === 'ec') input.dsaEncoding = 'der';
    if (this.#key.asymmetricKeyType === 'rsa') input.padding = constants.RSA_PKCS1_PADDING;
    return new Promise((resolve, reject) => {
      // The callback form runs on libuv's threadpool (RSA-4096 signing is milliseconds).
      sign(this.#hash, data, input, (err, signature) => (err ? reject(err) : resolve(new Uint8Array(signature))));
    });
  }

  [inspect.custom](): string {
    return `KeyObjectSigner { algorithm: '${this.algorithm}' }`;
  }
}
