import { InvalidRequest } from '@agentca/core';
import pg from 'pg';

/** True for a `postgresql://` or `postgres://` connection URL. */
export function isPostgresUrl(text: string): boolean {
  return typeof text === 'string' && /^postgres(?:ql)?:\/\//i.test(text);
}

/**
 * The URL as it may be shown in output and logs: the password (in the user-info part or a
 * `password` query parameter) replaced by `***`. A URL that does not parse is not echoed at all.
 *
 * @example
 * redactPostgresUrl('postgresql://ca:s3cret@db:5432/agentca') // 'postgresql://ca:***@db:5432/agentca'
 */
export function redactPostgresUrl(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return 'postgresql://(unparsable URL)';
  }
  if (u.password) u.password = '***';
  for (const k of [...u.searchParams.keys()]) if (/pass/i.test(k)) u.searchParams.set(k, '***');
  return u.toString();
}

/**
 * Checks a connection URL before it is used.
 *
 * @throws InvalidRequest `ERR_STORE_URL_INVALID`
 */
export function checkPostgresUrl(text: string): void {
  const bad = (why: string) => new InvalidRequest('ERR_STORE_URL_INVALID', `${redactPostgresUrl(text)}: ${why}`);
  if (!isPostgresUrl(text)) throw bad('a PostgreSQL store URL starts with postgresql://');
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw bad('not a valid URL');
  }
  if (!u.hostname && !u.searchParams.get('host')) throw bad('the URL names no host');
  if (u.pathname.length <= 1) throw bad('the URL names no database (postgresql://user@host:5432/DATABASE)');
}

/** How the store talks to the server. */
export interface PoolSettings {
  /** Most connections this process opens. Default 10. */
  max?: number;
  /** How long opening a connection may take before the write fails as unavailable. Default 5000 ms. */
  connectionTimeoutMs?: number;
  /** Client-side bound on one query, a last resort against a silent network. Default 15000 ms. */
  queryTimeoutMs?: number;
}

/**
 * A pool for `url`. pg reconnects on its own: a connection that broke is discarded and the next
 * query opens a new one, so the store recovers from an outage without a restart. An error on an
 * idle connection (the server restarted, the network dropped) is reported to `onError` instead
 * of crashing the process. The password is read by pg from the URL, `PGPASSWORD` or `~/.pgpass`.
 */
export function createPool(url: string, settings: PoolSettings, onError: (e: Error) => void): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: settings.max ?? 10,
    connectionTimeoutMillis: settings.connectionTimeoutMs ?? 5000,
    query_timeout: settings.queryTimeoutMs ?? 15_000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'agentca',
  });
  pool.on('error', onError);
  return pool;
}
