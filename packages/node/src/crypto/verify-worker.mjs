// Signature verification on a worker thread (plain JS: workers start without the TS loader).
// Messages: an array of jobs [id, keyFormat, key, hash, data, signature]; replies [id, result]
// where result is 1 (valid), 0 (invalid) or -1 (the key itself is unusable). keyFormat 'P-256' or
// 'P-384': key is the uncompressed EC point, imported as a JWK (OpenSSL 3 builds a key from
// coordinates faster than it decodes an SPKI); 'spki': key is a DER SubjectPublicKeyInfo.
import { createPublicKey, verify } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

const b64url = (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
function ecJwk(crv, point) {
  if (point.length !== (crv === 'P-256' ? 65 : 97) || point[0] !== 4) throw new Error('not an uncompressed point');
  const n = crv === 'P-256' ? 32 : 48;
  return { kty: 'EC', crv, x: b64url(point.subarray(1, 1 + n)), y: b64url(point.subarray(1 + n)) };
}

parentPort.on('message', (jobs) => {
  const out = new Int32Array(jobs.length * 2);
  for (let i = 0; i < jobs.length; i++) {
    const [id, format, key, hash, data, signature] = jobs[i];
    let result;
    let k;
    try {
      k = format === 'spki' ? createPublicKey({ key: Buffer.from(key), format: 'der', type: 'spki' }) : createPublicKey({ key: ecJwk(format, key), format: 'jwk' });
    } catch {
      result = -1;
    }
    if (result === undefined) {
      try {
        result = verify(hash, data, k, signature) ? 1 : 0;
      } catch {
        result = 0;
      }
    }
    out[i * 2] = id;
    out[i * 2 + 1] = result;
  }
  parentPort.postMessage(out, [out.buffer]);
});
