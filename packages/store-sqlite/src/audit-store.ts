import { hash } from 'node:crypto';
import { chainInput, InternalError, InvalidRequest, type AuditEvent, type AuditEventInput, type AuditStore } from '@agentca/core';
import type Database from 'better-sqlite3';
import { readNow } from './sqlite-errors.ts';
import type { TransactionParticipant, WriteQueue } from './write-queue.ts';

interface AuditRow {
  seq: number;
  at: string;
  type: string;
  actor: string;
  outcome: string;
  spiffe_id: string | null;
  serial: string | null;
  code: string | null;
  detail: string | null;
  prev_hash: string;
  hash: string;
}

const COLUMNS = 'seq, at, type, actor, outcome, spiffe_id, serial, code, detail, prev_hash, hash';

/**
 * The audit chain in `audit_events`, with its head in the one-row `audit_head`. Appends run
 * inside the write transaction, so the queue's serial order is the chain's order. The head is
 * read once per transaction, carried in memory from append to append (and set back when an op
 * that appended is rolled back), and written once, just before COMMIT: a transaction commits
 * its events and the head that ends them together, or neither. The head record outlives any
 * deleted row, which is how a truncated tail is caught.
 */
export class SqliteAuditStore implements AuditStore, TransactionParticipant {
  readonly #queue: WriteQueue;
  /** The head as this transaction has moved it; null until its first append (then the head is read from the table). */
  #txHead: { seq: number; hash: string } | null = null;
  /** `#txHead` as the running op found it, to set back if the op fails. */
  #opHead: { seq: number; hash: string } | null = null;
  readonly #selectHead: Database.Statement<[], { seq: number; hash: string }>;
  readonly #moveHead: Database.Statement<[number, string]>;
  readonly #insert: Database.Statement<unknown[]>;
  readonly #select: Database.Statement<[number, number], AuditRow>;

  constructor(db: Database.Database, queue: WriteQueue) {
    this.#queue = queue;
    this.#selectHead = db.prepare('SELECT seq, hash FROM audit_head WHERE id = 1');
    this.#moveHead = db.prepare('UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1');
    this.#insert = db.prepare(`INSERT INTO audit_events (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.#select = db.prepare(`SELECT ${COLUMNS} FROM audit_events WHERE seq >= ? ORDER BY seq LIMIT ?`);
    queue.participate(this);
  }

  begin(): void {
    this.#txHead = null;
  }

  opStart(): void {
    this.#opHead = this.#txHead;
  }

  opFailed(): void {
    this.#txHead = this.#opHead;
  }

  beforeCommit(): void {
    if (this.#txHead) this.#moveHead.run(this.#txHead.seq, this.#txHead.hash);
  }

  end(): void {
    this.#txHead = null;
  }

  async append(event: AuditEventInput): Promise<AuditEvent> {
    return this.#queue.enqueue(() => this.appendInWrite(event));
  }

  /**
   * Appends `event` as part of the write op that is running now, so that another aggregate's
   * change and its audit event commit or roll back together. Only call it inside a
   * {@link WriteQueue} op.
   */
  appendInWrite(input: AuditEventInput): AuditEvent {
    if (!(input.at instanceof Date) || Number.isNaN(input.at.getTime())) {
      throw new InvalidRequest('ERR_AUDIT_EVENT_INVALID', 'an audit event needs a valid time');
    }
    const head = this.#txHead ?? this.#head();
    const event: AuditEvent = {
      seq: head.seq + 1,
      at: new Date(input.at.getTime()),
      type: input.type,
      actor: input.actor,
      outcome: input.outcome,
      spiffeId: input.spiffeId ?? null,
      serial: input.serial ?? null,
      code: input.code ?? null,
      detail: input.detail ? { ...input.detail } : null,
      prevHash: head.hash,
      hash: '',
    };
    event.hash = hash('sha256', chainInput(event.prevHash, event.seq, event), 'hex');
    this.#insert.run(
      event.seq,
      event.at.toISOString(),
      event.type,
      event.actor,
      event.outcome,
      event.spiffeId,
      event.serial,
      event.code,
      event.detail ? JSON.stringify(event.detail) : null,
      event.prevHash,
      event.hash,
    );
    this.#txHead = { seq: event.seq, hash: event.hash };
    return event;
  }

  async read(fromSeq: number, limit: number): Promise<AuditEvent[]> {
    if (!Number.isSafeInteger(fromSeq) || !Number.isSafeInteger(limit) || limit < 0) {
      throw new InvalidRequest('ERR_AUDIT_RANGE_INVALID', 'fromSeq and limit must be integers and limit must not be negative');
    }
    return readNow(() => this.#select.all(fromSeq, limit).map(toEvent));
  }

  async head(): Promise<{ seq: number; hash: string }> {
    return readNow(() => this.#head());
  }

  #head(): { seq: number; hash: string } {
    const row = this.#selectHead.get();
    // Without its head record a log emptied from the end would verify: refuse instead.
    if (!row) throw new InternalError('ERR_AUDIT_HEAD_MISSING', 'the audit head record is missing');
    return { seq: row.seq, hash: row.hash };
  }
}

/** A row as the chain hashed it; a row edited into something undecodable is reported, not guessed at. */
function toEvent(row: AuditRow): AuditEvent {
  const at = new Date(row.at);
  const detail = row.detail === null ? null : parseDetail(row.detail);
  if (Number.isNaN(at.getTime()) || detail === undefined) {
    throw new InternalError('ERR_AUDIT_EVENT_UNREADABLE', `audit event ${row.seq} cannot be decoded`);
  }
  return {
    seq: row.seq,
    at,
    type: row.type,
    actor: row.actor,
    outcome: row.outcome as AuditEvent['outcome'],
    spiffeId: row.spiffe_id,
    serial: row.serial,
    code: row.code,
    detail,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

function parseDetail(text: string): AuditEvent['detail'] | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as AuditEvent['detail']) : undefined;
  } catch {
    return undefined;
  }
}
