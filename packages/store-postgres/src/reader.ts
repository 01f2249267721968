import type pg from 'pg';
import { storeClosed, toStoreError } from './pg-errors.ts';
import { statement } from './statements.ts';

/**
 * Statements that run alone, each in its own transaction, on any pooled connection: reads, and
 * writes that are one statement (PostgreSQL makes a statement atomic). Failures come out as
 * agentca errors; after `close()` every call fails with `ERR_STORE_CLOSED`.
 */
export class Reader {
  readonly #pool: pg.Pool;
  #closed = false;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  close(): void {
    this.#closed = true;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    if (this.#closed) throw storeClosed();
    try {
      return await this.#pool.query<R>(statement(text, params) as pg.QueryConfig);
    } catch (e) {
      throw toStoreError(e);
    }
  }
}
