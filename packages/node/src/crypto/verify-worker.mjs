// Signature verification on a worker thread (plain JS: workers start without the TS loader).
// Messages: a batch of jobs as `{ m, b }` (see node-crypto-backend.ts: six int32 per job in m —
// id, key format, hash, key length, data length, signature length — and their bytes back to
// back in b); replies, a few jobs at a time, an Int32Array of [id, result] where result is 1
// (valid), 0 (invalid) or -1 (the key itself is unusable). keyFormat 'P-256' or
// 'P-384': key is the uncompressed EC point, imported with WebCrypto's raw format (the point is
// checked to be on the curve; both curves have cofactor 1, so no order check is needed) — in
// OpenSSL 3 that costs less than building the key from JWK coordinates or decoding an SPKI, and
// the KeyObject it gives verifies faster too; 'spki': key is a DER SubjectPublicKeyInfo.
// EC points go to the native verifier instead (ecdsa-native.mjs) when it is built and
// workerData.native is set: half the cost of the WebCrypto import and verify.
import { createPublicKey, KeyObject, verify, webcrypto } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { nativeEcdsa, POINT_LENGTH, verifyEcPoint } from './ecdsa-native.mjs';

// The event loop is the pipeline's serial stage: when every core is busy it must not wait for
// a verification to be descheduled. On Linux a thread's nice value is its own, so this worker
// lowers only itself (it still gets every cycle the event loop leaves); elsewhere it stays put.
if (workerData?.nice) {
  try {
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), workerData.nice);
  } catch {
    // Not Linux, or not allowed: same priority as the event loop.
  }
}

const CURVES = { 'P-256': { name: 'ECDSA', namedCurve: 'P-256' }, 'P-384': { name: 'ECDSA', namedCurve: 'P-384' } };

/** The key as a KeyObject, or null when it is unusable. */
async function importKey(format, key) {
  try {
    if (format === 'spki') return createPublicKey({ key: Buffer.from(key.buffer, key.byteOffset, key.byteLength), format: 'der', type: 'spki' });
    if (key.length !== POINT_LENGTH[format] || key[0] !== 4) return null;
    return KeyObject.from(await webcrypto.subtle.importKey('raw', key, CURVES[format], false, ['verify']));
  } catch {
    return null;
  }
}

const native = workerData?.native ? nativeEcdsa().verify : null;
// The backend asks for it only after loading it on its own thread: a worker that cannot is a
// broken install, reported as the worker's error rather than quietly verifying the slow way.
if (workerData?.native && native === null) throw new Error(`the native ECDSA verifier did not load in a worker: ${nativeEcdsa().error}`);

const viaNative = (job) => native !== null && job[1] !== 'spki';

const FORMATS = ['P-256', 'P-384', 'spki'];
const HASHES = [null, 'sha256', 'sha384', 'sha512'];

function unpack({ m, b }) {
  const jobs = [];
  for (let i = 0, o = 0; i < m.length; i += 6) {
    const key = b.subarray(o, o + m[i + 3]);
    const data = b.subarray(o + m[i + 3], o + m[i + 3] + m[i + 4]);
    o += m[i + 3] + m[i + 4];
    const signature = b.subarray(o, o + m[i + 5]);
    o += m[i + 5];
    jobs.push([m[i], FORMATS[m[i + 1]], key, HASHES[m[i + 2]], data, signature]);
  }
  return jobs;
}

// Results go back in chunks of a few jobs, not once the whole batch is done: the event loop
// picks up each chunk's issuances while the worker verifies the next, instead of the two
// threads taking turns on a whole batch (on the issuance bench, 2 cores, the event loop went
// from ~88% to ~98% busy and the rate up ~4.6% over four alternated pairs of runs).
const CHUNK = 4;

parentPort.on('message', async (batch) => {
  const jobs = unpack(batch);
  for (let start = 0; start < jobs.length; start += CHUNK) {
    const end = Math.min(start + CHUNK, jobs.length);
    const keys = await Promise.all(jobs.slice(start, end).map((job) => (viaNative(job) ? null : importKey(job[1], job[2]))));
    const out = new Int32Array((end - start) * 2);
    for (let i = start; i < end; i++) {
      const [id, format, key, hash, data, signature] = jobs[i];
      const k = keys[i - start];
      let result = -1;
      if (viaNative(jobs[i])) {
        result = verifyEcPoint(native, format, hash, key, data, signature);
      } else if (k !== null) {
        try {
          result = verify(hash, data, k, signature) ? 1 : 0;
        } catch {
          result = 0;
        }
      }
      out[(i - start) * 2] = id;
      out[(i - start) * 2 + 1] = result;
    }
    parentPort.postMessage(out, [out.buffer]);
  }
});
