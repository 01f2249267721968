/**
 * The lean DER codec (x509/der.ts): writer → reader round trips, cross-checked against asn1js
 * (an independent BER decoder), and the reader's refusal of everything that is not DER.
 */
import * as asn1js from 'asn1js';
import { describe, expect, it } from 'vitest';
import { InvalidRequest, fromHex, toHex } from '../src/index.ts';
import {
  TAG,
  children,
  expectTag,
  header,
  oid,
  readBitString,
  readBoolean,
  readElement,
  readOid,
  readSmallInteger,
  readString,
  readTime,
  readTop,
  readUnsignedInteger,
  seq,
  smallInteger,
  time,
  tlv,
  unsignedInteger,
  type DerElement,
} from '../src/x509/der.ts';
import { caughtSync, expectAgentError } from './support/errors.ts';

const hex = (h: string): Uint8Array => fromHex(h.replace(/\s+/g, ''));

/** Decodes with asn1js and insists it consumed exactly the whole buffer without error. */
function asn1(der: Uint8Array): asn1js.AsnType {
  const r = asn1js.fromBER(der);
  expect(r.offset, `asn1js could not decode ${toHex(der)}`).toBe(der.length);
  expect(r.result.error).toBe('');
  return r.result;
}

function malformed(fn: () => unknown, what: string): void {
  const e = caughtSync(fn);
  expectAgentError(e, InvalidRequest, 'ERR_DER_MALFORMED', `malformed DER: ${what}`);
}

const top = (buf: Uint8Array): DerElement => readElement(buf, 0);

describe('INTEGER', () => {
  const magnitudes: [string, string, string][] = [
    // magnitude in, DER out, magnitude read back
    ['00', '020100', '00'],
    ['', '020100', '00'],
    ['000000', '020100', '00'],
    ['01', '020101', '01'],
    ['7f', '02017f', '7f'],
    ['80', '02020080', '80'],
    ['ff', '020200ff', 'ff'],
    ['0080', '02020080', '80'],
    ['0100', '02020100', '0100'],
    ['ffff', '020300ffff', 'ffff'],
    // a 20-octet serial with the high bit set needs the 00 pad (21 octets of content)
    ['ff'.repeat(20), `0215 00${'ff'.repeat(20)}`, 'ff'.repeat(20)],
  ];

  it.each(magnitudes)('unsignedInteger(%s) encodes as %s and reads back', (mag, der, back) => {
    const enc = unsignedInteger(hex(mag));
    expect(toHex(enc)).toBe(der.replace(/\s+/g, ''));
    expect(toHex(readUnsignedInteger(enc, top(enc)))).toBe(back);
    const decoded = asn1(enc) as asn1js.Integer;
    expect(decoded).toBeInstanceOf(asn1js.Integer);
    expect(decoded.toBigInt()).toBe(BigInt(`0x${back}`));
  });

  it.each([0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 31, 2 ** 32, 2 ** 48 - 1])('smallInteger(%d) round-trips', (n) => {
    const enc = smallInteger(n);
    expect(readSmallInteger(enc, top(enc))).toBe(n);
    expect((asn1(enc) as asn1js.Integer).toBigInt()).toBe(BigInt(n));
  });

  it('smallInteger refuses negative and unsafe numbers', () => {
    expect(() => smallInteger(-1)).toThrow(RangeError);
    expect(() => smallInteger(2 ** 53)).toThrow(RangeError);
    expect(() => smallInteger(1.5)).toThrow(RangeError);
  });

  it('readSmallInteger refuses values above 48 bits', () => {
    const enc = smallInteger(2 ** 48);
    malformed(() => readSmallInteger(enc, top(enc)), 'INTEGER out of range');
  });

  it.each([
    ['020180', 'negative INTEGER'],
    ['0202ff7f', 'negative INTEGER'],
    ['0202007f', 'non-minimal INTEGER'],
    ['02020000', 'non-minimal INTEGER'],
    ['0200', 'empty INTEGER'],
    ['040100', 'expected an INTEGER'],
  ])('readUnsignedInteger refuses %s: %s', (der, what) => {
    const buf = hex(der);
    malformed(() => readUnsignedInteger(buf, top(buf)), what);
  });
});

describe('OBJECT IDENTIFIER', () => {
  const oids = [
    '0.0',
    '0.9.2342.19200300.100.1.25',
    '1.2.840.113549.1.1.11',
    '1.2.840.10045.3.1.7',
    '1.3.101.112',
    '1.3.6.1.4.1.311.21.7',
    '1.39',
    '2.5.29.17',
    '2.40',
    '2.47.1',
    '2.999.3',
    '2.25.4234422942660203',
    '2.25.9007199254740991',
  ];

  it.each(oids)('%s round-trips and asn1js reads the same OID', (dotted) => {
    const enc = oid(dotted);
    expect(enc[0]).toBe(TAG.OID);
    expect(readOid(enc, top(enc))).toBe(dotted);
    const decoded = asn1(enc) as asn1js.ObjectIdentifier;
    expect(decoded).toBeInstanceOf(asn1js.ObjectIdentifier);
    expect(decoded.getValue()).toBe(dotted);
  });

  it('encodes the agentca extension OID exactly (first subidentifier 2*40+25, a 52-bit arc)', () => {
    expect(toHex(oid('2.25.4234422942660203'))).toBe('06096987c2e5f6dacdec6b');
  });

  it('matches encodings asn1js produces', () => {
    for (const dotted of oids) {
      const theirs = new Uint8Array(new asn1js.ObjectIdentifier({ value: dotted }).toBER());
      expect(toHex(oid(dotted)), dotted).toBe(toHex(theirs));
    }
  });

  it('round-trips a full 128-bit UUID arc (beyond what JavaScript numbers hold)', () => {
    const dotted = '2.25.329800735698586629295641978511506172918';
    const enc = oid(dotted);
    expect(readOid(enc, top(enc))).toBe(dotted);
  });

  it('tells apart two OIDs whose bytes hash alike in the decode cache', () => {
    // 2a 40 and 2b 21 give the same cache hash (h * 31 + b): the cache must compare the bytes.
    const a = hex('06022a40');
    const b = hex('06022b21');
    for (let round = 0; round < 2; round++) {
      expect(readOid(a, top(a))).toBe('1.2.64');
      expect(readOid(b, top(b))).toBe('1.3.33');
    }
  });

  it('decodes the same after its decode cache is full, and a bad OID stays bad after a good one with the same prefix was cached', () => {
    // 600 distinct OIDs fill the cache (512 entries) and spill past it; each must still read back right, twice.
    const many = Array.from({ length: 600 }, (_, i) => `1.3.6.1.4.1.99999.${i}.${i * 7919}`);
    for (let round = 0; round < 2; round++) for (const dotted of many) expect(readOid(oid(dotted), top(oid(dotted)))).toBe(dotted);
    const good = hex('06032a8648');
    expect(readOid(good, top(good))).toBe('1.2.840');
    const truncated = hex('06032a8686');
    malformed(() => readOid(truncated, top(truncated)), 'truncated OID arc');
  });

  it.each([
    ['0600', 'bad OBJECT IDENTIFIER length'],
    ['0602802a', 'non-minimal OID arc'],
    ['06032a8001', 'non-minimal OID arc'],
    ['06022a86', 'truncated OID arc'],
    [`0641${'2a'.repeat(65)}`, 'bad OBJECT IDENTIFIER length'],
    ['020100', 'expected an OBJECT IDENTIFIER'],
  ])('readOid refuses %s: %s', (der, what) => {
    const buf = hex(der);
    malformed(() => readOid(buf, top(buf)), what);
  });
});

describe('time', () => {
  const cases: [string, number, string][] = [
    ['1949-12-31T23:59:59Z', TAG.GENERALIZED_TIME, '19491231235959Z'],
    ['1950-01-01T00:00:00Z', TAG.UTC_TIME, '500101000000Z'],
    ['1999-12-31T23:59:59Z', TAG.UTC_TIME, '991231235959Z'],
    ['2000-02-29T12:00:00Z', TAG.UTC_TIME, '000229120000Z'],
    ['2049-12-31T23:59:59Z', TAG.UTC_TIME, '491231235959Z'],
    ['2050-01-01T00:00:00Z', TAG.GENERALIZED_TIME, '20500101000000Z'],
    ['2050-01-01T00:00:01Z', TAG.GENERALIZED_TIME, '20500101000001Z'],
    ['9999-12-31T23:59:59Z', TAG.GENERALIZED_TIME, '99991231235959Z'],
  ];

  it.each(cases)('%s is written as tag %d "%s" (RFC 5280 §4.1.2.5) and reads back', (iso, tag, text) => {
    const d = new Date(iso);
    const enc = time(d);
    expect(enc[0]).toBe(tag);
    expect(new TextDecoder().decode(enc.subarray(2))).toBe(text);
    expect(readTime(enc, top(enc)).toISOString()).toBe(d.toISOString());
    const decoded = asn1(enc) as asn1js.UTCTime;
    expect(decoded).toBeInstanceOf(tag === TAG.UTC_TIME ? asn1js.UTCTime : asn1js.GeneralizedTime);
    expect(decoded.toDate().toISOString()).toBe(d.toISOString());
  });

  it('writes and reads back 3,000 random instants from year 1 to 9999, as asn1js reads them', () => {
    const first = new Date(0);
    first.setUTCFullYear(1, 0, 1);
    const span = Date.UTC(9999, 11, 31, 23, 59, 59) - first.getTime();
    for (let i = 0; i < 3000; i++) {
      const d = new Date(Math.floor((first.getTime() + Math.random() * span) / 1000) * 1000);
      const enc = time(d);
      const y = d.getUTCFullYear();
      expect(enc[0]).toBe(y >= 1950 && y < 2050 ? TAG.UTC_TIME : TAG.GENERALIZED_TIME);
      expect(readTime(enc, top(enc)).getTime()).toBe(d.getTime());
      // asn1js reads a year below 100 as 19xx (Date.UTC), so it is the oracle from year 100 on.
      if (y >= 100) expect((asn1(enc) as asn1js.UTCTime).toDate().getTime()).toBe(d.getTime());
    }
  });

  it('drops milliseconds (whole seconds only)', () => {
    const enc = time(new Date('2030-06-01T12:34:56.999Z'));
    expect(new TextDecoder().decode(enc.subarray(2))).toBe('300601123456Z');
    expect(readTime(enc, top(enc)).toISOString()).toBe('2030-06-01T12:34:56.000Z');
  });

  it('reads a GeneralizedTime before year 100 as that year (not 19xx)', () => {
    // Date.UTC maps years 0-99 to 1900-1999; a four-digit GeneralizedTime year must not be.
    const d = new Date('0050-03-01T00:00:00Z');
    const enc = time(d);
    expect(new TextDecoder().decode(enc.subarray(2))).toBe('00500301000000Z');
    expect(readTime(enc, top(enc)).toISOString()).toBe(d.toISOString());
  });

  const ascii = (tag: number, s: string): Uint8Array => tlv(tag, new TextEncoder().encode(s));
  it.each([
    [TAG.UTC_TIME, '4912312359Z', 'bad time'],
    [TAG.UTC_TIME, '491231235959', 'bad time'],
    [TAG.UTC_TIME, '491231235959+0100', 'bad time'],
    [TAG.UTC_TIME, '20491231235959Z', 'bad time'],
    [TAG.GENERALIZED_TIME, '491231235959Z', 'bad time'],
    [TAG.GENERALIZED_TIME, '20500101000000.5Z', 'bad time'],
    [TAG.GENERALIZED_TIME, '20500101000000', 'bad time'],
    [TAG.UTF8_STRING, '491231235959Z', 'bad time'],
    [TAG.UTC_TIME, '491331000000Z', 'time out of range'],
    [TAG.UTC_TIME, '490230000000Z', 'time out of range'],
    [TAG.UTC_TIME, '490100000000Z', 'time out of range'],
    [TAG.UTC_TIME, '491231240000Z', 'time out of range'],
    [TAG.UTC_TIME, '491231236000Z', 'time out of range'],
    [TAG.UTC_TIME, '491231235960Z', 'time out of range'],
    [TAG.GENERALIZED_TIME, '21000229000000Z', 'time out of range'],
  ])('readTime refuses tag %d "%s": %s', (tag, text, what) => {
    const enc = ascii(tag, text);
    malformed(() => readTime(enc, top(enc)), what);
  });
});

describe('lengths', () => {
  it.each([
    [0, '0400'],
    [127, '047f'],
    [128, '048180'],
    [255, '0481ff'],
    [256, '04820100'],
    [65535, '0482ffff'],
    [65536, '0483010000'],
  ])('content of %d bytes gets the minimal header %s and reads back', (n, head) => {
    const body = Uint8Array.from({ length: n }, (_, i) => i & 0xff);
    const enc = tlv(TAG.OCTET_STRING, body);
    expect(toHex(enc.subarray(0, head.length / 2))).toBe(head);
    expect(toHex(header(TAG.OCTET_STRING, n))).toBe(head);
    const el = readTop(enc, TAG.OCTET_STRING);
    expect(el).toEqual({ tag: TAG.OCTET_STRING, start: 0, contentStart: head.length / 2, end: enc.length });
    const decoded = asn1(enc) as asn1js.OctetString;
    expect(decoded.valueBlock.valueHexView.length).toBe(n);
  });
});

describe('nesting', () => {
  it('children lists the elements of a SEQUENCE in order', () => {
    const enc = seq(smallInteger(1), oid('2.5.29.17'), seq(), tlv(TAG.OCTET_STRING, new Uint8Array(200)));
    const kids = children(enc, readTop(enc, TAG.SEQUENCE));
    expect(kids.map((k) => k.tag)).toEqual([TAG.INTEGER, TAG.OID, TAG.SEQUENCE, TAG.OCTET_STRING]);
    expect(readSmallInteger(enc, kids[0]!)).toBe(1);
    expect(readOid(enc, kids[1]!)).toBe('2.5.29.17');
    expect(kids[3]!.end).toBe(enc.length);
  });

  it('refuses children of a primitive element', () => {
    const enc = hex('0401ff');
    malformed(() => children(enc, top(enc)), 'expected a constructed element');
  });

  it('refuses a child that runs past its parent, even when the buffer holds enough bytes', () => {
    const enc = hex('3003 0403010203');
    malformed(() => children(enc, top(enc)), 'truncated content');
  });

  it('readTop names the expected and the found tag', () => {
    const enc = hex('3100');
    malformed(() => readTop(enc, TAG.SEQUENCE), 'expected tag 0x30, found 0x31');
  });

  it('expectTag names a missing element', () => {
    malformed(() => expectTag(undefined, TAG.INTEGER, 'version'), 'version is missing');
    const enc = hex('0101ff');
    malformed(() => expectTag(top(enc), TAG.INTEGER, 'version'), 'version: expected tag 0x2, found 0x1');
  });
});

describe('the reader accepts DER only', () => {
  it.each([
    ['3080 0000', 'indefinite length is not DER'],
    ['0481 05 0102030405', 'non-minimal length'],
    ['0481 7f', 'non-minimal length'],
    ['0482 0080', 'non-minimal length'],
    ['0482 00ff', 'non-minimal length'],
    ['0483 000100', 'non-minimal length'],
    ['0484 00000100', 'non-minimal length'],
    ['0485 0000000001', 'length too large'],
    ['1f01 00', 'high tag numbers are not supported'],
    ['3f8101 00', 'high tag numbers are not supported'],
    ['9f01 00', 'high tag numbers are not supported'],
    ['bf22 00', 'high tag numbers are not supported'],
    ['04', 'truncated element'],
    ['', 'truncated element'],
    ['0482 01', 'truncated length'],
    ['0405 01020304', 'truncated content'],
    ['3082 0100 00', 'truncated content'],
    ['0484 ffffffff', 'truncated content'],
  ])('readElement refuses %s: %s', (der, what) => {
    const buf = hex(der);
    malformed(() => readElement(buf, 0), what);
  });

  it('readTop refuses trailing bytes', () => {
    malformed(() => readTop(hex('3000 00'), TAG.SEQUENCE), 'trailing bytes after the top-level element');
    malformed(() => readTop(hex('3000 3000'), TAG.SEQUENCE), 'trailing bytes after the top-level element');
  });

  it('respects the limit it is given', () => {
    const buf = hex('0403010203 ff');
    expect(readElement(buf, 0, 5).end).toBe(5);
    malformed(() => readElement(buf, 0, 4), 'truncated content');
  });

  it.each([
    ['010101', 'BOOLEAN must be 00 or ff in DER'],
    ['01017f', 'BOOLEAN must be 00 or ff in DER'],
    ['010200ff', 'expected a BOOLEAN'],
    ['0100', 'expected a BOOLEAN'],
    ['0201ff', 'expected a BOOLEAN'],
  ])('readBoolean refuses %s: %s', (der, what) => {
    const buf = hex(der);
    malformed(() => readBoolean(buf, top(buf)), what);
  });

  it('readBoolean reads 00 and ff', () => {
    expect(readBoolean(hex('0101ff'), top(hex('0101ff')))).toBe(true);
    expect(readBoolean(hex('010100'), top(hex('010100')))).toBe(false);
  });

  it.each([
    ['0300', false, 'empty BIT STRING'],
    ['03020800', true, 'bad BIT STRING padding'],
    ['030201fe', false, 'bad BIT STRING padding'],
    ['030103', true, 'bad BIT STRING padding'],
    ['030201ff', true, 'non-zero BIT STRING padding'],
    ['03020780', false, 'bad BIT STRING padding'],
    ['03020781', true, 'non-zero BIT STRING padding'],
    ['0401ff', false, 'expected a BIT STRING'],
  ])('readBitString refuses %s (allowUnused %s): %s', (der, allowUnused, what) => {
    const buf = hex(der);
    malformed(() => readBitString(buf, top(buf), allowUnused), what);
  });

  it('readBitString reads whole bytes, and unused bits only when allowed', () => {
    const whole = hex('030300abcd');
    expect(readBitString(whole, top(whole))).toEqual({ bytes: hex('abcd'), unused: 0 });
    const ku = hex('03020780');
    expect(readBitString(ku, top(ku), true)).toEqual({ bytes: hex('80'), unused: 7 });
  });

  it('readString refuses invalid UTF-8', () => {
    const buf = hex('0c02c328');
    malformed(() => readString(buf, top(buf)), 'invalid UTF-8 in a string');
    const ok = hex('0c02c3a9');
    expect(readString(ok, top(ok))).toBe('é');
  });
});
