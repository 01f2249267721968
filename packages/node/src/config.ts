/**
 * The CA directory's `agentca.json`: trust domain, key algorithm, store, URLs, admins,
 * profiles and (optionally) the JWT issuers workloads may attest with. Durations are written
 * as text (`1h`, `30d`) and read back as seconds.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import {
  ADMIN_PROFILE,
  DEFAULT_PROFILE,
  InvalidRequest,
  Unavailable,
  formatDuration,
  isAgentCAError,
  isKeyAlgorithm,
  parseDuration,
  parseSpiffeId,
  parseTrustDomain,
  validateJwtIssuer,
  validateProfile,
  type ExtKeyUsage,
  type JwtIssuerConfig,
  type KeyAlgorithm,
  type KeyFamily,
  type Profile,
} from '@agentca/core';
import { checkJwksUrl, fileJwksSource, urlJwksSource } from './jwks.ts';

export const CONFIG_FILE = 'agentca.json';

export interface ProfileConfig {
  allow: string[];
  deny?: string[];
  dnsNames?: string[];
  defaultTtl: string;
  maxTtl: string;
  keyTypes?: KeyFamily[];
  minRsaBits?: number;
  extKeyUsage?: ExtKeyUsage[];
  renewable?: boolean;
  subject?: { commonName?: string; organization?: string };
}

export interface CaConfig {
  version: 1;
  trustDomain: string;
  keyAlgorithm: KeyAlgorithm;
  /** `sqlite:<file relative to the CA directory>` (PostgreSQL comes later). */
  store: string;
  clockSkewSeconds: number;
  urls: { crl: string[]; ocsp: string[]; caIssuers: string[] };
  /** SPIFFE IDs allowed on the admin API. */
  admins: string[];
  profiles: Record<string, ProfileConfig>;
  /** Platforms whose signed JWTs prove a workload's identity (absent: no JWT provisioner). */
  jwtIssuers?: JwtIssuerConfigEntry[];
}

/**
 * One JWT issuer in `agentca.json`. Exactly one of `jwksFile` (relative to the CA directory)
 * and `jwksUrl`; `profile` defaults to `default`; `maxTokenAge` is a duration (`10m`).
 *
 * @example
 * { "issuer": "https://kubernetes.default.svc.cluster.local", "audience": "agentca",
 *   "jwksFile": "cluster-jwks.json",
 *   "spiffeIdTemplate": "spiffe://example.org/ns/{kubernetes.io.namespace}/sa/{kubernetes.io.serviceaccount.name}" }
 */
export interface JwtIssuerConfigEntry {
  issuer: string;
  audience: string;
  jwksFile?: string;
  jwksUrl?: string;
  algorithms?: string[];
  spiffeIdTemplate: string;
  profile?: string;
  maxTokenAge?: string;
}

const JWT_ISSUER_FIELDS = new Set(['issuer', 'audience', 'jwksFile', 'jwksUrl', 'algorithms', 'spiffeIdTemplate', 'profile', 'maxTokenAge']);

export function profileToConfig(p: Profile): ProfileConfig {
  return {
    allow: p.allow,
    deny: p.deny,
    dnsNames: p.dnsNames,
    defaultTtl: formatDuration(p.defaultTtl),
    maxTtl: formatDuration(p.maxTtl),
    keyTypes: p.keyTypes,
    minRsaBits: p.minRsaBits,
    extKeyUsage: p.extKeyUsage,
    renewable: p.renewable,
    ...(p.subject ? { subject: p.subject } : {}),
  };
}

export function defaultConfig(trustDomain: string, keyAlgorithm: KeyAlgorithm): CaConfig {
  return {
    version: 1,
    trustDomain,
    keyAlgorithm,
    store: 'sqlite:agentca.db',
    clockSkewSeconds: 60,
    urls: { crl: [], ocsp: [], caIssuers: [] },
    admins: [`spiffe://${trustDomain}/admin/operator`],
    profiles: { default: profileToConfig(DEFAULT_PROFILE), admin: profileToConfig(ADMIN_PROFILE) },
  };
}

function bad(why: string): never {
  throw new InvalidRequest('ERR_CONFIG_INVALID', `${CONFIG_FILE}: ${why}`);
}

export function profilesFromConfig(c: CaConfig): Profile[] {
  return Object.entries(c.profiles).map(([name, p]) => {
    if (!Array.isArray(p.allow)) bad(`profile ${name}: allow must be a list`);
    return validateProfile({
      name,
      allow: p.allow,
      deny: p.deny ?? [],
      dnsNames: p.dnsNames ?? [],
      defaultTtl: parseDuration(p.defaultTtl, `profile ${name} defaultTtl`),
      maxTtl: parseDuration(p.maxTtl, `profile ${name} maxTtl`),
      keyTypes: p.keyTypes ?? DEFAULT_PROFILE.keyTypes,
      minRsaBits: p.minRsaBits ?? DEFAULT_PROFILE.minRsaBits,
      extKeyUsage: p.extKeyUsage ?? DEFAULT_PROFILE.extKeyUsage,
      renewable: p.renewable ?? true,
      ...(p.subject ? { subject: p.subject } : {}),
    });
  });
}

/** Reads and checks the configuration; every problem names the field. */
export function readConfig(path: string): CaConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Unavailable('ERR_CA_NOT_INITIALISED', `no CA at ${path.replace(/\/agentca\.json$/, '')}: run agentca init first (or pass --dir)`);
    throw new Unavailable('ERR_CONFIG_UNREADABLE', `cannot read ${path}: ${(e as Error).message}`);
  }
  let c: CaConfig;
  try {
    c = JSON.parse(text) as CaConfig;
  } catch {
    bad('not valid JSON');
  }
  if (c === null || typeof c !== 'object') bad('not a JSON object');
  if (c.version !== 1) bad(`unsupported version ${String(c.version)}`);
  parseTrustDomain(c.trustDomain);
  if (!isKeyAlgorithm(c.keyAlgorithm)) bad(`unknown keyAlgorithm ${String(c.keyAlgorithm)}`);
  if (typeof c.store !== 'string') bad('store must be a string');
  if (!Number.isInteger(c.clockSkewSeconds) || c.clockSkewSeconds < 0 || c.clockSkewSeconds > 600) bad('clockSkewSeconds must be 0-600');
  c.urls = { crl: c.urls?.crl ?? [], ocsp: c.urls?.ocsp ?? [], caIssuers: c.urls?.caIssuers ?? [] };
  for (const u of [...c.urls.crl, ...c.urls.ocsp, ...c.urls.caIssuers]) if (!/^https?:\/\/[\x21-\x7e]+$/.test(u)) bad(`bad URL ${JSON.stringify(u)}`);
  if (!Array.isArray(c.admins)) bad('admins must be a list');
  for (const a of c.admins) parseSpiffeId(a);
  if (!c.profiles || typeof c.profiles !== 'object') bad('profiles must be an object');
  profilesFromConfig(c);
  if (c.jwtIssuers !== undefined) checkJwtIssuers(c);
  return c;
}

function checkJwtIssuers(c: CaConfig): void {
  if (!Array.isArray(c.jwtIssuers)) bad('jwtIssuers must be a list');
  const seen = new Set<string>();
  c.jwtIssuers.forEach((j, i) => {
    const at = `jwtIssuers[${i}]`;
    if (j === null || typeof j !== 'object' || Array.isArray(j)) bad(`${at} must be an object`);
    for (const k of Object.keys(j)) if (!JWT_ISSUER_FIELDS.has(k)) bad(`${at}: unknown field ${JSON.stringify(k)}`);
    for (const k of ['issuer', 'audience', 'spiffeIdTemplate'] as const) if (typeof j[k] !== 'string') bad(`${at}: ${k} must be a string`);
    for (const k of ['jwksFile', 'jwksUrl', 'profile', 'maxTokenAge'] as const) if (j[k] !== undefined && typeof j[k] !== 'string') bad(`${at}: ${k} must be a string`);
    if (j.algorithms !== undefined && (!Array.isArray(j.algorithms) || j.algorithms.some((a) => typeof a !== 'string'))) bad(`${at}: algorithms must be a list of strings`);
    if ((j.jwksFile === undefined) === (j.jwksUrl === undefined)) bad(`${at}: give exactly one of jwksFile and jwksUrl`);
    if (j.jwksFile === '') bad(`${at}: jwksFile is empty`);
    const profile = j.profile ?? 'default';
    if (!Object.hasOwn(c.profiles, profile)) bad(`${at}: there is no profile named ${JSON.stringify(profile)}`);
    if (seen.has(j.issuer)) bad(`${at}: issuer ${JSON.stringify(j.issuer)} is configured twice`);
    seen.add(j.issuer);
    try {
      if (j.jwksUrl !== undefined) checkJwksUrl(j.jwksUrl);
      validateJwtIssuer(
        {
          issuer: j.issuer,
          audience: j.audience,
          spiffeIdTemplate: j.spiffeIdTemplate,
          profile,
          ...(j.algorithms !== undefined ? { algorithms: j.algorithms } : {}),
          ...(j.maxTokenAge !== undefined ? { maxTokenAgeSeconds: parseDuration(j.maxTokenAge, 'maxTokenAge') } : {}),
        },
        c.trustDomain,
      );
    } catch (e) {
      if (isAgentCAError(e)) bad(`${at}: ${e.message}`);
      throw e;
    }
  });
}

/**
 * The JWT provisioner's issuers from a checked configuration (none when the section is
 * absent); a relative `jwksFile` is resolved against the CA directory `dir`. No file is read
 * and no URL fetched until a token arrives.
 *
 * @example
 * const c = readConfig(join(dir, CONFIG_FILE));
 * const jwt = new JwtProvisioner({ trustDomain: c.trustDomain, issuers: jwtIssuersFromConfig(c, dir), clock: systemClock, profile });
 */
export function jwtIssuersFromConfig(c: CaConfig, dir: string): JwtIssuerConfig[] {
  return (c.jwtIssuers ?? []).map((j) => ({
    issuer: j.issuer,
    audience: j.audience,
    jwks: j.jwksUrl !== undefined ? urlJwksSource(j.jwksUrl) : fileJwksSource(isAbsolute(j.jwksFile!) ? j.jwksFile! : join(dir, j.jwksFile!)),
    ...(j.algorithms !== undefined ? { algorithms: j.algorithms } : {}),
    spiffeIdTemplate: j.spiffeIdTemplate,
    profile: j.profile ?? 'default',
    ...(j.maxTokenAge !== undefined ? { maxTokenAgeSeconds: parseDuration(j.maxTokenAge, 'maxTokenAge') } : {}),
  }));
}
