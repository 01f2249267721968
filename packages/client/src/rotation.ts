/**
 * Rotation timing as pure functions (after SPIRE's rotationutil): when to renew, how long to
 * back off. `random` is in [0, 1).
 */

export interface RenewalPolicy {
  /** Fraction of the lifetime after which to renew. */
  renewAt: number;
  /** Spread of the renewal instant, as a fraction of `renewAt` either side. */
  jitter: number;
}

/**
 * Milliseconds from `now` until renewal. The lifetime counts from when the certificate was
 * received, not from its notBefore, which the CA backdates for clock skew.
 */
export function renewalDelayMs(receivedAt: number, notAfter: number, now: number, policy: RenewalPolicy, random: number): number {
  const lifetime = Math.max(0, notAfter - receivedAt);
  const fraction = policy.renewAt * (1 + policy.jitter * (2 * random - 1));
  const at = receivedAt + lifetime * Math.min(1, Math.max(0, fraction));
  return Math.max(0, Math.round(at - now));
}

export interface RetryPolicy {
  initialMs: number;
  maxMs: number;
}

/** Exponential backoff: `initialMs · 2^failures`, capped at `maxMs`. `failures` counts from 0. */
export function retryDelayMs(failures: number, policy: RetryPolicy): number {
  return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(failures, 30));
}
