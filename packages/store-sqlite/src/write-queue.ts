import { Unavailable } from '@agentca/core';
import type Database from 'better-sqlite3';
import { closeSync, fdatasync, fdatasyncSync, fstatSync, openSync, statSync } from 'node:fs';
import { storeClosed, toStoreError } from './sqlite-errors.ts';

/** A write, run synchronously inside the transaction of the batch it lands in. */
export type WriteOp<T> = () => T;

interface Pending {
  op: WriteOp<unknown>;
  savepoint: boolean;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** A committed batch waiting for its WAL frames to reach the disk. */
interface Unsynced {
  batch: Pending[];
  outcomes: Outcome[];
}

/**
 * Group commit for one SQLite connection. Writes queued in the same turn of the event loop
 * share one `BEGIN IMMEDIATE … COMMIT`, so a batch pays for one fsync. Each write runs under
 * its own SAVEPOINT: a write that throws is rolled back alone and rejects alone, the others
 * commit. Every promise settles only after its batch's COMMIT (or its failure) and, with
 * `walPath`, after the write-ahead log holding that COMMIT is synced to disk.
 *
 * Durability off the event loop: with `walPath`, the connection runs `synchronous=NORMAL`
 * (SQLite writes each commit to the WAL without fsync, and syncs the WAL before checkpoints)
 * and the queue itself fdatasyncs the WAL file on libuv's thread pool after each commit,
 * settling the batch's promises only then. That is the guarantee of `synchronous=FULL` (the
 * WAL synced at every commit) without blocking the event loop for the fsync; commits that
 * land while a sync is in flight share the next one. A failed sync fails the batch as
 * unavailable and closes the queue to writes (after an fsync error, what reached the disk is
 * unknown).
 *
 * Every aggregate of a store enqueues on the same queue, so writes of different aggregates
 * are serialised and a write may touch several aggregates atomically.
 */
export class WriteQueue {
  readonly #db: Database.Database;
  readonly #maxBatchSize: number;
  readonly #statements: Record<'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollbackTo', Database.Statement>;
  #pending: Pending[] = [];
  #scheduled = false;
  #closed = false;
  #committedBatches = 0;
  readonly #minIntervalMs: number;
  #lastCommitEnd = 0;
  readonly #walPath: string | null;
  #walFd: number | null = null;
  #unsynced: Unsynced[] = [];
  #syncing = false;
  #syncError: Unavailable | null = null;
  #walSyncs = 0;

  readonly #onSynced: (() => void) | null;

  constructor(db: Database.Database, options: { maxBatchSize?: number; minBatchIntervalMs?: number; walPath?: string; onSynced?: () => void } = {}) {
    this.#db = db;
    this.#onSynced = options.onSynced ?? null;
    this.#walPath = options.walPath ?? null;
    this.#maxBatchSize = options.maxBatchSize ?? 1000;
    this.#minIntervalMs = options.minBatchIntervalMs ?? 0;
    this.#statements = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      savepoint: db.prepare('SAVEPOINT write_op'),
      release: db.prepare('RELEASE write_op'),
      rollbackTo: db.prepare('ROLLBACK TO write_op'),
    };
  }

  /** fdatasyncs of the WAL completed so far (with `walPath`); each acknowledged commit waited for one. */
  get walSyncs(): number {
    return this.#walSyncs;
  }

  /** Transactions committed so far; lets tests see that concurrent writes were batched. */
  get committedBatches(): number {
    return this.#committedBatches;
  }

  /**
   * Queues `op` for the next batch; resolves with its result once the batch is committed.
   * `singleStatement: true` skips the op's SAVEPOINT: for an op that runs one statement and
   * throws only when that statement changed nothing, SQLite's statement atomicity is enough.
   */
  enqueue<T>(op: WriteOp<T>, options: { singleStatement?: boolean } = {}): Promise<T> {
    if (this.#syncError) return Promise.reject(this.#syncError);
    if (this.#closed) return Promise.reject(storeClosed());
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ op, savepoint: !options.singleStatement, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /** Commits what is queued and syncs it, then refuses new writes. */
  close(): void {
    this.#closed = true;
    while (this.#pending.length > 0) this.#flushBatch();
    if (this.#unsynced.length > 0) {
      const waiting = this.#unsynced.splice(0);
      let error: Unavailable | null = this.#syncError;
      if (!error) {
        try {
          fdatasyncSync(this.#walFile());
          this.#walSyncs++;
        } catch (e) {
          error = new Unavailable('ERR_STORE_UNAVAILABLE', 'the store could not sync its write-ahead log', { cause: e });
        }
      }
      for (const u of waiting) this.#settle(u.batch, error ? u.batch.map(() => ({ ok: false, error })) : u.outcomes);
    }
    this.#closeWalFile();
  }

  #closeWalFile(): void {
    if (this.#walFd === null || this.#syncing) return; // an fsync in flight closes it when done
    closeSync(this.#walFd);
    this.#walFd = null;
  }

  /**
   * A commit blocks the event loop for its fsync (better-sqlite3 is synchronous), so under load
   * commits are paced: the next batch starts no sooner than `minBatchIntervalMs` after the last
   * one ended, and collects every write queued meanwhile. An idle store commits on the next turn.
   */
  #schedule(): void {
    // While the WAL is being synced, writes gather for the next batch: one commit per sync.
    if (this.#scheduled || this.#syncing) return;
    this.#scheduled = true;
    const run = () => {
      this.#scheduled = false;
      this.#flushBatch();
      this.#lastCommitEnd = performance.now();
      if (this.#pending.length > 0) this.#schedule();
    };
    const wait = this.#lastCommitEnd + this.#minIntervalMs - performance.now();
    if (wait > 0) setTimeout(run, wait);
    else setImmediate(run);
  }

  #flushBatch(): void {
    const batch = this.#pending.splice(0, this.#maxBatchSize);
    if (batch.length === 0) return;
    const outcomes = this.#run(batch);
    if (this.#walPath !== null && outcomes.some((o) => o.ok)) {
      this.#unsynced.push({ batch, outcomes });
      this.#sync();
      return;
    }
    this.#settle(batch, outcomes);
  }

  #settle(batch: Pending[], outcomes: Outcome[]): void {
    batch.forEach((pending, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) pending.resolve(outcome.value);
      else pending.reject(outcome.error);
    });
  }

  /** One fdatasync of the WAL at a time; it covers every batch committed before it started. */
  #sync(): void {
    if (this.#syncing || this.#unsynced.length === 0) return;
    const waiting = this.#unsynced.splice(0);
    let fd: number;
    try {
      fd = this.#walFile();
    } catch (e) {
      this.#syncFailed(waiting, e);
      return;
    }
    this.#syncing = true;
    fdatasync(fd, (e) => {
      this.#syncing = false;
      if (e) this.#syncFailed(waiting, e);
      else {
        this.#walSyncs++;
        for (const u of waiting) this.#settle(u.batch, u.outcomes);
        this.#onSynced?.();
      }
      if (this.#closed) this.#closeWalFile();
      else if (this.#unsynced.length > 0) this.#sync();
      else if (this.#pending.length > 0) this.#schedule();
    });
  }

  #syncFailed(waiting: Unsynced[], cause: unknown): void {
    this.#syncError ??= new Unavailable('ERR_STORE_UNAVAILABLE', 'the store could not sync its write-ahead log', { cause });
    const error = this.#syncError;
    for (const u of [...waiting, ...this.#unsynced.splice(0)]) this.#settle(u.batch, u.batch.map(() => ({ ok: false, error })));
  }

  /**
   * The open WAL file. SQLite keeps one WAL file while a connection is open (a checkpoint
   * rewinds it in place), but the descriptor is checked against the path so a WAL that was
   * ever replaced is never synced through a stale descriptor.
   */
  #walFile(): number {
    const path = this.#walPath!;
    if (this.#walFd !== null && fstatSync(this.#walFd).ino === statSync(path).ino) return this.#walFd;
    if (this.#walFd !== null) closeSync(this.#walFd);
    this.#walFd = null;
    this.#walFd = openSync(path, 'r+');
    return this.#walFd;
  }

  #run(batch: Pending[]): Outcome[] {
    const s = this.#statements;
    try {
      s.begin.run();
    } catch (e) {
      return this.#abort(batch, e);
    }
    const outcomes: Outcome[] = [];
    for (const { op, savepoint } of batch) {
      try {
        if (savepoint) s.savepoint.run();
        const value = op();
        if (savepoint) s.release.run();
        outcomes.push({ ok: true, value });
      } catch (error) {
        // Some failures (disk full, I/O) make SQLite roll back the whole transaction.
        if (!this.#db.inTransaction) return this.#abort(batch, error);
        if (savepoint) {
          try {
            s.rollbackTo.run();
            s.release.run();
          } catch (e) {
            return this.#abort(batch, e);
          }
        }
        outcomes.push({ ok: false, error: toStoreError(error) });
      }
    }
    try {
      s.commit.run();
    } catch (e) {
      return this.#abort(batch, e);
    }
    this.#committedBatches++;
    return outcomes;
  }

  /** Nothing of the batch was committed: every write in it fails as unavailable. */
  #abort(batch: Pending[], cause: unknown): Outcome[] {
    if (this.#db.inTransaction) {
      try {
        this.#statements.rollback.run();
      } catch {
        // The connection is already unusable; the writes fail either way.
      }
    }
    const mapped = toStoreError(cause);
    const error = mapped instanceof Unavailable ? mapped : new Unavailable('ERR_STORE_UNAVAILABLE', 'the store could not commit the write', { cause });
    return batch.map(() => ({ ok: false, error }));
  }
}
