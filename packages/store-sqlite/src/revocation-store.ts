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
import type Database from 'better-sqlite3';
import type { SqliteAuditStore } from './audit-store.ts';
import { millis } from './certificate-store.ts';
import { assertIssuer, crlNumberParam, NEXT_CRL_NUMBER_SQL } from './crl-store.ts';
import { assertCanonicalSerial } from './serial.ts';
import { readNow } from './sqlite-errors.ts';
import type { WriteQueue } from './write-queue.ts';

interface RevocationRow {
  serial: string;
  revoked_at: number;
  reason: RevocationReason;
  not_after: number;
  spiffe_id: string;
  instance_id: string;
  task_id: string | null;
  change_seq: number;
}

/** A certificate the selector matched, with its revocation if it has one. */
interface MatchRow {
  serial: string;
  spiffe_id: string;
  instance_id: string;
  task_id: string | null;
  not_after: number;
  key_fingerprint: string;
  revoked_at: number | null;
  reason: RevocationReason | null;
  change_seq: number | null;
}

const COLUMNS = 'serial, revoked_at, reason, not_after, spiffe_id, instance_id, task_id, change_seq';

const SELECTOR_COLUMNS = { serial: 'serial', spiffeId: 'spiffe_id', instanceId: 'instance_id', taskId: 'task_id' } as const;
type SelectorKind = keyof typeof SELECTOR_COLUMNS;

/**
 * Revocations in `revocations`, keyed by serial and pointing at the certificate, and the
 * keys of keyCompromise revocations in `blocked_keys`. `change_seq` is taken as max + 1
 * inside the write transaction, which holds SQLite's one write lock (also against another
 * process on the file), so it is unique and follows commit order: a poller of `changesSince`
 * never sees a higher number before a lower one. Serial order is the text order of the hex,
 * which is numeric order only for serials of one length (agentca's were 17 bytes until 2026-11-29,
 * 20 since); nothing needs the order to be numeric.
 */
export class SqliteRevocationStore implements RevocationStore {
  readonly #queue: WriteQueue;
  readonly #audit: SqliteAuditStore;
  readonly #matches: Record<SelectorKind, Database.Statement<[string, number], MatchRow>>;
  readonly #lastSeq: Database.Statement<[], number>;
  readonly #insert: Database.Statement<unknown[]>;
  readonly #upgrade: Database.Statement<[number, string]>;
  readonly #block: Database.Statement<[string, string, number]>;
  readonly #get: Database.Statement<[string], RevocationRow>;
  readonly #listed: Database.Statement<[], RevocationRow>;
  readonly #nextCrlNumber: Database.Statement<['intermediate' | 'root'], bigint>;
  readonly #markListed: Database.Statement<[bigint, number]>;
  readonly #changes: Database.Statement<[number, number], RevocationRow>;
  readonly #blocked: Database.Statement<[string], number>;

  constructor(db: Database.Database, queue: WriteQueue, audit: SqliteAuditStore) {
    this.#queue = queue;
    this.#audit = audit;
    const match = (column: string) =>
      db.prepare<[string, number], MatchRow>(
        `SELECT c.serial, c.spiffe_id, c.instance_id, c.task_id, c.not_after, c.key_fingerprint, r.revoked_at, r.reason, r.change_seq
         FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
         WHERE c.${column} = ? AND c.not_after > ?
         ORDER BY c.serial`,
      );
    this.#matches = {
      serial: match(SELECTOR_COLUMNS.serial),
      spiffeId: match(SELECTOR_COLUMNS.spiffeId),
      instanceId: match(SELECTOR_COLUMNS.instanceId),
      taskId: match(SELECTOR_COLUMNS.taskId),
    };
    this.#lastSeq = db.prepare('SELECT coalesce(max(change_seq), 0) FROM revocations').pluck() as Database.Statement<[], number>;
    this.#insert = db.prepare(`INSERT INTO revocations (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
    this.#upgrade = db.prepare("UPDATE revocations SET reason = 'keyCompromise', change_seq = ? WHERE serial = ?");
    this.#block = db.prepare('INSERT INTO blocked_keys (key_fingerprint, serial, at) VALUES (?, ?, ?) ON CONFLICT (key_fingerprint) DO NOTHING');
    this.#get = db.prepare(`SELECT ${COLUMNS} FROM revocations WHERE serial = ?`);
    this.#listed = db.prepare(`SELECT ${COLUMNS} FROM revocations WHERE final_crl IS NULL ORDER BY serial`);
    this.#nextCrlNumber = db.prepare(NEXT_CRL_NUMBER_SQL).pluck().safeIntegers() as Database.Statement<['intermediate' | 'root'], bigint>;
    this.#markListed = db.prepare('UPDATE revocations SET final_crl = ? WHERE final_crl IS NULL AND not_after < ?');
    this.#changes = db.prepare(`SELECT ${COLUMNS} FROM revocations WHERE change_seq > ? ORDER BY change_seq LIMIT ?`);
    this.#blocked = db.prepare('SELECT EXISTS (SELECT 1 FROM blocked_keys WHERE key_fingerprint = ?)').pluck() as Database.Statement<[string], number>;
  }

  /**
   * Runs as one write op: the revocations, the blocked keys and the audit event commit
   * together or not at all. A certificate whose notAfter is at or before `at` is not matched.
   *
   * @throws InvalidRequest `ERR_REVOCATION_SELECTOR` unless exactly one selector field
   * is a non-empty string, `ERR_SERIAL_INVALID` for a serial not in canonical form,
   * `ERR_REVOCATION_REASON_INVALID`, `ERR_DATE_INVALID`; `ERR_AUDIT_EVENT_INVALID` (and nothing
   * is revoked) for an event the audit log refuses.
   */
  async revoke(selector: RevocationSelector, reason: RevocationReason, at: Date, event: AuditEventInput): Promise<RevokeOutcome> {
    const [kind, value] = selectorOf(selector);
    if (typeof reason !== 'string' || !Object.hasOwn(REVOCATION_REASONS, reason)) {
      throw new InvalidRequest('ERR_REVOCATION_REASON_INVALID', `unknown revocation reason ${JSON.stringify(reason)}`);
    }
    const atMs = millis(at, 'revocation time');
    return this.#queue.enqueue(() => {
      const matched = this.#matches[kind].all(value, atMs);
      if (matched.length === 0) return { revoked: [], changed: 0 };
      let seq = this.#lastSeq.get() as number;
      let changed = 0;
      const revoked = matched.map((m): RevocationRecord => {
        let row: RevocationRow;
        if (m.revoked_at === null || m.reason === null || m.change_seq === null) {
          row = { ...m, revoked_at: atMs, reason, change_seq: ++seq };
          this.#insert.run(row.serial, row.revoked_at, row.reason, row.not_after, row.spiffe_id, row.instance_id, row.task_id, row.change_seq);
          changed++;
        } else if (reason === 'keyCompromise' && m.reason !== 'keyCompromise') {
          // Only this upgrade: a key found compromised later must reach CRL and OCSP, while any
          // other re-revocation would rewrite history for no relying party's benefit.
          row = { ...m, revoked_at: m.revoked_at, reason, change_seq: ++seq };
          this.#upgrade.run(row.change_seq, row.serial);
          changed++;
        } else {
          row = { ...m, revoked_at: m.revoked_at, reason: m.reason, change_seq: m.change_seq };
        }
        if (reason === 'keyCompromise') this.#block.run(m.key_fingerprint, m.serial, atMs);
        return toRecord(row);
      });
      this.#audit.appendInWrite({ ...event, detail: { ...event.detail, count: changed } });
      return { revoked, changed };
    });
  }

  async get(serial: string): Promise<RevocationRecord | null> {
    return readNow(() => {
      const row = this.#get.get(serial);
      return row ? toRecord(row) : null;
    });
  }

  /** One indexed scan of the entries not yet dropped, in serial (hex text) order. */
  async crlEntries(): Promise<RevocationRecord[]> {
    return readNow(() => this.#listed.all().map(toRecord));
  }

  /** The next CRL number and the entries, read in the same write transaction. @throws InvalidRequest `ERR_CRL_ISSUER_INVALID` */
  async numberedCrlEntries(issuer: 'intermediate' | 'root'): Promise<{ crlNumber: bigint; entries: RevocationRecord[] }> {
    assertIssuer(issuer);
    return this.#queue.enqueue(() => ({ crlNumber: this.#nextCrlNumber.get(issuer) as bigint, entries: this.#listed.all().map(toRecord) }));
  }

  /** @throws InvalidRequest `ERR_CRL_NUMBER_INVALID`, `ERR_DATE_INVALID` */
  async markListedAfterExpiry(crlNumber: bigint, thisUpdate: Date): Promise<number> {
    const number = crlNumberParam(crlNumber);
    const thisUpdateMs = millis(thisUpdate, 'thisUpdate');
    return this.#queue.enqueue(() => this.#markListed.run(number, thisUpdateMs).changes);
  }

  /** @throws InvalidRequest `ERR_REVOCATION_RANGE_INVALID` */
  async changesSince(since: number, limit: number): Promise<RevocationRecord[]> {
    if (!Number.isSafeInteger(since) || !Number.isSafeInteger(limit) || limit < 0) {
      throw new InvalidRequest('ERR_REVOCATION_RANGE_INVALID', 'since and limit must be integers and limit must not be negative');
    }
    return readNow(() => this.#changes.all(since, limit).map(toRecord));
  }

  async isKeyBlocked(keyFingerprint: string): Promise<boolean> {
    return readNow(() => this.#blocked.get(keyFingerprint) === 1);
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
    revokedAt: new Date(r.revoked_at),
    reason: r.reason,
    notAfter: new Date(r.not_after),
    spiffeId: r.spiffe_id,
    instanceId: r.instance_id,
    taskId: r.task_id,
    changeSeq: r.change_seq,
  };
}
