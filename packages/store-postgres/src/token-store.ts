import { Conflict, InvalidRequest, type AuditEventInput, type JoinTokenRecord, type TaskRecord, type TokenStore } from '@agentca/core';
import type pg from 'pg';
import { prepareEvent, type AuditedWriteQueue } from './audited-writes.ts';
import { keyedLookup, type Coalescer } from './coalescer.ts';
import type { Reader } from './reader.ts';
import { copy, instant, storable } from './values.ts';

interface TokenRow {
  id: string;
  hash: string;
  spiffe_id: string;
  profile: string;
  task_id: string | null;
  on_behalf_of: string | null;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  used_by_serial: string | null;
}

interface TaskRow {
  id: string;
  deadline: Date;
  ended_at: Date | null;
}

const COLUMNS = 'id, hash, spiffe_id, profile, task_id, on_behalf_of, created_at, expires_at, used_at, used_by_serial';
const TOKEN_ID = /^[0-9a-f]{16}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Join tokens in `join_tokens` and tasks in `tasks`. A token is written with its task and its
 * audit event in one transaction (through the {@link AuditedWriteQueue}), so a token exists if
 * and only if its creation is audited. The token row goes in first (its task reference is
 * checked at commit): a token ID already taken is refused before anything is written. Tokens
 * are consumed by `PostgresCertificateStore.reserveSerial`, not here.
 */
export class PostgresTokenStore implements TokenStore {
  readonly #read: Reader;
  readonly #writes: AuditedWriteQueue;
  readonly #sql: Record<'insert' | 'insertTask' | 'endTask', string>;
  readonly #get: Coalescer<string, TokenRow | null>;
  readonly #getTask: Coalescer<string, TaskRow | null>;

  constructor(read: Reader, writes: AuditedWriteQueue, S: string) {
    this.#read = read;
    this.#writes = writes;
    this.#sql = {
      insert: `INSERT INTO ${S}.join_tokens (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL) ON CONFLICT (id) DO NOTHING RETURNING id`,
      // The task as stored after this statement: the new one, or the one that already existed.
      insertTask: `WITH ins AS (INSERT INTO ${S}.tasks (id, deadline) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id, deadline, ended_at)
                   SELECT id, deadline, ended_at FROM ins UNION ALL SELECT id, deadline, ended_at FROM ${S}.tasks WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,
      // `ended_at IS NULL` in the update: ending a task again keeps the first time.
      endTask: `WITH u AS (UPDATE ${S}.tasks SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL RETURNING id, deadline, ended_at)
                SELECT id, deadline, ended_at FROM u UNION ALL SELECT id, deadline, ended_at FROM ${S}.tasks WHERE id = $2 AND NOT EXISTS (SELECT 1 FROM u)`,
    };
    const query = <R extends pg.QueryResultRow>(sql: string, params: unknown[]) => read.query<R>(sql, params);
    this.#get = keyedLookup(query, `SELECT ${COLUMNS} FROM ${S}.join_tokens WHERE id = ANY($1::text[])`, (r: TokenRow) => r.id);
    this.#getTask = keyedLookup(query, `SELECT id, deadline, ended_at FROM ${S}.tasks WHERE id = ANY($1::text[])`, (r: TaskRow) => r.id);
  }

  /**
   * @throws Conflict `ERR_TOKEN_EXISTS` for a token ID already stored; InvalidRequest
   * `ERR_TOKEN_RECORD_INVALID`, `ERR_DATE_INVALID`, `ERR_AUDIT_EVENT_INVALID`. Nothing is stored then.
   */
  async create(token: JoinTokenRecord, task: { id: string; deadline: Date } | null, event: AuditEventInput): Promise<TaskRecord | null> {
    const row = toRow(token);
    const taskId = task?.id ?? null;
    if (taskId !== row[4]) {
      throw new InvalidRequest('ERR_TOKEN_RECORD_INVALID', `join token ${row[0]} names task ${String(row[4])} but task ${String(taskId)} was given`);
    }
    const deadline = task ? instant(task.deadline, 'task deadline') : null;
    const prepared = prepareEvent(event);
    return this.#writes.enqueue(async (tx) => {
      const inserted = await tx.query(this.#sql.insert, row);
      if (inserted.rowCount === 0) throw new Conflict('ERR_TOKEN_EXISTS', `join token ${row[0]} already exists`);
      const stored = taskId === null ? undefined : (await tx.query<TaskRow>(this.#sql.insertTask, [taskId, deadline])).rows[0];
      tx.audit(prepared);
      return stored ? toTask(stored) : null;
    });
  }

  async get(id: string): Promise<JoinTokenRecord | null> {
    if (!storable(id)) return null;
    const row = await this.#get.submit(id);
    return row ? toRecord(row) : null;
  }

  async getTask(id: string): Promise<TaskRecord | null> {
    if (!storable(id)) return null;
    const row = await this.#getTask.submit(id);
    return row ? toTask(row) : null;
  }

  /** Null for an unknown task. @throws InvalidRequest `ERR_DATE_INVALID` */
  async endTask(id: string, at: Date): Promise<TaskRecord | null> {
    const endedAt = instant(at, 'task end time');
    if (!storable(id)) return null;
    const row = (await this.#read.query<TaskRow>(this.#sql.endTask, [endedAt, id])).rows[0];
    return row ? toTask(row) : null;
  }
}

type Row = [string, string, string, string, string | null, string | null, string, string];

function toRow(t: JoinTokenRecord): Row {
  const invalid = (why: string) => new InvalidRequest('ERR_TOKEN_RECORD_INVALID', why);
  if (typeof t.id !== 'string' || !TOKEN_ID.test(t.id)) throw invalid('a join token ID must be 16 lower-case hex digits');
  if (typeof t.hash !== 'string' || !SHA256_HEX.test(t.hash)) throw invalid(`join token ${t.id} needs the SHA-256 of its secret as lower-case hex`);
  if (!storable(t.spiffeId) || !storable(t.profile)) throw invalid(`join token ${t.id} needs a SPIFFE ID and a profile`);
  if (t.taskId != null && !storable(t.taskId)) throw invalid(`join token ${t.id} names a task that cannot be stored`);
  if (t.onBehalfOf != null && !storable(t.onBehalfOf)) throw invalid(`join token ${t.id} names a principal that cannot be stored`);
  if (t.usedAt != null || t.usedBySerial != null) throw invalid(`join token ${t.id} cannot be stored already used`);
  const createdAt = instant(t.createdAt, 'token creation time');
  const expiresAt = instant(t.expiresAt, 'token expiry');
  if (t.expiresAt.getTime() <= t.createdAt.getTime()) throw invalid(`join token ${t.id} must expire after it is created`);
  return [t.id, t.hash, t.spiffeId, t.profile, t.taskId ?? null, t.onBehalfOf ?? null, createdAt, expiresAt];
}

function toRecord(r: TokenRow): JoinTokenRecord {
  return {
    id: r.id,
    hash: r.hash,
    spiffeId: r.spiffe_id,
    profile: r.profile,
    taskId: r.task_id,
    onBehalfOf: r.on_behalf_of,
    createdAt: copy(r.created_at),
    expiresAt: copy(r.expires_at),
    usedAt: r.used_at && copy(r.used_at),
    usedBySerial: r.used_by_serial,
  };
}

function toTask(r: TaskRow): TaskRecord {
  return { id: r.id, deadline: copy(r.deadline), endedAt: r.ended_at && copy(r.ended_at) };
}
