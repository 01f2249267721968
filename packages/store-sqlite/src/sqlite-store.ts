import { systemClock, type AuditStore, type CertificateStore, type Clock, type CrlStore, type RevocationStore, type TokenStore } from '@agentca/core';
import type Database from 'better-sqlite3';
import { resolve } from 'node:path';
import { SqliteAuditStore } from './audit-store.ts';
import { SqliteCertificateStore } from './certificate-store.ts';
import { SqliteCrlStore } from './crl-store.ts';
import { openDatabase } from './database.ts';
import { SqliteRevocationStore } from './revocation-store.ts';
import { SqliteTokenStore } from './token-store.ts';
import { Checkpointer } from './checkpointer.ts';
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
  /**
   * Who syncs each commit to disk before it is acknowledged; both sync every commit.
   * `sqlite` (the default): SQLite's own synchronous=FULL, inside the COMMIT, on the event loop.
   * `queue`: synchronous=NORMAL, and the write queue fdatasyncs the WAL on the thread pool
   * (with WAL checkpoints on a worker thread), so the event loop never waits for the disk. On
   * this repository's machine (fsync ~1.5 ms) `queue` was not faster — the same throughput at
   * concurrency 16, more commits and higher latency at concurrency 1 (the hop to the thread
   * pool) — so it is opt-in, for disks whose fsync takes long enough to stall the event loop.
   */
  sync?: 'queue' | 'sqlite';
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
  readonly #checkpointer: Checkpointer | null;
  #closing: Promise<void> | null = null;

  /** @internal Use {@link openSqliteStore}. */
  constructor(db: Database.Database, options: SqliteStoreOptions = {}) {
    this.#db = db;
    const syncInQueue = options.sync === 'queue';
    // Only once the queue syncs the WAL itself may SQLite stop syncing at each commit.
    if (syncInQueue) db.pragma('synchronous = NORMAL');
    this.#checkpointer = syncInQueue ? new Checkpointer(db) : null;
    const checkpointer = this.#checkpointer;
    this.#queue = new WriteQueue(db, {
      ...(checkpointer ? { walPath: `${db.name}-wal`, onSynced: () => checkpointer.committed() } : {}),
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

  /** fdatasyncs of the WAL made by the write queue (sync: 'queue'); every acknowledged write waited for one after its commit. */
  get walSyncs(): number {
    return this.#queue.walSyncs;
  }

  /** WAL checkpoints run off the event loop by the checkpoint worker (sync: 'queue'). */
  get checkpoints(): number {
    return this.#checkpointer?.checkpoints ?? 0;
  }

  /** Commits the writes already queued, then closes the file. Later calls fail with `ERR_STORE_CLOSED`. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#queue.close();
      await this.#checkpointer?.close();
      this.#db.close();
    })();
    return this.#closing;
  }
}

/**
 * Opens the store in the SQLite file at `path`, creating it and migrating its schema as needed.
 *
 * @throws Unavailable `ERR_STORE_UNAVAILABLE` if the file cannot be opened durably.
 *
 * @example
 * ```ts
 * const store = await openSqliteStore(join(caDir, 'agentca.db'));
 * await store.certificates.reserveSerial(serial, clock.now());
 * await store.close();
 * ```
 */
export async function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
  const db = openDatabase(resolve(path), {
    clock: options.clock ?? systemClock,
    ...(options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs }),
  });
  return new SqliteStore(db, options);
}
