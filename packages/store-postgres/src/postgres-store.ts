import { AgentCAError, systemClock, Unavailable, type AuditStore, type Clock, type CrlStore, type RevocationStore, type TokenStore } from '@agentca/core';
import type pg from 'pg';
import { PostgresAuditStore } from './audit-store.ts';
import { AuditedWriteQueue } from './audited-writes.ts';
import { PostgresCertificateStore } from './certificate-store.ts';
import { checkPostgresUrl, createPool, redactPostgresUrl, type PoolSettings } from './connection.ts';
import { PostgresCrlStore } from './crl-store.ts';
import { migrate, schemaIdent } from './migrations.ts';
import { Reader } from './reader.ts';
import { PostgresRevocationStore } from './revocation-store.ts';
import { PostgresTokenStore } from './token-store.ts';

/** Options of {@link openPostgresStore}. */
export interface PostgresStoreOptions extends PoolSettings {
  /** Stamps schema migrations; defaults to the system clock. */
  clock?: Clock;
  /** The schema that holds the tables (created if absent). Default `agentca`. */
  schema?: string;
  /** Most audited writes committed in one transaction. Default 500. */
  maxBatchSize?: number;
  /** Told about a pooled connection that broke while idle (the pool replaces it). Never given a password. */
  onConnectionError?: (e: Error) => void;
}

/**
 * The store ports on a PostgreSQL database that several `agentca serve` replicas share. Serial
 * uniqueness, single use of a token, CRL numbers and the audit chain are enforced by the
 * database (constraints and row locks), never by one process's memory, so any number of
 * processes may open the same database.
 */
export class PostgresStore {
  readonly certificates: PostgresCertificateStore;
  readonly audit: AuditStore;
  readonly revocations: RevocationStore;
  readonly crls: CrlStore;
  readonly tokens: TokenStore;
  /** The connection URL with its password masked, for messages and logs. */
  readonly location: string;
  /** True when opening this store created its schema (an empty database was initialised). */
  readonly createdSchema: boolean;
  readonly #pool: pg.Pool;
  readonly #reader: Reader;
  readonly #writes: AuditedWriteQueue;
  #closing: Promise<void> | null = null;

  /** @internal Use {@link openPostgresStore}. */
  constructor(pool: pg.Pool, o: { location: string; schema: string; createdSchema: boolean; maxBatchSize?: number }) {
    this.#pool = pool;
    this.location = o.location;
    this.createdSchema = o.createdSchema;
    const S = schemaIdent(o.schema);
    this.#reader = new Reader(pool);
    this.#writes = new AuditedWriteQueue(pool, S, o.maxBatchSize !== undefined ? { maxBatchSize: o.maxBatchSize } : {});
    this.certificates = new PostgresCertificateStore(this.#reader, this.#writes, S);
    this.audit = new PostgresAuditStore(this.#reader, this.#writes, S);
    this.revocations = new PostgresRevocationStore(this.#reader, this.#writes, S);
    this.crls = new PostgresCrlStore(this.#reader, S);
    this.tokens = new PostgresTokenStore(this.#reader, this.#writes, S);
  }

  /** Audited write transactions committed since open. Fewer than writes means group commit is working. */
  get committedBatches(): number {
    return this.#writes.committedBatches;
  }

  /** Commits the writes already queued, then closes every connection. Later calls fail with `ERR_STORE_CLOSED`. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.certificates.drain();
      await this.#writes.close();
      this.#reader.close();
      await this.#pool.end().catch(() => {});
    })();
    return this.#closing;
  }
}

/**
 * Connects to the database at `url`, creating the schema and migrating it as needed (replicas
 * that start together apply each migration once). The password may be in the URL or come from
 * `PGPASSWORD` or `~/.pgpass`; messages show the URL with the password masked.
 *
 * @throws InvalidRequest `ERR_STORE_URL_INVALID`; Unavailable `ERR_STORE_UNAVAILABLE` if the
 * database cannot be reached or refuses the login, `ERR_STORE_SCHEMA_TOO_NEW`.
 *
 * @example
 * ```ts
 * const store = await openPostgresStore('postgresql://agentca@db.internal:5432/agentca');
 * await store.certificates.reserveSerial(serial, clock.now());
 * await store.close();
 * ```
 */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  checkPostgresUrl(url);
  const location = redactPostgresUrl(url);
  const schema = options.schema ?? 'agentca';
  schemaIdent(schema);
  const pool = createPool(url, options, options.onConnectionError ?? (() => {}));
  try {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (e) {
      throw new Unavailable('ERR_STORE_UNAVAILABLE', `cannot reach the store at ${location}: ${(e as Error).message}`, { cause: e });
    }
    let created: boolean;
    try {
      ({ created } = await migrate(client, schema, options.clock ?? systemClock));
    } catch (e) {
      if (e instanceof AgentCAError) throw e;
      throw new Unavailable('ERR_STORE_UNAVAILABLE', `cannot prepare the store at ${location}: ${(e as Error).message}`, { cause: e });
    } finally {
      client.release();
    }
    return new PostgresStore(pool, {
      location,
      schema,
      createdSchema: created,
      ...(options.maxBatchSize !== undefined ? { maxBatchSize: options.maxBatchSize } : {}),
    });
  } catch (e) {
    await pool.end().catch(() => {});
    throw e;
  }
}

/**
 * Drops the store's schema and everything in it. Only for undoing an `agentca init` that
 * failed after it created the schema; never called on a store in use.
 */
export async function dropPostgresSchema(url: string, schema = 'agentca'): Promise<void> {
  const pool = createPool(url, { max: 1 }, () => {});
  try {
    await pool.query(`DROP SCHEMA IF EXISTS ${schemaIdent(schema)} CASCADE`);
  } finally {
    await pool.end().catch(() => {});
  }
}
