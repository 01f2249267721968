/**
 * Profiles: named certificate templates with the policy that decides whether an attested
 * identity may have a certificate, for how long, with which key and which usages.
 */
import { InvalidRequest, PolicyDenied } from '../errors.ts';
import { pathMatches, type SpiffeId } from '../identity/spiffe-id.ts';
import { MIN_RSA_BITS, type KeyFamily } from '../x509/algorithms.ts';
import type { ExtKeyUsage } from '../x509/extensions.ts';
import type { DistinguishedName } from '../x509/name.ts';
import type { PublicKeyInfo } from '../x509/spki.ts';

export interface Profile {
  name: string;
  /** SPIFFE ID path patterns this profile may issue (`*` one segment, final `**` the rest). */
  allow: string[];
  /** Path patterns refused even when allowed. */
  deny: string[];
  /** DNS SAN patterns a certificate may carry (`*.example.org` matches one label); empty: none. */
  dnsNames: string[];
  /** IP address SANs a certificate may carry (exact addresses); absent or empty: none. */
  ipAddresses?: string[];
  /** Seconds. */
  defaultTtl: number;
  maxTtl: number;
  keyTypes: KeyFamily[];
  minRsaBits: number;
  extKeyUsage: ExtKeyUsage[];
  renewable: boolean;
  /** A subject for the leaf; when absent the subject is empty and the SAN critical. */
  subject?: DistinguishedName;
}

/** Certificates shorter than this are refused: below it clock skew eats the lifetime. */
export const MIN_TTL_SECONDS = 60;

export const DEFAULT_PROFILE: Profile = {
  name: 'default',
  allow: ['/**'],
  deny: ['/admin/**', '/agentca/**'],
  dnsNames: [],
  defaultTtl: 3600,
  maxTtl: 24 * 3600,
  keyTypes: ['ec-p256', 'ec-p384', 'ed25519', 'rsa'],
  minRsaBits: MIN_RSA_BITS,
  extKeyUsage: ['clientAuth', 'serverAuth'],
  renewable: true,
};

/** The operator's identity for the admin API; issued at init. */
export const ADMIN_PROFILE: Profile = {
  name: 'admin',
  allow: ['/admin/*'],
  deny: [],
  dnsNames: [],
  defaultTtl: 30 * 86400,
  maxTtl: 90 * 86400,
  keyTypes: ['ec-p256', 'ec-p384', 'ed25519', 'rsa'],
  minRsaBits: MIN_RSA_BITS,
  extKeyUsage: ['clientAuth'],
  renewable: false,
};

export function checkIdentity(profile: Profile, id: SpiffeId): void {
  const allowed = profile.allow.some((p) => pathMatches(p, id.path)) && !profile.deny.some((p) => pathMatches(p, id.path));
  if (!allowed) throw new PolicyDenied('ERR_SPIFFE_ID_NOT_ALLOWED', `${id} is not allowed by profile ${profile.name}`);
}

export function checkKey(profile: Profile, key: PublicKeyInfo): void {
  if (!profile.keyTypes.includes(key.family))
    throw new PolicyDenied('ERR_KEY_ALGORITHM_NOT_ALLOWED', `${key.family} keys are not allowed by profile ${profile.name}`);
  if (key.family === 'rsa' && key.bits < Math.max(profile.minRsaBits, MIN_RSA_BITS))
    throw new PolicyDenied('ERR_KEY_TOO_SMALL', `RSA keys need at least ${profile.minRsaBits} bits, this one has ${key.bits}`);
}

function dnsMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('*.')) {
    const dot = name.indexOf('.');
    return dot > 0 && name.slice(dot + 1) === pattern.slice(2);
  }
  return pattern === name;
}

export function checkDnsNames(profile: Profile, names: readonly string[]): void {
  for (const n of names) {
    if (!/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(n))
      throw new InvalidRequest('ERR_DNS_NAME_INVALID', `${JSON.stringify(n)} is not a valid DNS name`);
    if (!profile.dnsNames.some((p) => dnsMatches(p, n)))
      throw new PolicyDenied('ERR_DNS_NAME_NOT_ALLOWED', `DNS name ${n} is not allowed by profile ${profile.name}`);
  }
}

export function checkIpAddresses(profile: Profile, ips: readonly string[]): void {
  for (const ip of ips) {
    if (!(profile.ipAddresses ?? []).includes(ip)) throw new PolicyDenied('ERR_IP_SAN_NOT_ALLOWED', `IP address ${ip} is not allowed by profile ${profile.name}`);
  }
}

/**
 * The CA's own HTTPS server certificate (`agentca serve`): its SPIFFE ID, `localhost` and the
 * loopback addresses, plus the names and addresses the operator lists.
 */
export function serverProfile(extra: { dnsNames?: string[]; ipAddresses?: string[] } = {}): Profile {
  return {
    name: 'agentca-server',
    allow: ['/agentca/server'],
    deny: [],
    dnsNames: ['localhost', ...(extra.dnsNames ?? [])],
    ipAddresses: ['127.0.0.1', ...(extra.ipAddresses ?? [])],
    defaultTtl: 7 * 86400,
    maxTtl: 30 * 86400,
    keyTypes: ['ec-p256'],
    minRsaBits: MIN_RSA_BITS,
    extKeyUsage: ['serverAuth'],
    renewable: false,
  };
}

/**
 * The lifetime a certificate gets: the requested TTL (or the profile default). A TTL above
 * the profile maximum is refused, not clamped: a workload that asks for 48 h and silently gets
 * 24 h renews late; one that is told so fixes its request.
 */
export function resolveTtl(profile: Profile, requested: number | undefined): number {
  const ttl = requested ?? profile.defaultTtl;
  if (!Number.isSafeInteger(ttl) || ttl < MIN_TTL_SECONDS)
    throw new InvalidRequest('ERR_TTL_INVALID', `the TTL must be a whole number of seconds, at least ${MIN_TTL_SECONDS}`);
  if (ttl > profile.maxTtl)
    throw new PolicyDenied('ERR_TTL_TOO_LONG', `a TTL of ${ttl}s exceeds the maximum of profile ${profile.name} (${profile.maxTtl}s)`);
  return ttl;
}

/** Validates a profile from configuration; throws InvalidRequest naming the field. */
export function validateProfile(p: Profile): Profile {
  const bad = (why: string): never => {
    throw new InvalidRequest('ERR_PROFILE_INVALID', `profile ${p.name}: ${why}`);
  };
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(p.name)) bad('the name must be lower-case letters, digits and -');
  for (const pat of [...p.allow, ...p.deny]) if (!/^(\/([A-Za-z0-9._-]+|\*|\*\*))+$/.test(pat)) bad(`bad path pattern ${JSON.stringify(pat)}`);
  if (p.allow.length === 0) bad('allow is empty');
  if (p.defaultTtl > p.maxTtl) bad('defaultTtl exceeds maxTtl');
  if (p.defaultTtl < MIN_TTL_SECONDS) bad(`defaultTtl is below ${MIN_TTL_SECONDS}s`);
  if (p.keyTypes.length === 0) bad('keyTypes is empty');
  if (p.minRsaBits < MIN_RSA_BITS) bad(`minRsaBits is below ${MIN_RSA_BITS}`);
  if (p.extKeyUsage.length === 0) bad('extKeyUsage is empty');
  return p;
}
