/**
 * Counters a store keeps since it opened, for `/metrics`; a store without one leaves it out.
 * Both stores group-commit, so these say how many writes a commit (and on SQLite, a sync of its
 * write-ahead log) carries.
 */
export interface StoreCounters {
  /** Write transactions committed; each holds every write queued meanwhile. */
  readonly committedBatches?: number;
  /** SQLite only: syncs of its write-ahead log, made off the event loop (PostgreSQL syncs its own WAL). */
  readonly walSyncs?: number;
}
