/**
 * Every route of the issuance API, described once: method, path, who may call it, and the JSON
 * schemas of its input and output. Fastify validates requests and serialises answers with these
 * schemas (a response schema is an allow-list: a field not named here never leaves the server),
 * and the OpenAPI document is generated from them (openapi.ts).
 */

export type JsonSchema = Record<string, unknown>;

/** The whole request body, in bytes. */
export const BODY_LIMIT = 64 * 1024;
/** A PEM CSR, in characters (RSA-8192 with a few SANs is under 3 KB). */
export const CSR_MAX_CHARS = 16 * 1024;

/** Who may call a route: anyone, a holder of a join token or JWT, a workload over mTLS, an admin over mTLS. */
export type RouteAuth = 'none' | 'bearer' | 'mtls' | 'admin';

export interface RouteSpec {
  operationId: string;
  method: 'GET' | 'POST';
  /** Fastify path syntax (`/v1/tasks/:id/end`). */
  url: string;
  auth: RouteAuth;
  tag: string;
  summary: string;
  description: string;
  /** Fastify route schema: `body`, `params`, `response` (by status; `4xx`/`5xx` for the error shape). */
  schema: { body?: JsonSchema; params?: JsonSchema; response: Record<string, JsonSchema> };
  /** Error codes the route answers with besides the generic ones (documentation). */
  errors: string[];
}

const INSTANCE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const DURATION = '^([0-9]{1,10}|([0-9]{1,10}[smhd]){1,4})$';

const SPIFFE_ID: JsonSchema = { type: 'string', minLength: 10, maxLength: 2048, pattern: '^spiffe://', description: 'a SPIFFE ID, `spiffe://<trust domain>/<path>`' };
const TASK_ID: JsonSchema = { type: 'string', maxLength: 128, pattern: INSTANCE_ID_PATTERN, description: 'a task ID: 1-128 of `[A-Za-z0-9._-]`' };
const INSTANCE_ID: JsonSchema = { type: 'string', maxLength: 128, pattern: INSTANCE_ID_PATTERN, description: 'an instance ID' };
const TTL: JsonSchema = {
  anyOf: [
    { type: 'integer', minimum: 1, maximum: 31_536_000 },
    { type: 'string', maxLength: 44, pattern: DURATION },
  ],
  description: 'seconds, or a duration such as `90s`, `15m`, `1h`, `1h30m`',
};
const time = (description: string): JsonSchema => ({ type: 'string', format: 'date-time', description });
const nullable = (s: JsonSchema): JsonSchema => ({ ...s, type: [s.type as string, 'null'] });
const COUNT: JsonSchema = { type: 'integer', minimum: 0 };

export const ERROR_RESPONSE: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', description: 'a stable code, `ERR_…` (docs/errors.md)' },
        message: { type: 'string', description: 'what was wrong, for people; never a secret' },
      },
    },
  },
};

const errors = { '4xx': ERROR_RESPONSE, '5xx': ERROR_RESPONSE };

const CSR_REQUEST: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['csr'],
  properties: {
    csr: {
      type: 'string',
      minLength: 1,
      maxLength: CSR_MAX_CHARS,
      description: 'a PKCS#10 request, PEM. Only its public key and signature are used: subject and requested extensions are ignored, and a requested SAN other than the attested identity is refused',
    },
    ttl: TTL,
  },
};

const ISSUED: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['certificate', 'chain', 'serial', 'spiffeId', 'instanceId', 'taskId', 'notBefore', 'notAfter'],
  properties: {
    certificate: { type: 'string', description: 'the leaf certificate, PEM' },
    chain: { type: 'string', description: 'the issuing (intermediate) CA certificate, PEM; append it to the leaf when presenting it' },
    serial: { type: 'string', description: 'serial number, lowercase hex' },
    spiffeId: SPIFFE_ID,
    instanceId: { ...INSTANCE_ID, description: 'the instance the certificate belongs to (kept on renewal)' },
    taskId: nullable(TASK_ID),
    notBefore: time('start of validity, backdated by the clock-skew allowance'),
    notAfter: time('end of validity: the earliest of the requested TTL, the profile maximum, the task deadline and the issuing CA\'s own end'),
  },
};

const REVOKED_COUNTS: Record<string, JsonSchema> = {
  revoked: { ...COUNT, description: 'unexpired certificates matched, all now revoked' },
  changed: { ...COUNT, description: 'how many of them this call revoked (or upgraded to keyCompromise)' },
};

const REVOKED: JsonSchema = { type: 'object', additionalProperties: false, required: ['revoked', 'changed'], properties: REVOKED_COUNTS };

const PEM_TEXT = { content: { 'application/x-pem-file': { schema: { type: 'string' } } } };

const SIGN: RouteSpec = {
  operationId: 'sign',
  method: 'POST',
  url: '/v1/sign',
  auth: 'bearer',
  tag: 'issuance',
  summary: 'bootstrap: a certificate for an attested identity',
  description:
    'The workload proves what it is with `Authorization: Bearer <join token>` (one-time, `agentca-jt.…`) or `Bearer <JWT>` ' +
    '(when a JWT provisioner is configured). The certificate carries the identity the token or JWT was bound to and a new instance ID. ' +
    'A join token is consumed only when the certificate is issued: a request refused for its CSR or TTL leaves the token usable.',
  schema: { body: CSR_REQUEST, response: { 200: ISSUED, ...errors } },
  errors: [
    'ERR_AUTHORIZATION_REQUIRED',
    'ERR_AUTHORIZATION_INVALID',
    'ERR_TOKEN_INVALID',
    'ERR_TOKEN_ALREADY_USED',
    'ERR_TOKEN_EXPIRED',
    'ERR_TASK_ENDED',
    'ERR_JWT_UNSUPPORTED',
    'ERR_JWT_INVALID',
    'ERR_CSR_MALFORMED',
    'ERR_CSR_SIGNATURE',
    'ERR_CSR_SAN_MISMATCH',
    'ERR_KEY_ALGORITHM_NOT_ALLOWED',
    'ERR_KEY_BLOCKED',
    'ERR_DURATION_INVALID',
    'ERR_TTL_INVALID',
    'ERR_TTL_TOO_LONG',
  ],
};

const RENEW: RouteSpec = {
  operationId: 'renew',
  method: 'POST',
  url: '/v1/renew',
  auth: 'mtls',
  tag: 'issuance',
  summary: 'renew over mTLS with a fresh key',
  description:
    'The client certificate must have been issued by this CA, be unrevoked and unexpired, and its profile renewable; ' +
    'its task (if any) must not have ended. The new certificate keeps the SPIFFE ID, instance, task and on-behalf-of principal; ' +
    'its lifetime never passes the task deadline.',
  schema: { body: CSR_REQUEST, response: { 200: ISSUED, ...errors } },
  errors: [
    'ERR_CLIENT_CERTIFICATE_REQUIRED',
    'ERR_CLIENT_CERTIFICATE_UNTRUSTED',
    'ERR_CLIENT_CERTIFICATE_UNKNOWN',
    'ERR_CLIENT_CERTIFICATE_REVOKED',
    'ERR_CLIENT_CERTIFICATE_EXPIRED',
    'ERR_PROFILE_NOT_RENEWABLE',
    'ERR_TASK_ENDED',
    'ERR_TASK_UNKNOWN',
    'ERR_TASK_EXPIRED',
    'ERR_CSR_MALFORMED',
    'ERR_CSR_SIGNATURE',
    'ERR_CSR_SAN_MISMATCH',
    'ERR_KEY_BLOCKED',
    'ERR_TTL_INVALID',
    'ERR_TTL_TOO_LONG',
  ],
};

const RETIRE: RouteSpec = {
  operationId: 'retire',
  method: 'POST',
  url: '/v1/retire',
  auth: 'mtls',
  tag: 'issuance',
  summary: 'the instance ends itself: every certificate of it is revoked',
  description: 'Revokes (cessationOfOperation) every unexpired certificate of the caller\'s instance, the one presented included.',
  schema: {
    response: {
      200: {
        type: 'object',
        additionalProperties: false,
        required: ['instanceId', 'revoked', 'changed'],
        properties: { instanceId: INSTANCE_ID, ...REVOKED_COUNTS },
      },
      ...errors,
    },
  },
  errors: ['ERR_CLIENT_CERTIFICATE_REQUIRED', 'ERR_CLIENT_CERTIFICATE_UNTRUSTED', 'ERR_CLIENT_CERTIFICATE_REVOKED', 'ERR_CLIENT_CERTIFICATE_EXPIRED'],
};

const REVOKE: RouteSpec = {
  operationId: 'revoke',
  method: 'POST',
  url: '/v1/revoke',
  auth: 'admin',
  tag: 'admin',
  summary: 'revoke by serial, SPIFFE ID, instance or task',
  description: 'Name exactly one selector. The revocation is durable when the answer is sent; CRL and OCSP reflect it within a second.',
  schema: {
    body: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: {
        serial: { type: 'string', minLength: 1, maxLength: 128, description: 'serial number, hex (colons allowed)' },
        spiffeId: SPIFFE_ID,
        instanceId: INSTANCE_ID,
        taskId: TASK_ID,
        reason: { type: 'string', minLength: 1, maxLength: 32, description: 'RFC 5280 reason (`keyCompromise`, `key-compromise`, …); default `unspecified`' },
      },
    },
    response: { 200: REVOKED, ...errors },
  },
  errors: ['ERR_NOT_ADMIN', 'ERR_REVOCATION_SELECTOR', 'ERR_SERIAL_INVALID', 'ERR_SPIFFE_ID_INVALID', 'ERR_REVOCATION_REASON_INVALID', 'ERR_NOTHING_TO_REVOKE'],
};

const CREATE_TOKEN: RouteSpec = {
  operationId: 'createToken',
  method: 'POST',
  url: '/v1/tokens',
  auth: 'admin',
  tag: 'admin',
  summary: 'mint a one-time join token',
  description: 'The token is shown once, in this answer, and stored only as a hash. Hand it to one workload.',
  schema: {
    body: {
      type: 'object',
      additionalProperties: false,
      required: ['spiffeId'],
      properties: {
        spiffeId: SPIFFE_ID,
        profile: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$', description: 'profile name; default `default`' },
        ttl: { ...TTL, description: 'token lifetime: seconds or a duration; default 10m' },
        taskId: TASK_ID,
        taskTtl: { ...TTL, description: 'task lifetime (deadline) when the task is new: seconds or a duration; default 1h' },
        onBehalfOf: { type: 'string', minLength: 1, maxLength: 256, description: 'the principal the work is done for' },
      },
    },
    response: {
      200: {
        type: 'object',
        additionalProperties: false,
        required: ['token', 'id', 'spiffeId', 'profile', 'expiresAt', 'taskId', 'taskDeadline', 'onBehalfOf'],
        properties: {
          token: { type: 'string', description: 'the join token, `agentca-jt.<id>.<secret>`; shown once' },
          id: { type: 'string', description: 'the token ID, safe to log' },
          spiffeId: SPIFFE_ID,
          profile: { type: 'string', description: 'the profile certificates bought with the token get' },
          expiresAt: time('the token is refused from this instant'),
          taskId: nullable(TASK_ID),
          taskDeadline: nullable(time('no certificate of the task outlives this instant')),
          onBehalfOf: { type: ['string', 'null'], description: 'the principal the work is done for, carried in the certificates' },
        },
      },
      ...errors,
    },
  },
  errors: ['ERR_NOT_ADMIN', 'ERR_SPIFFE_ID_INVALID', 'ERR_SPIFFE_ID_NOT_ALLOWED', 'ERR_PROFILE_UNKNOWN', 'ERR_TOKEN_TTL_INVALID', 'ERR_TASK_TTL_INVALID', 'ERR_TASK_TTL_WITHOUT_TASK'],
};

const END_TASK: RouteSpec = {
  operationId: 'endTask',
  method: 'POST',
  url: '/v1/tasks/:id/end',
  auth: 'admin',
  tag: 'admin',
  summary: 'end a task: its tokens stop working and every certificate of it is revoked',
  description: 'Idempotent. Certificates are revoked with reason cessationOfOperation; renewal for the task stops.',
  schema: {
    params: { type: 'object', additionalProperties: false, required: ['id'], properties: { id: TASK_ID } },
    response: {
      200: {
        type: 'object',
        additionalProperties: false,
        required: ['taskId', 'endedAt', 'revoked', 'changed'],
        properties: { taskId: TASK_ID, endedAt: nullable(time('when the task was first ended; null for a task known only from certificates')), ...REVOKED_COUNTS },
      },
      ...errors,
    },
  },
  errors: ['ERR_NOT_ADMIN', 'ERR_TASK_NOT_FOUND'],
};

const BUNDLE: RouteSpec = {
  operationId: 'bundle',
  method: 'GET',
  url: '/v1/bundle',
  auth: 'none',
  tag: 'trust',
  summary: 'the trust bundle (root certificates, PEM)',
  description: 'What relying parties and workloads trust.',
  schema: { response: { 200: PEM_TEXT, ...errors } },
  errors: [],
};

const HEALTH: RouteSpec = {
  operationId: 'health',
  method: 'GET',
  url: '/healthz',
  auth: 'none',
  tag: 'operations',
  summary: 'liveness and store reachability',
  description:
    'Answers `{"status": "ok", "store": "ok"}` while the server takes requests and reaches its store, and 503 `ERR_STORE_UNAVAILABLE` while it cannot reach the store (CRL and OCSP keep serving on the plain-HTTP listener): a load balancer health check on it sends issuance to a replica that can issue.',
  schema: {
    response: {
      200: {
        type: 'object',
        additionalProperties: false,
        required: ['status'],
        properties: {
          status: { type: 'string', enum: ['ok'], description: 'always `ok`' },
          store: { type: 'string', enum: ['ok'], description: 'the store answers' },
        },
      },
      ...errors,
    },
  },
  errors: ['ERR_STORE_UNAVAILABLE'],
};

const METRICS: RouteSpec = {
  operationId: 'metrics',
  method: 'GET',
  url: '/metrics',
  auth: 'none',
  tag: 'operations',
  summary: 'Prometheus metrics',
  description:
    '`agentca_api_requests_total{route,method,status}`, `agentca_certificates_issued_total{method}`, ' +
    '`agentca_issuance_denied_total{method,code}`, `agentca_sign_duration_seconds{outcome}` (histogram); ' +
    "from `agentca serve`, the store's `agentca_store_commits_total` (write transactions; each holds every write queued " +
    'meanwhile) and, on SQLite, `agentca_store_wal_syncs_total` (syncs of its write-ahead log, made off the event loop).',
  schema: { response: { 200: { content: { 'text/plain': { schema: { type: 'string' } } } }, ...errors } },
  errors: [],
};

const OPENAPI: RouteSpec = {
  operationId: 'openapi',
  method: 'GET',
  url: '/openapi.json',
  auth: 'none',
  tag: 'operations',
  summary: 'this API as an OpenAPI 3.1 document',
  description: 'Generated from the same schemas that validate requests.',
  schema: { response: { 200: { type: 'object', additionalProperties: true }, ...errors } },
  errors: [],
};

/** Every route, in documentation order. */
export const API_ROUTES = { sign: SIGN, renew: RENEW, retire: RETIRE, revoke: REVOKE, createToken: CREATE_TOKEN, endTask: END_TASK, bundle: BUNDLE, health: HEALTH, metrics: METRICS, openapi: OPENAPI } as const;

export type RouteName = keyof typeof API_ROUTES;

/** Codes any route may answer with (framework level, authentication of the transport). */
export const COMMON_ERRORS = [
  'ERR_REQUEST_INVALID',
  'ERR_BODY_MALFORMED',
  'ERR_BODY_TOO_LARGE',
  'ERR_UNSUPPORTED_MEDIA_TYPE',
  'ERR_ROUTE_NOT_FOUND',
  'ERR_METHOD_NOT_ALLOWED',
  'ERR_RATE_LIMITED',
  'ERR_INTERNAL',
];
