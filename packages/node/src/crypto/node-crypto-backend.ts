/**
 * The CryptoBackend on Node: digests with node:crypto (synchronous, microseconds), and
 * signature verification on worker threads. Importing a CSR's public key costs OpenSSL 3.0
 * most of what verifying with it does (P-256 here, one thread: ~70 µs to import a raw point,
 * ~97 µs to verify with an imported key; perf shows the import building EC groups), and it
 * runs once per CSR, so both stay off the event loop. P-256 and P-384 keys skip that import
 * when the native verifier is built (ecdsa-native.mjs): it keeps one EC key per curve and
 * thread and swaps only the point in.
 */
import { createPublicKey, hash, verify as nodeVerify, type JsonWebKey } from 'node:crypto';
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { InvalidRequest, schemeFitsKey, toBase64, type CryptoBackend, type PublicKeyInfo, type SignatureScheme } from '@agentca/core';
import { nativeEcdsa, verifyEcPoint, type NativeVerify } from './ecdsa-native.mjs';

/**
 * `P-256`/`P-384`: the key is the uncompressed point, which the worker imports in WebCrypto's
 * raw format (cheaper in OpenSSL 3 than a JWK or an SPKI); `spki`: DER.
 */
type KeyFormat = 'P-256' | 'P-384' | 'spki';
type Job = [id: number, format: KeyFormat, key: Uint8Array, hash: HashName, data: Uint8Array, signature: Uint8Array];
type HashName = 'sha256' | 'sha384' | 'sha512' | null;

/**
 * A batch goes to a worker as two transferred buffers, not as cloned objects: `m` holds six
 * int32 per job (id, key format, hash, and the lengths of key, data and signature, as indexes
 * into these tables) and `b` the three byte strings of every job, back to back.
 */
const FORMATS: readonly KeyFormat[] = ['P-256', 'P-384', 'spki'];
const HASHES: readonly HashName[] = [null, 'sha256', 'sha384', 'sha512'];
const JOB_INTS = 6;

const b64url = (b: Uint8Array) => toBase64(b).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

function keyForWorker(key: PublicKeyInfo): { format: KeyFormat; key: Uint8Array } {
  if (key.family === 'ec-p256') return { format: 'P-256', key: key.keyBytes };
  if (key.family === 'ec-p384') return { format: 'P-384', key: key.keyBytes };
  return { format: 'spki', key: key.spki };
}

function ecJwk(crv: 'P-256' | 'P-384', point: Uint8Array): JsonWebKey {
  const n = crv === 'P-256' ? 32 : 48;
  return { kty: 'EC', crv, x: b64url(point.subarray(1, 1 + n)), y: b64url(point.subarray(1 + n)) };
}

export interface NodeCryptoBackendOptions {
  /**
   * Worker threads for verification; default: one per CPU but one (at least 1), since the event
   * loop keeps a core busy on its own (on 2 cores, 1 worker issued ~10% more than 2). 0 verifies
   * on the calling thread.
   */
  workers?: number;
  /**
   * Nice value of the worker threads on Linux (0–19, default 10): below the event loop, which
   * is the one stage every issuance passes through, so a busy machine delays verifications
   * rather than the loop. 0 keeps them at the event loop's priority.
   */
  nice?: number;
  /**
   * Verify P-256 and P-384 signatures with the native verifier when it is built (default
   * true); false, or an addon that does not load, uses WebCrypto's import and node:crypto.
   */
  native?: boolean;
}

export class NodeCryptoBackend implements CryptoBackend {
  readonly #workers: Worker[] = [];
  readonly #pending = new Map<number, { resolve(ok: boolean): void; reject(e: unknown): void; key: PublicKeyInfo }>();
  readonly #queues: Job[][] = [];
  #nextId = 1;
  #rr = 0;
  #scheduled = false;
  readonly #native: NativeVerify | null;

  constructor(o: NodeCryptoBackendOptions = {}) {
    const n = o.workers ?? Math.max(1, cpus().length - 1);
    const nice = o.nice ?? 10;
    if (!Number.isInteger(nice) || nice < 0 || nice > 19) throw new RangeError('nice must be an integer from 0 to 19');
    this.#native = o.native === false ? null : nativeEcdsa().verify;
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./verify-worker.mjs', import.meta.url), { workerData: { nice, native: this.#native !== null } });
      w.unref();
      w.on('message', (res: Int32Array) => this.#settle(res));
      w.on('error', (e) => this.#failAll(e));
      this.#workers.push(w);
      this.#queues.push([]);
    }
  }

  /**
   * How EC signatures are verified: 'native' (the addon), or 'webcrypto' with the reason the
   * addon is not used (not built, failed to load, or turned off).
   */
  get ecdsaPath(): { path: 'native' } | { path: 'webcrypto'; reason: string } {
    if (this.#native !== null) return { path: 'native' };
    const { error } = nativeEcdsa();
    return { path: 'webcrypto', reason: error ?? 'turned off (native: false)' };
  }

  async digest(algorithm: 'SHA-1' | 'SHA-256', data: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(hash(algorithm === 'SHA-1' ? 'sha1' : 'sha256', data, 'buffer'));
  }

  verify(key: PublicKeyInfo, scheme: SignatureScheme, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    if (!schemeFitsKey(scheme, key)) return Promise.resolve(false);
    const hash = (scheme.hash === null ? null : scheme.hash.replace('-', '').toLowerCase()) as HashName;
    const { format, key: k } = keyForWorker(key);
    if (this.#workers.length === 0) {
      try {
        return Promise.resolve(verifyHere(format, k, hash, data, signature, key, this.#native));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const id = this.#nextId++;
    if (this.#nextId > 0x7fffffff) this.#nextId = 1;
    return new Promise<boolean>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, key });
      this.#queues[this.#rr]!.push([id, format, k, hash, data, signature]);
      this.#rr = (this.#rr + 1) % this.#workers.length;
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  /** Stops the worker threads; verifications still queued fail. */
  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
    this.#failAll(new Error('crypto backend closed'));
  }

  #flush(): void {
    this.#scheduled = false;
    this.#queues.forEach((q, i) => {
      if (q.length === 0) return;
      const jobs = q.splice(0);
      const m = new Int32Array(jobs.length * JOB_INTS);
      let n = 0;
      for (const j of jobs) n += j[2].length + j[4].length + j[5].length;
      const b = new Uint8Array(n);
      let o = 0;
      jobs.forEach(([id, format, key, hash, data, signature], k) => {
        m.set([id, FORMATS.indexOf(format), HASHES.indexOf(hash), key.length, data.length, signature.length], k * JOB_INTS);
        b.set(key, o);
        b.set(data, o + key.length);
        b.set(signature, o + key.length + data.length);
        o += key.length + data.length + signature.length;
      });
      this.#workers[i]!.postMessage({ m, b }, [m.buffer, b.buffer]);
    });
  }

  #settle(res: Int32Array): void {
    for (let i = 0; i < res.length; i += 2) {
      const p = this.#pending.get(res[i]!);
      if (!p) continue;
      this.#pending.delete(res[i]!);
      const r = res[i + 1]!;
      if (r === -1) p.reject(new InvalidRequest('ERR_CSR_KEY_INVALID', `the ${p.key.family} public key is not valid`));
      else p.resolve(r === 1);
    }
  }

  #failAll(e: unknown): void {
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }
}

function verifyHere(format: KeyFormat, key: Uint8Array, hash: string | null, data: Uint8Array, signature: Uint8Array, info: PublicKeyInfo, native: NativeVerify | null): boolean {
  if (native !== null && format !== 'spki') {
    const r = verifyEcPoint(native, format, hash, key, data, signature);
    if (r === -1) throw new InvalidRequest('ERR_CSR_KEY_INVALID', `the ${info.family} public key is not valid`);
    return r === 1;
  }
  let k;
  try {
    k = format === 'spki' ? createPublicKey({ key: Buffer.from(key), format: 'der', type: 'spki' }) : createPublicKey({ key: ecJwk(format, key), format: 'jwk' });
  } catch {
    throw new InvalidRequest('ERR_CSR_KEY_INVALID', `the ${info.family} public key is not valid`);
  }
  try {
    return nodeVerify(hash, data, k, signature);
  } catch {
    return false;
  }
}
