import { AgentCAError, InternalError, Unavailable } from '@agentca/core';

// Socket-level failures: the database cannot be reached right now.
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
// SQLSTATEs that say the server cannot do the work now, as opposed to a statement that is
// wrong: connection exceptions (08), auth (28), no such database (3D000), out of resources
// (53), operator intervention (57: shutdown, statement/idle timeouts), system errors (58),
// lock not available (55P03), read-only standby (25006).
const UNAVAILABLE_STATE = /^(08|28|53|57|58|3D000$|55P03$|25006$|25P03$)/;
// pg reports a dropped or timed-out connection in plain errors without a code.
const UNAVAILABLE_MESSAGE = /connection terminated|timeout exceeded when trying to connect|query read timeout|connection error|connection is closed|not queryable|cannot use a pool after calling end/i;

/** A deadlock or serialisation failure: the whole transaction may simply be run again. */
export function isRetryable(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
}

/** True when `e` says the database is unreachable or refusing work, not that a statement failed. */
export function isUnavailable(e: unknown): boolean {
  if (e instanceof Unavailable) return true;
  if (e instanceof AgentCAError || !(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && (NETWORK.has(code) || UNAVAILABLE_STATE.test(code))) return true;
  return UNAVAILABLE_MESSAGE.test(e.message);
}

/**
 * Turns a driver failure into an agentca error. An unreachable or refusing database becomes
 * Unavailable `ERR_STORE_UNAVAILABLE` (a 503: retry later), any other database failure
 * InternalError `ERR_STORE_INTERNAL`. The message stays generic, since it may reach a client
 * over the network; the driver's error is the cause, for the log. agentca errors pass through.
 */
export function toStoreError(e: unknown): AgentCAError {
  if (e instanceof AgentCAError) return e;
  if (isUnavailable(e) || isRetryable(e)) return new Unavailable('ERR_STORE_UNAVAILABLE', 'the store is unavailable: retry later', { cause: e });
  return new InternalError('ERR_STORE_INTERNAL', 'the store failed', { cause: e });
}

/** The error of any call on a closed store. */
export function storeClosed(): Unavailable {
  return new Unavailable('ERR_STORE_CLOSED', 'the store is closed');
}
