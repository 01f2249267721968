import { InternalError, InvalidRequest, type AuditEvent, type AuditEventInput, type AuditStore } from '@agentca/core';
import { prepareEvent, type AuditedWriteQueue } from './audited-writes.ts';
import type { Reader } from './reader.ts';
import { int } from './values.ts';

interface AuditRow {
  seq: string;
  at: Date;
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
 * The audit chain in `audit_events`, its head in the one-row `audit_head`. Appends go through
 * the {@link AuditedWriteQueue}, which links them under a lock on the head row: writers on every
 * replica extend one chain. The head record outlives any deleted row, which is how a truncated
 * tail is caught; the head and the events it covers are committed together, so a reader never
 * sees one without the other.
 */
export class PostgresAuditStore implements AuditStore {
  readonly #read: Reader;
  readonly #writes: AuditedWriteQueue;
  readonly #select: string;
  readonly #head: string;

  constructor(read: Reader, writes: AuditedWriteQueue, S: string) {
    this.#read = read;
    this.#writes = writes;
    this.#select = `SELECT ${COLUMNS} FROM ${S}.audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2`;
    this.#head = `SELECT seq, hash FROM ${S}.audit_head WHERE id = 1`;
  }

  /** @throws InvalidRequest `ERR_AUDIT_EVENT_INVALID` */
  async append(event: AuditEventInput): Promise<AuditEvent> {
    const prepared = prepareEvent(event);
    return this.#writes.enqueue(async (tx) => tx.audit(prepared));
  }

  /** @throws InvalidRequest `ERR_AUDIT_RANGE_INVALID` */
  async read(fromSeq: number, limit: number): Promise<AuditEvent[]> {
    if (!Number.isSafeInteger(fromSeq) || !Number.isSafeInteger(limit) || limit < 0) {
      throw new InvalidRequest('ERR_AUDIT_RANGE_INVALID', 'fromSeq and limit must be integers and limit must not be negative');
    }
    return (await this.#read.query<AuditRow>(this.#select, [fromSeq, limit])).rows.map(toEvent);
  }

  async head(): Promise<{ seq: number; hash: string }> {
    const row = (await this.#read.query<{ seq: string; hash: string }>(this.#head)).rows[0];
    if (!row) throw new InternalError('ERR_AUDIT_HEAD_MISSING', 'the audit head record is missing');
    return { seq: int(row.seq), hash: row.hash };
  }
}

/** A row as the chain hashed it; a row edited into something undecodable is reported, not guessed at. */
function toEvent(row: AuditRow): AuditEvent {
  const seq = int(row.seq);
  const detail = row.detail === null ? null : parseDetail(row.detail);
  if (detail === undefined) throw new InternalError('ERR_AUDIT_EVENT_UNREADABLE', `audit event ${seq} cannot be decoded`);
  return {
    seq,
    at: row.at,
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
