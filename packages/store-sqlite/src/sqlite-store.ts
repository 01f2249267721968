import { systemClock, type AuditStore, type CertificateStore, type Clock, type CrlStore, type RevocationStore, type TokenStore } from '@agentca/core';
import type Database from 'better-sqlite3';
import { SqliteAuditStore } from './audit-store.ts';
import { SqliteCertificateStore } from './certificate-store.ts';
import { SqliteCrlStore } from './crl-store.ts';
import { openDatabase } from './database.ts';
import { SqliteRevocationStore } from './revocation-store.ts';
import { SqliteTokenStore } from './token-store.ts';
import { WriteQueue } from './write-queue.ts';

/** Options of {@link openSqliteStore}. */
export interface SqliteStoreOptions {
  /** Stamps schema migrations; defaults to the system clock. */
  clock?: Clock;
  /** How long a write waits for another process's lock before failing as unavailable. Default 5000. */
  busyTimeoutMs?: number;
  /** Most writes committed in one transaction. Default 1000. */
  maxBatchSize?: number;
  /** Least time between the end of one commit and the start of the next, under load. Default 0 (pacing trades latency for fewer fsyncs). */
  minBatchIntervalMs?: number;
}

/**
 * The store ports on one SQLite file. All aggregates share one connection and one
 * {@link WriteQueue}, so writes are group-committed together and a write that spans
 * aggregates (a certificate, revocation or join token and its audit event; a serial and the
 * token it consumes) is one transaction.
 */
export class SqliteStore {
  readonly certificates: CertificateStore;
  readonly audit: AuditStore;
  readonly revocations: RevocationStore;
  readonly crls: CrlStore;
  readonly tokens: TokenStore;
  readonly #db: Database.Database;
  readonly #queue: WriteQueue;

  /** @internal Use {@link openSqliteStore}. */
  constructor(db: Database.Database, options: SqliteStoreOptions = {}) {
    this.#db = db;
    this.#queue = new WriteQueue(db, {
      ...(options.maxBatchSize !== undefined ? { maxBatchSize: options.maxBatchSize } : {}),
      ...(options.minBatchIntervalMs !== undefined ? { minBatchIntervalMs: options.minBatchIntervalMs } : {}),
    });
    const audit = new SqliteAuditStore(db, this.#queue);
    this.audit = audit;
    this.certificates = new SqliteCertificateStore(db, this.#queue, audit);
    this.revocations = new SqliteRevocationStore(db, this.#queue, audit);
    this.crls = new SqliteCrlStore(db, this.#queue);
    this.tokens = new SqliteTokenStore(db, this.#queue, audit);
  }

  /** Write transactions committed since open. Fewer than writes means group commit is working. */
  get committedBatches(): number {
    return this.#queue.committedBatches;
  }

  /** Syncs of the write-ahead log made off the event loop (see `WriteQueue`); under load, fewer than commits. */
  get walSyncs(): number {
    return this.#queue.walSyncs;
  }

  /** Commits made without a sync of their own (serial reservations): see `SqliteCertificateStore.reserveSerial`. */
  get unsyncedCommits(): number {
    return this.#queue.unsyncedCommits;
  }

  /** Commits the writes already queued, then closes the file. Later calls fail with `ERR_STORE_CLOSED`. */
  async close(): Promise<void> {
    if (!this.#db.open) return;
    this.#queue.close();
    this.#db.close();
  }
}

/**
 * Opens the store in the SQLite file at `path`, creating it and migrating its schema as needed.
 *
 * @throws Unavailable `ERR_STORE_UNAVAILABLE` if the file cannot be opened durably (or its
 * write-ahead log cannot be opened to sync it).
 *
 * @example
 * ```ts
 * const store = await openSqliteStore(join(caDir, 'agentca.db'));
 * await store.certificates.reserveSerial(serial, clock.now());
 * await store.close();
 * ```
 */
export async function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
  const db = openDatabase(path, {
    clock: options.clock ?? systemClock,
    ...(options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs }),
  });
  try {
    return new SqliteStore(db, options);
  } catch (e) {
    db.close();
    throw e;
  }
}
