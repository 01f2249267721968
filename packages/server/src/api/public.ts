/** The routes anyone may call: GET /v1/bundle, GET /healthz, GET /metrics, GET /openapi.json. */
import { Unavailable } from '@agentca/core';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from './context.ts';
import { buildOpenApiDocument } from './openapi.ts';
import { API_ROUTES } from './schemas.ts';

export function registerPublicRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const openapi = JSON.stringify(buildOpenApiDocument());

  app.route({
    method: API_ROUTES.bundle.method,
    url: API_ROUTES.bundle.url,
    schema: API_ROUTES.bundle.schema,
    handler: async (_request, reply) => reply.type('application/x-pem-file').send(ctx.o.bundlePem),
  });

  app.route({
    method: API_ROUTES.health.method,
    url: API_ROUTES.health.url,
    schema: API_ROUTES.health.schema,
    handler: async () => {
      if (!ctx.o.storeReachable) return { status: 'ok' };
      if (!ctx.o.storeReachable()) throw new Unavailable('ERR_STORE_UNAVAILABLE', 'the store cannot be reached: issuance, renewal and revocation are refused until it returns');
      return { status: 'ok', store: 'ok' };
    },
  });

  app.route({
    method: API_ROUTES.metrics.method,
    url: API_ROUTES.metrics.url,
    schema: API_ROUTES.metrics.schema,
    handler: async (_request, reply) => reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics()),
  });

  app.route({
    method: API_ROUTES.openapi.method,
    url: API_ROUTES.openapi.url,
    schema: API_ROUTES.openapi.schema,
    // Already JSON: sent as is, not through the (allow-everything) response schema.
    handler: async (_request, reply) => reply.type('application/json; charset=utf-8').send(openapi),
  });
}
