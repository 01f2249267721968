import type { AuditEventInput } from './audit-store.ts';
import type { RevocationReason } from '../revocation/reasons.ts';

/** Which certificates a revocation covers. Exactly one field is set. */
export type RevocationSelector = { serial: string } | { spiffeId: string } | { instanceId: string } | { taskId: string };

export interface RevocationRecord {
  serial: string;
  revokedAt: Date;
  reason: RevocationReason;
  /** The certificate's notAfter (a CRL drops the entry once it has been listed after this). */
  notAfter: Date;
  spiffeId: string;
  instanceId: string;
  taskId: string | null;
  /** Increases with every change (new revocation or reason upgrade); see `changesSince`. */
  changeSeq: number;
}

export interface RevokeOutcome {
  /** Every matching certificate, as now revoked (first revocation date kept). */
  revoked: RevocationRecord[];
  /** How many of them this call newly revoked or upgraded to keyCompromise. */
  changed: number;
}

/**
 * Revocations. A revocation is durable when `revoke` resolves. Re-revoking keeps the first
 * date and may only upgrade the reason to keyCompromise; a keyCompromise revocation also
 * blocks the certificate's key (by SPKI fingerprint) for future issuance.
 */
export interface RevocationStore {
  /**
   * Revokes every stored certificate the selector matches that is not yet expired at `at`
   * (already-revoked ones are kept as they are, or upgraded to keyCompromise), appending
   * `event` with `detail.count` set to the number changed, in the same transaction.
   * Resolves with no records (and appends nothing) when nothing matches.
   */
  revoke(selector: RevocationSelector, reason: RevocationReason, at: Date, event: AuditEventInput): Promise<RevokeOutcome>;
  get(serial: string): Promise<RevocationRecord | null>;
  /** Entries a new CRL lists: every revocation not yet dropped, in serial order. */
  crlEntries(): Promise<RevocationRecord[]>;
  /**
   * Allocates the next CRL number of `issuer` (the sequence of `CrlStore.nextCrlNumber`) and
   * reads {@link crlEntries} after it, in one transaction that holds the number until it
   * commits: whoever allocates the next number reads after this commit, so a CRL with a higher
   * number lists every entry a lower-numbered one does (until the entry drops after expiry),
   * even when several processes build CRLs at once.
   */
  numberedCrlEntries(issuer: 'intermediate' | 'root'): Promise<{ crlNumber: bigint; entries: RevocationRecord[] }>;
  /** After CRL `crlNumber` issued at `thisUpdate` is saved: entries expired before `thisUpdate` have now been listed after expiry and drop from later CRLs. */
  markListedAfterExpiry(crlNumber: bigint, thisUpdate: Date): Promise<number>;
  /** Revocations with `changeSeq > since`, in order (serve polls this to refresh CRL and OCSP). */
  changesSince(since: number, limit: number): Promise<RevocationRecord[]>;
  isKeyBlocked(keyFingerprint: string): Promise<boolean>;
}
