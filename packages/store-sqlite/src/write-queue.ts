import { Unavailable } from '@agentca/core';
import type Database from 'better-sqlite3';
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

/**
 * Group commit for one SQLite connection. Writes queued in the same turn of the event loop
 * share one `BEGIN IMMEDIATE … COMMIT`, so a batch pays for one fsync. Each write runs under
 * its own SAVEPOINT: a write that throws is rolled back alone and rejects alone, the others
 * commit. Every promise settles only after its batch's COMMIT (or its failure).
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

  constructor(db: Database.Database, options: { maxBatchSize?: number; minBatchIntervalMs?: number } = {}) {
    this.#db = db;
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
    if (this.#closed) return Promise.reject(storeClosed());
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ op, savepoint: !options.singleStatement, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /** Commits what is queued, then refuses new writes. */
  close(): void {
    this.#closed = true;
    while (this.#pending.length > 0) this.#flushBatch();
  }

  /**
   * A commit blocks the event loop for its fsync (better-sqlite3 is synchronous), so under load
   * commits are paced: the next batch starts no sooner than `minBatchIntervalMs` after the last
   * one ended, and collects every write queued meanwhile. An idle store commits on the next turn.
   */
  #schedule(): void {
    if (this.#scheduled) return;
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
    batch.forEach((pending, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) pending.resolve(outcome.value);
      else pending.reject(outcome.error);
    });
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
