/**
 * Base64, PEM and the CSPRNG port: the table encoder against Node's own base64 (an
 * independent implementation), and the pooled random source's contract.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fromBase64, toBase64, toPem, webCryptoRandom } from '../src/index.ts';
import { parsePem } from '../src/x509/pem.ts';

describe('toBase64', () => {
  it('matches Node for every length from 0 to 2,100 bytes (all three tail cases), and for 70 KB (the btoa path)', () => {
    for (let n = 0; n <= 2100; n++) {
      const b = new Uint8Array(randomBytes(n));
      expect(toBase64(b), `length ${n}`).toBe(Buffer.from(b).toString('base64'));
    }
    const big = new Uint8Array(randomBytes(70_000));
    expect(toBase64(big)).toBe(Buffer.from(big).toString('base64'));
  });

  it('encodes a view by its own bytes, not its whole buffer', () => {
    const whole = new Uint8Array(randomBytes(100));
    const view = whole.subarray(10, 17);
    expect(toBase64(view)).toBe(Buffer.from(view).toString('base64'));
    expect(fromBase64(toBase64(view))).toEqual(new Uint8Array(view));
  });
});

describe('toPem', () => {
  it.each([0, 1, 47, 48, 49, 600, 1500])('writes %i bytes as 64-character lines that OpenSSL-style parsers read back', (n) => {
    const der = new Uint8Array(randomBytes(n));
    const pem = toPem('CERTIFICATE', der);
    const lines = pem.split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(pem.endsWith('-----END CERTIFICATE-----\n')).toBe(true);
    const body = lines.slice(1, -2);
    for (const line of body.slice(0, -1)) expect(line).toHaveLength(64);
    expect(body.join('')).toBe(Buffer.from(der).toString('base64'));
    if (n > 0) expect(parsePem(pem)).toEqual([{ label: 'CERTIFICATE', der }]);
  });
});

describe('webCryptoRandom', () => {
  it('hands out the lengths asked for, small ones from its pool and large ones (above 64 KiB) directly', () => {
    for (const n of [0, 1, 16, 255, 256, 257, 4096, 65_536, 200_000]) expect(webCryptoRandom.bytes(n)).toHaveLength(n);
  });

  it('never hands out the same bytes twice, across pool refills', () => {
    const seen = new Set<string>();
    // 16-byte values: 3,000 of them span about a dozen pool refills.
    for (let i = 0; i < 3000; i++) seen.add(Buffer.from(webCryptoRandom.bytes(16)).toString('hex'));
    expect(seen.size).toBe(3000);
  });

  it('returns a copy the caller owns: changing it changes nothing handed out later', () => {
    const a = webCryptoRandom.bytes(32);
    a.fill(0);
    const b = webCryptoRandom.bytes(32);
    expect(b.some((x) => x !== 0)).toBe(true);
    expect(a.buffer).not.toBe(b.buffer);
  });

  it('looks uniform: every byte value shows up in 64 KiB of pooled output, near its expected count', () => {
    const counts = new Array<number>(256).fill(0);
    for (let i = 0; i < 256; i++) for (const x of webCryptoRandom.bytes(256)) counts[x]!++;
    // 65,536 bytes, 256 each expected; a broken pool (zeros, repeats) lands far outside this.
    expect(Math.min(...counts)).toBeGreaterThan(160);
    expect(Math.max(...counts)).toBeLessThan(360);
  });
});
