import type { Command } from 'commander';
import { RevocationService, parseReason, parseRevocationSelector, systemClock, type RevokeOutcome } from '@agentca/core';
import { openCaDir } from '@agentca/node';
import { json, type CliIo } from '../io.ts';
import { dirOf, storeOf, withDir, withJson, withStore, type DirOptions, type StoreOptions } from '../options.ts';

interface RevokeOptions extends DirOptions, StoreOptions {
  serial?: string;
  id?: string;
  instance?: string;
  task?: string;
  reason: string;
  json?: boolean;
}

export function printOutcome(io: CliIo, out: RevokeOutcome, asJson: boolean | undefined): void {
  if (asJson) {
    return json(io, {
      changed: out.changed,
      revoked: out.revoked.map((r) => ({ serial: r.serial, spiffeId: r.spiffeId, instanceId: r.instanceId, taskId: r.taskId, reason: r.reason, revokedAt: r.revokedAt.toISOString() })),
    });
  }
  for (const r of out.revoked) io.out(`revoked ${r.serial}  ${r.spiffeId}  instance ${r.instanceId}  ${r.reason}  at ${r.revokedAt.toISOString()}\n`);
  io.err(`${out.revoked.length} certificate${out.revoked.length === 1 ? '' : 's'} revoked (${out.changed} changed now); durable in the store — a running agentca serve publishes it within a second\n`);
}

export function register(program: Command, io: CliIo): void {
  const cmd = program
    .command('revoke')
    .description('revoke certificates by serial, SPIFFE ID, instance or task (durable when this returns)')
    .option('--serial <hex>', 'one certificate, by serial number')
    .option('--id <spiffe-id>', 'every unexpired certificate of a SPIFFE ID')
    .option('--instance <id>', 'every unexpired certificate of an instance')
    .option('--task <id>', 'every unexpired certificate of a task')
    .option('--reason <reason>', 'RFC 5280 reason: unspecified, keyCompromise (also blocks the key), superseded, cessationOfOperation, affiliationChanged, privilegeWithdrawn, …', 'unspecified');
  withJson(withStore(withDir(cmd))).action(async (o: RevokeOptions) => {
    const selector = parseRevocationSelector({ serial: o.serial, spiffeId: o.id, instanceId: o.instance, taskId: o.task });
    const reason = parseReason(o.reason);
    const ca = await openCaDir(dirOf(o, io), { store: storeOf(o, io) });
    try {
      const out = await new RevocationService({ revocations: ca.store.revocations, clock: systemClock }).revoke(selector, reason, 'operator');
      printOutcome(io, out, o.json);
    } finally {
      await ca.close();
    }
  });
}
