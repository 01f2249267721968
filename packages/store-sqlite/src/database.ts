import { AgentCAError, Unavailable, type Clock } from '@agentca/core';
import Database from 'better-sqlite3';
import { migrations as defaultMigrations, type Migration } from './migrations.ts';
import { toStoreError } from './sqlite-errors.ts';

/** How a store file is opened. */
export interface DatabaseOptions {
  /** Stamps `schema_migrations.applied_at`. */
  clock: Clock;
  /** How long a write waits for another connection's lock before failing as unavailable. */
  busyTimeoutMs?: number;
  /** Replaces the schema; for tests of the migration runner. */
  migrations?: readonly Migration[];
}

/**
 * Opens (creating if needed) the SQLite file at `path` with durable settings (WAL,
 * synchronous=FULL, foreign keys on) and brings its schema up to date. The `WriteQueue`
 * given the connection then runs it under synchronous=NORMAL and syncs the log itself, off
 * the event loop.
 *
 * @throws Unavailable `ERR_STORE_UNAVAILABLE` if the file cannot be opened or put in WAL
 * mode, `ERR_STORE_SCHEMA_TOO_NEW` if a newer agentca migrated it.
 */
export function openDatabase(path: string, options: DatabaseOptions): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    configure(db, options.busyTimeoutMs ?? 5000);
    migrate(db, options.migrations ?? defaultMigrations, options.clock);
    return db;
  } catch (e) {
    db?.close();
    const mapped = toStoreError(e);
    if (mapped instanceof AgentCAError) throw mapped;
    throw new Unavailable('ERR_STORE_UNAVAILABLE', `cannot open the store at ${path}`, { cause: e });
  }
}

function configure(db: Database.Database, busyTimeoutMs: number): void {
  db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(busyTimeoutMs))}`);
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  // A database that cannot keep a write-ahead log (in memory, some network filesystems)
  // cannot give the durability the CA promises.
  if (mode !== 'wal') throw new Unavailable('ERR_STORE_UNAVAILABLE', `the store cannot use write-ahead logging (journal mode is ${String(mode)})`);
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  // SQLite's own default page cache (2 MiB), not better-sqlite3's 16 MiB. When an insert splits
  // a B-tree page, balance_nonroot renumbers the siblings through a scratch page number (the
  // pending-byte page, 262145 at 4 KiB pages), which leaves the page cache's highest key far
  // above the file's size; the truncate at the end of the commit (pcache1TruncateUnsafe, from
  // pager_end_transaction) then scans the whole hash table (seen with gdb: iMaxKey 262145,
  // iLimit ~ page count, nHash 1024, on each commit gdb stopped at in a random-key insert loop),
  // so a bigger cache costs each commit more than its hits save. Measured with perf on the
  // issuance bench: ~9 µs of event-loop time per certificate in that scan at 16 MiB, ~1 µs at
  // 2 MiB, and fewer page frees and mallocs; on a 130 MB file of random-key inserts, 348 against
  // 444 µs of CPU per commit. Pages that miss come from the OS page cache.
  db.pragma('cache_size = -2000');
}

/** Applies, in one transaction, the migrations the file has not seen yet. */
function migrate(db: Database.Database, migrations: readonly Migration[], clock: Clock): void {
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  // IMMEDIATE: two processes opening a fresh file must not both apply version 1.
  db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at TEXT NOT NULL
    )`);
    const applied = new Set(db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[]);
    const newer = [...applied].filter((v) => v > latest);
    if (newer.length > 0) {
      throw new Unavailable('ERR_STORE_SCHEMA_TOO_NEW', `the store has schema version ${Math.max(...newer)}, this agentca knows up to ${latest}`);
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      db.exec(m.sql);
      record.run(m.version, m.name, clock.now().toISOString());
    }
  }).immediate();
}
