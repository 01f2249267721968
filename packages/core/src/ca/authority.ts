/**
 * The authority: what a service embeds. It is opened over a store, a signer for the issuing CA
 * and the CA certificates; storage, keys, clock and randomness are injected.
 */
import { InvalidRequest } from '../errors.ts';
import type { AuditStore } from '../ports/audit-store.ts';
import type { CertificateStore } from '../ports/certificate-store.ts';
import type { RevocationStore } from '../ports/revocation-store.ts';
import { systemClock, type Clock } from '../ports/clock.ts';
import { webCryptoRandom, type Random } from '../ports/random.ts';
import type { Signer } from '../ports/signer.ts';
import { parseTrustDomain } from '../identity/spiffe-id.ts';
import { validateProfile, type Profile } from '../profile/profile.ts';
import { Issuer, type IssueRequest, type IssuedCertificate } from '../issuance/issuer.ts';
import type { CryptoBackend } from '../ports/crypto-backend.ts';
import { webCryptoBackend } from '../x509/signature.ts';
import { AuditChainVerifier, type AuditVerification } from '../audit/chain.ts';

export interface AuthorityOptions {
  trustDomain: string;
  /** The issuing (intermediate) CA certificate, DER, and its signer. */
  issuer: { certificate: Uint8Array; signer: Signer };
  /** Trust anchors (root certificates, DER). */
  roots: Uint8Array[];
  profiles: Profile[];
  store: { certificates: CertificateStore; audit: AuditStore; revocations?: RevocationStore };
  urls?: { crl?: string[]; ocsp?: string[]; caIssuers?: string[] };
  clock?: Clock;
  random?: Random;
  /** Verification and digests; WebCrypto by default. */
  crypto?: CryptoBackend;
  /** Default 60. */
  clockSkewSeconds?: number;
  /** Re-verify the CA's signature on each certificate: true, false, or `rsa` (default: RSA CA keys only). */
  verifySignatures?: boolean | 'rsa';
}

/**
 * @example
 * const authority = await Authority.open({ trustDomain: 'example.org', issuer: { certificate, signer },
 *   roots: [root], profiles: [DEFAULT_PROFILE], store });
 * const cert = await authority.issue({ csr, attestation: { spiffeId: 'spiffe://example.org/agent/a',
 *   profile: 'default', method: 'operator', actor: 'operator' } });
 */
export class Authority {
  readonly trustDomain: string;
  readonly roots: readonly Uint8Array[];
  readonly issuerCertificate: Uint8Array;
  readonly store: AuthorityOptions['store'];
  readonly clock: Clock;
  readonly #issuer: Issuer;

  private constructor(o: AuthorityOptions, issuer: Issuer, clock: Clock) {
    this.trustDomain = o.trustDomain;
    this.roots = o.roots;
    this.issuerCertificate = o.issuer.certificate;
    this.store = o.store;
    this.clock = clock;
    this.#issuer = issuer;
  }

  static async open(o: AuthorityOptions): Promise<Authority> {
    parseTrustDomain(o.trustDomain);
    const profiles = new Map<string, Profile>();
    for (const p of o.profiles) {
      validateProfile(p);
      if (profiles.has(p.name)) throw new InvalidRequest('ERR_PROFILE_INVALID', `profile ${p.name} is defined twice`);
      profiles.set(p.name, p);
    }
    const clock = o.clock ?? systemClock;
    const issuer = await Issuer.create({
      trustDomain: o.trustDomain,
      certificate: o.issuer.certificate,
      signer: o.issuer.signer,
      profiles,
      store: o.store,
      clock,
      random: o.random ?? webCryptoRandom,
      crypto: o.crypto ?? webCryptoBackend(),
      clockSkewSeconds: o.clockSkewSeconds ?? 60,
      urls: { crl: o.urls?.crl ?? [], ocsp: o.urls?.ocsp ?? [], caIssuers: o.urls?.caIssuers ?? [] },
      verifySignatures: o.verifySignatures ?? 'rsa',
    });
    return new Authority(o, issuer, clock);
  }

  /** Issues a certificate for an attested identity from a CSR. See {@link Issuer.issue}. */
  issue(req: IssueRequest): Promise<IssuedCertificate> {
    return this.#issuer.issue(req);
  }

  profile(name: string): Profile {
    return this.#issuer.profile(name);
  }

  /** Checks the audit hash chain from the first event; names the first event that breaks it. */
  async verifyAudit(pageSize = 5000): Promise<AuditVerification> {
    return verifyAuditLog(this.store.audit, pageSize);
  }
}

/**
 * Verifies the chain up to the head record as read when verification starts: events appended
 * while it runs (a live CA keeps writing) are left for the next run, not mistaken for a
 * mismatch with a head read later.
 */
export async function verifyAuditLog(audit: AuditStore, pageSize = 5000): Promise<AuditVerification> {
  const head = await audit.head();
  const v = new AuditChainVerifier();
  let from = 1;
  while (from <= head.seq) {
    const page = await audit.read(from, Math.min(pageSize, head.seq - from + 1));
    for (const e of page) if (!(await v.add(e))) return v.finish();
    if (page.length === 0) break;
    from = page[page.length - 1]!.seq + 1;
  }
  return v.finish(head);
}
