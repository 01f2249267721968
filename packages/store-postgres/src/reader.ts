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

  /**
   * Runs `body` in one READ COMMITTED transaction on one pooled connection; each statement in it
   * sees what committed before that statement started. Rolled back if `body` throws.
   */
  async transaction<T>(body: (query: <R extends pg.QueryResultRow>(text: string, params?: unknown[]) => Promise<pg.QueryResult<R>>) => Promise<T>): Promise<T> {
    if (this.#closed) throw storeClosed();
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (e) {
      throw toStoreError(e);
    }
    let failed = false;
    try {
      await client.query('BEGIN');
      const result = await body(<R extends pg.QueryResultRow>(text: string, params?: unknown[]) => client.query<R>(statement(text, params) as pg.QueryConfig));
      const commit = await client.query('COMMIT');
      // A transaction that failed unnoticed answers COMMIT with ROLLBACK instead of an error.
      if (commit.command !== 'COMMIT') throw new Error(`the transaction ended with ${commit.command}`);
      return result;
    } catch (e) {
      failed = true;
      await client.query('ROLLBACK').catch(() => undefined);
      throw toStoreError(e);
    } finally {
      // A connection whose state is unknown after a failure is not reused.
      client.release(failed ? true : undefined);
    }
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
