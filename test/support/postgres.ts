/**
 * A real PostgreSQL server for the PostgreSQL store's tests. The server is found at
 * `AGENTCA_TEST_PG_URL` (default: the role that test/support/postgres-server.sh creates on the
 * local cluster); the role must be allowed to create databases. Every test file creates its own
 * database with a random name and drops it when done, so files run in parallel.
 *
 * When no server answers, the tests fail with a message that says how to start one: they never
 * skip, locally or in CI (.ci/run starts the server with test/support/postgres-server.sh).
 */
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import pg from 'pg';

export const PG_ADMIN_URL = process.env.AGENTCA_TEST_PG_URL ?? 'postgresql://agentca_test:agentca-test-only@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  /** A URL of the new database, with the test role's password in it. */
  url: string;
  drop(): Promise<void>;
}

async function admin<T>(run: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
  } catch (e) {
    await c.end().catch(() => {});
    const where = new URL(PG_ADMIN_URL);
    throw new Error(
      `PostgreSQL is not reachable at ${where.hostname}:${where.port || 5432} as ${where.username} (${(e as Error).message}). ` +
        'The PostgreSQL store tests need a real server: run `eval "$(bash test/support/postgres-server.sh)"` as root ' +
        '(installs, starts and prepares one; .ci/run does it in CI), or point AGENTCA_TEST_PG_URL at a role that may CREATE DATABASE.',
    );
  }
  try {
    return await run(c);
  } finally {
    await c.end().catch(() => {});
  }
}

/** A fresh, empty database; `label` shows in its name (lower-case letters and digits). */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = `agentca_t_${label.replace(/[^a-z0-9]/g, '')}_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return {
    name,
    url: u.toString(),
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => {}),
  };
}

/** `url` with its host and port replaced (to go through a {@link TcpProxy}). */
export function viaPort(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

/** The database's host and port. */
export function endpoint(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 5432) };
}

/**
 * A TCP relay on 127.0.0.1 in front of the database, to take it away from the processes that use
 * it (and only from them: other tests keep their server). `cut()` resets every relayed connection
 * and every new one, as a database that went away does; `restore()` relays again.
 */
export interface TcpProxy {
  port: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let open = true;
  const live = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (!open) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    live.add(client);
    live.add(upstream);
    const end = () => {
      for (const s of [client, upstream]) {
        live.delete(s);
        s.destroy();
      }
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      open = false;
      for (const s of live) s.resetAndDestroy();
      live.clear();
    },
    restore() {
      open = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of live) s.destroy();
        server.close(() => resolve());
      }),
  };
}
