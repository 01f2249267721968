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

/** The uncompressed point's length per curve: 0x04, x, y. */
export const POINT_LENGTH = { 'P-256': 65, 'P-384': 97 };

/**
 * 1 valid, 0 invalid, -1 unusable key (not a point of `format`'s length, not the uncompressed
 * form, off the curve). `hashName` is node:crypto's name of the hash the signature names; null,
 * or anything that makes hashing or the verifier throw, is an invalid signature (0), as
 * node:crypto's verify treats it.
 */
export function verifyEcPoint(verify, format, hashName, point, data, signature) {
  if (point.length !== POINT_LENGTH[format]) return -1;
  if (hashName === null) return 0;
  try {
    return verify(point, hash(hashName, data, 'buffer'), signature);
  } catch {
    return 0;
  }
}
