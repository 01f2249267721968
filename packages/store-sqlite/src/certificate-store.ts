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
import type Database from 'better-sqlite3';
import type { SqliteAuditStore } from './audit-store.ts';
import { assertCanonicalSerial } from './serial.ts';
import { readNow } from './sqlite-errors.ts';
import type { WriteQueue } from './write-queue.ts';

interface CertificateRow {
  serial: string;
  spiffe_id: string;
  instance_id: string;
  task_id: string | null;
  on_behalf_of: string | null;
  profile: string;
  not_before: number;
  not_after: number;
  issued_at: number;
  key_fingerprint: string;
  der: Buffer;
}

/** A join token as consumption sees it, with the end of its task (`task_ended` is 1 or 0). */
interface ConsumableRow {
  hash: string;
  used_at: number | null;
  expires_at: number;
  task_id: string | null;
  task_ended: number;
}

const COLUMNS = 'serial, spiffe_id, instance_id, task_id, on_behalf_of, profile, not_before, not_after, issued_at, key_fingerprint, der';

/**
 * Serial reservations in `serials` and issued certificates in `certificates`. The serial is
 * the primary key of both, and a certificate row must point at a reservation, so uniqueness
 * and "reserved before recorded" hold in the schema, not only in this code. A reservation is
 * never deleted, so a serial is never handed out twice even if its certificate was not stored.
 */
export class SqliteCertificateStore implements CertificateStore {
  readonly #db: Database.Database;
  readonly #queue: WriteQueue;
  readonly #audit: SqliteAuditStore;
  readonly #reserve: Database.Statement<[string, number]>;
  readonly #consumable: Database.Statement<[string], ConsumableRow>;
  readonly #consume: Database.Statement<[number, string, string, number]>;
  readonly #insert: Database.Statement<unknown[]>;
  readonly #get: Database.Statement<[string], CertificateRow>;
  readonly #count: Database.Statement<[], number>;
  readonly #taskEnded: Database.Statement<[string], unknown>;
  readonly #revoked: Database.Statement<[string], unknown>;
  readonly #lists = new Map<string, Database.Statement<unknown[], CertificateRow>>();

  constructor(db: Database.Database, queue: WriteQueue, audit: SqliteAuditStore) {
    this.#db = db;
    this.#queue = queue;
    this.#audit = audit;
    this.#reserve = db.prepare('INSERT INTO serials (serial, reserved_at) VALUES (?, ?) ON CONFLICT (serial) DO NOTHING');
    // A token of a task that does not exist counts as ended, as in core's JoinTokens.
    this.#consumable = db.prepare(
      `SELECT t.hash, t.used_at, t.expires_at, t.task_id, (t.task_id IS NOT NULL AND (k.id IS NULL OR k.ended_at IS NOT NULL)) AS task_ended
       FROM join_tokens t LEFT JOIN tasks k ON k.id = t.task_id WHERE t.id = ?`,
    );
    // Repeats the checks made on the row just read, so the update alone can never consume a
    // used, expired or ended token.
    this.#consume = db.prepare(
      `UPDATE join_tokens SET used_at = ?, used_by_serial = ?
       WHERE id = ? AND used_at IS NULL AND expires_at > ?
         AND (task_id IS NULL OR EXISTS (SELECT 1 FROM tasks k WHERE k.id = join_tokens.task_id AND k.ended_at IS NULL))`,
    );
    this.#insert = db.prepare(`INSERT INTO certificates (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.#get = db.prepare(`SELECT ${COLUMNS} FROM certificates WHERE serial = ?`);
    this.#taskEnded = db.prepare('SELECT 1 FROM tasks WHERE id = ? AND ended_at IS NOT NULL');
    this.#revoked = db.prepare('SELECT 1 FROM revocations WHERE serial = ?');
    this.#count = db.prepare('SELECT count(*) FROM certificates').pluck() as Database.Statement<[], number>;
  }

  /**
   * With `consumeToken`, the token is checked (known, hash equal in constant time, unused, not
   * expired at `at`, its task not ended, in that order), the serial inserted and the token marked
   * used by it, all in one write op: a refusal, or a serial already reserved, writes nothing.
   *
   * @throws InvalidRequest `ERR_SERIAL_INVALID` for a serial not in canonical form,
   * `ERR_DATE_INVALID`; Conflict `ERR_SERIAL_EXISTS` if it was ever reserved; Unauthenticated
   * `ERR_TOKEN_INVALID`, `ERR_TOKEN_ALREADY_USED`, `ERR_TOKEN_EXPIRED`; PolicyDenied `ERR_TASK_ENDED`.
   *
   * The reservation (with the token it consumes) commits without a sync of its own: it must be
   * unique before the certificate is signed, not durable. A certificate is released only after
   * {@link record} commits durably, and that sync covers every earlier WAL frame, so a crash can
   * only lose a reservation whose certificate nobody received (its token is then unused again,
   * as it in effect was). One sync per issuance instead of two.
   */
  async reserveSerial(serial: string, at: Date, options: { consumeToken?: TokenConsumption } = {}): Promise<void> {
    assertCanonicalSerial(serial);
    const reservedAt = millis(at, 'reservation time');
    const token = options.consumeToken;
    if (token === undefined) return this.#queue.enqueue(() => this.#reserveOnly(serial, reservedAt), { singleStatement: true, durable: false });
    if (typeof token !== 'object' || token === null || typeof token.tokenId !== 'string' || typeof token.tokenHash !== 'string') {
      throw new Unauthenticated('ERR_TOKEN_INVALID', 'the join token is not valid');
    }
    const { tokenId, tokenHash } = token;
    // Two statements that must commit together: the op runs under its own SAVEPOINT.
    return this.#queue.enqueue(() => {
      const t = this.#consumable.get(tokenId);
      if (!t || !digestsEqual(t.hash, tokenHash)) throw new Unauthenticated('ERR_TOKEN_INVALID', 'the join token is not valid');
      if (t.used_at !== null) throw new Unauthenticated('ERR_TOKEN_ALREADY_USED', `join token ${tokenId} was already used`);
      if (t.expires_at <= reservedAt) {
        throw new Unauthenticated('ERR_TOKEN_EXPIRED', `join token ${tokenId} expired at ${new Date(t.expires_at).toISOString()}`);
      }
      if (t.task_ended) throw new PolicyDenied('ERR_TASK_ENDED', `task ${String(t.task_id)} has ended`);
      // The serial first: `used_by_serial` references it.
      this.#reserveOnly(serial, reservedAt);
      if (this.#consume.run(reservedAt, serial, tokenId, reservedAt).changes !== 1) {
        // Unreachable while this op holds the write lock; refuse rather than hand out a serial unpaid.
        throw new Unauthenticated('ERR_TOKEN_ALREADY_USED', `join token ${tokenId} was already used`);
      }
    }, { durable: false });
  }

  #reserveOnly(serial: string, reservedAt: number): void {
    if (this.#reserve.run(serial, reservedAt).changes === 0) {
      throw new Conflict('ERR_SERIAL_EXISTS', `serial ${serial} was already reserved`);
    }
  }

  /**
   * @throws Conflict `ERR_SERIAL_NOT_RESERVED` if the serial was never reserved,
   * `ERR_SERIAL_ALREADY_RECORDED` if a certificate is already stored under it; InvalidRequest
   * for a malformed record or an event about another serial. Nothing is stored or audited then.
   */
  async record(certificate: CertificateRecord, event: AuditEventInput, options: RecordOptions = {}): Promise<AuditEvent> {
    const row = toRow(certificate);
    if (event.serial != null && event.serial !== certificate.serial) {
      throw new InvalidRequest('ERR_AUDIT_SERIAL_MISMATCH', `the audit event names serial ${event.serial}, the certificate ${certificate.serial}`);
    }
    return this.#queue.enqueue(() => {
      // In the write transaction: a task end or revocation that committed while this certificate
      // was being signed is seen here, and one that commits later sees the certificate.
      if (certificate.taskId !== null && this.#taskEnded.get(certificate.taskId) !== undefined) {
        throw new PolicyDenied('ERR_TASK_ENDED', `task ${certificate.taskId} has ended`);
      }
      if (options.renewalOf !== undefined && this.#revoked.get(options.renewalOf) !== undefined) {
        throw new Unauthenticated('ERR_CLIENT_CERTIFICATE_REVOKED', `certificate ${options.renewalOf} was revoked`);
      }
      // The schema says the rest: the serial must be reserved (foreign key) and not yet recorded (primary key).
      try {
        this.#insert.run(...row);
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw new Conflict('ERR_SERIAL_NOT_RESERVED', `serial ${row[0]} was not reserved`);
        if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new Conflict('ERR_SERIAL_ALREADY_RECORDED', `serial ${row[0]} already has a certificate`);
        throw e;
      }
      return this.#audit.appendInWrite(event);
    });
  }

  async get(serial: string): Promise<CertificateRecord | null> {
    return readNow(() => {
      const row = this.#get.get(serial);
      return row ? toRecord(row) : null;
    });
  }

  /** Oldest issued first; every given filter must match. */
  async list(filter: CertificateFilter): Promise<CertificateRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.spiffeId != null) {
      where.push('spiffe_id = ?');
      params.push(filter.spiffeId);
    }
    if (filter.instanceId != null) {
      where.push('instance_id = ?');
      params.push(filter.instanceId);
    }
    if (filter.taskId != null) {
      where.push('task_id = ?');
      params.push(filter.taskId);
    }
    if (filter.expiredAt != null) {
      where.push(filter.expiredAt.expired ? 'not_after <= ?' : 'not_after > ?');
      params.push(millis(filter.expiredAt.now, 'expiry instant'));
    }
    let sql = `SELECT ${COLUMNS} FROM certificates${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY issued_at, rowid`;
    if (filter.limit != null) {
      if (!Number.isSafeInteger(filter.limit) || filter.limit < 0) {
        throw new InvalidRequest('ERR_LIST_LIMIT_INVALID', 'a list limit must be a non-negative integer');
      }
      sql += ' LIMIT ?';
      params.push(filter.limit);
    }
    return readNow(() => this.#list(sql).all(...params).map(toRecord));
  }

  async count(): Promise<number> {
    return readNow(() => this.#count.get() as number);
  }

  /** At most 32 shapes of query exist, so each is prepared once. */
  #list(sql: string): Database.Statement<unknown[], CertificateRow> {
    let statement = this.#lists.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#lists.set(sql, statement);
    }
    return statement;
  }
}

type Row = [string, string, string, string | null, string | null, string, number, number, number, string, Buffer];

function toRow(c: CertificateRecord): Row {
  assertCanonicalSerial(c.serial);
  if (!(c.der instanceof Uint8Array) || c.der.byteLength === 0) {
    throw new InvalidRequest('ERR_CERTIFICATE_INVALID', 'a certificate record needs its DER bytes');
  }
  return [
    c.serial,
    c.spiffeId,
    c.instanceId,
    c.taskId ?? null,
    c.onBehalfOf ?? null,
    c.profile,
    millis(c.notBefore, 'notBefore'),
    millis(c.notAfter, 'notAfter'),
    millis(c.issuedAt, 'issuedAt'),
    c.keyFingerprint,
    // Copied: the caller may reuse its buffer before the batch runs.
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
    notBefore: new Date(r.not_before),
    notAfter: new Date(r.not_after),
    issuedAt: new Date(r.issued_at),
    keyFingerprint: r.key_fingerprint,
    der: new Uint8Array(r.der),
  };
}

/** The instant as stored: integer milliseconds since the epoch. @throws InvalidRequest `ERR_DATE_INVALID` */
export function millis(d: Date, what: string): number {
  const ms = d instanceof Date ? d.getTime() : Number.NaN;
  if (Number.isNaN(ms)) throw new InvalidRequest('ERR_DATE_INVALID', `${what} is not a valid date`);
  return ms;
}
