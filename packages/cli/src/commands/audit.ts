import type { Command } from 'commander';
import { AgentCAError, InternalError, verifyAuditLog } from '@agentca/core';
import { openCaDir } from '@agentca/node';
import { json, type CliIo } from '../io.ts';
import { dirOf, storeOf, withDir, withJson, withStore, type DirOptions, type StoreOptions } from '../options.ts';

export function register(program: Command, io: CliIo): void {
  const audit = program.command('audit').description('the tamper-evident audit log');

  withJson(withStore(withDir(audit.command('verify').description('check the hash chain from the first event; names the first event that breaks it')))).action(
    async (o: DirOptions & StoreOptions & { json?: boolean }) => {
      const ca = await openCaDir(dirOf(o, io), { store: storeOf(o, io) });
      try {
        let r;
        try {
          r = await verifyAuditLog(ca.store.audit);
        } catch (e) {
          // An event edited into something unreadable is a broken chain, not a crash.
          if (e instanceof AgentCAError && e.code === 'ERR_AUDIT_EVENT_UNREADABLE')
            throw new InternalError('ERR_AUDIT_CHAIN_BROKEN', `the audit chain is broken: ${e.message}`);
          throw e;
        }
        if (!r.ok) {
          if (o.json) json(io, r);
          throw new InternalError('ERR_AUDIT_CHAIN_BROKEN', `the audit chain is broken at event ${r.seq}: ${r.reason}`);
        }
        if (o.json) return json(io, r);
        io.out(`audit log ok: ${r.events} events, head ${r.head}\n`);
      } finally {
        await ca.close();
      }
    },
  );

  withJson(withStore(withDir(audit.command('tail').description('print the newest events').option('-n, --lines <n>', 'how many', '20')))).action(
    async (o: DirOptions & StoreOptions & { lines: string; json?: boolean }) => {
      const n = Math.max(1, Math.min(100000, Number(o.lines) || 20));
      const ca = await openCaDir(dirOf(o, io), { store: storeOf(o, io) });
      try {
        const head = await ca.store.audit.head();
        const events = await ca.store.audit.read(Math.max(1, head.seq - n + 1), n);
        if (o.json) return json(io, events.map((e) => ({ ...e, at: e.at.toISOString() })));
        for (const e of events) {
          const extra = Object.entries(e.detail ?? {}).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${v}`).join(' ');
          io.out([e.seq, e.at.toISOString(), e.type, e.outcome, e.actor, e.spiffeId ?? '-', e.serial ?? '-', e.code ?? '-', extra].join('  ') + '\n');
        }
      } finally {
        await ca.close();
      }
    },
  );
}
