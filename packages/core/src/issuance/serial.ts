import type { Random } from '../ports/random.ts';
import { toHex } from '../encoding.ts';

/**
 * A serial is 20 octets: a fixed, positive prefix byte (never a leading 00 pad, never
 * negative), three octets of the time it was made, then 128 bits from the CSPRNG (CA/B BR §7.1
 * asks for ≥ 64; RFC 5280 caps serials at 20 octets).
 *
 * The time octets are for the store, not for relying parties: every index keyed by serial
 * (the reservation, the certificate, the token that bought it) then grows at its right end
 * instead of at a random leaf, so a commit of a few issuances writes one leaf of each instead
 * of one per issuance. The unit is 1/64 s, fine enough that the serials of one commit share a
 * leaf, and the counter wraps every 2^24 / 64 s (~3.1 days); after a wrap new serials sort low
 * again, still next to each other. They are not a timestamp anyone should read: notBefore is.
 */
export const SERIAL_PREFIX = 0x4a;
export const SERIAL_TIME_BYTES = 3;
export const SERIAL_RANDOM_BYTES = 16;
/** Units of the time octets per second. */
export const SERIAL_TIME_UNITS_PER_SECOND = 64;

export function newSerial(random: Random, at: Date): Uint8Array {
  const out = new Uint8Array(1 + SERIAL_TIME_BYTES + SERIAL_RANDOM_BYTES);
  out[0] = SERIAL_PREFIX;
  writeTimeOctets(out, 1, at);
  out.set(random.bytes(SERIAL_RANDOM_BYTES), 1 + SERIAL_TIME_BYTES);
  return out;
}

/**
 * Writes the three time octets of serials (and of join-token IDs) at `offset`: the low 24 bits
 * of the count of 1/64 s since the epoch, floored, also before 1970.
 */
export function writeTimeOctets(out: Uint8Array, offset: number, at: Date): void {
  const t = ((Math.floor((at.getTime() * SERIAL_TIME_UNITS_PER_SECOND) / 1000) % 2 ** 24) + 2 ** 24) % 2 ** 24;
  out[offset] = t >>> 16;
  out[offset + 1] = (t >>> 8) & 0xff;
  out[offset + 2] = t & 0xff;
}

/** Serials as agentca prints and stores them: lowercase hex, no separators, no 00 pad. */
export function serialHex(serial: Uint8Array): string {
  return toHex(serial);
}

/** Normalises a serial typed by a person (`4A:0B…`, `0x4a0b…`) to the stored form. */
export function normaliseSerial(text: string): string | null {
  let s = text.trim().toLowerCase().replace(/^0x/, '').replace(/[:\s]/g, '');
  if (!/^[0-9a-f]{1,40}$/.test(s)) return null;
  if (s.length % 2) s = `0${s}`;
  s = s.replace(/^(00)+(?=[0-9a-f]{2})/, '');
  return s;
}
