import {
  Conflict,
  digestsEqual,
  InvalidRequest,
  PolicyDenied,
  Unauthenticated,
  type AuditEvent,
  type AuditEventInput,
  type CertificateFilter,
  type CertificateRecord,
  type CertificateStore,
  type RecordOptions,
  type TokenConsumption,
} from '@agentca/core';
import type pg from 'pg';
import { prepareEvent, type AuditedWriteQueue, type PreparedEvent, type WriteTx } from './audited-writes.ts';
import { Coalescer, keyedLookup, type Settled } from './coalescer.ts';
import type { Reader } from './reader.ts';
import { assertCanonicalSerial, copy, instant, storable } from './values.ts';

interface CertificateRow {
  serial: string;
  spiffe_id: string;
  instance_id: string;
  task_id: string | null;
  on_behalf_of: string | null;
  profile: string;
  not_before: Date;
  not_after: Date;
  issued_at: Date;
  key_fingerprint: string;
  der: Buffer;
}

/** What consumption found for request `i` (no row: no such token), and whether its serial was reserved. */
interface ConsumptionRow {
  i: string;
  hash: string;
  used_at: Date | null;
  expires_at: Date;
  task_id: string | null;
  task_ended: boolean;
  reserved: boolean;
}

interface Reservation {
  serial: string;
  at: Date;
  atText: string;
  token?: TokenConsumption;
}

interface Recording {
  row: unknown[];
  prepared: PreparedEvent;
  taskId: string | null;
  renewalOf?: string;
}

const COLUMNS = 'serial, spiffe_id, instance_id, task_id, on_behalf_of, profile, not_before, not_after, issued_at, key_fingerprint, der';
const TOKEN_ID = /^[0-9a-f]{16}$/;

/**
 * Serial reservations in `serials` and issued certificates in `certificates`. The serial is the
 * primary key of both and a certificate row must point at a reservation, so uniqueness across
 * every replica holds in the schema. A reservation is never deleted.
 *
 * Concurrent calls are coalesced into one statement over arrays (see {@link Coalescer}):
 * reservations are one INSERT in its own transaction (PostgreSQL makes a statement atomic),
 * certificates are recorded through the {@link AuditedWriteQueue} with their audit events.
 */
export class PostgresCertificateStore implements CertificateStore {
  readonly #read: Reader;
  readonly #writes: AuditedWriteQueue;
  readonly #sql: Record<'reserve' | 'consume' | 'record' | 'reservations' | 'lockTasks' | 'shareFeed' | 'revoked' | 'count' | 'list', string>;
  readonly #reserve: Coalescer<Reservation, void>;
  readonly #consume: Coalescer<Reservation, void>;
  readonly #record: Coalescer<Recording, AuditEvent>;
  readonly #get: Coalescer<string, CertificateRow | null>;

  constructor(read: Reader, writes: AuditedWriteQueue, S: string) {
    this.#read = read;
    this.#writes = writes;
    this.#sql = {
      reserve: `INSERT INTO ${S}.serials (serial, reserved_at) SELECT * FROM unnest($1::text[], $2::timestamptz[])
                ON CONFLICT (serial) DO NOTHING RETURNING serial`,
      // One statement for many requests: each token row is locked (in ID order, so two replicas
      // never deadlock; a concurrent use waits, then sees it used), and a serial is inserted and
      // its token marked used only when every check passes. The checks are repeated in JS on the
      // returned rows, in the reference order, to name a refusal. A token of a task that does not
      // exist counts as ended, as in core's JoinTokens. No token appears twice in one statement.
      consume: `
        WITH req AS (
          SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[]) WITH ORDINALITY AS r (serial, at, token_id, token_hash, i)
        ),
        t AS (
          SELECT req.i, req.serial, req.at, req.token_hash, j.id, j.hash, j.used_at, j.expires_at, j.task_id,
                 (j.task_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${S}.tasks k WHERE k.id = j.task_id AND k.ended_at IS NULL)) AS task_ended
          FROM req JOIN ${S}.join_tokens j ON j.id = req.token_id
          ORDER BY j.id
          FOR UPDATE OF j
        ),
        s AS (
          INSERT INTO ${S}.serials (serial, reserved_at)
          SELECT serial, at FROM t WHERE hash = token_hash AND used_at IS NULL AND expires_at > at AND NOT task_ended
          ON CONFLICT (serial) DO NOTHING
          RETURNING serial
        ),
        u AS (
          UPDATE ${S}.join_tokens j SET used_at = t.at, used_by_serial = s.serial FROM t JOIN s ON s.serial = t.serial WHERE j.id = t.id RETURNING j.id
        )
        SELECT t.i, t.hash, t.used_at, t.expires_at, t.task_id, t.task_ended, t.id IN (SELECT id FROM u) AS reserved FROM t`,
      // Inserted only under a reservation, and only once: a refused row changes nothing.
      record: `
        INSERT INTO ${S}.certificates (${COLUMNS})
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::bytea[])
                 AS r (${COLUMNS})
        WHERE EXISTS (SELECT 1 FROM ${S}.serials s WHERE s.serial = r.serial)
        ON CONFLICT (serial) DO NOTHING
        RETURNING serial`,
      // A task end waits for a certificate of the task being recorded, and the other way round
      // (the revocation of the task's certificates that follows then sees it).
      lockTasks: `SELECT id, ended_at IS NOT NULL AS ended FROM ${S}.tasks WHERE id = ANY($1::text[]) ORDER BY id FOR SHARE`,
      // A revocation holds this row exclusively until it commits: a renewal recorded meanwhile
      // either sees the presented certificate revoked, or is seen by the revocation's matching.
      shareFeed: `SELECT 1 FROM ${S}.revocation_feed WHERE id = 1 FOR SHARE`,
      revoked: `SELECT serial FROM ${S}.revocations WHERE serial = ANY($1::text[])`,
      reservations: `SELECT s.serial, EXISTS (SELECT 1 FROM ${S}.certificates c WHERE c.serial = s.serial) AS recorded
                     FROM ${S}.serials s WHERE s.serial = ANY($1::text[])`,
      count: `SELECT count(*) AS n FROM ${S}.certificates`,
      list: `SELECT ${COLUMNS} FROM ${S}.certificates`,
    };
    const query = <R extends pg.QueryResultRow>(sql: string, params: unknown[]) => read.query<R>(sql, params);
    this.#reserve = new Coalescer((batch) => this.#reserveBatch(batch), { keys: (r) => [r.serial], maxInFlight: 2 });
    this.#consume = new Coalescer((batch) => this.#consumeBatch(batch), { keys: (r) => [r.serial, `token:${r.token!.tokenId}`], maxInFlight: 2 });
    this.#record = new Coalescer((batch) => this.#writes.enqueue((tx) => this.#recordBatch(tx, batch)), { keys: (r) => [r.row[0] as string] });
    this.#get = keyedLookup(query, `SELECT ${COLUMNS} FROM ${S}.certificates WHERE serial = ANY($1::text[])`, (r: CertificateRow) => r.serial);
  }

  /**
   * With `consumeToken`, the token is checked (known, hash equal, unused, not expired at `at`,
   * its task not ended, in that order), the serial inserted and the token marked used by it,
   * all in one statement: a refusal, or a serial already reserved, writes nothing, and of
   * concurrent uses of one token on any number of replicas exactly one wins.
   *
   * @throws InvalidRequest `ERR_SERIAL_INVALID`, `ERR_DATE_INVALID`; Conflict `ERR_SERIAL_EXISTS`;
   * Unauthenticated `ERR_TOKEN_INVALID`, `ERR_TOKEN_ALREADY_USED`, `ERR_TOKEN_EXPIRED`; PolicyDenied
   * `ERR_TASK_ENDED`; Unavailable `ERR_STORE_UNAVAILABLE` when the database cannot be reached.
   */
  async reserveSerial(serial: string, at: Date, options: { consumeToken?: TokenConsumption } = {}): Promise<void> {
    assertCanonicalSerial(serial);
    const atText = instant(at, 'reservation time');
    const token = options.consumeToken;
    if (token === undefined) return this.#reserve.submit({ serial, at, atText });
    if (typeof token !== 'object' || token === null || typeof token.tokenId !== 'string' || typeof token.tokenHash !== 'string') {
      throw new Unauthenticated('ERR_TOKEN_INVALID', 'the join token is not valid');
    }
    // Every stored ID is 16 hex digits; anything else names no token (and may not even be storable text).
    if (!TOKEN_ID.test(token.tokenId) || !storable(token.tokenHash)) throw new Unauthenticated('ERR_TOKEN_INVALID', 'the join token is not valid');
    return this.#consume.submit({ serial, at, atText, token: { tokenId: token.tokenId, tokenHash: token.tokenHash } });
  }

  async #reserveBatch(batch: Reservation[]): Promise<Settled<void>[]> {
    const r = await this.#read.query<{ serial: string }>(this.#sql.reserve, [batch.map((x) => x.serial), batch.map((x) => x.atText)]);
    const reserved = new Set(r.rows.map((row) => row.serial));
    return batch.map((x) => (reserved.has(x.serial) ? { ok: true, value: undefined } : { ok: false, error: new Conflict('ERR_SERIAL_EXISTS', `serial ${x.serial} was already reserved`) }));
  }

  async #consumeBatch(batch: Reservation[]): Promise<Settled<void>[]> {
    const r = await this.#read.query<ConsumptionRow>(this.#sql.consume, [
      batch.map((x) => x.serial),
      batch.map((x) => x.atText),
      batch.map((x) => x.token!.tokenId),
      batch.map((x) => x.token!.tokenHash),
    ]);
    const found = new Map(r.rows.map((row) => [Number(row.i) - 1, row]));
    return batch.map((x, i): Settled<void> => {
      try {
        checkConsumption(x, found.get(i));
        return { ok: true, value: undefined };
      } catch (error) {
        return { ok: false, error };
      }
    });
  }

  /**
   * @throws Conflict `ERR_SERIAL_NOT_RESERVED`, `ERR_SERIAL_ALREADY_RECORDED`; InvalidRequest for a
   * malformed record or event, or an event about another serial. Nothing is stored or audited then.
   */
  async record(certificate: CertificateRecord, event: AuditEventInput, options: RecordOptions = {}): Promise<AuditEvent> {
    const row = toRow(certificate);
    if (event.serial != null && event.serial !== certificate.serial) {
      throw new InvalidRequest('ERR_AUDIT_SERIAL_MISMATCH', `the audit event names serial ${event.serial}, the certificate ${certificate.serial}`);
    }
    const recording: Recording = { row, prepared: prepareEvent(event), taskId: certificate.taskId ?? null };
    if (options.renewalOf !== undefined) recording.renewalOf = options.renewalOf;
    return this.#record.submit(recording);
  }

  /**
   * One audited write for many certificates; a refused one is reported, never thrown, so the
   * others still commit. Refusals in the reference order: not reserved, already recorded, its
   * task ended, the certificate it renews revoked.
   */
  async #recordBatch(tx: WriteTx, batch: Recording[]): Promise<Settled<AuditEvent>[]> {
    const checks = new Map<Recording, Error>();
    const taskIds = [...new Set(batch.flatMap((x) => (x.taskId !== null ? [x.taskId] : [])))];
    if (taskIds.length > 0) {
      const ended = new Set((await tx.query<{ id: string; ended: boolean }>(this.#sql.lockTasks, [taskIds])).rows.filter((r) => r.ended).map((r) => r.id));
      for (const x of batch) if (x.taskId !== null && ended.has(x.taskId)) checks.set(x, new PolicyDenied('ERR_TASK_ENDED', `task ${x.taskId} has ended`));
    }
    const renewals = batch.filter((x) => x.renewalOf !== undefined && storable(x.renewalOf) && !checks.has(x));
    if (renewals.length > 0) {
      await tx.query(this.#sql.shareFeed);
      const revoked = new Set((await tx.query<{ serial: string }>(this.#sql.revoked, [renewals.map((x) => x.renewalOf)])).rows.map((r) => r.serial));
      for (const x of renewals) {
        if (revoked.has(x.renewalOf!)) checks.set(x, new Unauthenticated('ERR_CLIENT_CERTIFICATE_REVOKED', `certificate ${x.renewalOf} was revoked`));
      }
    }
    const cols: unknown[][] = Array.from({ length: 11 }, () => []);
    for (const x of batch) if (!checks.has(x)) x.row.forEach((v, i) => cols[i]!.push(v));
    const stored = cols[0]!.length === 0 ? new Set<string>() : new Set((await tx.query<{ serial: string }>(this.#sql.record, cols)).rows.map((r) => r.serial));
    const refused = batch.filter((x) => !stored.has(x.row[0] as string)).map((x) => x.row[0] as string);
    const recorded = new Map<string, boolean>();
    if (refused.length > 0) {
      for (const r of (await tx.query<{ serial: string; recorded: boolean }>(this.#sql.reservations, [refused])).rows) recorded.set(r.serial, r.recorded);
    }
    return batch.map((x): Settled<AuditEvent> => {
      const serial = x.row[0] as string;
      if (stored.has(serial)) return { ok: true, value: tx.audit(x.prepared) };
      if (!recorded.has(serial)) return { ok: false, error: new Conflict('ERR_SERIAL_NOT_RESERVED', `serial ${serial} was not reserved`) };
      const check = checks.get(x);
      if (recorded.get(serial) || !check) return { ok: false, error: new Conflict('ERR_SERIAL_ALREADY_RECORDED', `serial ${serial} already has a certificate`) };
      return { ok: false, error: check };
    });
  }

  async get(serial: string): Promise<CertificateRecord | null> {
    if (!storable(serial)) return null;
    const row = await this.#get.submit(serial);
    return row ? toRecord(row) : null;
  }

  /** Oldest issued first (ties in the order recorded); every given filter must match. */
  async list(filter: CertificateFilter): Promise<CertificateRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const match = (column: string, value: string) => {
      params.push(value);
      where.push(`${column} = $${params.length}`);
    };
    for (const [column, value] of [
      ['spiffe_id', filter.spiffeId],
      ['instance_id', filter.instanceId],
      ['task_id', filter.taskId],
    ] as const) {
      if (value == null) continue;
      if (!storable(value)) return [];
      match(column, value);
    }
    if (filter.expiredAt != null) {
      params.push(instant(filter.expiredAt.now, 'expiry instant'));
      where.push(`not_after ${filter.expiredAt.expired ? '<=' : '>'} $${params.length}`);
    }
    let sql = `${this.#sql.list}${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY issued_at, recorded`;
    if (filter.limit != null) {
      if (!Number.isSafeInteger(filter.limit) || filter.limit < 0) {
        throw new InvalidRequest('ERR_LIST_LIMIT_INVALID', 'a list limit must be a non-negative integer');
      }
      params.push(filter.limit);
      sql += ` LIMIT $${params.length}`;
    }
    return (await this.#read.query<CertificateRow>(sql, params)).rows.map(toRecord);
  }

  /** Sends what is waiting to be coalesced (before the store closes its write queue). */
  async drain(): Promise<void> {
    await Promise.all([this.#reserve.drain(), this.#consume.drain(), this.#record.drain()]);
  }

  async count(): Promise<number> {
    const r = await this.#read.query<{ n: string }>(this.#sql.count);
    return Number(r.rows[0]!.n);
  }
}

/** The refusal, if any, for one request of a consumption batch, checked in the reference order. */
function checkConsumption(x: Reservation, t: ConsumptionRow | undefined): void {
  const { tokenId, tokenHash } = x.token!;
  if (!t || !digestsEqual(t.hash, tokenHash)) throw new Unauthenticated('ERR_TOKEN_INVALID', 'the join token is not valid');
  if (t.used_at !== null) throw new Unauthenticated('ERR_TOKEN_ALREADY_USED', `join token ${tokenId} was already used`);
  if (t.expires_at.getTime() <= x.at.getTime()) {
    throw new Unauthenticated('ERR_TOKEN_EXPIRED', `join token ${tokenId} expired at ${t.expires_at.toISOString()}`);
  }
  if (t.task_ended) throw new PolicyDenied('ERR_TASK_ENDED', `task ${String(t.task_id)} has ended`);
  if (!t.reserved) throw new Conflict('ERR_SERIAL_EXISTS', `serial ${x.serial} was already reserved`);
}

function toRow(c: CertificateRecord): unknown[] {
  assertCanonicalSerial(c.serial);
  if (!(c.der instanceof Uint8Array) || c.der.byteLength === 0) {
    throw new InvalidRequest('ERR_CERTIFICATE_INVALID', 'a certificate record needs its DER bytes');
  }
  const texts = [c.spiffeId, c.instanceId, c.profile, c.keyFingerprint];
  const optional = [c.taskId ?? null, c.onBehalfOf ?? null];
  if (!texts.every(storable) || !optional.every((s) => s === null || storable(s))) {
    throw new InvalidRequest('ERR_CERTIFICATE_INVALID', 'a certificate record needs its identity fields as text without NUL characters');
  }
  return [
    c.serial,
    c.spiffeId,
    c.instanceId,
    optional[0],
    optional[1],
    c.profile,
    instant(c.notBefore, 'notBefore'),
    instant(c.notAfter, 'notAfter'),
    instant(c.issuedAt, 'issuedAt'),
    c.keyFingerprint,
    // A copy: the caller may reuse its buffer before the queued write runs.
    Buffer.from(c.der),
  ];
}

function toRecord(r: CertificateRow): CertificateRecord {
  return {
    serial: r.serial,
    spiffeId: r.spiffe_id,
    instanceId: r.instance_id,
    taskId: r.task_id,
    onBehalfOf: r.on_behalf_of,
    profile: r.profile,
    notBefore: copy(r.not_before),
    notAfter: copy(r.not_after),
    issuedAt: copy(r.issued_at),
    keyFingerprint: r.key_fingerprint,
    der: new Uint8Array(r.der),
  };
}
