import type Database from 'better-sqlite3';
import { Worker } from 'node:worker_threads';

/**
 * Least time between checkpoints while writes come in. SQLite's WAL file keeps its size when
 * it is rewound, so its size says nothing of what is left to copy: pacing by time bounds the
 * WAL to what half a second of writes adds.
 */
const CHECKPOINT_INTERVAL_MS = 500;

/**
 * Moves WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside the
 * COMMIT that crosses the threshold and fsyncs the database file there, blocking the thread
 * that committed; here the writing connection has `wal_autocheckpoint = 0` and a worker thread
 * with its own connection runs a PASSIVE checkpoint at most every half second while commits
 * come in (and on close, the writing connection checkpoints what is left).
 * If the worker cannot start, SQLite's automatic checkpoint is turned back on.
 */
export class Checkpointer {
  readonly #db: Database.Database;
  #worker: Worker | null = null;
  #inFlight = false;
  #failed = false;
  #checkpoints = 0;
  #last = performance.now();
  #exited = false;

  constructor(db: Database.Database) {
    this.#db = db;
    db.pragma('wal_autocheckpoint = 0');
  }

  /** Started on the first checkpoint, half a second after open: a short CLI command never starts it. */
  #start(): Worker {
    const worker = new Worker(new URL('./checkpoint-worker.mjs', import.meta.url), { workerData: { path: this.#db.name } });
    worker.unref();
    worker.on('message', (m: { ready?: boolean; ok?: boolean }) => {
      if (m.ready) return;
      this.#inFlight = false;
      if (m.ok) this.#checkpoints++;
    });
    worker.on('error', () => this.#fallBack());
    worker.on('exit', () => {
      this.#exited = true;
      this.#fallBack();
    });
    return worker;
  }

  /** Checkpoints completed by the worker. */
  get checkpoints(): number {
    return this.#checkpoints;
  }

  /** Called after each synced commit. */
  committed(): void {
    if (this.#failed || this.#inFlight) return;
    const now = performance.now();
    if (now - this.#last < CHECKPOINT_INTERVAL_MS) return;
    this.#last = now;
    this.#inFlight = true;
    this.#worker ??= this.#start();
    this.#worker.postMessage('checkpoint');
  }

  /** Stops the worker; closing the writing connection checkpoints what is left. */
  async close(): Promise<void> {
    this.#failed = true;
    const worker = this.#worker;
    if (!worker || this.#exited) return;
    worker.postMessage('close');
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => void worker.terminate().then(() => resolve()), 2000);
      worker.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  #fallBack(): void {
    if (this.#failed) return;
    this.#failed = true;
    if (this.#db.open) this.#db.pragma('wal_autocheckpoint = 1000');
  }
}
