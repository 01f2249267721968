import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fdatasync, fstatSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuditChainVerifier, chainInput, DEFAULT_PROFILE, FixedClock, GENESIS_HASH, JoinTokens, Unavailable, webCryptoBackend, webCryptoRandom, type AuditEventInput, type AuditStore, type PublishedCrl } from '@agentca/core';
import { contractCertificate, contractIssueEvent, contractSerial, contractToken, contractTokenEvent, describeStoreContract } from '@agentca/store-contract';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/database.ts';
import { openSqliteStore, type SqliteStore } from '../src/index.ts';
import { migrations } from '../src/migrations.ts';
import { WriteQueue } from '../src/write-queue.ts';
import { SqliteAuditStore } from '../src/audit-store.ts';

const root = mkdtempSync(join(tmpdir(), 'agentca-store-sqlite-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let files = 0;
function freshPath(): string {
  return join(mkdtempSync(join(root, `${files++}-`)), 'agentca.db');
}

const clock = new FixedClock('2030-01-01T00:00:00.000Z');

describeStoreContract('sqlite', () => openSqliteStore(freshPath(), { clock }));

function revokeEvent(at: Date): AuditEventInput {
  return { type: 'revoke', actor: 'operator', outcome: 'ok', at, detail: { reason: 'test' } };
}

async function verify(audit: AuditStore) {
  const verifier = new AuditChainVerifier();
  for (const e of await audit.read(1, 100_000)) await verifier.add(e);
  return verifier.finish(await audit.head());
}

describe('sqlite store', () => {
  let path: string;
  let store: SqliteStore | undefined;
  let raw: Database.Database | undefined;
  beforeEach(() => {
    path = freshPath();
  });
  afterEach(async () => {
    await store?.close();
    raw?.close();
    store = undefined;
    raw = undefined;
  });

  describe('durability', () => {
    it('keeps certificates and the audit chain across close and reopen', async () => {
      store = await openSqliteStore(path, { clock });
      const c = contractCertificate(1);
      await store.certificates.reserveSerial(c.serial, c.issuedAt);
      await store.certificates.reserveSerial(contractSerial(2), c.issuedAt);
      await store.certificates.record(c, contractIssueEvent(c));
      await store.audit.append({ type: 'init', actor: 'operator', outcome: 'ok', at: clock.now() });
      const head = await store.audit.head();
      await store.close();

      store = await openSqliteStore(path, { clock });
      expect(await store.certificates.get(c.serial)).toEqual(c);
      expect(await store.audit.head()).toEqual(head);
      expect(await verify(store.audit)).toEqual({ ok: true, events: 2, head: head.hash });
      await expect(store.certificates.reserveSerial(contractSerial(2), c.issuedAt)).rejects.toMatchObject({ code: 'ERR_SERIAL_EXISTS' });
    });

    it('keeps revocations, blocked keys, CRL numbers and the latest CRLs across close and reopen', async () => {
      store = await openSqliteStore(path, { clock });
      const [a, b] = [contractCertificate(1), contractCertificate(2)];
      for (const c of [a, b]) {
        await store.certificates.reserveSerial(c.serial, c.issuedAt);
        await store.certificates.record(c, contractIssueEvent(c));
      }
      const at = new Date(a.issuedAt.getTime() + 60_000);
      await store.revocations.revoke({ serial: a.serial }, 'keyCompromise', at, revokeEvent(at));
      await store.revocations.revoke({ serial: b.serial }, 'superseded', at, revokeEvent(at));
      for (let i = 0; i < 3; i++) await store.crls.nextCrlNumber('intermediate');
      await store.crls.nextCrlNumber('root');
      const crl: PublishedCrl = { issuer: 'intermediate', crlNumber: 3n, thisUpdate: at, nextUpdate: new Date(at.getTime() + 86_400_000), der: Uint8Array.from([0x30, 0x00]) };
      await store.crls.save(crl);
      const entries = await store.revocations.crlEntries();
      const head = await store.audit.head();
      await store.close();

      store = await openSqliteStore(path, { clock });
      expect(await store.revocations.crlEntries()).toEqual(entries);
      expect(await store.revocations.changesSince(0, 10)).toEqual(entries);
      expect(await store.revocations.get(a.serial)).toEqual(entries[0]);
      expect(await store.revocations.isKeyBlocked(a.keyFingerprint)).toBe(true);
      expect(await store.revocations.isKeyBlocked(b.keyFingerprint)).toBe(false);
      expect(await store.crls.nextCrlNumber('intermediate')).toBe(4n);
      expect(await store.crls.nextCrlNumber('root')).toBe(2n);
      expect(await store.crls.latest('intermediate')).toEqual(crl);
      expect(await verify(store.audit)).toEqual({ ok: true, events: 4, head: head.hash });

      const c = contractCertificate(3);
      await store.certificates.reserveSerial(c.serial, c.issuedAt);
      await store.certificates.record(c, contractIssueEvent(c));
      const [next] = (await store.revocations.revoke({ serial: c.serial }, 'superseded', at, revokeEvent(at))).revoked;
      expect(next!.changeSeq).toBeGreaterThan(Math.max(...entries.map((e) => e.changeSeq)));
    });

    it('keeps tokens, tasks and consumptions across close and reopen', async () => {
      store = await openSqliteStore(path, { clock });
      const [used, fresh] = [contractToken(1, { taskId: 'task-a' }), contractToken(2, { taskId: 'task-a' })];
      const deadline = new Date(used.createdAt.getTime() + 3_600_000);
      for (const t of [used, fresh]) await store.tokens.create(t, { id: 'task-a', deadline }, contractTokenEvent(t));
      const at = new Date(used.createdAt.getTime() + 1000);
      await store.certificates.reserveSerial(contractSerial(1), at, { consumeToken: { tokenId: used.id, tokenHash: used.hash } });
      await store.close();

      store = await openSqliteStore(path, { clock });
      expect(await store.tokens.get(used.id)).toEqual({ ...used, usedAt: at, usedBySerial: contractSerial(1) });
      expect(await store.tokens.get(fresh.id)).toEqual(fresh);
      await expect(store.certificates.reserveSerial(contractSerial(2), at, { consumeToken: { tokenId: used.id, tokenHash: used.hash } })).rejects.toMatchObject({
        code: 'ERR_TOKEN_ALREADY_USED',
      });
      const ended = await store.tokens.endTask('task-a', at);
      await store.close();

      store = await openSqliteStore(path, { clock });
      expect(await store.tokens.getTask('task-a')).toEqual(ended);
      await expect(store.certificates.reserveSerial(contractSerial(3), at, { consumeToken: { tokenId: fresh.id, tokenHash: fresh.hash } })).rejects.toMatchObject({
        code: 'ERR_TASK_ENDED',
      });
      expect(await verify(store.audit)).toMatchObject({ ok: true, events: 2 });
    });

    it('keeps a write whose promise resolved even if the process is killed right after', () => {
      const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
      const fixture = fileURLToPath(new URL('./fixtures/write-then-die.ts', import.meta.url));
      const serial = contractSerial(99);
      const child = spawnSync(process.execPath, ['--import', 'tsx', fixture, path, serial], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
      expect(child.signal, child.stderr).toBe('SIGKILL');
      const reported = JSON.parse(child.stdout) as { seq: number; hash: string };

      raw = new Database(path, { readonly: true });
      expect(raw.prepare('SELECT count(*) FROM certificates WHERE serial = ?').pluck().get(serial)).toBe(1);
      expect(raw.prepare('SELECT seq, hash FROM audit_head').get()).toEqual(reported);
    }, 60_000);

    it('commits writes still queued when the store is closed', async () => {
      store = await openSqliteStore(path, { clock });
      const writes = Array.from({ length: 20 }, (_, i) => store!.certificates.reserveSerial(contractSerial(i), clock.now()));
      await store.close();
      await Promise.all(writes);
      store = await openSqliteStore(path, { clock });
      await expect(store.certificates.reserveSerial(contractSerial(19), clock.now())).rejects.toMatchObject({ code: 'ERR_SERIAL_EXISTS' });
    });

    it('refuses every call once closed with ERR_STORE_CLOSED', async () => {
      store = await openSqliteStore(path, { clock });
      await store.close();
      await store.close();
      await expect(store.certificates.reserveSerial(contractSerial(1), clock.now())).rejects.toMatchObject({ code: 'ERR_STORE_CLOSED', message: 'the store is closed' });
      await expect(store.audit.append({ type: 'init', actor: 'operator', outcome: 'ok', at: clock.now() })).rejects.toBeInstanceOf(Unavailable);
      await expect(store.certificates.get(contractSerial(1))).rejects.toMatchObject({ code: 'ERR_STORE_CLOSED' });
      await expect(store.audit.head()).rejects.toMatchObject({ code: 'ERR_STORE_CLOSED' });
    });
  });

  describe('database file', () => {
    it('runs in WAL mode with synchronous=FULL, foreign keys on, a busy timeout and a 2 MiB page cache', () => {
      raw = openDatabase(path, { clock, busyTimeoutMs: 1234 });
      expect(raw.pragma('cache_size', { simple: true })).toBe(-2000); // better-sqlite3 would give -16000
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.pragma('synchronous', { simple: true })).toBe(2);
      expect(raw.pragma('foreign_keys', { simple: true })).toBe(1);
      expect(raw.pragma('busy_timeout', { simple: true })).toBe(1234);
    });

    it('applies each migration once, in order, however often the file is opened', async () => {
      for (let i = 0; i < 3; i++) await (await openSqliteStore(path, { clock })).close();
      raw = new Database(path, { readonly: true });
      expect(raw.prepare('SELECT version, name, applied_at AS appliedAt FROM schema_migrations ORDER BY version').all()).toEqual(
        migrations.map((m) => ({ version: m.version, name: m.name, appliedAt: '2030-01-01T00:00:00.000Z' })),
      );
      expect(migrations.map((m) => m.version)).toEqual(migrations.map((_, i) => i + 1));
      expect(raw.prepare('SELECT seq, hash FROM audit_head').all()).toEqual([{ seq: 0, hash: GENESIS_HASH }]);
    });

    it('migrates a file created at schema version 1 to the latest version on open, keeping its certificates and audit chain', async () => {
      const c = contractCertificate(1);
      raw = openDatabase(path, { clock: new FixedClock('2029-01-01T00:00:00.000Z'), migrations: migrations.filter((m) => m.version === 1) });
      raw.prepare('INSERT INTO serials (serial, reserved_at) VALUES (?, ?)').run(c.serial, c.issuedAt.getTime());
      raw
        .prepare(
          `INSERT INTO certificates (serial, spiffe_id, instance_id, task_id, on_behalf_of, profile, not_before, not_after, issued_at, key_fingerprint, der)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(c.serial, c.spiffeId, c.instanceId, c.taskId, c.onBehalfOf, c.profile, c.notBefore.getTime(), c.notAfter.getTime(), c.issuedAt.getTime(), c.keyFingerprint, Buffer.from(c.der));
      expect(raw.prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('revocations', 'blocked_keys', 'crl_state', 'crls')").pluck().get()).toBe(0);
      raw.close();
      raw = undefined;

      store = await openSqliteStore(path, { clock });
      await store.audit.append({ type: 'init', actor: 'operator', outcome: 'ok', at: clock.now() });
      expect(await store.certificates.get(c.serial)).toEqual(c);
      const at = new Date(c.issuedAt.getTime() + 1000);
      const outcome = await store.revocations.revoke({ serial: c.serial }, 'keyCompromise', at, revokeEvent(at));
      expect(outcome).toMatchObject({ changed: 1, revoked: [{ serial: c.serial, reason: 'keyCompromise', revokedAt: at, notAfter: c.notAfter }] });
      expect(await store.revocations.isKeyBlocked(c.keyFingerprint)).toBe(true);
      expect(await store.crls.nextCrlNumber('intermediate')).toBe(1n);
      expect(await verify(store.audit)).toMatchObject({ ok: true, events: 2 });
      await store.close();
      store = undefined;

      raw = new Database(path, { readonly: true });
      expect(raw.prepare('SELECT version, applied_at AS appliedAt FROM schema_migrations ORDER BY version').all()).toEqual([
        { version: 1, appliedAt: '2029-01-01T00:00:00.000Z' },
        ...migrations.slice(1).map((m) => ({ version: m.version, appliedAt: '2030-01-01T00:00:00.000Z' })),
      ]);
    });

    it('migrates a file at schema version 2 to version 3 on open, keeping its certificates, revocations and audit chain', async () => {
      const c = contractCertificate(1);
      const revokedAt = c.issuedAt.getTime() + 1000;
      const event: AuditEventInput = { type: 'issue', actor: 'operator', outcome: 'ok', at: c.issuedAt, serial: c.serial };
      const hash = createHash('sha256').update(chainInput(GENESIS_HASH, 1, event)).digest('hex');
      raw = openDatabase(path, { clock: new FixedClock('2029-01-01T00:00:00.000Z'), migrations: migrations.filter((m) => m.version <= 2) });
      raw.prepare('INSERT INTO serials (serial, reserved_at) VALUES (?, ?)').run(c.serial, c.issuedAt.getTime());
      raw
        .prepare(
          `INSERT INTO certificates (serial, spiffe_id, instance_id, task_id, on_behalf_of, profile, not_before, not_after, issued_at, key_fingerprint, der)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(c.serial, c.spiffeId, c.instanceId, c.taskId, c.onBehalfOf, c.profile, c.notBefore.getTime(), c.notAfter.getTime(), c.issuedAt.getTime(), c.keyFingerprint, Buffer.from(c.der));
      raw
        .prepare(`INSERT INTO revocations (serial, revoked_at, reason, not_after, spiffe_id, instance_id, task_id, change_seq) VALUES (?, ?, 'superseded', ?, ?, ?, ?, 1)`)
        .run(c.serial, revokedAt, c.notAfter.getTime(), c.spiffeId, c.instanceId, c.taskId);
      raw
        .prepare('INSERT INTO audit_events (seq, at, type, actor, outcome, serial, prev_hash, hash) VALUES (1, ?, ?, ?, ?, ?, ?, ?)')
        .run(c.issuedAt.toISOString(), event.type, event.actor, event.outcome, c.serial, GENESIS_HASH, hash);
      raw.prepare('UPDATE audit_head SET seq = 1, hash = ? WHERE id = 1').run(hash);
      expect(raw.prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('tasks', 'join_tokens')").pluck().get()).toBe(0);
      raw.close();
      raw = undefined;

      store = await openSqliteStore(path, { clock });
      expect(await store.certificates.get(c.serial)).toEqual(c);
      expect(await store.revocations.get(c.serial)).toMatchObject({ serial: c.serial, reason: 'superseded', revokedAt: new Date(revokedAt), changeSeq: 1 });
      const token = contractToken(1, { taskId: 'task-a' });
      const deadline = new Date(token.createdAt.getTime() + 3_600_000);
      expect(await store.tokens.create(token, { id: 'task-a', deadline }, contractTokenEvent(token))).toEqual({ id: 'task-a', deadline, endedAt: null });
      const at = new Date(token.createdAt.getTime() + 1000);
      await store.certificates.reserveSerial(contractSerial(2), at, { consumeToken: { tokenId: token.id, tokenHash: token.hash } });
      expect(await store.tokens.get(token.id)).toEqual({ ...token, usedAt: at, usedBySerial: contractSerial(2) });
      expect(await verify(store.audit)).toMatchObject({ ok: true, events: 2 });
      await store.close();
      store = undefined;

      raw = new Database(path, { readonly: true });
      expect(raw.prepare('SELECT version, applied_at AS appliedAt FROM schema_migrations ORDER BY version').all()).toEqual([
        { version: 1, appliedAt: '2029-01-01T00:00:00.000Z' },
        { version: 2, appliedAt: '2029-01-01T00:00:00.000Z' },
        ...migrations.slice(2).map((m) => ({ version: m.version, appliedAt: '2030-01-01T00:00:00.000Z' })),
      ]);
    });

    it('migrates a file at schema version 3 to version 4 on open, keeping its tasks and tokens, used and unused', async () => {
      const used = contractToken(1, { taskId: 'task-a' });
      const unused = contractToken(2);
      const at = used.createdAt.getTime() + 1000;
      raw = openDatabase(path, { clock: new FixedClock('2029-01-01T00:00:00.000Z'), migrations: migrations.filter((m) => m.version <= 3) });
      raw.prepare('INSERT INTO tasks (id, deadline) VALUES (?, ?)').run('task-a', at + 3_600_000);
      raw.prepare('INSERT INTO serials (serial, reserved_at) VALUES (?, ?)').run(contractSerial(1), at);
      const insert = raw.prepare(
        `INSERT INTO join_tokens (id, hash, spiffe_id, profile, task_id, on_behalf_of, created_at, expires_at, used_at, used_by_serial)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const [t, usedAt, serial] of [[used, at, contractSerial(1)], [unused, null, null]] as const) {
        insert.run(t.id, t.hash, t.spiffeId, t.profile, t.taskId, t.onBehalfOf, t.createdAt.getTime(), t.expiresAt.getTime(), usedAt, serial);
      }
      raw.close();
      raw = undefined;

      store = await openSqliteStore(path, { clock });
      expect(await store.tokens.get(used.id)).toEqual({ ...used, usedAt: new Date(at), usedBySerial: contractSerial(1) });
      expect(await store.tokens.get(unused.id)).toEqual(unused);
      await expect(store.certificates.reserveSerial(contractSerial(3), new Date(at), { consumeToken: { tokenId: used.id, tokenHash: used.hash } })).rejects.toMatchObject({
        code: 'ERR_TOKEN_ALREADY_USED',
      });
      await store.certificates.reserveSerial(contractSerial(2), new Date(at), { consumeToken: { tokenId: unused.id, tokenHash: unused.hash } });
      expect(await store.tokens.get(unused.id)).toMatchObject({ usedAt: new Date(at), usedBySerial: contractSerial(2) });
      await store.close();
      store = undefined;

      raw = new Database(path);
      expect(raw.prepare('SELECT max(version) FROM schema_migrations').pluck().get()).toBe(4);
      expect(raw.pragma('foreign_key_check')).toEqual([]);
      expect(() => raw!.prepare('UPDATE join_tokens SET used_by_serial = ? WHERE id = ?').run(contractSerial(1), unused.id)).toThrow(/UNIQUE constraint failed/);
    });

    it('applies pending migrations in one transaction: a failing one leaves the schema as it was', () => {
      const broken = [...migrations, { version: migrations.length + 1, name: 'broken', sql: 'CREATE TABLE extra (x); SELECT * FROM no_such_table;' }];
      expect(() => openDatabase(path, { clock, migrations: broken })).toThrow(expect.objectContaining({ code: 'ERR_STORE_INTERNAL' }));
      raw = new Database(path, { readonly: true });
      expect(raw.prepare("SELECT name FROM sqlite_master WHERE name IN ('extra', 'certificates', 'schema_migrations')").pluck().all()).toEqual([]);
      raw.close();
      raw = openDatabase(path, { clock });
      expect(raw.prepare('SELECT count(*) FROM schema_migrations').pluck().get()).toBe(migrations.length);
    });

    it('refuses a file migrated by a newer agentca with ERR_STORE_SCHEMA_TOO_NEW', async () => {
      await (await openSqliteStore(path, { clock })).close();
      raw = new Database(path);
      raw.prepare("INSERT INTO schema_migrations VALUES (999, 'future', 'x')").run();
      raw.close();
      raw = undefined;
      await expect(openSqliteStore(path, { clock })).rejects.toMatchObject({
        code: 'ERR_STORE_SCHEMA_TOO_NEW',
        message: `the store has schema version 999, this agentca knows up to ${migrations.length}`,
      });
    });

    it('fails to open an unusable path with ERR_STORE_UNAVAILABLE', async () => {
      const e = await openSqliteStore(join(root, 'no', 'such', 'dir', 'x.db')).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(Unavailable);
      expect(e).toMatchObject({ code: 'ERR_STORE_UNAVAILABLE' });
    });
  });

  describe('group commit', () => {
    it('commits 1000 concurrent reservations in far fewer transactions', async () => {
      store = await openSqliteStore(path, { clock });
      const before = store.committedBatches;
      await Promise.all(Array.from({ length: 1000 }, (_, i) => store!.certificates.reserveSerial(contractSerial(i), clock.now())));
      const batches = store.committedBatches - before;
      expect(batches).toBeGreaterThanOrEqual(1);
      expect(batches).toBeLessThanOrEqual(5);
    });

    it('splits a long queue into batches of at most maxBatchSize', async () => {
      store = await openSqliteStore(path, { clock, maxBatchSize: 100 });
      const before = store.committedBatches;
      await Promise.all(Array.from({ length: 1000 }, (_, i) => store!.certificates.reserveSerial(contractSerial(i), clock.now())));
      expect(store.committedBatches - before).toBe(10);
    });

    it('commits the good writes of a batch in which others fail, in one transaction', async () => {
      store = await openSqliteStore(path, { clock });
      await store.certificates.reserveSerial(contractSerial(0), clock.now());
      const before = store.committedBatches;
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => store!.certificates.reserveSerial(contractSerial(i % 5), clock.now())));
      expect(store.committedBatches - before).toBe(1);
      // Serial 0 was taken before; 1-4 are asked for twice.
      expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', ...Array(5).fill('rejected')]);
    });
  });

  describe('the audit head, carried through a transaction', () => {
    it('is written once per transaction, and an op that appended and then failed takes its event and its move of the head back with it', async () => {
      const db = openDatabase(path, { clock });
      try {
        const queue = new WriteQueue(db);
        const audit = new SqliteAuditStore(db, queue);
        let headWrites = 0;
        db.function('count_head_write', () => ++headWrites);
        db.exec(`CREATE TEMP TRIGGER head_writes AFTER UPDATE ON audit_head BEGIN SELECT count_head_write(); END`);
        const at = clock.now();
        const append = (actor: string, fail = false) =>
          queue.enqueue(() => {
            audit.appendInWrite({ type: 'token', actor, outcome: 'ok', at });
            if (fail) throw new Error(`${actor} fails after appending`);
          });
        // One turn, one transaction: a, b (fails after its append), c; then d, e (fails), in the next one.
        const first = await Promise.allSettled([append('a'), append('b', true), append('c')]);
        expect(first.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect(headWrites).toBe(1);
        const second = await Promise.allSettled([append('d'), append('e', true)]);
        expect(second.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
        expect(headWrites).toBe(2);
        // A transaction whose every append failed writes no head at all.
        await expect(append('f', true)).rejects.toThrow();
        expect(headWrites).toBe(2);
        const events = await audit.read(1, 100);
        expect(events.map((e) => [e.seq, e.actor])).toEqual([
          [1, 'a'],
          [2, 'c'],
          [3, 'd'],
        ]);
        expect(await audit.head()).toEqual({ seq: 3, hash: events[2]!.hash });
        expect(await verify(audit)).toMatchObject({ ok: true, events: 3 });
      } finally {
        db.close();
      }
    });
  });

  describe('durability off the event loop', () => {
    /** An fdatasync the test releases (runs for real) or fails by hand. */
    function heldSyncs() {
      const held: { fd: number; done: (e: NodeJS.ErrnoException | null) => void }[] = [];
      return {
        fdatasync: (fd: number, done: (e: NodeJS.ErrnoException | null) => void) => void held.push({ fd, done }),
        held,
        release() {
          const h = held.shift()!;
          fdatasync(h.fd, h.done);
        },
        fail() {
          const h = held.shift()!;
          h.done(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
        },
      };
    }
    const tick = () => new Promise((r) => setImmediate(r));
    const settled = (p: Promise<unknown>) => Promise.race([p.then(() => true, () => true), tick().then(tick).then(() => false)]);
    /** A queue on the store's own connection setup, with syncs the test holds; `write(i)` inserts serial i, durable unless told. */
    async function withHeldSyncs(body: (q: { db: Database.Database; queue: WriteQueue; syncs: ReturnType<typeof heldSyncs>; write: (i: number, durable?: boolean) => Promise<unknown> }) => Promise<void>) {
      const db = openDatabase(path, { clock });
      try {
        const syncs = heldSyncs();
        const queue = new WriteQueue(db, { fdatasync: syncs.fdatasync });
        const insert = db.prepare('INSERT INTO serials (serial, reserved_at) VALUES (?, ?)');
        const write = (i: number, durable = true) => queue.enqueue(() => insert.run(contractSerial(i), 1), durable ? {} : { singleStatement: true, durable: false });
        await body({ db, queue, syncs, write });
      } finally {
        db.close();
      }
    }

    it('commits under synchronous=NORMAL and settles a durable write only after a sync of the -wal file that began after its COMMIT', async () => {
      await withHeldSyncs(async ({ db, queue, syncs, write }) => {
        expect(db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL: the queue makes the sync itself
        raw = new Database(path, { readonly: true });
        const count = () => raw!.prepare('SELECT count(*) FROM serials').pluck().get();

        const durable = write(0);
        const light = write(1, false);
        await light; // settles at its COMMIT, in the same batch as the durable write
        expect(count()).toBe(2);
        expect(syncs.held).toHaveLength(1);
        expect(fstatSync(syncs.held[0]!.fd).ino).toBe(statSync(`${path}-wal`).ino);
        expect(await settled(durable)).toBe(false);
        syncs.release();
        await durable;
        expect(queue.walSyncs).toBe(1);

        // A batch of light writes alone asks for no sync.
        await Promise.all([2, 3].map((i) => write(i, false)));
        expect(syncs.held).toHaveLength(0);
        expect(queue.unsyncedCommits).toBe(1);
        expect(queue.committedBatches).toBe(2);
      });
    });

    it('runs one sync at a time: durable writes queued while it runs commit together when it returns, and share the next sync', async () => {
      await withHeldSyncs(async ({ queue, syncs, write }) => {
        const first = write(0);
        await tick();
        expect(queue.committedBatches).toBe(1);
        // Three durable writes, one per turn, while the first sync runs: none commits yet.
        const later: Promise<unknown>[] = [];
        for (let i = 1; i <= 3; i++) {
          later.push(write(i));
          await tick();
        }
        expect(queue.committedBatches).toBe(1);
        expect(syncs.held).toHaveLength(1);
        syncs.release();
        await first;
        await tick();
        expect(queue.committedBatches).toBe(2); // the three, in one transaction
        expect(syncs.held).toHaveLength(1); // and one sync for them
        for (const p of later) expect(await settled(p)).toBe(false);
        syncs.release();
        await Promise.all(later);
        expect(queue.walSyncs).toBe(2);
      });
    });

    it('commits a write that need not be durable at once while a sync runs, with the durable writes queued before it', async () => {
      await withHeldSyncs(async ({ queue, syncs, write }) => {
        const first = write(0);
        await tick();
        const durable = write(1);
        await tick();
        expect(queue.committedBatches).toBe(1);
        const light = write(2, false);
        await light; // while the first sync is still held
        expect(queue.committedBatches).toBe(2);
        expect(syncs.held).toHaveLength(1);
        expect(await settled(durable)).toBe(false);
        syncs.release();
        await first;
        await tick();
        syncs.release(); // the sync that covers the durable write committed with the light one
        await durable;
        expect(queue.walSyncs).toBe(2);
        expect(queue.committedBatches).toBe(2);
      });
    });

    it('fails closed when a sync fails: the writes that waited on it and every later write are refused', async () => {
      await withHeldSyncs(async ({ syncs, write }) => {
        const waiting = write(0);
        await tick();
        const next = write(1); // queued while the first sync runs
        await tick();
        syncs.fail();
        await expect(waiting).rejects.toMatchObject({ code: 'ERR_STORE_UNAVAILABLE', message: 'the store could not sync its write-ahead log' });
        await expect(next).rejects.toMatchObject({ code: 'ERR_STORE_UNAVAILABLE' });
        await expect(write(2)).rejects.toMatchObject({ code: 'ERR_STORE_UNAVAILABLE' });
        await expect(write(3, false)).rejects.toMatchObject({ code: 'ERR_STORE_UNAVAILABLE' });
        expect(syncs.held).toHaveLength(0);
        raw = new Database(path, { readonly: true });
        expect(raw.prepare('SELECT count(*) FROM serials').pluck().get()).toBe(1); // nothing commits after the failure
      });
    });

    it('syncs on close, on the calling thread, what was committed and not yet synced', async () => {
      await withHeldSyncs(async ({ queue, syncs, write }) => {
        const inFlight = write(0);
        await tick();
        const light = write(1, false);
        const committed = write(2); // commits with the light write
        await light;
        const queued = write(3); // waits for the held sync
        expect(queue.committedBatches).toBe(2);
        queue.close();
        await Promise.all([inFlight, committed, queued]);
        expect(queue.committedBatches).toBe(3);
        raw = new Database(path, { readonly: true });
        expect(raw.prepare('SELECT count(*) FROM serials').pluck().get()).toBe(4);
        syncs.release(); // the thread-pool sync returns after close: nothing left for it to settle
        await tick();
      });
    });

    it('syncs a write queued in the same turn as close on the calling thread only, with no sync on the pool besides', async () => {
      await withHeldSyncs(async ({ queue, syncs, write }) => {
        const queued = write(0);
        queue.close();
        expect(syncs.held).toHaveLength(0);
        await queued;
        expect(queue.committedBatches).toBe(1);
      });
    });

    it('refuses a connection that keeps no write-ahead log, whose commits it could not sync', () => {
      raw = new Database(path); // journal_mode=delete
      expect(() => new WriteQueue(raw!)).toThrow(expect.objectContaining({ code: 'ERR_STORE_UNAVAILABLE', message: 'the write queue needs write-ahead logging (journal mode is delete)' }));
    });

    it('makes the sync itself, on a thread-pool thread, after the commit and before the write resolves (strace)', () => {
      const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
      const fixture = fileURLToPath(new URL('./fixtures/write-then-die.ts', import.meta.url));
      const trace = join(dirname(path), 'strace.txt');
      const child = spawnSync('strace', ['-f', '-y', '-qq', '-e', 'trace=pwrite64,write,fsync,fdatasync', '-o', trace, process.execPath, '--import', 'tsx', fixture, path, contractSerial(98)], {
        cwd: repo,
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(child.status ?? child.signal, child.stderr).toBe('SIGKILL');
      const all = readFileSync(trace, 'utf8').split('\n');
      const pid = Number(/^(\d+)/.exec(all[0]!)![1]);
      // From the store's open (migrations commit under FULL, on the main thread) to the line that
      // reports the resolved record on stdout.
      const opened = all.findIndex((l) => /\bwrite\(2</.test(l) && l.includes('store opened'));
      const reported = all.findIndex((l) => /\bwrite\(1</.test(l) && l.includes('seq'));
      expect(opened).toBeGreaterThan(0);
      expect(reported).toBeGreaterThan(opened);
      const lines = all.slice(opened, reported);
      const wal = `${path}-wal>`;
      const isWalSync = (l: string) => /\bf(data)?sync\(/.test(l) && l.includes(wal);
      const lastWalWrite = lines.findLastIndex((l) => l.includes('pwrite64(') && l.includes(wal));
      const lastSync = lines.findLastIndex((l) => isWalSync(l) && l.endsWith('= 0'));
      expect(lastWalWrite).toBeGreaterThan(0);
      expect(lastSync).toBeGreaterThan(lastWalWrite);
      // Every sync of the log ran off the main thread (whose id is the process id).
      for (const l of lines.filter(isWalSync)) expect(Number(/^(\d+)/.exec(l)![1])).not.toBe(pid);
    }, 60_000);

    it('serial reservations (with or without a token) are the store writes that skip their own sync; records and audit events do not', async () => {
      store = await openSqliteStore(path, { clock });
      const c = contractCertificate(0);
      await store.certificates.reserveSerial(c.serial, c.issuedAt);
      expect(store.unsyncedCommits).toBe(1);
      await store.certificates.record(c, contractIssueEvent(c));
      await store.audit.append(revokeEvent(clock.now()));
      expect(store.unsyncedCommits).toBe(1);
      expect(store.committedBatches).toBe(3);
    });
  });

  describe('revocations', () => {
    it('group-commits 100 concurrent revocations, each with its audit event, in far fewer transactions', async () => {
      store = await openSqliteStore(path, { clock });
      const certs = Array.from({ length: 100 }, (_, i) => contractCertificate(i));
      await Promise.all(certs.map((c) => store!.certificates.reserveSerial(c.serial, c.issuedAt)));
      await Promise.all(certs.map((c) => store!.certificates.record(c, contractIssueEvent(c))));
      const at = new Date(certs[99]!.issuedAt.getTime());
      const before = store.committedBatches;
      const outcomes = await Promise.all(certs.map((c) => store!.revocations.revoke({ serial: c.serial }, 'superseded', at, revokeEvent(at))));
      expect(store.committedBatches - before).toBeLessThanOrEqual(5);
      // One queue, one writer: changeSeq follows the order the revocations were asked for.
      expect(outcomes.map((o) => o.revoked[0]!.changeSeq)).toEqual(certs.map((_, i) => i + 1));
      expect(await verify(store.audit)).toMatchObject({ ok: true, events: 200 });
    });

    it('reads 100 000 CRL entries in one query, in serial order, and drops the expired ones in one update', async () => {
      store = await openSqliteStore(path, { clock });
      const n = 100_000;
      const t0 = clock.now().getTime();
      raw = new Database(path);
      raw.transaction(() => {
        const serial = raw!.prepare('INSERT INTO serials (serial, reserved_at) VALUES (?, ?)');
        const certificate = raw!.prepare(
          `INSERT INTO certificates (serial, spiffe_id, instance_id, task_id, on_behalf_of, profile, not_before, not_after, issued_at, key_fingerprint, der)
           VALUES (?, 'spiffe://example.org/agent', ?, NULL, NULL, 'agent', ?, ?, ?, ?, x'3000')`,
        );
        const revocation = raw!.prepare(
          `INSERT INTO revocations (serial, revoked_at, reason, not_after, spiffe_id, instance_id, task_id, change_seq)
           VALUES (?, ?, 'superseded', ?, 'spiffe://example.org/agent', ?, NULL, ?)`,
        );
        // Inserted in a scrambled order; every tenth expires an hour before the rest.
        for (let k = 0; k < n; k++) {
          const i = (k * 7919) % n;
          const s = contractSerial(i);
          const notAfter = t0 + (i % 10 === 0 ? 3_600_000 : 7_200_000);
          serial.run(s, t0);
          certificate.run(s, `instance-${i}`, t0, notAfter, t0, i.toString(16).padStart(64, '0'));
          revocation.run(s, t0 + 1, notAfter, `instance-${i}`, k + 1);
        }
      })();

      let started = performance.now();
      const entries = await store.revocations.crlEntries();
      const took = performance.now() - started;
      expect(entries).toHaveLength(n);
      expect(entries.every((e, i) => e.serial === contractSerial(i))).toBe(true);
      // Generous for a loaded CI machine; an N+1 or unindexed plan over 100k rows is far slower.
      expect(took).toBeLessThan(5000);

      started = performance.now();
      expect(await store.revocations.markListedAfterExpiry(1n, new Date(t0 + 5_400_000))).toBe(n / 10);
      expect(performance.now() - started).toBeLessThan(5000);
      const left = await store.revocations.crlEntries();
      expect(left).toHaveLength(n - n / 10);
      expect(left[0]!.serial).toBe(contractSerial(1));
    });
  });

  describe('join tokens', () => {
    it('keeps the secret out of the file and ties a used token to its reservation in the schema', async () => {
      store = await openSqliteStore(path, { clock });
      const t = contractToken(1);
      await store.tokens.create(t, null, contractTokenEvent(t));
      raw = new Database(path);
      expect(raw.prepare('SELECT * FROM join_tokens').all()).toEqual([
        expect.objectContaining({ id: t.id, hash: t.hash, used_at: null, used_by_serial: null }),
      ]);
      expect(() => raw!.prepare('UPDATE join_tokens SET used_at = 1').run()).toThrow(/CHECK constraint failed/);
      expect(() => raw!.prepare(`UPDATE join_tokens SET used_at = 1, used_by_serial = '${contractSerial(9)}'`).run()).toThrow(/FOREIGN KEY constraint failed/);
    });

    it('lets a serial pay for one token at most, and indexes only the tokens that were used', async () => {
      store = await openSqliteStore(path, { clock });
      const [a, b] = [contractToken(1), contractToken(2)];
      for (const t of [a, b]) await store.tokens.create(t, null, contractTokenEvent(t));
      await store.certificates.reserveSerial(contractSerial(1), new Date(a.createdAt.getTime() + 1000), { consumeToken: { tokenId: a.id, tokenHash: a.hash } });
      raw = new Database(path);
      expect(() => raw!.prepare('UPDATE join_tokens SET used_at = 1, used_by_serial = ? WHERE id = ?').run(contractSerial(1), b.id)).toThrow(/UNIQUE constraint failed/);
      // Unused tokens stay out of the index: consuming one adds an entry, it does not move one.
      const index = (raw.pragma('index_list(join_tokens)') as { name: string; unique: number; partial: number }[]).filter(
        (i) => (raw!.pragma(`index_info(${i.name})`) as { name: string }[]).map((c) => c.name).join() === 'used_by_serial',
      );
      expect(index).toEqual([expect.objectContaining({ unique: 1, partial: 1 })]);
    });

    it('consumes a token and reserves its serial in one group-committed transaction with other writes', async () => {
      store = await openSqliteStore(path, { clock });
      const tokens = Array.from({ length: 20 }, (_, i) => contractToken(i));
      for (const t of tokens) await store.tokens.create(t, null, contractTokenEvent(t));
      const at = new Date(tokens[19]!.createdAt.getTime() + 1000);
      const before = store.committedBatches;
      const results = await Promise.allSettled(
        tokens.flatMap((t, i) => [
          store!.certificates.reserveSerial(contractSerial(i), at, { consumeToken: { tokenId: t.id, tokenHash: t.hash } }),
          store!.certificates.reserveSerial(contractSerial(100 + i), at, { consumeToken: { tokenId: t.id, tokenHash: t.hash } }),
        ]),
      );
      expect(store.committedBatches - before).toBe(1);
      expect(results.map((r) => r.status)).toEqual(tokens.flatMap(() => ['fulfilled', 'rejected']));
      for (const [i, t] of tokens.entries()) expect((await store.tokens.get(t.id))!.usedBySerial).toBe(contractSerial(i));
    });
  });

  describe('errors', () => {
    it('fails writes with ERR_STORE_UNAVAILABLE while another process holds the lock, and commits none of them', async () => {
      store = await openSqliteStore(path, { clock, busyTimeoutMs: 20 });
      raw = new Database(path);
      raw.prepare('BEGIN IMMEDIATE').run();
      const results = await Promise.allSettled([
        store.certificates.reserveSerial(contractSerial(1), clock.now()),
        store.audit.append({ type: 'init', actor: 'operator', outcome: 'ok', at: clock.now() }),
      ]);
      for (const r of results) {
        expect(r).toMatchObject({ status: 'rejected', reason: { code: 'ERR_STORE_UNAVAILABLE', message: 'the store is unavailable: database is locked' } });
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(Unavailable);
      }
      raw.prepare('ROLLBACK').run();
      await store.certificates.reserveSerial(contractSerial(1), clock.now());
      expect(await store.audit.head()).toEqual({ seq: 0, hash: GENESIS_HASH });
    });
  });

  describe('tamper evidence', () => {
    async function seed(n: number): Promise<SqliteStore> {
      const s = await openSqliteStore(path, { clock });
      for (let i = 0; i < n; i++) await s.audit.append({ type: 'token.create', actor: 'operator', outcome: 'ok', at: clock.now(), detail: { i } });
      return s;
    }

    it('keeps audit_events plain: no triggers, editable by any SQLite client', async () => {
      store = await seed(1);
      raw = new Database(path);
      expect(raw.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").pluck().get()).toBe(0);
      expect(raw.prepare("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1").run().changes).toBe(1);
    });

    it('lets verification name an edited event', async () => {
      store = await seed(5);
      raw = new Database(path);
      raw.prepare("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3").run();
      expect(await verify(store.audit)).toEqual({ ok: false, events: 2, seq: 3, reason: 'event 3 was altered (its hash does not match its content)' });
    });

    it('lets verification see a deleted event in the middle', async () => {
      store = await seed(5);
      raw = new Database(path);
      raw.prepare('DELETE FROM audit_events WHERE seq = 2').run();
      expect(await verify(store.audit)).toMatchObject({ ok: false, seq: 2 });
    });

    it('lets verification see a truncated tail through the head record', async () => {
      store = await seed(5);
      raw = new Database(path);
      raw.prepare('DELETE FROM audit_events WHERE seq >= 4').run();
      expect(await verify(store.audit)).toMatchObject({ ok: false, events: 3, seq: 4 });
      raw.prepare('DELETE FROM audit_events').run();
      expect(await verify(store.audit)).toMatchObject({ ok: false, events: 0, seq: 1 });
    });

    it('refuses to report a head when the head record was deleted', async () => {
      store = await seed(2);
      raw = new Database(path);
      raw.prepare('DELETE FROM audit_head').run();
      await expect(store.audit.head()).rejects.toMatchObject({ code: 'ERR_AUDIT_HEAD_MISSING', message: 'the audit head record is missing' });
      await expect(store.audit.append({ type: 'init', actor: 'operator', outcome: 'ok', at: clock.now() })).rejects.toMatchObject({ code: 'ERR_AUDIT_HEAD_MISSING' });
    });

    it('reports an event edited into something undecodable instead of guessing', async () => {
      store = await seed(3);
      raw = new Database(path);
      raw.prepare("UPDATE audit_events SET detail = '{not json' WHERE seq = 2").run();
      await expect(store.audit.read(1, 10)).rejects.toMatchObject({ code: 'ERR_AUDIT_EVENT_UNREADABLE', message: 'audit event 2 cannot be decoded' });
      raw.prepare("UPDATE audit_events SET detail = NULL, at = 'yesterday' WHERE seq = 2").run();
      await expect(store.audit.read(1, 10)).rejects.toMatchObject({ code: 'ERR_AUDIT_EVENT_UNREADABLE' });
    });
  });
});

describe('join-token ids on the real store', () => {
  it('lead with the mint time, so the token index grows at its right end; an id already stored is drawn again', async () => {
    const store = await openSqliteStore(freshPath(), { clock });
    try {
      // The id's 5 random octets come from `script` while it lasts (the secret's 32 from the CSPRNG).
      let script: Uint8Array[] = [];
      const random = { bytes: (n: number) => (n === 5 && script.length > 0 ? script.shift()! : webCryptoRandom.bytes(n)) };
      const tokens = new JoinTokens({ trustDomain: 'example.org', profile: () => DEFAULT_PROFILE, tokens: store.tokens, clock, random, crypto: webCryptoBackend() });
      const mint = (name: string) => tokens.create({ spiffeId: `spiffe://example.org/agent/${name}`, profile: 'default', actor: 'test' });
      const same = Uint8Array.of(1, 2, 3, 4, 5);

      script = [same];
      const a = await mint('a');
      const units = (Math.floor((clock.now().getTime() * 64) / 1000) % 2 ** 24).toString(16).padStart(6, '0');
      expect(a.id).toBe(`${units}0102030405`);
      script = [same, Uint8Array.of(9, 9, 9, 9, 9)];
      const b = await mint('b');
      expect(b.id).toBe(`${units}0909090909`);
      expect((await tokens.authorize(b.token)).spiffeId).toBe('spiffe://example.org/agent/b');
      expect((await tokens.authorize(a.token)).spiffeId).toBe('spiffe://example.org/agent/a');

      // Three draws of a stored id in a row: refused, and nothing written or audited.
      const before = await store.audit.read(0, 100);
      script = [same, same, same];
      await expect(mint('c')).rejects.toMatchObject({ code: 'ERR_TOKEN_EXISTS' });
      expect(await store.audit.read(0, 100)).toEqual(before);
      expect(before.filter((e) => e.type === 'token.create').map((e) => e.detail?.tokenId)).toEqual([a.id, b.id]);
    } finally {
      await store.close();
    }
  });
});
