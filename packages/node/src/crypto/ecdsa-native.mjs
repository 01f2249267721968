// The native ECDSA verifier (packages/node/native/ecdsa_verify.c, built by `pnpm install`
// through node-gyp): P-256 and P-384 signatures checked against a key given as its
// uncompressed point, without OpenSSL 3.0's per-key EC group build that every node:crypto
// import pays (one thread, P-256: ~95 µs per import + verify against ~190 through WebCrypto's
// raw import). Plain JS, so the verify workers (which start without the TS loader) share it.
import { createRequire } from 'node:module';
import { hash } from 'node:crypto';

let loaded;

/** `{ verify, error: null }` when the addon loads in this thread, else `{ verify: null, error }`. */
export function nativeEcdsa() {
  if (loaded === undefined) {
    try {
      const { verify } = createRequire(import.meta.url)('../../build/Release/ecdsa_verify.node');
      loaded = { verify, error: null };
    } catch (e) {
      loaded = { verify: null, error: e instanceof Error ? e.message : String(e) };
    }
  }
  return loaded;
}

/**
 * 1 valid, 0 invalid, -1 unusable key (wrong length, not the uncompressed form, off the curve).
 * `hashName` is node:crypto's name of the hash the signature names; null is refused (0).
 */
export function verifyEcPoint(verify, hashName, point, data, signature) {
  if (hashName === null) return 0;
  return verify(point, hash(hashName, data, 'buffer'), signature);
}
