/**
 * What a provisioner established about a workload. Provisioners only authorise: they return an
 * Attestation, and the one issuance pipeline turns it into a certificate. The certificate's
 * identity comes from here, never from the CSR.
 */
export interface Attestation {
  spiffeId: string;
  profile: string;
  /** The instance, when renewing or when the workload brings a validated ID; assigned otherwise. */
  instanceId?: string;
  taskId?: string | null;
  taskDeadline?: Date | null;
  onBehalfOf?: string | null;
  dnsNames?: string[];
  /** How the identity was proven: `operator`, `join-token`, `jwt`, `renewal`. */
  method: string;
  /** Who asked, for the audit log (`operator`, `token:<id>`, a client SPIFFE ID). Never a secret. */
  actor: string;
}

/** Instance and task IDs: short, printable, safe in logs, file names and URLs. */
export const INSTANCE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
