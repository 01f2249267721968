import { InvalidRequest } from '@agentca/core';

// The hex of the DER INTEGER's content octets without the sign pad: whole bytes, at most
// 20 (RFC 5280 §4.1.2.2), lower case, no leading zero byte. Same rule as the SQLite store.
const CANONICAL_SERIAL = /^(?!00)(?:[0-9a-f]{2}){1,20}$/;

/**
 * Rejects a serial that is not in the one spelling the store keys on, so that `AB` and
 * `ab`, or `0a` and `000a`, can never be two reservations of one serial.
 *
 * @throws InvalidRequest `ERR_SERIAL_INVALID`
 */
export function assertCanonicalSerial(serial: string): void {
  if (typeof serial !== 'string' || !CANONICAL_SERIAL.test(serial)) {
    throw new InvalidRequest('ERR_SERIAL_INVALID', 'a serial must be 1 to 20 bytes of lower-case hex without a leading zero byte');
  }
}

// timestamptz covers 4713 BC to 294276 AD; ISO 8601 text (what is bound) has four-digit years.
const MIN_MS = Date.parse('0001-01-01T00:00:00.000Z');
const MAX_MS = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * An instant as bound to a `timestamptz` parameter: ISO 8601 in UTC, so the server never
 * sees the process's time zone. Milliseconds survive the round trip (timestamptz keeps µs).
 *
 * @throws InvalidRequest `ERR_DATE_INVALID` for an invalid date or one outside years 1–9999.
 */
export function instant(d: Date, what: string): string {
  const ms = d instanceof Date ? d.getTime() : Number.NaN;
  if (Number.isNaN(ms)) throw new InvalidRequest('ERR_DATE_INVALID', `${what} is not a valid date`);
  if (ms < MIN_MS || ms > MAX_MS) throw new InvalidRequest('ERR_DATE_INVALID', `${what} is outside the years 1 to 9999`);
  return new Date(ms).toISOString();
}

/**
 * PostgreSQL text cannot hold U+0000. A value with one cannot be stored, and cannot equal
 * anything stored: lookups answer "not found" for it instead of sending it.
 */
export function storable(s: unknown): s is string {
  return typeof s === 'string' && !s.includes('\u0000');
}

/** A `bigint` column as pg returns it (text), as a JS number; the store's counters stay far below 2^53. */
export function int(v: string | number | bigint): number {
  return typeof v === 'number' ? v : Number(v);
}

// RFC 5280 §5.2.3 allows 20 octets; a bigint column holds 2^63 − 1, far beyond any real count.
const MAX_CRL_NUMBER = 2n ** 63n - 1n;

/**
 * A CRL number as bound (decimal text for a bigint column).
 *
 * @throws InvalidRequest `ERR_CRL_NUMBER_INVALID` unless it is a bigint from 1 to 2^63 − 1.
 */
export function crlNumberParam(n: bigint): string {
  if (typeof n !== 'bigint' || n < 1n || n > MAX_CRL_NUMBER) {
    throw new InvalidRequest('ERR_CRL_NUMBER_INVALID', 'a crl number must be a positive 64-bit integer');
  }
  return n.toString();
}

/** A Date of its own: rows read once may answer several coalesced callers. */
export function copy(d: Date): Date {
  return new Date(d.getTime());
}
