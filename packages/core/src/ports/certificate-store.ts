import type { AuditEvent, AuditEventInput } from './audit-store.ts';

/** An issued certificate as the store keeps it. */
export interface CertificateRecord {
  /** Lowercase hex, no separators, as in the certificate (no leading 00 pad). */
  serial: string;
  spiffeId: string;
  instanceId: string;
  taskId: string | null;
  onBehalfOf: string | null;
  profile: string;
  notBefore: Date;
  notAfter: Date;
  issuedAt: Date;
  /** SHA-256 of the subject public key info, lowercase hex. */
  keyFingerprint: string;
  der: Uint8Array;
}

export interface CertificateFilter {
  spiffeId?: string;
  instanceId?: string;
  taskId?: string;
  /** Certificates whose notAfter is after this instant (valid-or-revoked), or at/before it (expired). */
  expiredAt?: { now: Date; expired: boolean };
  limit?: number;
}

/** Preconditions {@link CertificateStore.record} checks in its transaction. */
export interface RecordOptions {
  /** The serial of the certificate this one renews: it must still be unrevoked. */
  renewalOf?: string;
}

/** A join token to consume in the same transaction as a serial reservation. */
export interface TokenConsumption {
  tokenId: string;
  /** SHA-256 of the presented secret (hex); must equal the stored hash. */
  tokenHash: string;
}

/**
 * Issued certificates. A serial is reserved before anything is signed with it and can never
 * be reserved again, whether or not a certificate was stored under it.
 */
export interface CertificateStore {
  /**
   * Reserves `serial`; rejects with Conflict `ERR_SERIAL_EXISTS` if it was ever reserved.
   * With `consumeToken`, the token is consumed in the same transaction, and nothing is
   * reserved unless it is: rejects with Unauthenticated `ERR_TOKEN_INVALID` (unknown id or
   * wrong secret), `ERR_TOKEN_ALREADY_USED`, `ERR_TOKEN_EXPIRED` (expiresAt ≤ at) or
   * PolicyDenied `ERR_TASK_ENDED` (its task was ended).
   */
  reserveSerial(serial: string, at: Date, options?: { consumeToken?: TokenConsumption }): Promise<void>;
  /**
   * Stores the certificate of a reserved serial and appends its audit event in the same
   * durable transaction: a certificate is stored if and only if its issuance is audited.
   *
   * Checked inside that transaction, so a revocation or task end that commits while the
   * certificate is being signed cannot miss it: a certificate of a task that has ended is
   * refused with PolicyDenied `ERR_TASK_ENDED`; with `renewalOf`, a renewal whose presented
   * certificate has been revoked meanwhile is refused with Unauthenticated
   * `ERR_CLIENT_CERTIFICATE_REVOKED`. Nothing is stored or audited then.
   */
  record(certificate: CertificateRecord, event: AuditEventInput, options?: RecordOptions): Promise<AuditEvent>;
  get(serial: string): Promise<CertificateRecord | null>;
  list(filter: CertificateFilter): Promise<CertificateRecord[]>;
  count(): Promise<number>;
}
