import type { Command } from 'commander';
import { parseDuration, InvalidRequest } from '@agentca/core';
import { joinTokensOf, openCaDir } from '@agentca/node';
import { json, type CliIo } from '../io.ts';
import { dirOf, storeOf, withDir, withJson, withStore, type DirOptions, type StoreOptions } from '../options.ts';

interface TokenOptions extends DirOptions, StoreOptions {
  id: string;
  profile: string;
  ttl: string;
  task?: string;
  taskTtl?: string;
  onBehalfOf?: string;
  json?: boolean;
}

export function register(program: Command, io: CliIo): void {
  const token = program.command('token').description('one-time join tokens for workloads');
  const create = token
    .command('create')
    .description('mint a one-time join token bound to a SPIFFE ID (printed once; stored only as a hash)')
    .requiredOption('--id <spiffe-id>', 'the identity the token buys')
    .option('--profile <name>', 'certificate profile', 'default')
    .option('--ttl <duration>', 'how long the token may be used', '10m')
    .option('--task <id>', 'bind the instance to a task: no certificate outlives it, ending it revokes them all')
    .option('--task-ttl <duration>', "the task's deadline from now (for a new task; default 1h)")
    .option('--on-behalf-of <principal>', 'the human or service that delegated the work (recorded and put in the certificate)');
  withJson(withStore(withDir(create))).action(async (o: TokenOptions) => {
    if (o.taskTtl !== undefined && o.task === undefined) throw new InvalidRequest('ERR_TASK_TTL_WITHOUT_TASK', '--task-ttl needs --task');
    const ca = await openCaDir(dirOf(o, io), { store: storeOf(o, io) });
    try {
      const t = await joinTokensOf(ca).create({
        spiffeId: o.id,
        profile: o.profile,
        ttlSeconds: parseDuration(o.ttl, '--ttl'),
        ...(o.task !== undefined ? { taskId: o.task } : {}),
        ...(o.taskTtl !== undefined ? { taskTtlSeconds: parseDuration(o.taskTtl, '--task-ttl') } : {}),
        ...(o.onBehalfOf !== undefined ? { onBehalfOf: o.onBehalfOf } : {}),
        actor: 'operator',
      });
      if (o.json) {
        return json(io, {
          token: t.token,
          id: t.id,
          spiffeId: t.spiffeId,
          profile: t.profile,
          expiresAt: t.expiresAt.toISOString(),
          task: t.task ? { id: t.task.id, deadline: t.task.deadline.toISOString() } : null,
          onBehalfOf: t.onBehalfOf,
        });
      }
      io.out(`${t.token}\n`);
      io.err(`token ${t.id} for ${t.spiffeId} (profile ${t.profile}), single use, expires ${t.expiresAt.toISOString()}${t.task ? `; task ${t.task.id} until ${t.task.deadline.toISOString()}` : ''}\n`);
    } finally {
      await ca.close();
    }
  });
}
