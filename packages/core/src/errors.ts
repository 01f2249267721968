/**
 * Every failure agentca reports carries a stable `code` (`ERR_…`) that callers switch on,
 * and a lower-case message that names what was wrong without repeating any secret.
 * The category subclass decides how a surface renders it (the server maps codes to HTTP
 * statuses in one place; the CLI prints `error: <message> (<code>)`).
 */
export class AgentCAError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The input itself is malformed or out of range (bad CSR, bad SPIFFE ID, bad TTL). */
export class InvalidRequest extends AgentCAError {}
/** The caller did not prove who it is (bad or used token, bad JWT, no client certificate). */
export class Unauthenticated extends AgentCAError {}
/** The caller is known, but policy does not allow what it asks. */
export class PolicyDenied extends AgentCAError {}
/** The thing asked for does not exist. */
export class NotFound extends AgentCAError {}
/** The request collides with existing state (duplicate serial, CA already initialised). */
export class Conflict extends AgentCAError {}
/** A dependency (store, key) is not available; retrying later may succeed. */
export class Unavailable extends AgentCAError {}
/** An invariant of agentca itself broke (a signed certificate failed its own re-check). */
export class InternalError extends AgentCAError {}

export function isAgentCAError(e: unknown): e is AgentCAError {
  return e instanceof AgentCAError;
}
