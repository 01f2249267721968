import type { Random } from '../ports/random.ts';
import { toHex } from '../encoding.ts';

/**
 * A fixed, positive prefix byte keeps the serial's encoding at 17 octets (never a leading 00
 * pad, never negative) while all 128 bits after it come from the CSPRNG (CA/B BR §7.1 asks
 * for ≥ 64; RFC 5280 caps serials at 20 octets).
 */
export const SERIAL_PREFIX = 0x4a;
export const SERIAL_RANDOM_BYTES = 16;

export function newSerial(random: Random): Uint8Array {
  const out = new Uint8Array(1 + SERIAL_RANDOM_BYTES);
  out[0] = SERIAL_PREFIX;
  out.set(random.bytes(SERIAL_RANDOM_BYTES), 1);
  return out;
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
