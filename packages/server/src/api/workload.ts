/**
 * The routes a workload calls with its current certificate (mTLS): POST /v1/renew and
 * POST /v1/retire. The certificate is the proof: renewal attests exactly what the stored
 * record says (SPIFFE ID, instance, task, on-behalf-of, profile), never what the CSR asks.
 */
import { PolicyDenied, type Attestation } from '@agentca/core';
import type { FastifyInstance } from 'fastify';
import { issuedBody, ttlSeconds, type ApiContext } from './context.ts';
import { authenticateClient } from './mtls.ts';
import { API_ROUTES } from './schemas.ts';

export function registerWorkloadRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.route({
    method: API_ROUTES.renew.method,
    url: API_ROUTES.renew.url,
    schema: API_ROUTES.renew.schema,
    handler: async (request) => {
      const client = await authenticateClient(request, ctx.checks);
      const r = client.record;
      const profile = ctx.o.authority.profile(r.profile);
      if (!profile.renewable) throw new PolicyDenied('ERR_PROFILE_NOT_RENEWABLE', `certificates of profile ${profile.name} cannot be renewed`);
      let taskDeadline: Date | null = null;
      if (r.taskId !== null) {
        const task = await ctx.o.store.tokens.getTask(r.taskId);
        // A certificate names a task the CA has no record of only if it was issued outside the token flow: no deadline to hold it to, so no renewal.
        if (!task) throw new PolicyDenied('ERR_TASK_UNKNOWN', `task ${r.taskId} is not known to this CA: its certificates cannot be renewed`);
        if (task.endedAt) throw new PolicyDenied('ERR_TASK_ENDED', `task ${r.taskId} has ended`);
        taskDeadline = task.deadline;
      }
      const body = request.body as { csr: string; ttl?: number | string };
      const attestation: Attestation = {
        spiffeId: r.spiffeId,
        profile: r.profile,
        instanceId: r.instanceId,
        taskId: r.taskId,
        taskDeadline,
        onBehalfOf: r.onBehalfOf,
        ...(client.dnsNames.length ? { dnsNames: client.dnsNames } : {}),
        method: 'renewal',
        actor: client.spiffeId,
        renewalOf: client.serial,
      };
      const issued = await ctx.o.authority.issue({ csr: body.csr, attestation, ttlSeconds: ttlSeconds(body.ttl, 'ttl') });
      ctx.metrics.issued.inc({ method: 'renewal' });
      ctx.log.info({
        event: 'renewed',
        reqId: request.id,
        actor: client.spiffeId,
        previousSerial: client.serial,
        serial: issued.serial,
        spiffeId: issued.spiffeId,
        instanceId: issued.instanceId,
        taskId: issued.taskId,
        notAfter: issued.notAfter.toISOString(),
      });
      return issuedBody(issued);
    },
  });

  app.route({
    method: API_ROUTES.retire.method,
    url: API_ROUTES.retire.url,
    schema: API_ROUTES.retire.schema,
    handler: async (request) => {
      const client = await authenticateClient(request, ctx.checks);
      const instanceId = client.record.instanceId;
      const out = await ctx.o.revocations.revoke({ instanceId }, 'cessationOfOperation', client.spiffeId);
      ctx.log.info({ event: 'retired', reqId: request.id, actor: client.spiffeId, instanceId, revoked: out.revoked.length, changed: out.changed });
      return { instanceId, revoked: out.revoked.length, changed: out.changed };
    },
  });
}
