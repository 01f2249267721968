import { AuditChainVerifier, type AuditEvent, type AuditEventInput, type AuditStore, type CertificateRecord, type CertificateStore, type CrlStore, type JoinTokenRecord, type RevocationStore, type TokenStore } from '@agentca/core';
import { expect } from 'vitest';

// Fixtures and helpers shared by the contract suites.

/** What a store implementation hands the contract: its ports and a way to let go of them. */
export interface StoreUnderTest {
  certificates: CertificateStore;
  audit: AuditStore;
  revocations: RevocationStore;
  crls: CrlStore;
  tokens: TokenStore;
  close(): Promise<void>;
}

/** The instant fixtures are built around. */
export const T0 = Date.parse('2030-01-02T03:04:05.678Z');
export const HOUR = 3_600_000;

/** A canonical serial (17 bytes, prefix 0x4a, the layout core used before its time octets) that differs per `n`. */
export function contractSerial(n: number): string {
  return `4a${n.toString(16).padStart(32, '0')}`;
}

/** A certificate record whose every field is distinguishable, for round-trip checks. */
export function contractCertificate(n: number, overrides: Partial<CertificateRecord> = {}): CertificateRecord {
  return {
    serial: contractSerial(n),
    spiffeId: `spiffe://example.org/agent/${n % 3}`,
    instanceId: `instance-${n % 2}`,
    taskId: n % 2 === 0 ? `task-${n}` : null,
    onBehalfOf: n % 5 === 0 ? 'spiffe://example.org/user/alice' : null,
    profile: 'agent',
    notBefore: new Date(T0 + n * 1000 + 1),
    notAfter: new Date(T0 + n * 1000 + HOUR + 999),
    issuedAt: new Date(T0 + n * 1000 + 7),
    keyFingerprint: `${n.toString(16).padStart(2, '0')}`.repeat(32).slice(0, 64),
    // Includes 0x00 and 0xff so a text round trip would show.
    der: Uint8Array.from([0x30, 0x82, 0x00, n & 0xff, 0xff, 0x00, 0x7f, 0x80]),
    ...overrides,
  };
}

/** A join token ID (16 hex digits) that differs per `n`. */
export function contractTokenId(n: number): string {
  return `7a${n.toString(16).padStart(14, '0')}`;
}

/** A stand-in for the SHA-256 of a token secret (64 hex digits) that differs per `n`. */
export function contractTokenHash(n: number): string {
  return `${n.toString(16).padStart(8, '0')}`.repeat(8);
}

/** An unused join token, valid for ten minutes from T0 + `n` ms, with no task unless overridden. */
export function contractToken(n: number, overrides: Partial<JoinTokenRecord> = {}): JoinTokenRecord {
  return {
    id: contractTokenId(n),
    hash: contractTokenHash(n),
    spiffeId: `spiffe://example.org/agent/${n}`,
    profile: 'agent',
    taskId: null,
    onBehalfOf: null,
    createdAt: new Date(T0 + n),
    expiresAt: new Date(T0 + n + 600_000),
    usedAt: null,
    usedBySerial: null,
    ...overrides,
  };
}

/** The audit event `JoinTokens.create` writes with a token. */
export function contractTokenEvent(token: JoinTokenRecord): AuditEventInput {
  return {
    type: 'token.create',
    actor: 'operator',
    outcome: 'ok',
    at: new Date(token.createdAt.getTime()),
    spiffeId: token.spiffeId,
    detail: { tokenId: token.id, profile: token.profile, taskId: token.taskId },
  };
}

/** The audit event the issuance pipeline writes with a certificate. */
export function contractIssueEvent(certificate: CertificateRecord): AuditEventInput {
  return {
    type: 'issue',
    actor: 'token:t1',
    outcome: 'ok',
    at: new Date(certificate.issuedAt.getTime()),
    spiffeId: certificate.spiffeId,
    serial: certificate.serial,
    detail: { instance: certificate.instanceId, task: certificate.taskId, ttl: 3600, renew: false },
  };
}

export async function readAll(audit: AuditStore): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  for (;;) {
    const page = await audit.read(events.length + 1, 128);
    events.push(...page);
    if (page.length < 128) return events;
  }
}

export async function verifyChain(audit: AuditStore): Promise<ReturnType<AuditChainVerifier['finish']>> {
  const verifier = new AuditChainVerifier();
  for (const e of await readAll(audit)) await verifier.add(e);
  return verifier.finish(await audit.head());
}

export async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.unreachable('expected a rejection'),
    (e: unknown) => e,
  );
}

export async function reserveAndRecord(store: StoreUnderTest, c: CertificateRecord): Promise<AuditEvent> {
  await store.certificates.reserveSerial(c.serial, c.issuedAt);
  return store.certificates.record(c, contractIssueEvent(c));
}
