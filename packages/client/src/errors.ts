/**
 * The one error class of the SDK. `code` is the server's stable code (docs/errors.md) when the
 * CA refused, or one of the SDK's own `ERR_…` codes; `status` is the HTTP status, or `null`
 * when no answer came.
 *
 * @example
 * ```ts
 * try {
 *   await AgentIdentity.bootstrap({ server, caBundle, token });
 * } catch (err) {
 *   if (err instanceof AgentCAClientError && err.code === 'ERR_TOKEN_ALREADY_USED') mintAnother();
 *   else throw err;
 * }
 * ```
 */
export class AgentCAClientError extends Error {
  override readonly name = 'AgentCAClientError';
  readonly code: string;
  readonly status: number | null;

  constructor(code: string, message: string, status: number | null = null, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = status;
  }

  /** True when retrying cannot help: the CA refused this certificate for good. */
  get permanent(): boolean {
    return PERMANENT.has(this.code);
  }
}

const PERMANENT = new Set([
  'ERR_CLIENT_CERTIFICATE_REVOKED',
  'ERR_CLIENT_CERTIFICATE_EXPIRED',
  'ERR_CLIENT_CERTIFICATE_UNKNOWN',
  'ERR_CLIENT_CERTIFICATE_UNTRUSTED',
  'ERR_PROFILE_NOT_RENEWABLE',
  // The request itself is refused by policy: the same TTL or key type again cannot pass.
  'ERR_TTL_INVALID',
  'ERR_TTL_TOO_LONG',
  'ERR_KEY_ALGORITHM_NOT_ALLOWED',
  'ERR_TASK_ENDED',
  'ERR_TASK_EXPIRED',
  'ERR_TASK_UNKNOWN',
]);
