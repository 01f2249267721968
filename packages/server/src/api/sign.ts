/**
 * POST /v1/sign: bootstrap. Thin, in step-ca's order: read, authorise (join token or JWT →
 * Attestation), issue (the one pipeline in core), render. The token is consumed inside
 * `authority.issue`, with the serial reservation, so a refused request never burns it.
 */
import { AgentCAError, JOIN_TOKEN_PREFIX, Unauthenticated, type Attestation } from '@agentca/core';
import type { FastifyInstance } from 'fastify';
import { issuedBody, ttlSeconds, type ApiContext } from './context.ts';
import { API_ROUTES } from './schemas.ts';

/** Three base64url parts, as a JWS compact serialisation. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const BEARER = /^Bearer +([^\s]+) *$/i;
/** As the JWT provisioner's cap; Node's 16 KB header limit stops anything longer first. */
const MAX_CREDENTIAL_CHARS = 16 * 1024;

export type CredentialKind = 'join-token' | 'jwt';

/** What kind of credential a bearer value is: a JWT by its shape, else a join token. */
export function credentialKind(token: string): CredentialKind {
  return !token.startsWith(`${JOIN_TOKEN_PREFIX}.`) && JWT_SHAPE.test(token) ? 'jwt' : 'join-token';
}

/** The credential of `Authorization: Bearer …`. */
export function bearerCredential(header: string | undefined): { kind: CredentialKind; token: string } {
  if (header === undefined || header === '')
    throw new Unauthenticated('ERR_AUTHORIZATION_REQUIRED', 'send Authorization: Bearer <join token or JWT>');
  const m = header.length <= MAX_CREDENTIAL_CHARS + 16 ? BEARER.exec(header) : null;
  if (!m || m[1]!.length > MAX_CREDENTIAL_CHARS)
    throw new Unauthenticated('ERR_AUTHORIZATION_INVALID', 'the Authorization header must be Bearer <join token or JWT>');
  const token = m[1]!;
  return { kind: credentialKind(token), token };
}

/** The attestation method a sign request is for, for metrics (before or without authorisation). */
export function signMethodOf(header: string | undefined): string {
  try {
    return bearerCredential(header).kind;
  } catch {
    return 'none';
  }
}

async function authorizeJwt(ctx: ApiContext, token: string): Promise<Attestation> {
  if (!ctx.o.jwt) throw new Unauthenticated('ERR_JWT_UNSUPPORTED', 'this CA accepts no JWTs: present a join token');
  try {
    return await ctx.o.jwt.authorize(token);
  } catch (e) {
    if (e instanceof AgentCAError) throw e;
    throw new Unauthenticated('ERR_JWT_INVALID', 'the JWT is not valid', { cause: e });
  }
}

export function registerSignRoute(app: FastifyInstance, ctx: ApiContext): void {
  const spec = API_ROUTES.sign;
  app.route({
    method: spec.method,
    url: spec.url,
    schema: spec.schema,
    handler: async (request) => {
      const { kind, token } = bearerCredential(request.headers.authorization);
      const attestation = kind === 'jwt' ? await authorizeJwt(ctx, token) : await ctx.o.joinTokens.authorize(token);
      const body = request.body as { csr: string; ttl?: number | string };
      const issued = await ctx.o.authority.issue({ csr: body.csr, attestation, ttlSeconds: ttlSeconds(body.ttl, 'ttl') });
      ctx.metrics.issued.inc({ method: attestation.method });
      ctx.log.info({
        event: 'issued',
        reqId: request.id,
        method: attestation.method,
        actor: attestation.actor,
        serial: issued.serial,
        spiffeId: issued.spiffeId,
        instanceId: issued.instanceId,
        taskId: issued.taskId,
        notAfter: issued.notAfter.toISOString(),
      });
      return issuedBody(issued);
    },
  });
}
