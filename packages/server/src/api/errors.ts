/**
 * The one place where failures become HTTP answers. Core errors keep their category and code;
 * fastify's own failures (bad JSON, body too large, unknown route, schema validation, rate
 * limit) are turned into agentca codes first, so that every answer is `{error: {code, message}}`
 * with a stable code. Whatever the client sent, the answer is a 4xx: a 5xx means the CA itself
 * (a store, a key, a bug) failed.
 */
import {
  AgentCAError,
  Conflict,
  InternalError,
  InvalidRequest,
  NotFound,
  PolicyDenied,
  Unauthenticated,
  Unavailable,
} from '@agentca/core';
import { BODY_LIMIT } from './schemas.ts';

/** HTTP status by error category (docs/errors.md). */
const STATUS_BY_CATEGORY: ReadonlyArray<readonly [abstract new (...a: never[]) => AgentCAError, number]> = [
  [InvalidRequest, 400],
  [Unauthenticated, 401],
  [PolicyDenied, 403],
  [NotFound, 404],
  [Conflict, 409],
  [Unavailable, 503],
  [InternalError, 500],
];

/** Codes whose HTTP status is more specific than their category's. */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_BODY_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_RATE_LIMITED: 429,
};

/** The HTTP status of an error: by code where the table names it, else by category; 500 for anything else. */
export function httpStatus(e: AgentCAError): number {
  const byCode = STATUS_BY_CODE[e.code];
  if (byCode !== undefined) return byCode;
  for (const [category, status] of STATUS_BY_CATEGORY) if (e instanceof category) return status;
  return 500;
}

/** The body of every error answer. */
export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(e: AgentCAError): ErrorBody {
  return { error: { code: e.code, message: e.message } };
}

interface FastifyLikeError {
  code?: unknown;
  statusCode?: unknown;
  validation?: Array<{ instancePath?: string; message?: string; keyword?: string; params?: Record<string, unknown> }>;
  validationContext?: string;
}

/**
 * Any thrown value as an AgentCAError: itself, the agentca code for a fastify failure, or
 * InternalError `ERR_INTERNAL` (the original then belongs in the log, never in the answer).
 */
export function toAgentCAError(err: unknown): AgentCAError {
  if (err instanceof AgentCAError) return err;
  const f = (typeof err === 'object' && err !== null ? err : {}) as FastifyLikeError;
  if (Array.isArray(f.validation)) return new InvalidRequest('ERR_REQUEST_INVALID', validationMessage(f));
  switch (f.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new InvalidRequest('ERR_BODY_MALFORMED', 'the request body is not a valid JSON document (keys such as __proto__ are refused)', { cause: err });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new InvalidRequest('ERR_BODY_TOO_LARGE', `the request body is larger than ${BODY_LIMIT} bytes`, { cause: err });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new InvalidRequest('ERR_UNSUPPORTED_MEDIA_TYPE', 'send the request body as application/json', { cause: err });
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new InvalidRequest('ERR_URL_MALFORMED', 'the request URL is malformed or too long', { cause: err });
    case 'FST_ERR_NOT_FOUND':
      return new NotFound('ERR_ROUTE_NOT_FOUND', 'there is no such route', { cause: err });
    case 'FST_ERR_HANDLER_TIMEOUT':
      return new Unavailable('ERR_TIMEOUT', 'the request took too long: retry later', { cause: err });
  }
  // Fastify marks what the client caused (an aborted upload, a body that does not match its
  // Content-Length) with a 4xx status; keep it a 4xx.
  if (typeof f.statusCode === 'number' && f.statusCode >= 400 && f.statusCode < 500)
    return new InvalidRequest('ERR_REQUEST_UNREADABLE', 'the request could not be read', { cause: err });
  return new InternalError('ERR_INTERNAL', 'an unexpected error: a bug, please report it', { cause: err });
}

function validationMessage(f: FastifyLikeError): string {
  const v = f.validation?.[0];
  if (!v) return 'the request does not match its schema';
  const where = `${f.validationContext ?? 'request'}${(v.instancePath ?? '').replace(/\//g, '.')}`;
  let what = v.message ?? 'is not valid';
  if (v.keyword === 'additionalProperties' && typeof v.params?.additionalProperty === 'string')
    what = `must not have property ${JSON.stringify(v.params.additionalProperty.slice(0, 64))}`;
  return `${where} ${what}`.slice(0, 300);
}

/**
 * For the log: what went wrong underneath, never the request itself (no headers, no body).
 * The stack only for a failure of the CA's own (5xx).
 */
export function describeCause(e: AgentCAError): Record<string, string> | undefined {
  const c = e.cause;
  if (c === undefined) return undefined;
  const own = e instanceof InternalError || e instanceof Unavailable;
  if (c instanceof Error) {
    const code = (c as { code?: unknown }).code;
    return {
      name: c.name,
      message: c.message.slice(0, 500),
      ...(code !== undefined ? { code: String(code) } : {}),
      ...(own && c.stack ? { stack: c.stack.slice(0, 2000) } : {}),
    };
  }
  return { value: String(c).slice(0, 200) };
}
