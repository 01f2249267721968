import { Unavailable } from '@agentca/core';
import type Database from 'better-sqlite3';
import { storeClosed, toStoreError } from './sqlite-errors.ts';

/** A write, run synchronously inside the transaction of the batch it lands in. */
export type WriteOp<T> = () => T;

interface Pending {
  op: WriteOp<unknown>;
  savepoint: boolean;
  durable: boolean;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * State an aggregate keeps for the length of one write transaction (the audit head), told
 * where the transaction and each op begin and end. `beforeCommit` runs inside the transaction
 * and may write; if it throws, the whole batch fails.
 */
export interface TransactionParticipant {
  begin(): void;
  opStart(): void;
  /** The op threw; what it wrote was rolled back (to its SAVEPOINT, or by SQLite). */
  opFailed(): void;
  beforeCommit(): void;
  /** After COMMIT, or after the batch was rolled back. */
  end(): void;
}

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
  #unsyncedCommits = 0;
  #unsafe: Unavailable | null = null;
  readonly #participants: TransactionParticipant[] = [];
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

  /** Adds a participant to every later transaction. */
  participate(p: TransactionParticipant): void {
    this.#participants.push(p);
  }

  /** Transactions committed without a sync of their own (writes enqueued with `durable: false`). */
  get unsyncedCommits(): number {
    return this.#unsyncedCommits;
  }

  /** Transactions committed so far; lets tests see that concurrent writes were batched. */
  get committedBatches(): number {
    return this.#committedBatches;
  }

  /**
   * Queues `op` for the next batch; resolves with its result once the batch is committed.
   * `singleStatement: true` skips the op's SAVEPOINT: for an op that runs one statement and
   * throws only when that statement changed nothing, SQLite's statement atomicity is enough.
   * `durable: false` lets the op's commit skip its sync (see `#run`): only for
   * a write whose loss in a crash is harmless as long as every later durable write is kept.
   */
  enqueue<T>(op: WriteOp<T>, options: { singleStatement?: boolean; durable?: boolean } = {}): Promise<T> {
    if (this.#closed) return Promise.reject(storeClosed());
    if (this.#unsafe) return Promise.reject(this.#unsafe);
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ op, savepoint: !options.singleStatement, durable: options.durable ?? true, resolve: resolve as (value: unknown) => void, reject });
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
    const wait = this.#lastCommitEnd + this.#minIntervalMs - performance.now();
    if (wait > 0) setTimeout(this.#scheduledFlush, wait);
    else setImmediate(this.#scheduledFlush);
  }

  /** One function for the queue's life, not a closure per flush. */
  readonly #scheduledFlush = (): void => {
    this.#scheduled = false;
    this.#flushBatch();
    this.#lastCommitEnd = performance.now();
    if (this.#pending.length > 0) this.#schedule();
  };

  #flushBatch(): void {
    const taken = this.#pending.splice(0, this.#maxBatchSize);
    if (taken.length === 0) return;
    // A batch of writes that need not be durable on their own commits without a sync: the next
    // durable commit syncs the WAL up to and including it. A batch with any durable write is
    // synced, and the others ride along in the same transaction: one commit instead of two
    // (every promise settles after the whole turn's work anyway).
    const durable = taken.some((p) => p.durable);
    const unsafe = this.#unsafe;
    this.#settle(taken, durable && unsafe ? taken.map(() => ({ ok: false, error: unsafe })) : this.#run(taken, durable));
  }

  #settle(batch: Pending[], outcomes: Outcome[]): void {
    batch.forEach((pending, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) pending.resolve(outcome.value);
      else pending.reject(outcome.error);
    });
  }

  /**
   * One transaction for `batch`. Not `durable`: committed under synchronous=NORMAL, which in
   * WAL mode writes the commit to the log without syncing it (and still syncs around
   * checkpoints); WAL order keeps it ahead of every later commit, so it reaches the disk no
   * later than the next synchronous=FULL commit does.
   */
  #run(batch: Pending[], durable: boolean): Outcome[] {
    const s = this.#statements;
    try {
      // exec, not a prepared statement: SQLite applies this pragma when it compiles it.
      if (!durable) this.#db.exec('PRAGMA synchronous = NORMAL');
      s.begin.run();
    } catch (e) {
      if (!durable) this.#restoreSync();
      return this.#abort(batch, e);
    }
    try {
      for (const p of this.#participants) p.begin();
      const outcomes = this.#runOps(batch);
      if (!durable && outcomes.some((o) => o.ok)) this.#unsyncedCommits++;
      return outcomes;
    } finally {
      for (const p of this.#participants) p.end();
      if (!durable) this.#restoreSync();
    }
  }

  #restoreSync(): void {
    try {
      this.#db.exec('PRAGMA synchronous = FULL');
    } catch (cause) {
      // Never go on committing durable writes without their sync: refuse every later write.
      this.#unsafe ??= new Unavailable('ERR_STORE_UNAVAILABLE', 'the store could not restore synchronous=FULL', { cause });
    }
  }

  #runOps(batch: Pending[]): Outcome[] {
    const s = this.#statements;
    const outcomes: Outcome[] = [];
    const participants = this.#participants;
    for (const { op, savepoint } of batch) {
      try {
        if (savepoint) s.savepoint.run();
        for (const p of participants) p.opStart();
        const value = op();
        if (savepoint) s.release.run();
        outcomes.push({ ok: true, value });
      } catch (error) {
        for (const p of participants) p.opFailed();
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
      for (const p of participants) p.beforeCommit();
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
