import {
  InvalidRequest,
  REVOCATION_REASONS,
  type AuditEventInput,
  type RevocationReason,
  type RevocationRecord,
  type RevocationSelector,
  type RevocationStore,
  type RevokeOutcome,
} from '@agentca/core';
import type pg from 'pg';
import { prepareEvent, withDetail, type AuditedWriteQueue } from './audited-writes.ts';
import { keyedLookup, type Coalescer } from './coalescer.ts';
import { assertIssuer, nextCrlNumberSql } from './crl-store.ts';
import type { Reader } from './reader.ts';
import { assertCanonicalSerial, copy, crlNumberParam, instant, int, storable } from './values.ts';

interface RevocationRow {
  serial: string;
  revoked_at: Date;
  reason: RevocationReason;
  not_after: Date;
  spiffe_id: string;
  instance_id: string;
  task_id: string | null;
  change_seq: string | number;
}

/** A certificate the selector matched, with its revocation if it has one. */
interface MatchRow {
  serial: string;
  spiffe_id: string;
  instance_id: string;
  task_id: string | null;
  not_after: Date;
  key_fingerprint: string;
  revoked_at: Date | null;
  reason: RevocationReason | null;
  change_seq: string | null;
}

const COLUMNS = 'serial, revoked_at, reason, not_after, spiffe_id, instance_id, task_id, change_seq';
const SELECTOR_COLUMNS = { serial: 'serial', spiffeId: 'spiffe_id', instanceId: 'instance_id', taskId: 'task_id' } as const;
type SelectorKind = keyof typeof SELECTOR_COLUMNS;

/**
 * Revocations in `revocations` and the keys of keyCompromise revocations in `blocked_keys`.
 *
 * `change_seq` is what `agentca serve` polls (`changesSince`) on every replica, so it must never
 * become visible out of order: a write that changes revocations first locks the one
 * `revocation_feed` row (`SELECT … FOR UPDATE`), takes the next numbers from it and keeps the
 * lock until it commits. The next such write can only read the counter after this one
 * committed, so numbers are visible in the order they were taken — a poller that has seen 6
 * will never later find a 5. Taking the lock before reading the matches also makes concurrent
 * revocations of one certificate on two replicas queue, so the first date wins.
 */
export class PostgresRevocationStore implements RevocationStore {
  readonly #read: Reader;
  readonly #writes: AuditedWriteQueue;
  readonly #sql: Record<'lockFeed' | 'moveFeed' | 'insert' | 'upgrade' | 'block' | 'listed' | 'markListed' | 'changes' | 'nextCrlNumber', string> & {
    matches: Record<SelectorKind, string>;
  };
  readonly #get: Coalescer<string, RevocationRow | null>;
  readonly #blocked: Coalescer<string, { key_fingerprint: string } | null>;

  constructor(read: Reader, writes: AuditedWriteQueue, S: string) {
    this.#read = read;
    this.#writes = writes;
    const match = (column: string) =>
      `SELECT c.serial, c.spiffe_id, c.instance_id, c.task_id, c.not_after, c.key_fingerprint, r.revoked_at, r.reason, r.change_seq
       FROM ${S}.certificates c LEFT JOIN ${S}.revocations r ON r.serial = c.serial
       WHERE c.${column} = $1 AND c.not_after > $2
       ORDER BY c.serial`;
    this.#sql = {
      matches: {
        serial: match(SELECTOR_COLUMNS.serial),
        spiffeId: match(SELECTOR_COLUMNS.spiffeId),
        instanceId: match(SELECTOR_COLUMNS.instanceId),
        taskId: match(SELECTOR_COLUMNS.taskId),
      },
      lockFeed: `SELECT last_seq FROM ${S}.revocation_feed WHERE id = 1 FOR UPDATE`,
      moveFeed: `UPDATE ${S}.revocation_feed SET last_seq = $1 WHERE id = 1`,
      insert: `INSERT INTO ${S}.revocations (${COLUMNS})
               SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::bigint[])`,
      upgrade: `UPDATE ${S}.revocations r SET reason = 'keyCompromise', change_seq = u.seq
                FROM unnest($1::text[], $2::bigint[]) AS u (serial, seq) WHERE r.serial = u.serial`,
      block: `INSERT INTO ${S}.blocked_keys (key_fingerprint, serial, at)
              SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) ON CONFLICT (key_fingerprint) DO NOTHING`,
      listed: `SELECT ${COLUMNS} FROM ${S}.revocations WHERE final_crl IS NULL ORDER BY serial`,
      markListed: `UPDATE ${S}.revocations SET final_crl = $1 WHERE final_crl IS NULL AND not_after < $2`,
      changes: `SELECT ${COLUMNS} FROM ${S}.revocations WHERE change_seq > $1 ORDER BY change_seq LIMIT $2`,
      nextCrlNumber: nextCrlNumberSql(S),
    };
    const query = <R extends pg.QueryResultRow>(sql: string, params: unknown[]) => read.query<R>(sql, params);
    // OCSP lookups and issuance checks, many at once under load: one statement per batch.
    this.#get = keyedLookup(query, `SELECT ${COLUMNS} FROM ${S}.revocations WHERE serial = ANY($1::text[])`, (r: RevocationRow) => r.serial);
    this.#blocked = keyedLookup(query, `SELECT key_fingerprint FROM ${S}.blocked_keys WHERE key_fingerprint = ANY($1::text[])`, (r: { key_fingerprint: string }) => r.key_fingerprint);
  }

  /**
   * One write with its audit event: the revocations, the blocked keys and the event commit
   * together or not at all. A certificate whose notAfter is at or before `at` is not matched.
   *
   * @throws InvalidRequest `ERR_REVOCATION_SELECTOR`, `ERR_SERIAL_INVALID`,
   * `ERR_REVOCATION_REASON_INVALID`, `ERR_DATE_INVALID`, `ERR_AUDIT_EVENT_INVALID`; Unavailable
   * `ERR_STORE_UNAVAILABLE` (then nothing was revoked).
   */
  async revoke(selector: RevocationSelector, reason: RevocationReason, at: Date, event: AuditEventInput): Promise<RevokeOutcome> {
    const [kind, value] = selectorOf(selector);
    if (typeof reason !== 'string' || !Object.hasOwn(REVOCATION_REASONS, reason)) {
      throw new InvalidRequest('ERR_REVOCATION_REASON_INVALID', `unknown revocation reason ${JSON.stringify(reason)}`);
    }
    const atText = instant(at, 'revocation time');
    const prepared = prepareEvent({ ...event, detail: { ...event.detail, count: 0 } });
    // A value PostgreSQL cannot hold matches no stored certificate.
    if (!storable(value)) return { revoked: [], changed: 0 };
    return this.#writes.enqueue(async (tx) => {
      const feed = await tx.query<{ last_seq: string }>(this.#sql.lockFeed);
      let seq = int(feed.rows[0]!.last_seq);
      const matched = (await tx.query<MatchRow>(this.#sql.matches[kind], [value, atText])).rows;
      if (matched.length === 0) return { revoked: [], changed: 0 };
      const inserts: RevocationRow[] = [];
      const upgrades: RevocationRow[] = [];
      const revoked = matched.map((m): RevocationRecord => {
        let row: RevocationRow;
        if (m.revoked_at === null || m.reason === null || m.change_seq === null) {
          row = { ...m, revoked_at: new Date(at.getTime()), reason, change_seq: ++seq };
          inserts.push(row);
        } else if (reason === 'keyCompromise' && m.reason !== 'keyCompromise') {
          // Only this upgrade: a key found compromised later must reach CRL and OCSP, while any
          // other re-revocation would rewrite history for no relying party's benefit.
          row = { ...m, revoked_at: m.revoked_at, reason, change_seq: ++seq };
          upgrades.push(row);
        } else {
          row = { ...m, revoked_at: m.revoked_at, reason: m.reason, change_seq: m.change_seq };
        }
        return toRecord(row);
      });
      if (inserts.length > 0) {
        const cols: unknown[][] = Array.from({ length: 8 }, () => []);
        for (const r of inserts) [r.serial, atText, r.reason, r.not_after, r.spiffe_id, r.instance_id, r.task_id, r.change_seq].forEach((v, i) => cols[i]!.push(v));
        await tx.query(this.#sql.insert, cols);
      }
      if (upgrades.length > 0) await tx.query(this.#sql.upgrade, [upgrades.map((r) => r.serial), upgrades.map((r) => r.change_seq)]);
      if (reason === 'keyCompromise') {
        await tx.query(this.#sql.block, [matched.map((m) => m.key_fingerprint), matched.map((m) => m.serial), matched.map(() => atText)]);
      }
      const changed = inserts.length + upgrades.length;
      if (changed > 0) await tx.query(this.#sql.moveFeed, [seq]);
      tx.audit(withDetail(prepared, { count: changed }));
      return { revoked, changed };
    }, { first: true });
  }

  async get(serial: string): Promise<RevocationRecord | null> {
    if (!storable(serial)) return null;
    const row = await this.#get.submit(serial);
    return row ? toRecord(row) : null;
  }

  /** One indexed scan of the entries not yet dropped, in serial (byte) order. */
  async crlEntries(): Promise<RevocationRecord[]> {
    return (await this.#read.query<RevocationRow>(this.#sql.listed)).rows.map(toRecord);
  }

  /**
   * The number first, then the entries, in one transaction: the number's `crl_state` row stays
   * locked until commit, so the next allocation (on any replica) waits for it, and its entries
   * are read by a later statement that sees everything this one did, and more.
   *
   * @throws InvalidRequest `ERR_CRL_ISSUER_INVALID`
   */
  async numberedCrlEntries(issuer: 'intermediate' | 'root'): Promise<{ crlNumber: bigint; entries: RevocationRecord[] }> {
    assertIssuer(issuer);
    return this.#read.transaction(async (query) => {
      const n = await query<{ last_number: string }>(this.#sql.nextCrlNumber, [issuer]);
      const entries = (await query<RevocationRow>(this.#sql.listed)).rows.map(toRecord);
      return { crlNumber: BigInt(n.rows[0]!.last_number), entries };
    });
  }

  /** @throws InvalidRequest `ERR_CRL_NUMBER_INVALID`, `ERR_DATE_INVALID` */
  async markListedAfterExpiry(crlNumber: bigint, thisUpdate: Date): Promise<number> {
    const number = crlNumberParam(crlNumber);
    const r = await this.#read.query(this.#sql.markListed, [number, instant(thisUpdate, 'thisUpdate')]);
    return r.rowCount ?? 0;
  }

  /** @throws InvalidRequest `ERR_REVOCATION_RANGE_INVALID` */
  async changesSince(since: number, limit: number): Promise<RevocationRecord[]> {
    if (!Number.isSafeInteger(since) || !Number.isSafeInteger(limit) || limit < 0) {
      throw new InvalidRequest('ERR_REVOCATION_RANGE_INVALID', 'since and limit must be integers and limit must not be negative');
    }
    return (await this.#read.query<RevocationRow>(this.#sql.changes, [since, limit])).rows.map(toRecord);
  }

  async isKeyBlocked(keyFingerprint: string): Promise<boolean> {
    if (!storable(keyFingerprint)) return false;
    return (await this.#blocked.submit(keyFingerprint)) !== null;
  }
}

function selectorOf(selector: RevocationSelector): [SelectorKind, string] {
  const given =
    typeof selector === 'object' && selector !== null
      ? (Object.keys(SELECTOR_COLUMNS) as SelectorKind[]).filter((k) => (selector as Partial<Record<SelectorKind, unknown>>)[k] !== undefined)
      : [];
  const kind = given[0];
  const value: unknown = kind === undefined ? undefined : (selector as Partial<Record<SelectorKind, unknown>>)[kind];
  if (given.length !== 1 || kind === undefined || typeof value !== 'string' || value === '') {
    throw new InvalidRequest('ERR_REVOCATION_SELECTOR', 'name exactly one of serial, SPIFFE ID, instance or task');
  }
  if (kind === 'serial') assertCanonicalSerial(value);
  return [kind, value];
}

function toRecord(r: RevocationRow): RevocationRecord {
  return {
    serial: r.serial,
    revokedAt: copy(r.revoked_at),
    reason: r.reason,
    notAfter: copy(r.not_after),
    spiffeId: r.spiffe_id,
    instanceId: r.instance_id,
    taskId: r.task_id,
    changeSeq: int(r.change_seq),
  };
}
