/**
 * The OpenAPI 3.1 document of the issuance API, generated from the route table that fastify
 * validates and serialises with (schemas.ts), so the two cannot drift; and a Markdown
 * rendering of it for docs/api.md.
 */
import { API_ROUTES, BODY_LIMIT, COMMON_ERRORS, ERROR_RESPONSE, type JsonSchema, type RouteSpec } from './schemas.ts';

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  servers?: { url: string }[];
  tags: { name: string; description: string }[];
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: { securitySchemes: Record<string, JsonSchema>; schemas: Record<string, JsonSchema> };
}

export interface OpenApiOperation {
  operationId: string;
  tags: string[];
  summary: string;
  description: string;
  security: Record<string, string[]>[];
  parameters?: { name: string; in: 'path'; required: true; schema: JsonSchema; description?: string }[];
  requestBody?: { required: boolean; content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: JsonSchema }> }>;
  'x-agentca-auth': RouteSpec['auth'];
  'x-agentca-errors': string[];
}

const TAGS = [
  { name: 'issuance', description: 'certificates for workloads: bootstrap, renewal, retirement' },
  { name: 'admin', description: 'operator actions over mTLS with an admin certificate' },
  { name: 'trust', description: 'what relying parties need' },
  { name: 'operations', description: 'health, metrics, this document' },
];

const DESCRIPTION =
  'The HTTPS API of `agentca serve`: a private CA that issues short-lived SPIFFE X.509 certificates. ' +
  'The TLS listener asks every client for a certificate but does not require one; the routes that need a client identity check it themselves. ' +
  `Request bodies are JSON (\`application/json\`), at most ${BODY_LIMIT} bytes, and unknown fields are refused. ` +
  'Every error is answered as `{"error": {"code", "message"}}` with a 4xx status and a stable code (docs/errors.md); a 5xx means the CA itself failed.';

const SECURITY: Record<RouteSpec['auth'], Record<string, string[]>[]> = {
  none: [],
  bearer: [{ bearer: [] }],
  mtls: [{ mutualTLS: [] }],
  admin: [{ mutualTLS: [] }],
};

function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function operation(r: RouteSpec): OpenApiOperation {
  const op: OpenApiOperation = {
    operationId: r.operationId,
    tags: [r.tag],
    summary: r.summary,
    description: r.description,
    security: SECURITY[r.auth],
    responses: {},
    'x-agentca-auth': r.auth,
    'x-agentca-errors': [...r.errors],
  };
  const params = r.schema.params?.properties as Record<string, JsonSchema> | undefined;
  if (params)
    op.parameters = Object.entries(params).map(([name, schema]) => ({
      name,
      in: 'path',
      required: true,
      schema,
      ...(typeof schema.description === 'string' ? { description: schema.description } : {}),
    }));
  if (r.schema.body) op.requestBody = { required: true, content: { 'application/json': { schema: r.schema.body } } };
  for (const [status, schema] of Object.entries(r.schema.response)) {
    const key = status.toUpperCase();
    if (status === '4xx' || status === '5xx') {
      op.responses[key] = {
        description: status === '4xx' ? 'refused: the request, the credential or policy (see the code)' : 'the CA failed (a store, a key, a bug); retry later',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
      continue;
    }
    const content = (schema as { content?: Record<string, { schema: JsonSchema }> }).content;
    op.responses[key] = { description: 'success', content: content ?? { 'application/json': { schema } } };
  }
  return op;
}

/**
 * The OpenAPI 3.1 document of every route in `routes` (all of them by default).
 *
 * @example
 * writeFileSync('docs/api.md', renderApiReference(buildOpenApiDocument()));
 */
export function buildOpenApiDocument(o: { version?: string; servers?: string[]; routes?: readonly RouteSpec[] } = {}): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  for (const r of o.routes ?? Object.values(API_ROUTES)) {
    const p = openApiPath(r.url);
    (paths[p] ??= {})[r.method.toLowerCase()] = operation(r);
  }
  return {
    openapi: '3.1.0',
    info: { title: 'agentca issuance API', version: o.version ?? '1', description: DESCRIPTION },
    ...(o.servers?.length ? { servers: o.servers.map((url) => ({ url })) } : {}),
    tags: TAGS,
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'a one-time join token (`agentca-jt.<id>.<secret>`) or, where a JWT provisioner is configured, a JWT' },
        mutualTLS: { type: 'mutualTLS', description: 'a client certificate issued by this CA, unrevoked and unexpired; admin routes also need an administrator SPIFFE ID' },
      },
      schemas: { Error: ERROR_RESPONSE },
    },
  };
}

// ---- Markdown ----

function typeOf(s: JsonSchema): string {
  if (Array.isArray(s.anyOf)) return (s.anyOf as JsonSchema[]).map(typeOf).join(' \\| ');
  const types = Array.isArray(s.type) ? (s.type as string[]) : typeof s.type === 'string' ? [s.type] : ['any'];
  return types.map((t) => (t === 'string' && s.format ? `string (${String(s.format)})` : t)).join(' \\| ');
}

function constraints(s: JsonSchema): string {
  const out: string[] = [];
  const all = Array.isArray(s.anyOf) ? [s, ...(s.anyOf as JsonSchema[])] : [s];
  for (const x of all) {
    if (x.minLength !== undefined) out.push(`≥ ${String(x.minLength)} chars`);
    if (x.maxLength !== undefined) out.push(`≤ ${String(x.maxLength)} chars`);
    if (x.minimum !== undefined) out.push(`≥ ${String(x.minimum)}`);
    if (x.maximum !== undefined) out.push(`≤ ${String(x.maximum)}`);
    if (x.pattern !== undefined) out.push(`\`${String(x.pattern)}\``);
    if (Array.isArray(x.enum)) out.push(`one of ${(x.enum as unknown[]).map((v) => `\`${String(v)}\``).join(', ')}`);
  }
  return out.join(', ').replace(/\|/g, '\\|');
}

const cell = (t: unknown): string => (typeof t === 'string' ? t.replace(/\|/g, '\\|').replace(/\n/g, ' ') : '');

function fieldRows(schema: JsonSchema, withConstraints: boolean, prefix = ''): string[] {
  const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required ?? []) as string[]);
  const rows: string[] = [];
  for (const [name, p] of Object.entries(props)) {
    const path = `${prefix}${name}`;
    const cols = [`\`${path}\``, typeOf(p), required.has(name) ? 'yes' : 'no'];
    if (withConstraints) cols.push(constraints(p));
    cols.push(cell(p.description));
    rows.push(`| ${cols.join(' | ')} |`);
    if (p.type === 'object' && p.properties) rows.push(...fieldRows(p, withConstraints, `${path}.`));
  }
  return rows;
}

const AUTH_TEXT: Record<RouteSpec['auth'], string> = {
  none: 'none',
  bearer: '`Authorization: Bearer <join token or JWT>`',
  mtls: 'mTLS: a client certificate issued by this CA',
  admin: 'mTLS: a client certificate of an administrator (`admins`)',
};

/**
 * The API reference as Markdown (docs/api.md): every route with its authentication, request
 * fields and constraints, answer fields and error codes.
 *
 * @example
 * writeFileSync('docs/api.md', renderApiReference(buildOpenApiDocument()));
 */
export function renderApiReference(doc: OpenApiDocument): string {
  const lines: string[] = [];
  const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method: method.toUpperCase(), op })));
  lines.push(`# ${doc.info.title}`, '', doc.info.description, '');
  lines.push('Generated from the OpenAPI document (`GET /openapi.json`) by `renderApiReference`; do not edit by hand.', '');
  lines.push('| method | path | authentication | what it does |', '|---|---|---|---|');
  for (const { path, method, op } of ops) lines.push(`| ${method} | \`${path}\` | ${AUTH_TEXT[op['x-agentca-auth']]} | ${cell(op.summary)} |`);
  lines.push('', '## Errors', '');
  lines.push(
    'Every refusal is `{"error": {"code": "ERR_…", "message": "…"}}`. The status follows the code\'s category: ' +
      'InvalidRequest 400, Unauthenticated 401, PolicyDenied 403, NotFound 404, Conflict 409, Unavailable 503, InternalError 500; ' +
      'except `ERR_METHOD_NOT_ALLOWED` 405, `ERR_BODY_TOO_LARGE` 413, `ERR_UNSUPPORTED_MEDIA_TYPE` 415 and `ERR_RATE_LIMITED` 429 (with `Retry-After`). ' +
      `Any route may answer ${COMMON_ERRORS.map((c) => `\`${c}\``).join(', ')}. The catalogue of codes is docs/errors.md.`,
    '',
  );
  for (const { path, method, op } of ops) {
    lines.push(`## ${method} ${path}`, '', `${op.summary}.`, '', op.description, '', `**Authentication:** ${AUTH_TEXT[op['x-agentca-auth']]}.`, '');
    if (op.parameters?.length) {
      lines.push('**Path parameters:**', '', '| name | type | constraints | description |', '|---|---|---|---|');
      for (const p of op.parameters) lines.push(`| \`${p.name}\` | ${typeOf(p.schema)} | ${constraints(p.schema)} | ${cell(p.description)} |`);
      lines.push('');
    }
    const body = op.requestBody?.content['application/json']?.schema;
    if (body) {
      lines.push('**Request body** (`application/json`; other fields are refused):', '', '| field | type | required | constraints | description |', '|---|---|---|---|---|');
      lines.push(...fieldRows(body, true), '');
    }
    const ok = op.responses['200'];
    if (ok?.content) {
      const [type, { schema }] = Object.entries(ok.content)[0]!;
      if (type === 'application/json' && schema.properties) {
        lines.push('**Answer 200** (`application/json`):', '', '| field | type | always | description |', '|---|---|---|---|');
        lines.push(...fieldRows(schema, false), '');
      } else lines.push(`**Answer 200:** \`${type}\`.`, '');
    }
    if (op['x-agentca-errors'].length) lines.push(`**Errors:** ${op['x-agentca-errors'].map((c) => `\`${c}\``).join(', ')}.`, '');
  }
  return `${lines.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}
