/**
 * What a provisioner established about a workload. Provisioners only authorise: they return an
 * Attestation, and the one issuance pipeline turns it into a certificate. The certificate's
 * identity comes from here, never from the CSR.
 */
import type { TokenConsumption } from '../ports/certificate-store.ts';

export interface Attestation {
  spiffeId: string;
  profile: string;
  /** The instance, when renewing or when the workload brings a validated ID; assigned otherwise. */
  instanceId?: string;
  taskId?: string | null;
  taskDeadline?: Date | null;
  onBehalfOf?: string | null;
  dnsNames?: string[];
  /** IP address SANs (the CA's own server certificate); only where the profile allows them. */
  ipAddresses?: string[];
  /** How the identity was proven: `operator`, `join-token`, `jwt`, `renewal`. */
  method: string;
  /** Who asked, for the audit log (`operator`, `token:<id>`, a client SPIFFE ID). Never a secret. */
  actor: string;
  /** For a renewal: the serial presented, which must still be unrevoked when the new certificate is stored. */
  renewalOf?: string;
  /** A join token to consume atomically with the serial reservation. */
  consumeToken?: TokenConsumption;
}

/** Instance and task IDs: short, printable, safe in logs, file names and URLs. */
export const INSTANCE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
