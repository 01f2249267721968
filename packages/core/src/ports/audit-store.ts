/** What happened, as the core reports it. The store assigns `seq` and the chain hashes. */
export interface AuditEventInput {
  /** `init`, `issue`, `deny`, `revoke`, `token.create`, … */
  type: string;
  /** Who asked: `operator`, `token:<id>`, `spiffe://…` of an mTLS client. Never a secret. */
  actor: string;
  outcome: 'ok' | 'denied' | 'error';
  at: Date;
  spiffeId?: string | null;
  serial?: string | null;
  /** The error code of a denial. */
  code?: string | null;
  /** Small structured detail (instance, task, profile, reason…). Never a secret. */
  detail?: Record<string, string | number | boolean | null> | null;
}

/** One link of the hash chain: `hash = SHA-256(prevHash ‖ "\n" ‖ canonical(event))`, see audit/chain.ts. */
export interface AuditEvent extends AuditEventInput {
  seq: number;
  prevHash: string;
  hash: string;
}

/**
 * The append-only audit log. `append` computes the link with `chainLink` from audit/chain.ts
 * inside the store's own write transaction, so concurrent writers still make one chain.
 */
export interface AuditStore {
  append(event: AuditEventInput): Promise<AuditEvent>;
  /** Events with `seq >= fromSeq`, in order, at most `limit`. */
  read(fromSeq: number, limit: number): Promise<AuditEvent[]>;
  /** The newest event's seq and hash as the store's head record says (0 and the genesis hash when empty). */
  head(): Promise<{ seq: number; hash: string }>;
}
