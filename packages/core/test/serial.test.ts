import { describe, expect, it } from 'vitest';
import { newInstanceId, newSerial, newTokenId, serialHex, toHex } from '../src/index.ts';
import { Prng } from './support/prng.ts';

const T = Date.UTC(2030, 0, 1, 12, 0, 0);
const at = (ms: number) => new Date(T + ms);

describe('newSerial', () => {
  it('is 0x4a, three octets of the time in 1/64 s, then 16 octets from the random source', () => {
    const rng = new Prng(1);
    let drawn: Uint8Array = new Uint8Array();
    const serial = newSerial({ bytes: (n) => (drawn = rng.bytes(n)) }, at(0));
    expect(serial).toHaveLength(20);
    expect(serial[0]).toBe(0x4a);
    const units = Math.floor((T * 64) / 1000) % 2 ** 24;
    expect(toHex(serial.subarray(1, 4))).toBe(units.toString(16).padStart(6, '0'));
    expect(drawn).toHaveLength(16);
    expect(toHex(serial.subarray(4))).toBe(toHex(drawn));
  });

  it('sorts serials made in later 1/64 s units after earlier ones, as the store keys them (hex text)', () => {
    const rng = new Prng(2);
    const random = { bytes: (n: number) => rng.bytes(n) };
    // From 1 s before the counter wraps to just before it: the store's indexes then grow at one end.
    const beforeWrap = (2 ** 24 / 64) * 1000 * Math.ceil((T * 64) / 1000 / 2 ** 24) - T;
    const times = Array.from({ length: 64 }, (_, i) => beforeWrap - 1024 + i * 16);
    const serials = times.map((ms) => serialHex(newSerial(random, at(ms))));
    expect([...serials].sort()).toEqual(serials);
    // Within one unit the random octets decide; across the wrap the counter starts again at 0.
    expect(serialHex(newSerial(random, at(beforeWrap))).slice(2, 8)).toBe('000000');
  });

  it('keeps the low 24 bits of the 1/64 s count, and stays positive and 20 octets, before 1970 and far ahead', () => {
    const random = { bytes: (n: number) => new Uint8Array(n).fill(0xff) };
    // An oracle in exact integers: floor(ms * 64 / 1000), its low 24 bits.
    const units = (ms: number) => {
      const u = BigInt(ms) * 64n;
      const q = u / 1000n - (u % 1000n < 0n ? 1n : 0n);
      return BigInt.asUintN(24, q).toString(16).padStart(6, '0');
    };
    for (const d of [new Date(-1), new Date(Date.UTC(1950, 0, 1, 0, 0, 0, 7)), new Date(Date.UTC(9999, 11, 31, 23, 59, 59, 999))]) {
      const s = newSerial(random, d);
      expect(s).toHaveLength(20);
      expect(s[0]).toBe(0x4a);
      expect(toHex(s)).toBe(`4a${units(d.getTime())}${'ff'.repeat(16)}`);
    }
  });
});

describe('newTokenId', () => {
  it("is a serial's three time octets, then 5 octets from the random source, as 16 hex digits", () => {
    const rng = new Prng(4);
    let drawn: Uint8Array = new Uint8Array();
    const id = newTokenId({ bytes: (n) => (drawn = rng.bytes(n)) }, at(0));
    expect(drawn).toHaveLength(5);
    expect(id).toBe(serialHex(newSerial({ bytes: (n) => new Uint8Array(n) }, at(0))).slice(2, 8) + toHex(drawn));
  });

  it('sorts ids minted in later 1/64 s units after earlier ones', () => {
    const rng = new Prng(5);
    const ids = Array.from({ length: 64 }, (_, i) => newTokenId({ bytes: (n) => rng.bytes(n) }, at(i * 16)));
    expect([...ids].sort()).toEqual(ids);
  });
});

describe('newInstanceId', () => {
  it('is a UUIDv7 of the time, its other 74 bits from the random source', () => {
    const rng = new Prng(3);
    const id = newInstanceId({ bytes: (n) => rng.bytes(n) }, at(0));
    const ms = T.toString(16).padStart(12, '0');
    expect(id).toMatch(new RegExp(`^${ms.slice(0, 8)}-${ms.slice(8)}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`));
    const fixed = newInstanceId({ bytes: (n) => new Uint8Array(n) }, at(0));
    expect(fixed.slice(14)).toBe('7000-8000-000000000000');
  });

  it('sorts IDs made in later milliseconds after earlier ones', () => {
    const rng = new Prng(4);
    const ids = Array.from({ length: 50 }, (_, i) => newInstanceId({ bytes: (n) => rng.bytes(n) }, at(i)));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(50);
  });
});
