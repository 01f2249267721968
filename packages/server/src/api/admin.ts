/**
 * The admin routes, over mTLS with a client certificate whose SPIFFE ID is an administrator's:
 * POST /v1/revoke, POST /v1/tokens, POST /v1/tasks/{id}/end. The actor in the audit log is the
 * admin's SPIFFE ID.
 */
import { NotFound, parseReason, parseRevocationSelector, type RevokeOutcome } from '@agentca/core';
import type { FastifyInstance } from 'fastify';
import { ttlSeconds, type ApiContext } from './context.ts';
import { authenticateAdmin } from './mtls.ts';
import { API_ROUTES } from './schemas.ts';

interface RevokeBody {
  serial?: string;
  spiffeId?: string;
  instanceId?: string;
  taskId?: string;
  reason?: string;
}

interface TokenBody {
  spiffeId: string;
  profile?: string;
  ttl?: number | string;
  taskId?: string;
  taskTtl?: number | string;
  onBehalfOf?: string;
}

export function registerAdminRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.route({
    method: API_ROUTES.revoke.method,
    url: API_ROUTES.revoke.url,
    schema: API_ROUTES.revoke.schema,
    handler: async (request) => {
      const admin = await authenticateAdmin(request, ctx.checks, ctx.admins);
      const { reason: reasonText, ...selector } = request.body as RevokeBody;
      const parsed = parseRevocationSelector(selector);
      const reason = parseReason(reasonText ?? 'unspecified');
      const out = await ctx.o.revocations.revoke(parsed, reason, admin.spiffeId);
      ctx.log.info({ event: 'revoked', reqId: request.id, actor: admin.spiffeId, selector: parsed, reason, revoked: out.revoked.length, changed: out.changed });
      return { revoked: out.revoked.length, changed: out.changed };
    },
  });

  app.route({
    method: API_ROUTES.createToken.method,
    url: API_ROUTES.createToken.url,
    schema: API_ROUTES.createToken.schema,
    handler: async (request) => {
      const admin = await authenticateAdmin(request, ctx.checks, ctx.admins);
      const b = request.body as TokenBody;
      const ttl = ttlSeconds(b.ttl, 'ttl');
      const taskTtl = ttlSeconds(b.taskTtl, 'taskTtl');
      const t = await ctx.o.joinTokens.create({
        spiffeId: b.spiffeId,
        profile: b.profile ?? 'default',
        ...(ttl !== undefined ? { ttlSeconds: ttl } : {}),
        ...(b.taskId !== undefined ? { taskId: b.taskId } : {}),
        ...(taskTtl !== undefined ? { taskTtlSeconds: taskTtl } : {}),
        ...(b.onBehalfOf !== undefined ? { onBehalfOf: b.onBehalfOf } : {}),
        actor: admin.spiffeId,
      });
      ctx.log.info({ event: 'token.created', reqId: request.id, actor: admin.spiffeId, tokenId: t.id, spiffeId: t.spiffeId, profile: t.profile, taskId: t.task?.id ?? null });
      return {
        token: t.token,
        id: t.id,
        spiffeId: t.spiffeId,
        profile: t.profile,
        expiresAt: t.expiresAt.toISOString(),
        taskId: t.task?.id ?? null,
        taskDeadline: t.task ? t.task.deadline.toISOString() : null,
        onBehalfOf: t.onBehalfOf,
      };
    },
  });

  app.route({
    method: API_ROUTES.endTask.method,
    url: API_ROUTES.endTask.url,
    schema: API_ROUTES.endTask.schema,
    handler: async (request) => {
      const admin = await authenticateAdmin(request, ctx.checks, ctx.admins);
      const taskId = (request.params as { id: string }).id;
      // The task first: from here on its tokens and renewals are refused, even while revoking.
      const task = await ctx.o.store.tokens.endTask(taskId, ctx.o.clock.now());
      let out: RevokeOutcome = { revoked: [], changed: 0 };
      try {
        out = await ctx.o.revocations.endTask(taskId, admin.spiffeId);
      } catch (e) {
        if (!(e instanceof NotFound && e.code === 'ERR_NOTHING_TO_REVOKE')) throw e;
        if (!task) throw new NotFound('ERR_TASK_NOT_FOUND', `there is no task ${taskId} and no unexpired certificate of it`);
      }
      ctx.log.info({ event: 'task.ended', reqId: request.id, actor: admin.spiffeId, taskId, revoked: out.revoked.length, changed: out.changed });
      return { taskId, endedAt: task?.endedAt ? task.endedAt.toISOString() : null, revoked: out.revoked.length, changed: out.changed };
    },
  });
}
