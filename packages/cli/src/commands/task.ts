import type { Command } from 'commander';
import { RevocationService, systemClock } from '@agentca/core';
import { openCaDir } from '@agentca/node';
import type { CliIo } from '../io.ts';
import { dirOf, withDir, withJson, type DirOptions } from '../options.ts';
import { printOutcome } from './revoke.ts';

export function register(program: Command, io: CliIo): void {
  const task = program.command('task').description('tasks: units of work whose certificates end together');
  withJson(withDir(task.command('end').description('end a task: revoke every certificate of it (cessationOfOperation)').argument('<task-id>', 'the task'))).action(
    async (taskId: string, o: DirOptions & { json?: boolean }) => {
      const ca = await openCaDir(dirOf(o, io));
      try {
        printOutcome(io, await new RevocationService({ revocations: ca.store.revocations, clock: systemClock }).endTask(taskId, 'operator'), o.json);
      } finally {
        await ca.close();
      }
    },
  );
}
