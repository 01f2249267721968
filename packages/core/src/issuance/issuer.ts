/**
 * The issuance pipeline, one fixed order for every provisioner:
 * CSR parse → policy on the attested identity → proof of possession → serial reserved →
 * TBS built → signed → re-checked → stored with its audit event.
 */
import { AgentCAError, InternalError, InvalidRequest, PolicyDenied, Unavailable } from '../errors.ts';
import type { AuditStore } from '../ports/audit-store.ts';
import type { CertificateStore, TokenConsumption } from '../ports/certificate-store.ts';
import type { RevocationStore } from '../ports/revocation-store.ts';
import type { Clock } from '../ports/clock.ts';
import type { Random } from '../ports/random.ts';
import type { Signer } from '../ports/signer.ts';
import { toHex, bytesEqual } from '../encoding.ts';
import type { CryptoBackend } from '../ports/crypto-backend.ts';
import { parseSpiffeIdIn } from '../identity/spiffe-id.ts';
import { checkDnsNames, checkIdentity, checkIpAddresses, checkKey, resolveTtl, type Profile } from '../profile/profile.ts';
import { signatureSchemeFor } from '../x509/algorithms.ts';
import { encodeTbsCertificate, parseCertificate, signTbs, type ParsedCertificate } from '../x509/certificate.ts';
import { parseCsr, verifyCsr, type ParsedCsr } from '../x509/csr.ts';
import {
  agentcaIdentity,
  authorityInfoAccess,
  authorityKeyIdentifier,
  basicConstraints,
  crlDistributionPoints,
  extKeyUsage,
  keyUsage,
  subjectAltName,
} from '../x509/extensions.ts';
import { subjectKeyIdentifier } from '../x509/extensions.ts';
import { decodeSubjectKeyIdentifier } from '../x509/extension-values.ts';
import { EXT } from '../x509/extensions.ts';
import { encodeName } from '../x509/name.ts';
import { parseSpkiDer } from '../x509/spki.ts';
import { INSTANCE_ID_PATTERN, type Attestation } from './attestation.ts';
import { newSerial, serialHex } from './serial.ts';
import { verifyIssued } from './verify-issued.ts';

export interface IssueRequest {
  /** PEM or DER PKCS#10. */
  csr: Uint8Array | string;
  attestation: Attestation;
  /** Requested lifetime in seconds; the profile default when absent. */
  ttlSeconds?: number;
}

export interface IssuedCertificate {
  serial: string;
  der: Uint8Array;
  /** Issuing CA certificates, leaf-adjacent first (the intermediate). */
  chain: Uint8Array[];
  spiffeId: string;
  instanceId: string;
  taskId: string | null;
  notBefore: Date;
  notAfter: Date;
}

export interface IssuerConfig {
  trustDomain: string;
  certificate: Uint8Array;
  signer: Signer;
  profiles: ReadonlyMap<string, Profile>;
  store: { certificates: CertificateStore; audit: AuditStore; revocations?: RevocationStore };
  clock: Clock;
  random: Random;
  crypto: CryptoBackend;
  /** notBefore is backdated this much, for relying parties whose clocks run behind. */
  clockSkewSeconds: number;
  urls: { crl: string[]; ocsp: string[]; caIssuers: string[] };
  /**
   * Verify each signature made with the CA key before releasing it. `rsa` (the default) does
   * it for RSA CA keys, where a faulty signature can leak the key (RSA-CRT fault attacks); every
   * certificate is re-parsed and re-checked field by field in any case.
   */
  verifySignatures: boolean | 'rsa';
}

const OPTIONAL_TEXT = /^[\x20-\x7e]{1,256}$/;

/** Encoded parts of a leaf that are the same for every certificate of one profile and key family. */
interface FixedParts {
  basicConstraints: Uint8Array;
  keyUsage: Uint8Array;
  extKeyUsage: Uint8Array;
  authorityKeyIdentifier: Uint8Array;
  /** CRL distribution points and authority information access, when configured. */
  trailing: Uint8Array[];
  subject: Uint8Array;
}

export class Issuer {
  readonly #c: IssuerConfig;
  readonly #ca: ParsedCertificate;
  readonly #caKeyId: Uint8Array;
  readonly #caKey: ReturnType<typeof parseSpkiDer>;
  readonly #verifyOwnSignatures: boolean;
  readonly #fixed = new WeakMap<Profile, Map<boolean, FixedParts>>();

  private constructor(c: IssuerConfig, ca: ParsedCertificate, keyId: Uint8Array) {
    this.#c = c;
    this.#ca = ca;
    this.#caKeyId = keyId;
    this.#caKey = parseSpkiDer(ca.spki);
    this.#verifyOwnSignatures = c.verifySignatures === 'rsa' ? this.#caKey.family === 'rsa' : c.verifySignatures;
  }

  static async create(c: IssuerConfig): Promise<Issuer> {
    const ca = parseCertificate(c.certificate);
    if (!bytesEqual(ca.spki, c.signer.publicKey))
      throw new Unavailable('ERR_CA_KEY_MISMATCH', 'the issuing CA key does not match the issuing CA certificate');
    const ski = ca.extensions.get(EXT.subjectKeyIdentifier);
    const keyId = ski ? decodeSubjectKeyIdentifier(ski.value) : await c.crypto.digest('SHA-1', parseSpkiDer(ca.spki).keyBytes);
    return new Issuer(c, ca, keyId);
  }

  get caNotAfter(): Date {
    return this.#ca.notAfter;
  }

  profile(name: string): Profile {
    const p = this.#c.profiles.get(name);
    if (!p) throw new InvalidRequest('ERR_PROFILE_UNKNOWN', `there is no profile named ${JSON.stringify(name)}`);
    return p;
  }

  /** Issues a certificate, or records the denial in the audit log and throws it. */
  async issue(req: IssueRequest): Promise<IssuedCertificate> {
    const a = req.attestation;
    try {
      return await this.#issue(req);
    } catch (e) {
      if (e instanceof AgentCAError && !(e instanceof InternalError) && !(e instanceof Unavailable)) {
        await this.#c.store.audit.append({
          type: 'deny',
          actor: a.actor,
          outcome: 'denied',
          at: this.#c.clock.now(),
          spiffeId: typeof a.spiffeId === 'string' ? a.spiffeId.slice(0, 256) : null,
          code: e.code,
          detail: { method: a.method, profile: a.profile, ...(a.instanceId ? { instanceId: a.instanceId } : {}) },
        });
      }
      throw e;
    }
  }

  async #issue(req: IssueRequest): Promise<IssuedCertificate> {
    const c = this.#c;
    const a = req.attestation;
    const csr = parseCsr(req.csr);
    const profile = this.profile(a.profile);
    const id = parseSpiffeIdIn(a.spiffeId, c.trustDomain);
    const spiffeId = id.toString();
    checkIdentity(profile, id);
    checkKey(profile, csr.key);
    const dnsNames = a.dnsNames ?? [];
    checkDnsNames(profile, dnsNames);
    const ipAddresses = a.ipAddresses ?? [];
    checkIpAddresses(profile, ipAddresses);
    checkRequestedNames(csr, spiffeId, dnsNames, ipAddresses);
    const ttl = resolveTtl(profile, req.ttlSeconds);
    const now = c.clock.now();
    const instanceId = a.instanceId ?? newInstanceId(c.random, now);
    if (!INSTANCE_ID_PATTERN.test(instanceId)) throw new InvalidRequest('ERR_INSTANCE_ID_INVALID', 'the instance ID must be 1-128 of [A-Za-z0-9._-]');
    const taskId = a.taskId ?? null;
    if (taskId !== null && !INSTANCE_ID_PATTERN.test(taskId)) throw new InvalidRequest('ERR_TASK_ID_INVALID', 'the task ID must be 1-128 of [A-Za-z0-9._-]');
    const onBehalfOf = a.onBehalfOf ?? null;
    if (onBehalfOf !== null && !OPTIONAL_TEXT.test(onBehalfOf)) throw new InvalidRequest('ERR_ON_BEHALF_OF_INVALID', 'on-behalf-of must be 1-256 printable ASCII characters');

    const nowSec = Math.floor(now.getTime() / 1000) * 1000;
    if (a.taskDeadline && a.taskDeadline.getTime() <= now.getTime())
      throw new PolicyDenied('ERR_TASK_EXPIRED', `task ${taskId} ended at ${a.taskDeadline.toISOString()}`);
    const notBefore = new Date(nowSec - c.clockSkewSeconds * 1000);
    let notAfterMs = nowSec + ttl * 1000;
    if (a.taskDeadline) notAfterMs = Math.min(notAfterMs, Math.floor(a.taskDeadline.getTime() / 1000) * 1000);
    notAfterMs = Math.min(notAfterMs, this.#ca.notAfter.getTime());
    const notAfter = new Date(notAfterMs);
    if (notAfter.getTime() <= nowSec) throw new PolicyDenied('ERR_CA_EXPIRING', 'the issuing CA expires before the certificate could be valid');

    await verifyCsr(c.crypto, csr);

    const [leafKeyId, keyFingerprint] = await Promise.all([c.crypto.digest('SHA-1', csr.key.keyBytes), c.crypto.digest('SHA-256', csr.key.spki)]);
    if (c.store.revocations && (await c.store.revocations.isKeyBlocked(toHex(keyFingerprint))))
      throw new PolicyDenied('ERR_KEY_BLOCKED', 'this public key belongs to a certificate revoked for keyCompromise: generate a new key');
    const serial = await this.#reserveSerial(now, a.consumeToken);
    const subjectEmpty = !profile.subject;
    const fixed = this.#fixedParts(profile, csr.key.family === 'rsa');
    const extensions = [
      fixed.basicConstraints,
      fixed.keyUsage,
      fixed.extKeyUsage,
      subjectKeyIdentifier(leafKeyId),
      fixed.authorityKeyIdentifier,
      subjectAltName({ uris: [spiffeId], dnsNames, ipAddresses }, subjectEmpty),
      agentcaIdentity({ instanceId, taskId, onBehalfOf }),
      ...fixed.trailing,
    ];
    const tbs = encodeTbsCertificate({
      serial,
      scheme: signatureSchemeFor(c.signer.algorithm),
      issuer: this.#ca.subject,
      notBefore,
      notAfter,
      subject: fixed.subject,
      spki: csr.key.spki,
      extensions,
    });
    const der = await signTbs(tbs, c.signer);
    const parsed = verifyIssued(der, {
      serial,
      issuerName: this.#ca.subject,
      issuerKeyId: this.#caKeyId,
      notBefore,
      notAfter,
      spki: csr.key.spki,
      spiffeId,
      dnsNames,
      ipAddresses,
      subjectEmpty,
      extKeyUsage: profile.extKeyUsage,
      instanceId,
      taskId,
      onBehalfOf,
    });
    if (this.#verifyOwnSignatures) {
      const scheme = signatureSchemeFor(c.signer.algorithm);
      if (!(await c.crypto.verify(this.#caKey, scheme, parsed.tbs, parsed.signature)))
        throw new InternalError('ERR_ISSUED_CERTIFICATE_MISMATCH', 'the signed certificate failed its re-check: the CA signature does not verify');
    }
    const hex = serialHex(serial);
    await c.store.certificates.record(
      {
        serial: hex,
        spiffeId,
        instanceId,
        taskId,
        onBehalfOf,
        profile: profile.name,
        notBefore,
        notAfter,
        issuedAt: now,
        keyFingerprint: toHex(keyFingerprint),
        der,
      },
      {
        type: 'issue',
        actor: a.actor,
        outcome: 'ok',
        at: now,
        spiffeId,
        serial: hex,
        // Keys in code-unit order: the audit chain's canonical form, so it need not re-sort them.
        detail: {
          ...(csr.requestsCa ? { csrRequestedCa: true } : {}),
          instanceId,
          method: a.method,
          notAfter: notAfter.toISOString(),
          onBehalfOf,
          profile: profile.name,
          taskId,
        },
      },
      a.renewalOf !== undefined ? { renewalOf: a.renewalOf } : {},
    );
    return { serial: hex, der, chain: [c.certificate], spiffeId, instanceId, taskId, notBefore, notAfter };
  }

  /**
   * The parts of a leaf that depend only on the profile, the CA and the key family, encoded once
   * per profile object (a reloaded profile is a new object, so it is encoded afresh).
   */
  #fixedParts(profile: Profile, rsa: boolean): FixedParts {
    let byFamily = this.#fixed.get(profile);
    if (!byFamily) {
      byFamily = new Map();
      this.#fixed.set(profile, byFamily);
    }
    let parts = byFamily.get(rsa);
    if (!parts) {
      const c = this.#c;
      const trailing: Uint8Array[] = [];
      if (c.urls.crl.length) trailing.push(crlDistributionPoints(c.urls.crl));
      if (c.urls.ocsp.length || c.urls.caIssuers.length) trailing.push(authorityInfoAccess(c.urls.ocsp, c.urls.caIssuers));
      parts = {
        basicConstraints: basicConstraints(false),
        keyUsage: keyUsage({ digitalSignature: true, keyEncipherment: rsa }),
        extKeyUsage: extKeyUsage(profile.extKeyUsage),
        authorityKeyIdentifier: authorityKeyIdentifier(this.#caKeyId),
        trailing,
        subject: encodeName(profile.subject ?? {}),
      };
      byFamily.set(rsa, parts);
    }
    return parts;
  }

  async #reserveSerial(now: Date, consumeToken?: TokenConsumption): Promise<Uint8Array> {
    for (let attempt = 0; ; attempt++) {
      const serial = newSerial(this.#c.random, now);
      try {
        await this.#c.store.certificates.reserveSerial(serialHex(serial), now, consumeToken ? { consumeToken } : undefined);
        return serial;
      } catch (e) {
        // 128 random bits do not collide; a repeat means a broken RNG, so stop after a few.
        if (e instanceof AgentCAError && e.code === 'ERR_SERIAL_EXISTS' && attempt < 2) continue;
        throw e;
      }
    }
  }
}


/** The CSR may repeat the attested names; it may not ask for any other. */
function checkRequestedNames(csr: ParsedCsr, spiffeId: string, dnsNames: readonly string[], ipAddresses: readonly string[]): void {
  const r = csr.requestedNames;
  const foreign =
    r.uris.find((u) => u !== spiffeId) ??
    r.dnsNames.find((d) => !dnsNames.includes(d)) ??
    r.ipAddresses.find((ip) => !ipAddresses.includes(ip)) ??
    (r.other ? 'a name of another kind' : undefined);
  if (foreign !== undefined)
    throw new PolicyDenied('ERR_CSR_SAN_MISMATCH', `the CSR asks for ${JSON.stringify(foreign).slice(0, 200)}, which is not the attested identity ${spiffeId}`);
}

/**
 * A CA-assigned instance ID: a UUIDv7 (RFC 9562 §5.7), 48 bits of Unix milliseconds then 74
 * random bits. Time-ordered so the store's index by instance grows at its right end (a random
 * UUID put each issuance's entry on a leaf of its own: 14% of the WAL frames of an HTTPS
 * issuance run); an instance ID names an instance, it is not a secret.
 */
export function newInstanceId(random: { bytes(n: number): Uint8Array }, at: Date): string {
  const b = random.bytes(16);
  const ms = at.getTime();
  const high = Math.floor(ms / 2 ** 32);
  b[0] = (high >>> 8) & 0xff;
  b[1] = high & 0xff;
  b[2] = (ms >>> 24) & 0xff;
  b[3] = (ms >>> 16) & 0xff;
  b[4] = (ms >>> 8) & 0xff;
  b[5] = ms & 0xff;
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = toHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
