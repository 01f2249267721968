import { describe, expect, it } from 'vitest';
import { verifyAuditLog, type AuditEventInput } from '../src/index.ts';
import { MemoryAuditStore } from './fakes.ts';

const event = (i: number): AuditEventInput => ({ type: 'issue', actor: 'test', outcome: 'ok', at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)), serial: `4a${i}` });

describe('verifyAuditLog', () => {
  it('passes on a live log that grows while it is verified (a CA keeps writing)', async () => {
    const store = new MemoryAuditStore();
    for (let i = 1; i <= 10; i++) await store.append(event(i));
    // A concurrent writer: every page read, another event lands.
    const live = { ...store, head: () => store.head(), append: (e: AuditEventInput) => store.append(e), read: async (from: number, limit: number) => {
      const page = await store.read(from, limit);
      await store.append(event(100 + from));
      return page;
    } };
    const r = await verifyAuditLog(live, 3);
    expect(r).toMatchObject({ ok: true, events: 10 });
  });

  it('still names a removed tail', async () => {
    const store = new MemoryAuditStore();
    for (let i = 1; i <= 5; i++) await store.append(event(i));
    const head = await store.head();
    store.events.pop();
    const r = await verifyAuditLog({ append: (e) => store.append(e), read: (f, l) => store.read(f, l), head: async () => head });
    expect(r).toMatchObject({ ok: false, seq: 5 });
  });
});
