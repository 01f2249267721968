/**
 * The audit log is tamper-evident (PRODUCT §7: "a broken audit chain that verifies" must never
 * happen). Each tamper test edits its own copy of the CA directory with the sqlite3 shell, as
 * someone with write access to the file would, and `agentca audit verify` must fail with one
 * line that names the first broken event.
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, initCa, makeCsr, ok, removeTempDirs, run, runCli, tempDir } from './support/cli.ts';

const TD = 'example.org';
let ca: string;
/** seq of every event, as `audit tail --json` reports them. */
let events: { seq: number; type: string; spiffeId: string | null }[];

beforeAll(async () => {
  const root = tempDir('audit');
  ca = await initCa(join(root, 'ca'), { trustDomain: TD });
  const { csr } = await makeCsr(root, 'agent', 'ec-p256');
  for (const name of ['one', 'two', 'three']) {
    await ok('agentca', ['issue', '--dir', ca, '--csr', csr, '--id', `spiffe://${TD}/agent/${name}`, '--out', join(root, `${name}.pem`)]);
  }
  // A refusal is an event too.
  expect((await runCli(['issue', '--dir', ca, '--csr', csr, '--id', `spiffe://${TD}/admin/x`])).code).not.toBe(0);
  events = JSON.parse(await ok('agentca', ['audit', 'tail', '--dir', ca, '--json', '-n', '1000']));
}, 120_000);

afterAll(removeTempDirs);

/** A copy of the CA directory with `sql` applied by the sqlite3 shell (a separate connection). */
async function tampered(sql: string): Promise<string> {
  const dir = join(tempDir('tampered'), 'ca');
  cpSync(ca, dir, { recursive: true });
  await ok('sqlite3', ['-cmd', '.timeout 10000', join(dir, 'agentca.db'), sql]);
  return dir;
}

async function verifyFails(dir: string): Promise<string> {
  const r = await runCli(['audit', 'verify', '--dir', dir]);
  const message = expectOneLineError(r, 'ERR_AUDIT_CHAIN_BROKEN');
  expect(r.stdout).toBe('');
  expect(r.stderr).not.toMatch(/\n\s+at /);
  return message;
}

describe('an untouched log', () => {
  it('has the events we made: init, the admin certificate, three issues and a deny', () => {
    expect(events.map((e) => [e.seq, e.type])).toEqual([
      [1, 'init'],
      [2, 'issue'],
      [3, 'issue'],
      [4, 'issue'],
      [5, 'issue'],
      [6, 'deny'],
    ]);
    expect(events[2]!.spiffeId).toBe(`spiffe://${TD}/agent/one`);
  });

  it('verifies: exit 0, "audit log ok: 6 events"', async () => {
    const r = await runCli(['audit', 'verify', '--dir', ca]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^audit log ok: 6 events, head [0-9a-f]{64}\n$/);
    expect(r.stderr).toBe('');
  });

  it('a byte-for-byte copy verifies too (the copies below differ only by the tampering)', async () => {
    expect(await ok('agentca', ['audit', 'verify', '--dir', await tampered('SELECT 1')])).toMatch(/^audit log ok: 6 events/);
  });
});

describe.concurrent('a tampered log fails to verify', () => {
  it('(a) a middle row whose spiffe_id was changed: names that event', async () => {
    const dir = await tampered(`UPDATE audit_events SET spiffe_id = 'spiffe://${TD}/agent/mallory' WHERE seq = 4`);
    expect(await verifyFails(dir)).toMatch(/\bevent 4\b.*altered/);

    const r = await runCli(['audit', 'verify', '--dir', dir, '--json']);
    expect(r.code).not.toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, seq: 4, events: 3 });
  });

  it('(b) a deleted middle row: names the missing seq', async () => {
    const message = await verifyFails(await tampered('DELETE FROM audit_events WHERE seq = 3'));
    expect(message).toMatch(/at event 3: event 3 is missing/);
  });

  it('(c) a deleted last row (tail truncation): caught by the head record', async () => {
    const message = await verifyFails(await tampered('DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)'));
    expect(message).toMatch(/\bevent 6\b/);
    expect(message).toMatch(/removed/);
  });

  it('(c2) the last two rows deleted', async () => {
    const message = await verifyFails(await tampered('DELETE FROM audit_events WHERE seq >= 5'));
    expect(message).toMatch(/\bevent 5\b/);
  });

  it('(d) detail rewritten as invalid JSON: one line, no stack trace, names the event', async () => {
    const message = await verifyFails(await tampered(`UPDATE audit_events SET detail = '{"method": "operator",' WHERE seq = 3`));
    expect(message).toMatch(/\bevent 3\b/);
  });

  it('(d2) detail rewritten as valid JSON of another shape (an array)', async () => {
    expect(await verifyFails(await tampered(`UPDATE audit_events SET detail = '[1,2]' WHERE seq = 3`))).toMatch(/\bevent 3\b/);
  });

  it('(e) a timestamp rewritten as garbage', async () => {
    expect(await verifyFails(await tampered(`UPDATE audit_events SET at = 'yesterday' WHERE seq = 2`))).toMatch(/\bevent 2\b/);
  });

  it('(f) a deny turned into an ok', async () => {
    const message = await verifyFails(await tampered(`UPDATE audit_events SET outcome = 'ok', code = NULL WHERE seq = 6`));
    expect(message).toMatch(/\bevent 6\b.*altered/);
  });

  it('(g) a stored hash rewritten: the next event no longer links', async () => {
    const message = await verifyFails(await tampered(`UPDATE audit_events SET hash = '${'0'.repeat(64)}' WHERE seq = 3`));
    expect(message).toMatch(/\bevent 3\b/);
  });

  it('(h) two rows swapped', async () => {
    const message = await verifyFails(
      await tampered('UPDATE audit_events SET seq = -1 WHERE seq = 3; UPDATE audit_events SET seq = 3 WHERE seq = 4; UPDATE audit_events SET seq = 4 WHERE seq = -1;'),
    );
    expect(message).toMatch(/\bevent 3\b/);
  });

  it('(i) the head record deleted: refused with its own code', async () => {
    const r = await runCli(['audit', 'verify', '--dir', await tampered('DELETE FROM audit_head')]);
    expectOneLineError(r, 'ERR_AUDIT_HEAD_MISSING');
  });
});

describe('the original', () => {
  it('still verifies after all the copies were tampered with', async () => {
    expect(await ok('agentca', ['audit', 'verify', '--dir', ca])).toMatch(/^audit log ok: 6 events/);
    // sanity: the sqlite3 shell sees the same rows the CLI does
    expect((await run('sqlite3', ['-cmd', '.timeout 10000', join(ca, 'agentca.db'), 'SELECT count(*) FROM audit_events'])).stdout.trim()).toBe('6');
  });
});
