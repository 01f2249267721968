import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { AgentCAError, parseSpkiDer, signatureSchemeFor, type KeyAlgorithm } from '@agentca/core';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeCryptoBackend } from '../src/index.ts';

const data = new TextEncoder().encode('a CertificationRequestInfo, more or less');

function keyPair(alg: KeyAlgorithm): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (alg) {
    case 'ec-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ec-p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'ed25519':
      return generateKeyPairSync('ed25519');
    default:
      return generateKeyPairSync('rsa', { modulusLength: Number(alg.slice(4)) });
  }
}

function signed(alg: KeyAlgorithm) {
  const { privateKey, publicKey } = keyPair(alg);
  const info = parseSpkiDer(new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })));
  const scheme = signatureSchemeFor(alg);
  const hash = scheme.hash === null ? null : scheme.hash.replace('-', '').toLowerCase();
  const signature = new Uint8Array(sign(hash, data, { key: privateKey, ...(alg.startsWith('ec-') ? { dsaEncoding: 'der' as const } : {}) }));
  return { info, scheme, signature };
}

// EC keys take the native verifier by default, and WebCrypto's import with native: false.
const backends = {
  'two worker threads': new NodeCryptoBackend({ workers: 2 }),
  'the calling thread': new NodeCryptoBackend({ workers: 0 }),
  'two worker threads without the native verifier': new NodeCryptoBackend({ workers: 2, native: false }),
  'the calling thread without the native verifier': new NodeCryptoBackend({ workers: 0, native: false }),
};
afterAll(async () => {
  for (const b of Object.values(backends)) await b.close();
});

describe.each(Object.entries(backends))('NodeCryptoBackend on %s', (_name, backend) => {
  it.each(['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as KeyAlgorithm[])('verifies a %s signature, and refuses it over other data or bytes', async (alg) => {
    const { info, scheme, signature } = signed(alg);
    expect(await backend.verify(info, scheme, data, signature)).toBe(true);
    expect(await backend.verify(info, scheme, data.subarray(1), signature)).toBe(false);
    const bad = signature.slice();
    bad[bad.length - 1]! ^= 1;
    expect(await backend.verify(info, scheme, data, bad)).toBe(false);
    expect(await backend.verify(info, scheme, data, new Uint8Array(0))).toBe(false);
  });

  it('answers many concurrent verifications each with its own result', async () => {
    // Valid, invalid, and (every fourteenth) a P-256 point off the curve, which rejects: a worker
    // answers a batch a few jobs at a time, and each answer must reach its own promise.
    const jobs = Array.from({ length: 200 }, (_, i) => {
      const j = signed(i % 2 ? 'ec-p256' : 'ed25519');
      if (i % 14 !== 7) return { ...j, want: i % 3 !== 0 };
      const point = j.info.keyBytes.slice();
      point[point.length - 1]! ^= 1;
      return { ...j, info: { ...j.info, keyBytes: point }, want: 'ERR_CSR_KEY_INVALID' };
    });
    const results = await Promise.all(
      jobs.map((j, i) => backend.verify(j.info, j.scheme, i % 3 !== 0 ? data : data.subarray(2), j.signature).catch((e: AgentCAError) => e.code)),
    );
    expect(results).toEqual(jobs.map((j) => j.want));
  });

  it.each(['ec-p256', 'ec-p384'] as KeyAlgorithm[])('refuses a %s point off the curve with ERR_CSR_KEY_INVALID', async (alg) => {
    const { info, scheme, signature } = signed(alg);
    const point = info.keyBytes.slice();
    point[point.length - 1]! ^= 1;
    const e = await backend.verify({ ...info, keyBytes: point }, scheme, data, signature).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AgentCAError);
    expect(e).toMatchObject({ code: 'ERR_CSR_KEY_INVALID', message: `the ${alg} public key is not valid` });
  });

  it('does not verify with a scheme that does not fit the key', async () => {
    const { info, signature } = signed('ec-p256');
    expect(await backend.verify(info, signatureSchemeFor('ed25519'), data, signature)).toBe(false);
  });
});

describe('NodeCryptoBackend workers', () => {
  it('verify views into larger buffers by their own bytes (a batch travels as two packed buffers)', async () => {
    const backend = new NodeCryptoBackend({ workers: 1 });
    try {
      const jobs = (['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as KeyAlgorithm[]).map((alg) => ({ alg, ...signed(alg) }));
      // Every byte string sits at an offset inside a bigger buffer with junk around it.
      const embed = (b: Uint8Array) => {
        const big = new Uint8Array(b.length + 200).fill(0xa5);
        big.set(b, 77);
        return big.subarray(77, 77 + b.length);
      };
      const results = await Promise.all(
        jobs.flatMap((j) => [
          backend.verify({ ...j.info, keyBytes: embed(j.info.keyBytes), spki: embed(j.info.spki) }, j.scheme, embed(data), embed(j.signature)),
          backend.verify({ ...j.info, keyBytes: embed(j.info.keyBytes), spki: embed(j.info.spki) }, j.scheme, embed(data.subarray(1)), embed(j.signature)),
        ]),
      );
      expect(results).toEqual(jobs.flatMap(() => [true, false]));
    } finally {
      await backend.close();
    }
  });

  it('answer the first jobs of a batch before the last are verified', async () => {
    const backend = new NodeCryptoBackend({ workers: 1 });
    try {
      const jobs = Array.from({ length: 40 }, () => signed('ec-p256'));
      const settled = jobs.map(() => false);
      let lastSettledWithFirst: boolean | undefined;
      // All 40 go to the worker as one batch (queued in the same turn). Once the first result's
      // reaction has run, a microtask queued then runs after every reaction already queued: had
      // the whole batch come back in one message, the last job's would be among them.
      const all = jobs.map((j, i) =>
        backend.verify(j.info, j.scheme, data, j.signature).then((ok) => {
          settled[i] = true;
          if (i === 0) queueMicrotask(() => (lastSettledWithFirst = settled[jobs.length - 1]));
          return ok;
        }),
      );
      expect(await Promise.all(all)).toEqual(jobs.map(() => true));
      expect(lastSettledWithFirst).toBe(false);
    } finally {
      await backend.close();
    }
  });

  it.runIf(process.platform === 'linux')('run below the event loop (nice 10 by default, as asked otherwise), and never lower the calling thread', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const niceOf = () =>
      new Map(
        readdirSync('/proc/self/task').map((tid) => {
          // Fields after "(comm) ": state is index 0, so nice (field 19 of stat) is index 16.
          const after = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
          return [tid, Number(after[16])] as const;
        }),
      );
    const before = niceOf();
    const { info, scheme, signature } = signed('ec-p256');
    const niced = new NodeCryptoBackend({ workers: 2 });
    let plain: NodeCryptoBackend | undefined;
    try {
      expect(await niced.verify(info, scheme, data, signature)).toBe(true);
      expect(await niced.verify(info, scheme, data, signature)).toBe(true); // the second worker (round robin)
      const afterNiced = niceOf();
      const nicedThreads = [...afterNiced].filter(([tid]) => !before.has(tid));
      expect(nicedThreads.filter(([, nice]) => nice === 10)).toHaveLength(2);
      plain = new NodeCryptoBackend({ workers: 1, nice: 0 });
      expect(await plain.verify(info, scheme, data, signature)).toBe(true);
      const afterPlain = niceOf();
      const plainThreads = [...afterPlain].filter(([tid]) => !afterNiced.has(tid));
      expect(plainThreads.length).toBeGreaterThan(0);
      expect(plainThreads.every(([, nice]) => nice === 0)).toBe(true);
      expect(afterPlain.get(String(process.pid))).toBe(before.get(String(process.pid)));
    } finally {
      await niced.close();
      await plain?.close();
    }
    expect(() => new NodeCryptoBackend({ nice: 20 })).toThrow(RangeError);
  });
});
