// What the PostgreSQL store adds to the contract: several store instances (replicas) on one
// database, an unreachable database, migrations, and the text PostgreSQL cannot hold. Real
// server, one database for this file; each test gets a schema of its own.
import { AuditChainVerifier, FixedClock, Unavailable, type AuditEventInput, type AuditStore } from '@agentca/core';
import { contractCertificate, contractIssueEvent, contractSerial, contractToken, contractTokenEvent } from '@agentca/store-contract';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, endpoint, startTcpProxy, viaPort, type TcpProxy, type TestDatabase } from '../../../test/support/postgres.ts';
import { checkPostgresUrl, openPostgresStore, redactPostgresUrl, type PostgresStore } from '../src/index.ts';

const clock = new FixedClock('2030-01-01T00:00:00.000Z');
const T0 = Date.parse('2030-01-02T03:04:05.678Z');
let db: TestDatabase;
let schemas = 0;
const opened: PostgresStore[] = [];

beforeAll(async () => {
  db = await createTestDatabase('replicas');
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await db?.drop();
});

/** `n` stores on one fresh schema, as `n` replicas on one database would open it. */
async function replicas(n: number, url = db.url): Promise<PostgresStore[]> {
  const schema = `replicas_${schemas++}`;
  const stores: PostgresStore[] = [];
  for (let i = 0; i < n; i++) stores.push(await openPostgresStore(url, { clock, schema, max: 4 }));
  opened.push(...stores);
  return stores;
}

async function verify(audit: AuditStore) {
  const v = new AuditChainVerifier();
  for (let from = 1; ; ) {
    const page = await audit.read(from, 1000);
    for (const e of page) await v.add(e);
    if (page.length < 1000) break;
    from += page.length;
  }
  return v.finish(await audit.head());
}

const event = (n: number): AuditEventInput => ({ type: 'test', actor: `replica-${n % 2}`, outcome: 'ok', at: new Date(T0 + n), detail: { n } });

describe('two replicas on one database', () => {
  it('reserves each serial exactly once when both race for the same 1,000 serials', async () => {
    const [a, b] = await replicas(2);
    const serials = Array.from({ length: 1000 }, (_, i) => contractSerial(i));
    const tries = serials.flatMap((s, i) => (i % 2 === 0 ? [[a!, s], [b!, s]] : [[b!, s], [a!, s]]) as [PostgresStore, string][]);
    const results = await Promise.allSettled(tries.map(([store, s]) => store.certificates.reserveSerial(s, new Date(T0))));
    const wins = new Map<string, number>();
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') wins.set(tries[i]![1], (wins.get(tries[i]![1]) ?? 0) + 1);
      else expect(r.reason).toMatchObject({ code: 'ERR_SERIAL_EXISTS' });
    });
    expect(wins.size).toBe(1000);
    expect([...wins.values()].every((n) => n === 1)).toBe(true);
  });

  it('lets exactly one of 50 concurrent uses of one token win, split across both', async () => {
    const [a, b] = await replicas(2);
    const t = contractToken(1);
    await a!.tokens.create(t, null, contractTokenEvent(t));
    const at = new Date(T0 + 60_000);
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? a! : b!).certificates.reserveSerial(contractSerial(100 + i), at, { consumeToken: { tokenId: t.id, tokenHash: t.hash } })),
    );
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [contractSerial(100 + i)] : []));
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'ERR_TOKEN_ALREADY_USED' });
    expect(await b!.tokens.get(t.id)).toMatchObject({ usedBySerial: won[0] });
  });

  it('extends one audit chain when both append and record concurrently', async () => {
    const [a, b] = await replicas(2);
    const certs = Array.from({ length: 300 }, (_, i) => contractCertificate(1000 + i));
    await Promise.all(certs.map((c, i) => (i % 2 ? a! : b!).certificates.reserveSerial(c.serial, c.issuedAt)));
    const returned = await Promise.all([
      ...certs.map((c, i) => (i % 2 ? b! : a!).certificates.record(c, contractIssueEvent(c))),
      ...Array.from({ length: 600 }, (_, i) => (i % 2 ? a! : b!).audit.append(event(i))),
    ]);
    expect(returned.map((e) => e.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 900 }, (_, i) => i + 1));
    for (const s of [a!, b!]) expect(await verify(s.audit)).toMatchObject({ ok: true, events: 900 });
    // Both replicas grouped their writes: far fewer transactions than writes.
    expect(a!.committedBatches + b!.committedBatches).toBeLessThan(300);
  });

  it('hands out strictly increasing CRL numbers across both', async () => {
    const [a, b] = await replicas(2);
    const numbers = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a! : b!).crls.nextCrlNumber('intermediate')));
    expect([...numbers].sort((x, y) => (x < y ? -1 : 1))).toEqual(Array.from({ length: 200 }, (_, i) => BigInt(i + 1)));
    let last = 200n;
    for (let i = 0; i < 20; i++) {
      const n = await (i % 2 ? a! : b!).crls.nextCrlNumber('intermediate');
      expect(n).toBeGreaterThan(last);
      last = n;
    }
  });

  it('never lets a poller of the change feed miss a revocation committed by either replica', async () => {
    const [a, b, poller] = await replicas(3);
    const certs = Array.from({ length: 400 }, (_, i) => contractCertificate(2000 + i));
    for (let i = 0; i < certs.length; i += 100) {
      await Promise.all(certs.slice(i, i + 100).map((c) => a!.certificates.reserveSerial(c.serial, c.issuedAt).then(() => a!.certificates.record(c, contractIssueEvent(c)))));
    }
    const at = new Date(T0 + 600_000);
    const seen = new Map<string, number>();
    let last = 0;
    let done = false;
    const poll = (async () => {
      // The same loop as agentca serve's, only as fast as it can go: the cursor only moves forward.
      while (!done) {
        for (const r of await poller!.revocations.changesSince(last, 10_000)) {
          expect(r.changeSeq).toBeGreaterThan(last);
          last = r.changeSeq;
          seen.set(r.serial, r.changeSeq);
        }
      }
    })();
    // Small revocations from both replicas at once, so their transactions interleave.
    await Promise.all(certs.map((c, i) => (i % 2 ? a! : b!).revocations.revoke({ serial: c.serial }, 'superseded', at, { type: 'revoke', actor: 'operator', outcome: 'ok', at })));
    done = true;
    await poll;
    for (const r of await poller!.revocations.changesSince(last, 10_000)) seen.set(r.serial, r.changeSeq);
    // A change committed after the poller had moved past its number would be missing here.
    expect(seen.size).toBe(400);
    expect([...seen.values()].sort((x, y) => x - y)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    expect(await verify(a!.audit)).toMatchObject({ ok: true, events: 800 });
  });

  it('never numbers a CRL above another that lists an entry it lacks, while both revoke and build CRLs at once', async () => {
    const [a, b] = await replicas(2);
    const certs = Array.from({ length: 300 }, (_, i) => contractCertificate(5000 + i));
    for (let i = 0; i < certs.length; i += 100) {
      await Promise.all(certs.slice(i, i + 100).map((c) => a!.certificates.reserveSerial(c.serial, c.issuedAt).then(() => a!.certificates.record(c, contractIssueEvent(c)))));
    }
    const at = new Date(T0 + 600_000);
    const built: { crlNumber: bigint; serials: Set<string> }[] = [];
    let done = false;
    // Both replicas build CRLs as fast as they can, three builders each, while both revoke.
    const builders = [a!, b!, a!, b!, a!, b!].map(async (s) => {
      while (!done) {
        const { crlNumber, entries } = await s.revocations.numberedCrlEntries('intermediate');
        built.push({ crlNumber, serials: new Set(entries.map((e) => e.serial)) });
      }
    });
    await Promise.all(certs.map((c, i) => (i % 2 ? a! : b!).revocations.revoke({ serial: c.serial }, 'superseded', at, { type: 'revoke', actor: 'operator', outcome: 'ok', at })));
    done = true;
    await Promise.all(builders);
    built.sort((x, y) => (x.crlNumber < y.crlNumber ? -1 : 1));
    expect(built.length).toBeGreaterThan(10);
    expect(new Set(built.map((x) => x.crlNumber)).size).toBe(built.length);
    // Each CRL lists everything the one numbered just below it listed (nothing expires here).
    for (let i = 1; i < built.length; i++) {
      const missing = [...built[i - 1]!.serials].filter((s) => !built[i]!.serials.has(s));
      expect({ crlNumber: built[i]!.crlNumber, missing }).toEqual({ crlNumber: built[i]!.crlNumber, missing: [] });
    }
    expect(built.at(-1)!.serials.size).toBeLessThanOrEqual(300);
  });

  it('migrates once when replicas open a fresh database together', async () => {
    const schema = `together_${schemas++}`;
    const stores = await Promise.all(Array.from({ length: 4 }, () => openPostgresStore(db.url, { clock, schema, max: 2 })));
    opened.push(...stores);
    expect(stores.filter((s) => s.createdSchema)).toHaveLength(1);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const r = await c.query(`SELECT version FROM ${schema}.schema_migrations`);
      expect(r.rows).toEqual([{ version: 1 }]);
    } finally {
      await c.end();
    }
  });
});

describe('an unreachable database', () => {
  let proxy: TcpProxy;
  beforeAll(async () => {
    proxy = await startTcpProxy(endpoint(db.url));
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it('fails every call fast with ERR_STORE_UNAVAILABLE, commits nothing, and recovers without reopening', async () => {
    const [store] = await replicas(1, viaPort(db.url, proxy.port));
    const before = contractCertificate(1);
    await store!.certificates.reserveSerial(before.serial, before.issuedAt);
    await store!.certificates.record(before, contractIssueEvent(before));
    const t = contractToken(7);
    await store!.tokens.create(t, null, contractTokenEvent(t));

    proxy.cut();
    const started = Date.now();
    const c = contractCertificate(2);
    const calls: [string, () => Promise<unknown>][] = [
      ['reserve', () => store!.certificates.reserveSerial(c.serial, c.issuedAt)],
      ['consume', () => store!.certificates.reserveSerial(c.serial, new Date(T0 + 1000), { consumeToken: { tokenId: t.id, tokenHash: t.hash } })],
      ['record', () => store!.certificates.record(before, contractIssueEvent(before))],
      ['append', () => store!.audit.append(event(1))],
      ['revoke', () => store!.revocations.revoke({ serial: before.serial }, 'superseded', new Date(T0 + 1000), { type: 'revoke', actor: 'operator', outcome: 'ok', at: new Date(T0 + 1000) })],
      ['crl number', () => store!.crls.nextCrlNumber('intermediate')],
      ['get', () => store!.certificates.get(before.serial)],
      ['changes', () => store!.revocations.changesSince(0, 10)],
    ];
    for (const [what, call] of calls) {
      const e = await call().then(
        () => expect.unreachable(`${what} succeeded without a database`),
        (err: unknown) => err,
      );
      expect(e, what).toBeInstanceOf(Unavailable);
      expect(e, what).toMatchObject({ code: 'ERR_STORE_UNAVAILABLE', message: 'the store is unavailable: retry later' });
    }
    expect(Date.now() - started).toBeLessThan(5000);

    proxy.restore();
    expect(await store!.certificates.get(before.serial)).toEqual(before);
    expect(await store!.tokens.get(t.id)).toMatchObject({ usedAt: null });
    await store!.certificates.reserveSerial(c.serial, c.issuedAt, {});
    await store!.certificates.record(c, contractIssueEvent(c));
    expect(await verify(store!.audit)).toMatchObject({ ok: true, events: 3 });
  });

  it('refuses to open with the reason and the URL, its password masked', async () => {
    const url = new URL(viaPort(db.url, proxy.port));
    url.password = 'not-the-password';
    const e = await openPostgresStore(url.toString(), { schema: 'nope' }).then(
      () => expect.unreachable('opened with a wrong password'),
      (err: unknown) => err as Error,
    );
    expect(e).toMatchObject({ code: 'ERR_STORE_UNAVAILABLE' });
    expect(e.message).toContain(`postgresql://${url.username}:***@127.0.0.1:${proxy.port}/${db.name}`);
    expect(e.message).toMatch(/password authentication failed/);
    expect(e.message).not.toContain('not-the-password');
  });
});

describe('store lifecycle and text', () => {
  it('commits writes queued before close, then refuses every call with ERR_STORE_CLOSED', async () => {
    const [store, other] = await replicas(2);
    const certs = Array.from({ length: 10 }, (_, i) => contractCertificate(500 + i));
    await Promise.all(certs.map((c) => store!.certificates.reserveSerial(c.serial, c.issuedAt)));
    const pending = [...Array.from({ length: 10 }, (_, i) => store!.audit.append(event(i))), ...certs.map((c) => store!.certificates.record(c, contractIssueEvent(c)))];
    await store!.close();
    expect((await Promise.all(pending)).map((e) => e.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    for (const call of [() => store!.audit.append(event(1)), () => store!.audit.head(), () => store!.crls.nextCrlNumber('root'), () => store!.certificates.count()]) {
      await expect(call()).rejects.toMatchObject({ code: 'ERR_STORE_CLOSED' });
    }
    expect(await other!.audit.head()).toMatchObject({ seq: 20 });
  });

  it('refuses an audit event with a NUL character and finds nothing for a lookup with one', async () => {
    const [store] = await replicas(1);
    const c = contractCertificate(3, { taskId: 'task-3' });
    await store!.certificates.reserveSerial(c.serial, c.issuedAt);
    await store!.certificates.record(c, contractIssueEvent(c));
    await expect(store!.audit.append({ ...event(1), actor: 'op\u0000erator' })).rejects.toMatchObject({ code: 'ERR_AUDIT_EVENT_INVALID' });
    // A detail value is JSON, where U+0000 is escaped: it is stored and hashed as given.
    const ok = await store!.audit.append({ ...event(2), detail: { note: 'a\u0000b' } });
    expect((await store!.audit.read(ok.seq, 1))[0]).toEqual(ok);
    expect(await store!.certificates.list({ taskId: 'task-3\u0000' })).toEqual([]);
    expect(await store!.tokens.getTask('task\u0000')).toBeNull();
    expect(await store!.tokens.endTask('task\u0000', new Date(T0))).toBeNull();
    expect(await store!.revocations.isKeyBlocked('\u0000')).toBe(false);
    const none = await store!.revocations.revoke({ taskId: 'task-3\u0000' }, 'superseded', new Date(T0 + 1), { type: 'revoke', actor: 'operator', outcome: 'ok', at: new Date(T0 + 1) });
    expect(none).toEqual({ revoked: [], changed: 0 });
    expect(await verify(store!.audit)).toMatchObject({ ok: true, events: 2 });
  });

  it('masks the password of a URL wherever it is shown, and checks the URL before connecting', () => {
    expect(redactPostgresUrl('postgresql://ca:s3cret@db.internal:5432/agentca')).toBe('postgresql://ca:***@db.internal:5432/agentca');
    expect(redactPostgresUrl('postgres://ca@db/agentca?password=s3cret&sslmode=require')).toBe('postgres://ca@db/agentca?password=***&sslmode=require');
    expect(redactPostgresUrl('postgresql://ca:s3cret@[bad')).not.toContain('s3cret');
    for (const [url, why] of [
      ['mysql://db/agentca', 'starts with postgresql://'],
      ['postgresql://ca:s3cret@db.internal:5432', 'names no database'],
    ] as const) {
      expect(() => checkPostgresUrl(url)).toThrow(why);
      try {
        checkPostgresUrl(url);
      } catch (e) {
        expect(e).toMatchObject({ code: 'ERR_STORE_URL_INVALID' });
        expect((e as Error).message).not.toContain('s3cret');
      }
    }
  });
});
