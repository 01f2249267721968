import { AgentCAError, InternalError, Unavailable } from '@agentca/core';
import Database from 'better-sqlite3';

// Result codes that say the database could not do its job right now (locked, disk, file),
// as opposed to a statement that is wrong.
const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL|NOTADB|CORRUPT|NOMEM|PERM|AUTH|NOLFS)/;

/**
 * Turns a driver failure into an agentca error: a locked, full, unreadable or closed database
 * becomes Unavailable `ERR_STORE_UNAVAILABLE` (or `ERR_STORE_CLOSED`), any other SQLite
 * failure InternalError `ERR_STORE_INTERNAL`. agentca errors and non-SQLite errors pass through.
 */
export function toStoreError(e: unknown): unknown {
  if (e instanceof AgentCAError) return e;
  if (e instanceof Database.SqliteError) {
    if (UNAVAILABLE.test(e.code)) return new Unavailable('ERR_STORE_UNAVAILABLE', `the store is unavailable: ${e.message}`, { cause: e });
    return new InternalError('ERR_STORE_INTERNAL', `the store failed: ${e.message}`, { cause: e });
  }
  // better-sqlite3 reports a closed connection as a TypeError.
  if (e instanceof TypeError && /database connection is not open/i.test(e.message)) return storeClosed(e);
  return e;
}

/** The error of any call on a closed store. */
export function storeClosed(cause?: unknown): Unavailable {
  return new Unavailable('ERR_STORE_CLOSED', 'the store is closed', cause === undefined ? undefined : { cause });
}

/** Runs a synchronous read and rejects with the mapped error if it fails. */
export async function readNow<T>(read: () => T): Promise<T> {
  try {
    return read();
  } catch (e) {
    throw toStoreError(e);
  }
}
