import { createHash } from 'node:crypto';
import { AgentCAError, chainInput, InternalError, InvalidRequest, type AuditEvent, type AuditEventInput } from '@agentca/core';
import type pg from 'pg';
import { isRetryable, isUnavailable, storeClosed, toStoreError } from './pg-errors.ts';
import { statement } from './statements.ts';
import { instant, int, storable } from './values.ts';

/** An audit event checked before its write is queued; the chain fields are filled in at commit. */
export interface PreparedEvent {
  event: AuditEvent;
  at: string;
}

/**
 * Checks an audit event the way it will be stored, so that nothing about it can fail once its
 * write has started changing rows.
 *
 * @throws InvalidRequest `ERR_AUDIT_EVENT_INVALID` for an invalid time, text PostgreSQL cannot
 * hold (U+0000) or a detail that is not JSON.
 */
export function prepareEvent(input: AuditEventInput): PreparedEvent {
  const invalid = (why: string) => new InvalidRequest('ERR_AUDIT_EVENT_INVALID', why);
  if (!(input.at instanceof Date) || Number.isNaN(input.at.getTime())) throw invalid('an audit event needs a valid time');
  let at: string;
  try {
    at = instant(input.at, 'the audit event time');
  } catch {
    throw invalid('an audit event time must be within the years 1 to 9999');
  }
  const event: AuditEvent = {
    seq: 0,
    at: new Date(input.at.getTime()),
    type: input.type,
    actor: input.actor,
    outcome: input.outcome,
    spiffeId: input.spiffeId ?? null,
    serial: input.serial ?? null,
    code: input.code ?? null,
    detail: input.detail ? { ...input.detail } : null,
    prevHash: '',
    hash: '',
  };
  for (const s of [event.type, event.actor, event.outcome]) if (!storable(s)) throw invalid('an audit event needs a type, actor and outcome without NUL characters');
  for (const s of [event.spiffeId, event.serial, event.code]) if (s !== null && !storable(s)) throw invalid('an audit event’s text cannot hold NUL characters');
  // JSON escapes U+0000, so the detail text is always storable; this throws for a BigInt or a cycle.
  if (event.detail !== null) detailText(event);
  return { event, at };
}

/** The same event with `detail` fields replaced (values known only inside the write, such as a count). */
export function withDetail(p: PreparedEvent, patch: Record<string, string | number | boolean | null>): PreparedEvent {
  return { at: p.at, event: { ...p.event, detail: { ...p.event.detail, ...patch } } };
}

function detailText(e: AuditEvent): string | null {
  return e.detail === null ? null : JSON.stringify(e.detail);
}

/** What a write sees: its transaction's connection, and the audit log at its place in the chain. */
export interface WriteTx {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  /** Appends `p` to the chain after this write's changes; the event gets its seq and hashes before the write resolves. */
  audit(p: PreparedEvent): AuditEvent;
}

/**
 * A write. It may throw an AgentCAError only before its first change (a refusal writes
 * nothing); any other failure is a database failure and aborts its transaction.
 */
export type WriteOp<T> = (tx: WriteTx) => Promise<T>;

interface Pending {
  op: WriteOp<unknown>;
  first: boolean;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

const MAX_RETRIES = 3;

/**
 * Group commit for the writes that append to the audit chain. Writes queued while a batch runs
 * share the next transaction: their statements run one after another on one connection, then
 * the chain head is locked (`SELECT … FOR UPDATE` on the one `audit_head` row), every event of
 * the batch is linked and inserted with one statement, the head moves, and the batch commits.
 * The head is locked only for that last step, so replicas run their batches' statements in
 * parallel and take turns only to extend the chain: one chain, whatever the number of writers.
 *
 * A batch that fails for a deadlock or a serialisation conflict is run again; one that fails
 * for a statement error is split, each write in a transaction of its own, so one bad write
 * fails alone. When the database is unreachable every write of the batch fails with
 * Unavailable `ERR_STORE_UNAVAILABLE`, and nothing of it was committed. Each promise settles
 * after its batch's COMMIT.
 */
export class AuditedWriteQueue {
  readonly #pool: pg.Pool;
  readonly #S: string;
  readonly #maxBatchSize: number;
  #pending: Pending[] = [];
  #running = false;
  #closed = false;
  #idle: (() => void)[] = [];
  #committedBatches = 0;
  /** The chain head as this store's last batch left it (null: unknown). */
  #head: { seq: number; hash: string } | null = null;
  #skipGuesses = 0;

  constructor(pool: pg.Pool, schema: string, options: { maxBatchSize?: number } = {}) {
    this.#pool = pool;
    this.#S = schema;
    this.#maxBatchSize = options.maxBatchSize ?? 500;
  }

  get committedBatches(): number {
    return this.#committedBatches;
  }

  /**
   * Queues `op` for the next batch. `first` runs it before the batch's other writes: a write that
   * takes an exclusive lock (the revocation feed) takes it before writes that share it, so two
   * replicas' batches do not deadlock on upgrading it.
   */
  enqueue<T>(op: WriteOp<T>, o: { first?: boolean } = {}): Promise<T> {
    if (this.#closed) return Promise.reject(storeClosed());
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ op, first: o.first ?? false, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#running) {
        this.#running = true;
        // One turn of the event loop lets concurrent callers join the first batch.
        setImmediate(() => void this.#drain());
      }
    });
  }

  /** Commits what is queued, then refuses new writes. */
  async close(): Promise<void> {
    this.#closed = true;
    if (!this.#running) return;
    await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, this.#maxBatchSize);
      await this.#runBatch([...batch.filter((p) => p.first), ...batch.filter((p) => !p.first)]);
    }
    this.#running = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  async #runBatch(batch: Pending[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.#pool.connect();
      } catch (e) {
        return settleAll(batch, toStoreError(e));
      }
      // A connection that drops between two statements emits 'error' on the client; pg would
      // throw it as an unhandled event. The statement in flight fails on its own.
      const ignore = () => {};
      client.on('error', ignore);
      let failure: unknown;
      let outcomes: Outcome[] | undefined;
      try {
        outcomes = await this.#attempt(client, batch);
      } catch (e) {
        failure = e;
      }
      if (failure !== undefined) this.#head = null;
      let healthy = failure === undefined || !isUnavailable(failure);
      if (failure !== undefined && healthy) {
        healthy = await client.query('ROLLBACK').then(
          () => true,
          () => false,
        );
      }
      client.removeListener('error', ignore);
      // A connection in doubt is closed, not returned to the pool.
      client.release(healthy ? undefined : true);
      if (outcomes) {
        this.#committedBatches++;
        batch.forEach((p, i) => {
          const o = outcomes[i]!;
          if (o.ok) p.resolve(o.value);
          else p.reject(o.error);
        });
        return;
      }
      if (isRetryable(failure) && attempt < MAX_RETRIES) continue;
      if (isUnavailable(failure) || batch.length === 1) return settleAll(batch, toStoreError(failure));
      for (const p of batch) await this.#runBatch([p]);
      return;
    }
  }

  async #attempt(client: pg.PoolClient, batch: Pending[]): Promise<Outcome[]> {
    // Bounds on what a stuck client can hold: the head lock must never outlive a lost replica.
    await client.query("BEGIN; SET LOCAL statement_timeout = '10s'; SET LOCAL idle_in_transaction_session_timeout = '10s'");
    const outcomes: Outcome[] = [];
    const chain: PreparedEvent[] = [];
    for (const p of batch) {
      const events: PreparedEvent[] = [];
      const tx: WriteTx = {
        query: <R extends pg.QueryResultRow>(text: string, params?: unknown[]) => client.query<R>(statement(text, params) as pg.QueryConfig),
        audit: (e) => {
          events.push(e);
          return e.event;
        },
      };
      try {
        outcomes.push({ ok: true, value: await p.op(tx) });
        chain.push(...events);
      } catch (e) {
        if (!(e instanceof AgentCAError)) throw e;
        outcomes.push({ ok: false, error: e });
      }
    }
    let head: { seq: number; hash: string } | null = null;
    if (chain.length > 0) head = await this.#extendChain(client, chain);
    // A transaction that failed unnoticed answers COMMIT with ROLLBACK instead of an error.
    const commit = await client.query('COMMIT');
    if (commit.command !== 'COMMIT') throw new Error(`the batch transaction ended with ${commit.command}`);
    if (head) this.#head = head;
    return outcomes;
  }

  /**
   * Links `chain` after the head and writes it, the head row locked until the batch commits.
   * When the head this store last wrote is likely still the head (no other replica appended
   * since), one statement moves it on condition that it is unchanged and inserts the events;
   * otherwise, or when that condition fails, the head is read under `FOR UPDATE` first.
   */
  async #extendChain(client: pg.PoolClient, chain: PreparedEvent[]): Promise<{ seq: number; hash: string }> {
    const S = this.#S;
    const guess = this.#skipGuesses > 0 ? null : this.#head;
    if (this.#skipGuesses > 0) this.#skipGuesses--;
    if (guess) {
      const cols = link(chain, guess);
      const r = await client.query(
        statement(
          `WITH head AS (UPDATE ${S}.audit_head SET seq = $12, hash = $13 WHERE id = 1 AND seq = $14 AND hash = $15 RETURNING 1)
           INSERT INTO ${S}.audit_events (seq, at, type, actor, outcome, spiffe_id, serial, code, detail, prev_hash, hash)
           SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
           WHERE EXISTS (SELECT 1 FROM head)`,
          [...cols, guess.seq + chain.length, chain[chain.length - 1]!.event.hash, guess.seq, guess.hash],
        ) as pg.QueryConfig,
      );
      if (r.rowCount === chain.length) return { seq: guess.seq + chain.length, hash: chain[chain.length - 1]!.event.hash };
      // Another replica appended since: read the head for a while rather than guess wrong again.
      this.#skipGuesses = 16;
    }
    const row = (await client.query<{ seq: string; hash: string }>(`SELECT seq, hash FROM ${S}.audit_head WHERE id = 1 FOR UPDATE`)).rows[0];
    // Without its head record a log emptied from the end would verify: refuse instead.
    if (!row) throw new InternalError('ERR_AUDIT_HEAD_MISSING', 'the audit head record is missing');
    const head = { seq: int(row.seq), hash: row.hash };
    const cols = link(chain, head);
    const next = { seq: head.seq + chain.length, hash: chain[chain.length - 1]!.event.hash };
    await client.query(
      statement(
        `WITH events AS (
           INSERT INTO ${S}.audit_events (seq, at, type, actor, outcome, spiffe_id, serial, code, detail, prev_hash, hash)
           SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
         )
         UPDATE ${S}.audit_head SET seq = $12, hash = $13 WHERE id = 1`,
        [...cols, next.seq, next.hash],
      ) as pg.QueryConfig,
    );
    return next;
  }
}

/** Gives each event its seq, prevHash and hash after `head`; returns the columns of the rows to insert. */
function link(chain: PreparedEvent[], head: { seq: number; hash: string }): unknown[][] {
  let seq = head.seq;
  let prev = head.hash;
  const cols: unknown[][] = Array.from({ length: 11 }, () => []);
  for (const { event: e, at } of chain) {
    e.seq = ++seq;
    e.prevHash = prev;
    e.hash = createHash('sha256').update(chainInput(prev, seq, e)).digest('hex');
    prev = e.hash;
    [e.seq, at, e.type, e.actor, e.outcome, e.spiffeId, e.serial, e.code, detailText(e), e.prevHash, e.hash].forEach((v, i) => cols[i]!.push(v));
  }
  return cols;
}

function settleAll(batch: Pending[], error: unknown): void {
  for (const p of batch) p.reject(error);
}
