/**
 * The issuance API as a fastify app, built from injected parts and testable with `inject()`.
 * Hardening lives here, once: body limit, secure JSON parsing, strict schemas (no coercion,
 * no silent removal of unknown fields), per-client rate limit, timeouts, one error renderer,
 * structured logs that carry no header, token, key or CSR.
 */
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { InvalidRequest, NotFound, Unavailable, parseSpiffeId } from '@agentca/core';
import { type ApiContext, type ApiLog, type ApiServerOptions } from './context.ts';
import { describeCause, errorBody, httpStatus, toAgentCAError } from './errors.ts';
import { ApiMetrics } from './metrics.ts';
import { tlsServerOptions } from './mtls.ts';
import { registerPublicRoutes } from './public.ts';
import { API_ROUTES, BODY_LIMIT } from './schemas.ts';
import { registerSignRoute, signMethodOf } from './sign.ts';
import { registerWorkloadRoutes } from './workload.ts';
import { registerAdminRoutes } from './admin.ts';

const SILENT: ApiLog = { info() {}, warn() {}, error() {} };

/** A connection idle this long is closed; a request must arrive whole within this; idle keep-alive ends after this. */
const CONNECTION_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

const DEFAULT_RATE_LIMIT = { max: 1000, timeWindowMs: 10_000 };

/** Path patterns of the routes, to tell "wrong method" (405) from "no such route" (404). */
const ROUTE_MATCHERS = Object.values(API_ROUTES).map((r) => ({
  method: r.method,
  re: new RegExp(`^${r.url.replace(/:[A-Za-z0-9_]+/g, '[^/]+').replace(/\./g, '\\.')}$`),
}));

/** Routes whose refusals count as denied issuances. */
const ISSUANCE_ROUTES: Record<string, (request: FastifyRequest) => string> = {
  [API_ROUTES.sign.url]: (request) => signMethodOf(request.headers.authorization),
  [API_ROUTES.renew.url]: () => 'renewal',
};

/**
 * Builds the API app (not listening). With `o.https` it is an HTTPS app that asks for client
 * certificates (see startApiServer); without, plain HTTP — for `inject()` tests, where every
 * mTLS route answers 401.
 *
 * @example
 * const app = buildApiServer({ authority, joinTokens, revocations, store, admins: ['spiffe://example.org/admin/operator'], bundlePem, clock: systemClock });
 * const res = await app.inject({ method: 'POST', url: '/v1/sign', headers: { authorization: `Bearer ${token}` }, payload: { csr } });
 */
export function buildApiServer(o: ApiServerOptions): FastifyInstance {
  const log = o.log ?? SILENT;
  const metrics = new ApiMetrics(o.storeCounters);
  const ctx: ApiContext = {
    o,
    log,
    metrics,
    admins: new Set(o.admins.map((a) => parseSpiffeId(a).toString())),
    checks: { certificates: o.store.certificates, revocations: o.store.revocations, clock: o.clock },
  };
  const limits = o.rateLimit ?? DEFAULT_RATE_LIMIT;

  function sendError(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
    const e = toAgentCAError(err);
    const status = httpStatus(e);
    const route = request.routeOptions?.url ?? null;
    const entry = { event: status >= 500 ? 'http.error' : 'http.refused', reqId: request.id, route, status, code: e.code, message: e.message, cause: describeCause(e) };
    if (status >= 500) log.error(entry);
    else log.warn(entry);
    const method = route !== null ? ISSUANCE_ROUTES[route] : undefined;
    if (method && status < 500) metrics.denied.inc({ method: method(request), code: e.code });
    reply.code(status).type('application/json; charset=utf-8').send(errorBody(e));
  }

  const options = {
    logger: false,
    bodyLimit: BODY_LIMIT,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    return503OnClosing: true,
    trustProxy: false,
    // A task ID is up to 128 characters; fastify's default cap (100) would turn it into a 404.
    routerOptions: { maxParamLength: 256 },
    // Refuse what the schema does not allow instead of repairing it: no coercion, no removal.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
    frameworkErrors: sendError,
    ...(o.https ? { https: tlsServerOptions(o.https) } : {}),
  };
  const app = Fastify(options as FastifyServerOptions) as unknown as FastifyInstance;
  // JSON only: a text/plain body is 415, not a string handed to a JSON schema.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(sendError);

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('cache-control', 'no-store');
    reply.header('x-content-type-options', 'nosniff');
    return payload;
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions?.url ?? 'unmatched';
    const status = reply.statusCode;
    metrics.requests.inc({ route, method: request.method, status: String(status) });
    if (route === API_ROUTES.sign.url)
      metrics.signDuration.observe({ outcome: status < 400 ? 'issued' : status < 500 ? 'denied' : 'error' }, reply.elapsedTime / 1000);
    log.info({ event: 'http.request', reqId: request.id, method: request.method, route, status, ms: Math.round(reply.elapsedTime * 10) / 10, ip: request.ip });
  });

  app.register(rateLimit, {
    max: limits.max,
    timeWindow: limits.timeWindowMs,
    keyGenerator: (request) => request.ip,
    errorResponseBuilder: (_request, c) => new Unavailable('ERR_RATE_LIMITED', `too many requests from this client: retry in ${c.after}`),
  });

  app.register(async (scope) => {
    scope.setNotFoundHandler({ preHandler: scope.rateLimit() }, async (request, reply) => {
      const path = request.url.split('?', 1)[0]!;
      const allowed = ROUTE_MATCHERS.filter((m) => m.re.test(path)).map((m) => m.method);
      if (allowed.length) {
        const allow = [...new Set(allowed.flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m])))].join(', ');
        reply.header('allow', allow);
        throw new InvalidRequest('ERR_METHOD_NOT_ALLOWED', `method ${request.method} is not allowed here: use ${allow}`);
      }
      throw new NotFound('ERR_ROUTE_NOT_FOUND', 'there is no such route');
    });
    registerSignRoute(scope, ctx);
    registerWorkloadRoutes(scope, ctx);
    registerAdminRoutes(scope, ctx);
    registerPublicRoutes(scope, ctx);
  });

  return app;
}
