// Signature verification on a worker thread (plain JS: workers start without the TS loader).
// Messages: an array of jobs [id, keyFormat, key, hash, data, signature]; replies [id, result]
// where result is 1 (valid), 0 (invalid) or -1 (the key itself is unusable).
import { createPublicKey, verify } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

parentPort.on('message', (jobs) => {
  const out = new Int32Array(jobs.length * 2);
  for (let i = 0; i < jobs.length; i++) {
    const [id, format, key, hash, data, signature] = jobs[i];
    let result;
    let k;
    try {
      k = format === 'jwk' ? createPublicKey({ key, format: 'jwk' }) : createPublicKey({ key: Buffer.from(key), format: 'der', type: 'spki' });
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
