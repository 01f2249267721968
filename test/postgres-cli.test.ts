/**
 * `--store` on the CLI: `init` records a PostgreSQL store in agentca.json (mode 0600 when the URL
 * holds a password) and refuses a database that already holds a CA; every command that touches
 * state takes `--store` (or $AGENTCA_STORE); failures are one line with a code, and never show
 * the database password.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, ok, removeTempDirs, runCli, tempDir } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';

let db: TestDatabase;
let work: string;
let dir: string;
const password = () => new URL(db.url).password;

beforeAll(async () => {
  db = await createTestDatabase('cli');
  work = tempDir('pg-cli');
  dir = join(work, 'ca');
  const out = await ok('agentca', ['init', '--dir', dir, '--trust-domain', 'example.org', '--store', db.url, '--json']);
  expect(JSON.parse(out).store).toBe(db.url.replace(`:${password()}@`, ':***@'));
}, 120_000);

afterAll(async () => {
  await db?.drop();
  removeTempDirs();
});

describe('--store', () => {
  it('is offered by every command that touches state', async () => {
    const commands = [['init'], ['serve'], ['issue'], ['list'], ['token', 'create'], ['revoke'], ['task', 'end'], ['crl'], ['audit', 'verify'], ['audit', 'tail']];
    const helps = await Promise.all(commands.map((command) => runCli([...command, '--help'])));
    helps.forEach((r, i) => expect(r.stdout, commands[i]!.join(' ')).toContain('--store <url>'));
  });

  it('is recorded by init, with the config readable only by its owner when the URL holds a password', async () => {
    expect(statSync(join(dir, 'agentca.json')).mode & 0o777).toBe(0o600);
    expect(existsSync(join(dir, 'agentca.db'))).toBe(false);
    const listed = JSON.parse(await ok('agentca', ['list', '--dir', dir, '--json']));
    expect(listed).toMatchObject([{ spiffeId: 'spiffe://example.org/admin/operator', status: 'valid' }]);
  });

  it('refuses to init into a database that already holds a CA, and leaves nothing behind', async () => {
    const other = join(work, 'other');
    const r = await runCli(['init', '--dir', other, '--trust-domain', 'example.org', '--store', db.url]);
    const message = expectOneLineError(r, 'ERR_STORE_NOT_EMPTY');
    expect(message).toMatch(/^the store at postgresql:\/\/agentca_test:\*\*\*@127\.0\.0\.1:\d+\/agentca_t_cli_[0-9a-f]+ already holds a CA \(\d+ audit events\): give init an empty database$/);
    expect(existsSync(other)).toBe(false);
  });

  it('refuses a store that is not sqlite: or postgresql:, without echoing it', async () => {
    const r = await runCli(['init', '--dir', join(work, 'bad'), '--trust-domain', 'example.org', '--store', 'mysql://root:hunter2@db/agentca']);
    expect(expectOneLineError(r, 'ERR_STORE_URL_INVALID')).not.toContain('hunter2');
    const noDb = await runCli(['list', '--dir', dir, '--store', 'postgresql://ca:hunter2@127.0.0.1:5432']);
    expect(expectOneLineError(noDb, 'ERR_STORE_URL_INVALID')).toBe('postgresql://ca:***@127.0.0.1:5432: the URL names no database (postgresql://user@host:5432/DATABASE)');
  });

  it('fails with ERR_STORE_UNAVAILABLE, the password masked, when the database cannot be reached ($AGENTCA_STORE or --store)', async () => {
    const down = 'postgresql://agentca:hunter2@127.0.0.1:1/agentca';
    for (const r of [await runCli(['list', '--dir', dir], { env: { AGENTCA_STORE: down } }), await runCli(['audit', 'verify', '--dir', dir, '--store', down])]) {
      const message = expectOneLineError(r, 'ERR_STORE_UNAVAILABLE');
      expect(message).toMatch(/^cannot reach the store at postgresql:\/\/agentca:\*\*\*@127\.0\.0\.1:1\/agentca: /);
      expect(r.stderr).not.toContain('hunter2');
    }
  });

  it('points any command at another store with --store, the flag winning over $AGENTCA_STORE', async () => {
    const r = await runCli(['audit', 'verify', '--dir', dir, '--json', '--store', db.url], { env: { AGENTCA_STORE: 'postgresql://agentca:x@127.0.0.1:1/agentca' } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true });
  });
});
