import type { Command } from 'commander';
import { NotFound, RevocationService, parseRevocationSelector, systemClock, type RevokeOutcome } from '@agentca/core';
import { openCaDir } from '@agentca/node';
import type { CliIo } from '../io.ts';
import { dirOf, storeOf, withDir, withJson, withStore, type DirOptions, type StoreOptions } from '../options.ts';
import { printOutcome } from './revoke.ts';

export function register(program: Command, io: CliIo): void {
  const task = program.command('task').description('tasks: units of work whose certificates end together');
  withJson(
    withStore(withDir(task.command('end').description('end a task: its join tokens stop working, renewal stops, and every certificate of it is revoked (cessationOfOperation)').argument('<task-id>', 'the task'))),
  ).action(async (taskId: string, o: DirOptions & StoreOptions & { json?: boolean }) => {
    const selector = parseRevocationSelector({ taskId });
    const ca = await openCaDir(dirOf(o, io), { store: storeOf(o, io) });
    try {
      const ended = await ca.store.tokens.endTask(taskId, systemClock.now());
      let out: RevokeOutcome;
      try {
        out = await new RevocationService({ revocations: ca.store.revocations, clock: systemClock }).revoke(selector, 'cessationOfOperation', 'operator');
      } catch (e) {
        // A task whose instances never got a certificate (or whose certificates expired) still ends.
        if (!(e instanceof NotFound) || !ended) throw e;
        out = { revoked: [], changed: 0 };
      }
      if (!ended && out.revoked.length === 0) throw new NotFound('ERR_TASK_NOT_FOUND', `there is no task ${taskId}`);
      printOutcome(io, out, o.json);
      if (!o.json && ended) io.err(`task ${taskId} ended at ${ended.endedAt!.toISOString()}\n`);
    } finally {
      await ca.close();
    }
  });
}
