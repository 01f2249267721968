import type { AuditEventInput } from './audit-store.ts';

/** A one-time join token as stored: never the secret, only its SHA-256. */
export interface JoinTokenRecord {
  /** Public identifier (16 lowercase hex), safe in logs and the audit log. */
  id: string;
  /** SHA-256 of the secret part, lowercase hex. */
  hash: string;
  spiffeId: string;
  profile: string;
  taskId: string | null;
  onBehalfOf: string | null;
  createdAt: Date;
  expiresAt: Date;
  /** Set when the token was consumed (by the issuance that reserved `usedBySerial`). */
  usedAt: Date | null;
  usedBySerial: string | null;
}

/** A task: the unit of work an instance was started for. Its certificates end with it. */
export interface TaskRecord {
  id: string;
  deadline: Date;
  endedAt: Date | null;
}

/**
 * Join tokens and tasks. Consumption is not here: a token is consumed by
 * `CertificateStore.reserveSerial(…, { consumeToken })`, in the transaction that reserves the
 * serial, so a request that fails before signing never burns its token, and a token can
 * never yield two certificates.
 */
export interface TokenStore {
  /**
   * Stores a token (and creates its task when `task` is given and does not exist yet; an
   * existing task keeps its deadline), with its audit event, atomically. Returns the task.
   */
  create(token: JoinTokenRecord, task: { id: string; deadline: Date } | null, event: AuditEventInput): Promise<TaskRecord | null>;
  get(id: string): Promise<JoinTokenRecord | null>;
  getTask(id: string): Promise<TaskRecord | null>;
  /** Marks a task ended (idempotent: keeps the first time). Tokens of an ended task are refused. */
  endTask(id: string, at: Date): Promise<TaskRecord | null>;
}
