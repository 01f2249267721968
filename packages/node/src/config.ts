/**
 * The CA directory's `agentca.json`: trust domain, key algorithm, store, URLs, admins and
 * profiles. Durations are written as text (`1h`, `30d`) and read back as seconds.
 */
import { readFileSync } from 'node:fs';
import {
  ADMIN_PROFILE,
  DEFAULT_PROFILE,
  InvalidRequest,
  Unavailable,
  formatDuration,
  isKeyAlgorithm,
  parseDuration,
  parseSpiffeId,
  parseTrustDomain,
  validateProfile,
  type ExtKeyUsage,
  type KeyAlgorithm,
  type KeyFamily,
  type Profile,
} from '@agentca/core';

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
}

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
  return c;
}
