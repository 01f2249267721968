/**
 * The native ECDSA verifier against node:crypto as the oracle: for every key, valid signatures
 * and each kind of damage (to the signature's bytes, its DER, its integers, the data, the
 * point) must get the same answer from both — native verify(point, digest, signature) as
 * 1 / 0 / -1, node:crypto as true / false / an import that throws.
 */
import { createPublicKey, generateKeyPairSync, hash, randomBytes, sign, verify, type JsonWebKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nativeEcdsa } from '../src/crypto/ecdsa-native.mjs';
import { NodeCryptoBackend } from '../src/index.ts';

const CURVES = {
  'P-256': { bytes: 32, hash: 'sha256', n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n, p: 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n },
  'P-384': { bytes: 48, hash: 'sha384', n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n, p: 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n },
} as const;
type Curve = keyof typeof CURVES;

const native = nativeEcdsa();

const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const big = (b: Uint8Array) => BigInt('0x' + (Buffer.from(b).toString('hex') || '0'));
const bytesOf = (v: bigint, len: number) => Uint8Array.from(Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex'));

/** DER INTEGER of a non-negative value, minimal. */
function derInt(v: bigint): Uint8Array {
  let hex = v.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let b = Buffer.from(hex, 'hex');
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return Uint8Array.from([0x02, b.length, ...b]);
}
const derSig = (r: bigint, s: bigint) => {
  const body = Uint8Array.from([...derInt(r), ...derInt(s)]);
  return Uint8Array.from([0x30, body.length, ...body]);
};
function rs(sig: Uint8Array): [bigint, bigint] {
  const rLen = sig[3]!;
  const r = sig.subarray(4, 4 + rLen);
  const s = sig.subarray(6 + rLen, 6 + rLen + sig[5 + rLen]!);
  return [big(r), big(s)];
}

/** The oracle: node:crypto importing the point from its JWK coordinates. */
function oracle(curve: Curve, point: Uint8Array, data: Uint8Array, sig: Uint8Array): -1 | 0 | 1 {
  const n = CURVES[curve].bytes;
  if (point.length !== 1 + 2 * n || point[0] !== 4) return -1;
  let key;
  try {
    const jwk: JsonWebKey = { kty: 'EC', crv: curve, x: b64u(point.subarray(1, 1 + n)), y: b64u(point.subarray(1 + n)) };
    key = createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    return -1;
  }
  try {
    return verify(CURVES[curve].hash, data, { key, dsaEncoding: 'der' }, sig) ? 1 : 0;
  } catch {
    return 0;
  }
}

function keyOf(curve: Curve) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Uint8Array.from([4, ...Buffer.from(jwk.x!, 'base64url'), ...Buffer.from(jwk.y!, 'base64url')]);
  return { privateKey, point };
}

/** Each kind of damage, applied to one valid (point, data, signature). */
function cases(curve: Curve, point: Uint8Array, data: Uint8Array, sig: Uint8Array): [string, Uint8Array, Uint8Array, Uint8Array][] {
  const { n, p, bytes } = CURVES[curve];
  const [r, s] = rs(sig);
  const flip = (b: Uint8Array, at: number, bit = 1) => {
    const c = Uint8Array.from(b);
    c[at]! ^= bit;
    return c;
  };
  const at = (len: number) => randomBytes(2).readUInt16BE() % len;
  const x = point.subarray(1, 1 + bytes);
  const y = point.subarray(1 + bytes);
  const longForm = Uint8Array.from([0x30, 0x81, sig[1]!, ...sig.subarray(2)]);
  const paddedR = (() => {
    const rInt = derInt(r);
    const padded = Uint8Array.from([0x02, rInt[1]! + 1, 0, ...rInt.subarray(2)]);
    const body = Uint8Array.from([...padded, ...derInt(s)]);
    return Uint8Array.from([0x30, body.length, ...body]);
  })();
  return [
    ['valid', point, data, sig],
    ['high s (n - s), which ECDSA also accepts', point, data, derSig(r, n - s)],
    ['a bit of the signature flipped', point, data, flip(sig, at(sig.length), 1 << at(8))],
    ['the signature truncated', point, data, sig.subarray(0, sig.length - 1)],
    ['a byte after the signature', point, data, Uint8Array.from([...sig, 0])],
    ['an empty signature', point, data, new Uint8Array(0)],
    ['a long-form DER length', point, data, longForm],
    ['r padded with a redundant zero', point, data, paddedR],
    ['r = 0', point, data, derSig(0n, s)],
    ['s = n', point, data, derSig(r, n)],
    ['r + n', point, data, derSig(r + n, s)],
    ['other data', point, flip(data, at(data.length)), sig],
    ['a bit of the point flipped', flip(point, 1 + at(point.length - 1), 1 << at(8)), data, sig],
    ['x = p, off the field', Uint8Array.from([4, ...bytesOf(p, bytes), ...y]), data, sig],
    ['the point negated (y = p - y)', Uint8Array.from([4, ...x, ...bytesOf(p - big(y), bytes)]), data, sig],
    ['the compressed form', Uint8Array.from([2 + (y[bytes - 1]! & 1), ...x]), data, sig],
    ['the hybrid form', Uint8Array.from([6 + (y[bytes - 1]! & 1), ...x, ...y]), data, sig],
    ['the identity', Uint8Array.from([0]), data, sig],
    ['all zero coordinates', Uint8Array.from([4, ...new Uint8Array(2 * bytes)]), data, sig],
  ];
}

describe('the native ECDSA verifier', () => {
  it('is built by the install and loads', () => {
    expect(native.error).toBeNull();
    expect(typeof native.verify).toBe('function');
    expect(new NodeCryptoBackend({ workers: 0 }).ecdsaPath).toEqual({ path: 'native' });
    expect(new NodeCryptoBackend({ workers: 0, native: false }).ecdsaPath).toEqual({ path: 'webcrypto', reason: 'turned off (native: false)' });
  });

  it.each([
    ['P-256', 200],
    ['P-384', 60],
  ] as [Curve, number][])('agrees with node:crypto on %s, over %i keys and every kind of damage', (curve, keys) => {
    const verifyNative = native.verify!;
    const seen = new Map<string, Set<number>>();
    for (let i = 0; i < keys; i++) {
      const { privateKey, point } = keyOf(curve);
      const data = new Uint8Array(randomBytes(1 + (i % 300)));
      const sig = new Uint8Array(sign(CURVES[curve].hash, data, { key: privateKey, dsaEncoding: 'der' }));
      for (const [name, pt, d, sg] of cases(curve, point, data, sig)) {
        const got = verifyNative(pt, hash(CURVES[curve].hash, d, 'buffer'), sg);
        const want = oracle(curve, pt, d, sg);
        if (got !== want) throw new Error(`${curve} key ${i}, ${name}: native ${got}, node:crypto ${want}`);
        seen.set(name, (seen.get(name) ?? new Set()).add(got));
      }
    }
    // The damage is real: every case but the two valid ones was refused every time.
    expect(seen.get('valid')).toEqual(new Set([1]));
    expect(seen.get('high s (n - s), which ECDSA also accepts')).toEqual(new Set([1]));
    for (const [name, results] of seen) if (!name.startsWith('valid') && !name.startsWith('high s')) expect([name, results.has(1)]).toEqual([name, false]);
    expect(seen.get('x = p, off the field')).toEqual(new Set([-1]));
    expect(seen.get('the compressed form')).toEqual(new Set([-1]));
    expect(seen.get('a long-form DER length')).toEqual(new Set([0]));
  });

  it.each(['P-256', 'P-384'] as Curve[])('agrees with node:crypto on %s signatures over SHA-256, SHA-384 and SHA-512 (a longer digest is cut to the order, a shorter one is not padded)', (curve) => {
    for (const h of ['sha256', 'sha384', 'sha512']) {
      for (let i = 0; i < 30; i++) {
        const { privateKey, point } = keyOf(curve);
        const data = new Uint8Array(randomBytes(40));
        const sig = new Uint8Array(sign(h, data, { key: privateKey, dsaEncoding: 'der' }));
        const bad = Uint8Array.from(sig);
        bad[bad.length - 1]! ^= 1;
        const jwk: JsonWebKey = { kty: 'EC', crv: curve, x: b64u(point.subarray(1, 1 + CURVES[curve].bytes)), y: b64u(point.subarray(1 + CURVES[curve].bytes)) };
        const key = createPublicKey({ key: jwk, format: 'jwk' });
        for (const sg of [sig, bad]) {
          const want = verify(h, data, { key, dsaEncoding: 'der' }, sg) ? 1 : 0;
          expect([h, i, native.verify!(point, hash(h, data, 'buffer'), sg)]).toEqual([h, i, want]);
        }
        expect(native.verify!(point, hash(h, data, 'buffer'), sig)).toBe(1);
      }
    }
  });

  it('checks a P-256 signature against a P-256 key only: a P-384 point of the right length is another key', () => {
    const k256 = keyOf('P-256');
    const k384 = keyOf('P-384');
    const data = randomBytes(64);
    const sig = new Uint8Array(sign('sha256', data, { key: k256.privateKey, dsaEncoding: 'der' }));
    const digest = hash('sha256', data, 'buffer');
    expect(native.verify!(k256.point, digest, sig)).toBe(1);
    expect(native.verify!(k384.point, digest, sig)).toBe(0);
    expect(native.verify!(k256.point.subarray(0, 64), digest, sig)).toBe(-1);
  });

  it('throws a TypeError on arguments that are not three Uint8Arrays, and leaves node:crypto working', () => {
    const { privateKey, point } = keyOf('P-256');
    const v = native.verify as unknown as (...a: unknown[]) => number;
    expect(() => v(point, new Uint8Array(32))).toThrow(TypeError);
    expect(() => v('point', new Uint8Array(32), new Uint8Array(8))).toThrow(TypeError);
    expect(() => v(point, new Uint16Array(16), new Uint8Array(8))).toThrow(TypeError);
    expect(() => v(point, new Uint8Array(0), new Uint8Array(8))).toThrow(TypeError);
    // Refusals leave nothing on this thread's OpenSSL error queue for node:crypto to trip on.
    expect(native.verify!(Uint8Array.from([4, ...new Uint8Array(64)]), new Uint8Array(32), new Uint8Array(8))).toBe(-1);
    const data = randomBytes(10);
    const sig = sign('sha256', data, privateKey);
    expect(verify('sha256', data, createPublicKey(privateKey), sig)).toBe(true);
  });
});
