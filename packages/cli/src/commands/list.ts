import type { Command } from 'commander';
import { InvalidRequest, type CertificateRecord, type RevocationRecord } from '@agentca/core';
import { openCaDir } from '@agentca/node';
import { json, type CliIo } from '../io.ts';
import { dirOf, storeOf, withDir, withJson, withStore, type DirOptions, type StoreOptions } from '../options.ts';

interface ListOptions extends DirOptions, StoreOptions {
  status?: string;
  id?: string;
  limit: string;
  json?: boolean;
}

const STATUSES = ['valid', 'revoked', 'expired'] as const;

export function register(program: Command, io: CliIo): void {
  const cmd = program
    .command('list')
    .description('list issued certificates')
    .option('--status <status>', `only ${STATUSES.join(' or ')} certificates`)
    .option('--id <spiffe-id>', 'only certificates for this SPIFFE ID')
    .option('--limit <n>', 'at most this many (newest last)', '1000');
  withJson(withStore(withDir(cmd))).action(async (o: ListOptions) => {
    if (o.status !== undefined && !(STATUSES as readonly string[]).includes(o.status))
      throw new InvalidRequest('ERR_STATUS_INVALID', `unknown status ${o.status}: use ${STATUSES.join(' or ')}`);
    const limit = Number(o.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1_000_000) throw new InvalidRequest('ERR_LIMIT_INVALID', '--limit must be 1-1000000');
    const ca = await openCaDir(dirOf(o, io), { store: storeOf(o, io) });
    try {
      const now = new Date();
      const all = await ca.store.certificates.list({
        ...(o.id ? { spiffeId: o.id } : {}),
        ...(o.status ? { expiredAt: { now, expired: o.status === 'expired' } } : {}),
        limit,
      });
      const revoked = new Map<string, RevocationRecord>();
      for (const c of all) {
        const r = await ca.store.revocations.get(c.serial);
        if (r) revoked.set(c.serial, r);
      }
      const status = (c: CertificateRecord) => (c.notAfter <= now ? 'expired' : revoked.has(c.serial) ? 'revoked' : 'valid');
      const rows = o.status ? all.filter((c) => status(c) === o.status) : all;
      if (o.json) {
        return json(
          io,
          rows.map((c) => ({
            serial: c.serial,
            spiffeId: c.spiffeId,
            instanceId: c.instanceId,
            taskId: c.taskId,
            onBehalfOf: c.onBehalfOf,
            profile: c.profile,
            notBefore: c.notBefore.toISOString(),
            notAfter: c.notAfter.toISOString(),
            status: status(c),
            ...(revoked.has(c.serial) ? { revokedAt: revoked.get(c.serial)!.revokedAt.toISOString(), reason: revoked.get(c.serial)!.reason } : {}),
          })),
        );
      }
      if (rows.length === 0) return io.out('no certificates\n');
      const lines = rows.map((c) => [c.serial, status(c), c.notAfter.toISOString(), c.instanceId, c.spiffeId]);
      const head = ['SERIAL', 'STATUS', 'NOT AFTER', 'INSTANCE', 'SPIFFE ID'];
      const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
      for (const l of [head, ...lines]) io.out(l.map((v, i) => (i === l.length - 1 ? v : v.padEnd(widths[i]!))).join('  ') + '\n');
    } finally {
      await ca.close();
    }
  });
}
