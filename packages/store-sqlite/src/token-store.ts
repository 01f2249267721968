import { Conflict, InvalidRequest, type AuditEventInput, type JoinTokenRecord, type TaskRecord, type TokenStore } from '@agentca/core';
import type Database from 'better-sqlite3';
import type { SqliteAuditStore } from './audit-store.ts';
import { millis } from './certificate-store.ts';
import { readNow } from './sqlite-errors.ts';
import type { WriteQueue } from './write-queue.ts';

interface TokenRow {
  id: string;
  hash: string;
  spiffe_id: string;
  profile: string;
  task_id: string | null;
  on_behalf_of: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  used_by_serial: string | null;
}

interface TaskRow {
  id: string;
  deadline: number;
  ended_at: number | null;
}

const COLUMNS = 'id, hash, spiffe_id, profile, task_id, on_behalf_of, created_at, expires_at, used_at, used_by_serial';
const TOKEN_ID = /^[0-9a-f]{16}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Join tokens in `join_tokens` and tasks in `tasks`. A token is written with its task and its
 * audit event in one write op, so a token exists if and only if its creation is audited.
 * Tokens are consumed by `SqliteCertificateStore.reserveSerial`, not here.
 */
export class SqliteTokenStore implements TokenStore {
  readonly #queue: WriteQueue;
  readonly #audit: SqliteAuditStore;
  readonly #insertTask: Database.Statement<[string, number]>;
  readonly #insert: Database.Statement<unknown[]>;
  readonly #get: Database.Statement<[string], TokenRow>;
  readonly #getTask: Database.Statement<[string], TaskRow>;
  readonly #endTask: Database.Statement<[number, string]>;

  constructor(db: Database.Database, queue: WriteQueue, audit: SqliteAuditStore) {
    this.#queue = queue;
    this.#audit = audit;
    this.#insertTask = db.prepare('INSERT INTO tasks (id, deadline) VALUES (?, ?) ON CONFLICT (id) DO NOTHING');
    this.#insert = db.prepare(`INSERT INTO join_tokens (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL) ON CONFLICT (id) DO NOTHING`);
    this.#get = db.prepare(`SELECT ${COLUMNS} FROM join_tokens WHERE id = ?`);
    this.#getTask = db.prepare('SELECT id, deadline, ended_at FROM tasks WHERE id = ?');
    this.#endTask = db.prepare('UPDATE tasks SET ended_at = ? WHERE id = ? AND ended_at IS NULL');
  }

  /**
   * @throws Conflict `ERR_TOKEN_EXISTS` for a token ID already stored; InvalidRequest
   * `ERR_TOKEN_RECORD_INVALID` for a malformed or already used token, or one whose task is not
   * the task given, `ERR_DATE_INVALID`, or the audit event's error. Nothing is stored then.
   */
  async create(token: JoinTokenRecord, task: { id: string; deadline: Date } | null, event: AuditEventInput): Promise<TaskRecord | null> {
    const row = toRow(token);
    const taskId = task?.id ?? null;
    if (taskId !== row[4]) {
      throw new InvalidRequest('ERR_TOKEN_RECORD_INVALID', `join token ${row[0]} names task ${String(row[4])} but task ${String(taskId)} was given`);
    }
    const deadline = task ? millis(task.deadline, 'task deadline') : 0;
    return this.#queue.enqueue(() => {
      // Before the token: its task_id must point at an existing task.
      if (taskId !== null) this.#insertTask.run(taskId, deadline);
      if (this.#insert.run(...row).changes === 0) throw new Conflict('ERR_TOKEN_EXISTS', `join token ${row[0]} already exists`);
      this.#audit.appendInWrite(event);
      const stored = taskId === null ? undefined : this.#getTask.get(taskId);
      return stored ? toTask(stored) : null;
    });
  }

  async get(id: string): Promise<JoinTokenRecord | null> {
    return readNow(() => {
      const row = this.#get.get(id);
      return row ? toRecord(row) : null;
    });
  }

  async getTask(id: string): Promise<TaskRecord | null> {
    return readNow(() => {
      const row = this.#getTask.get(id);
      return row ? toTask(row) : null;
    });
  }

  /** Null for an unknown task. @throws InvalidRequest `ERR_DATE_INVALID` */
  async endTask(id: string, at: Date): Promise<TaskRecord | null> {
    const endedAt = millis(at, 'task end time');
    return this.#queue.enqueue(() => {
      // `ended_at IS NULL` in the update: ending a task again keeps the first time.
      this.#endTask.run(endedAt, id);
      const row = this.#getTask.get(id);
      return row ? toTask(row) : null;
    });
  }
}

type Row = [string, string, string, string, string | null, string | null, number, number];

function invalid(why: string): InvalidRequest {
  return new InvalidRequest('ERR_TOKEN_RECORD_INVALID', why);
}

function toRow(t: JoinTokenRecord): Row {
  if (typeof t.id !== 'string' || !TOKEN_ID.test(t.id)) throw invalid('a join token ID must be 16 lower-case hex digits');
  if (typeof t.hash !== 'string' || !SHA256_HEX.test(t.hash)) throw invalid(`join token ${t.id} needs the SHA-256 of its secret as lower-case hex`);
  if (typeof t.spiffeId !== 'string' || typeof t.profile !== 'string') throw invalid(`join token ${t.id} needs a SPIFFE ID and a profile`);
  if (t.usedAt != null || t.usedBySerial != null) throw invalid(`join token ${t.id} cannot be stored already used`);
  const createdAt = millis(t.createdAt, 'token creation time');
  const expiresAt = millis(t.expiresAt, 'token expiry');
  if (expiresAt <= createdAt) throw invalid(`join token ${t.id} must expire after it is created`);
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
    createdAt: new Date(r.created_at),
    expiresAt: new Date(r.expires_at),
    usedAt: r.used_at === null ? null : new Date(r.used_at),
    usedBySerial: r.used_by_serial,
  };
}

function toTask(r: TaskRow): TaskRecord {
  return { id: r.id, deadline: new Date(r.deadline), endedAt: r.ended_at === null ? null : new Date(r.ended_at) };
}
