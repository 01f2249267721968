import { InvalidRequest } from '@agentca/core';

// The hex of the DER INTEGER's content octets without the sign pad: whole bytes, at most
// 20 (RFC 5280 §4.1.2.2), lower case, no leading zero byte.
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
