import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';
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

/** A committed durable write, settled once a sync of the log that follows its commit returns. */
interface Unsynced {
  value: unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** `fs.fdatasync`'s shape: the queue syncs the log through it (a test may hold or fail a sync). */
export type FdatasyncFn = (fd: number, done: (error: NodeJS.ErrnoException | null) => void) => void;

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
 * share one `BEGIN IMMEDIATE … COMMIT`. Each write runs under its own SAVEPOINT: a write that
 * throws is rolled back alone and rejects alone, the others commit.
 *
 * Durability without blocking the event loop. In WAL mode, synchronous=FULL differs from
 * NORMAL by one thing: an fsync of the write-ahead log after each commit (NORMAL still syncs
 * around checkpoints and when the log is reused). better-sqlite3 is synchronous, so under FULL
 * that fsync holds the event loop for as long as the disk takes: ~0.44 ms a commit over HTTPS
 * at concurrency 16 on the development machine's disk (~18% of the loop's time), longer on a
 * slower disk, and no request on the loop (OCSP included) moves meanwhile.
 * The queue runs its connection under NORMAL and makes that same sync itself: `fdatasync` of
 * the `-wal` file, on libuv's thread pool. A durable write settles only after a sync that began
 * after its COMMIT has returned. One sync runs at a time; durable writes queued while it runs
 * commit when it returns, in one transaction, and share the next sync. A write that need not
 * be durable on its own (`durable: false`, a serial reservation) commits at once and settles at
 * its COMMIT: WAL order keeps it ahead of every later commit, so it reaches the disk no later
 * than the next sync does.
 *
 * What other readers see: a commit is visible to other connections (and later reads on this
 * one) from its COMMIT on, before its sync returns. A process crash in that window loses
 * nothing (the log is in the OS's page cache); a power loss or kernel crash can lose the
 * commit, as under NORMAL, but no caller was told it succeeded: a certificate, token or
 * revocation is released only after its sync.
 *
 * A failed sync fails closed: the writes waiting on it, and every later write, are refused
 * with `ERR_STORE_UNAVAILABLE` (after a failed fsync the kernel may have dropped the pages,
 * so a retry proves nothing).
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
  /** The write-ahead log, open for syncing; -1 once closed. */
  #walFd: number;
  readonly #fdatasync: FdatasyncFn;
  /** Durable writes committed since the running sync began (or since the last one, if none runs). */
  #unsynced: Unsynced[] = [];
  /** The writes the running sync settles; null when no sync runs. */
  #syncing: Unsynced[] | null = null;
  #walSyncs = 0;

  /**
   * Takes over the durability of `db`'s commits: puts the connection under synchronous=NORMAL
   * and opens its `-wal` file to sync it (see the class comment).
   *
   * @throws Unavailable `ERR_STORE_UNAVAILABLE` if the connection is not in WAL mode or its log cannot be opened.
   */
  constructor(db: Database.Database, options: { maxBatchSize?: number; minBatchIntervalMs?: number; fdatasync?: FdatasyncFn } = {}) {
    this.#db = db;
    this.#maxBatchSize = options.maxBatchSize ?? 1000;
    this.#minIntervalMs = options.minBatchIntervalMs ?? 0;
    this.#fdatasync = options.fdatasync ?? fdatasync;
    this.#statements = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      savepoint: db.prepare('SAVEPOINT write_op'),
      release: db.prepare('RELEASE write_op'),
      rollbackTo: db.prepare('ROLLBACK TO write_op'),
    };
    const mode = db.pragma('journal_mode', { simple: true });
    if (mode !== 'wal') throw new Unavailable('ERR_STORE_UNAVAILABLE', `the write queue needs write-ahead logging (journal mode is ${String(mode)})`);
    // A connection in WAL mode has its log open from its first read on; this read makes sure.
    db.prepare('SELECT count(*) FROM sqlite_master').pluck().get();
    try {
      // The log keeps its inode while any connection (this one) is open: SQLite truncates and
      // rewrites it in place, and unlinks it only when the last connection closes.
      this.#walFd = openSync(`${db.name}-wal`, 'r');
    } catch (cause) {
      throw new Unavailable('ERR_STORE_UNAVAILABLE', `cannot open the store's write-ahead log to sync it`, { cause });
    }
    db.pragma('synchronous = NORMAL');
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

  /** Syncs of the write-ahead log that returned; fewer than durable commits under load. */
  get walSyncs(): number {
    return this.#walSyncs;
  }

  /**
   * Queues `op` for the next batch; resolves with its result once the batch is committed and,
   * unless `durable: false`, once the log is synced past that commit.
   * `singleStatement: true` skips the op's SAVEPOINT: for an op that runs one statement and
   * throws only when that statement changed nothing, SQLite's statement atomicity is enough.
   * `durable: false` settles the op at its COMMIT: only for a write whose loss in a power
   * failure is harmless as long as every later durable write is kept.
   */
  enqueue<T>(op: WriteOp<T>, options: { singleStatement?: boolean; durable?: boolean } = {}): Promise<T> {
    if (this.#closed) return Promise.reject(storeClosed());
    if (this.#unsafe) return Promise.reject(this.#unsafe);
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ op, savepoint: !options.singleStatement, durable: options.durable ?? true, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /**
   * Commits what is queued, syncs the log on this thread (so every write is durable before the
   * connection closes), then refuses new writes.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#pending.length > 0) this.#flushBatch();
    const waiting = [...(this.#syncing ?? []), ...this.#unsynced];
    this.#unsynced = [];
    if (waiting.length > 0) {
      try {
        fdatasyncSync(this.#walFd);
        for (const w of waiting) w.resolve(w.value);
      } catch (cause) {
        this.#failSync(waiting, cause);
      }
    }
    // A sync still running on the thread pool closes the file when it returns.
    if (this.#syncing === null) this.#closeWal();
  }

  /**
   * Under load, commits may be paced: the next batch starts no sooner than `minBatchIntervalMs`
   * after the last one ended, and collects every write queued meanwhile. An idle store commits
   * on the next turn.
   */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    const wait = this.#lastCommitEnd + this.#minIntervalMs - performance.now();
    if (wait > 0) setTimeout(this.#scheduledFlush, wait);
    else setImmediate(this.#scheduledFlush);
  }

  /**
   * One function for the queue's life, not a closure per flush. While a sync runs, durable
   * writes wait for it to return before they commit: committed now, they would only wait for
   * the next sync anyway, and they commit then in one transaction instead of several. A write
   * that need not be durable (a serial reservation, which a signature waits on) commits at once,
   * and takes the durable writes queued before it along.
   */
  readonly #scheduledFlush = (): void => {
    this.#scheduled = false;
    if (this.#syncing !== null && this.#pending.every((p) => p.durable)) return;
    this.#flushBatch();
    this.#lastCommitEnd = performance.now();
    if (this.#pending.length > 0) this.#schedule();
  };

  #flushBatch(): void {
    const taken = this.#pending.splice(0, this.#maxBatchSize);
    if (taken.length === 0) return;
    const unsafe = this.#unsafe;
    if (unsafe) {
      for (const p of taken) p.reject(unsafe);
      return;
    }
    const outcomes = this.#run(taken);
    // A batch of writes that need not be durable on their own needs no sync: the next durable
    // commit's sync covers it. In a mixed batch, those writes settle at once and the durable
    // ones wait for the sync.
    let durable = false;
    taken.forEach((pending, i) => {
      const outcome = outcomes[i]!;
      if (!outcome.ok) pending.reject(outcome.error);
      else if (!pending.durable) pending.resolve(outcome.value);
      else {
        durable = true;
        this.#unsynced.push({ value: outcome.value, resolve: pending.resolve, reject: pending.reject });
      }
    });
    if (!durable && outcomes.some((o) => o.ok)) this.#unsyncedCommits++;
    // Once closing, `close` syncs what is left on its own thread: no sync on the pool as well.
    if (this.#unsynced.length > 0 && this.#syncing === null && !this.#closed) this.#startSync();
  }

  #startSync(): void {
    const batch = this.#unsynced;
    this.#unsynced = [];
    this.#syncing = batch;
    this.#fdatasync(this.#walFd, (error) => {
      this.#syncing = null;
      if (error) {
        const later = this.#unsynced;
        this.#unsynced = [];
        this.#failSync([...batch, ...later], error);
      } else {
        this.#walSyncs++;
        for (const w of batch) w.resolve(w.value);
      }
      if (this.#closed) this.#closeWal();
      // Writes queued meanwhile commit first, so the next sync covers them with what is unsynced.
      else if (this.#pending.length > 0) this.#schedule();
      else if (this.#unsynced.length > 0) this.#startSync();
    });
  }

  /** Refuses the writes that waited on a failed sync, and every later write. */
  #failSync(waiting: Unsynced[], cause: unknown): void {
    this.#unsafe ??= new Unavailable('ERR_STORE_UNAVAILABLE', 'the store could not sync its write-ahead log', { cause });
    for (const w of waiting) w.reject(this.#unsafe);
  }

  #closeWal(): void {
    if (this.#walFd < 0) return;
    try {
      closeSync(this.#walFd);
    } catch {
      // Nothing is left to sync through it.
    }
    this.#walFd = -1;
  }

  /** One transaction for `batch`, committed under synchronous=NORMAL: the log is synced after. */
  #run(batch: Pending[]): Outcome[] {
    try {
      this.#statements.begin.run();
    } catch (e) {
      return this.#abort(batch, e);
    }
    try {
      for (const p of this.#participants) p.begin();
      return this.#runOps(batch);
    } finally {
      for (const p of this.#participants) p.end();
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
