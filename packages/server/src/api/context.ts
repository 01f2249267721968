/** What the API is built from: every dependency is injected (stores, authority, clock, log). */
import type {
  Attestation,
  Authority,
  CertificateStore,
  Clock,
  IssuedCertificate,
  JoinTokens,
  RevocationService,
  RevocationStore,
  StoreCounters,
  TokenStore,
} from '@agentca/core';
import { parseDuration, toPem } from '@agentca/core';
import type { ApiMetrics } from './metrics.ts';

/** Structured log sink. Entries are plain objects; none carries a token, key, CSR or header. */
export interface ApiLog {
  info(o: object): void;
  warn(o: object): void;
  error(o: object): void;
}

/** A JWT/OIDC provisioner: checks a JWT and returns what it attests (method `jwt`). */
export interface JwtAuthorizer {
  authorize(token: string): Promise<Attestation>;
}

export interface ApiServerOptions {
  authority: Authority;
  joinTokens: JoinTokens;
  jwt?: JwtAuthorizer;
  revocations: RevocationService;
  store: { certificates: CertificateStore; revocations: RevocationStore; tokens: TokenStore };
  /** SPIFFE IDs whose client certificates may call the admin routes. */
  admins: string[];
  /** The trust bundle served at GET /v1/bundle (root certificates, PEM). */
  bundlePem: string;
  clock: Clock;
  log?: ApiLog;
  /** TLS material for an HTTPS app (see startApiServer). Without it the app speaks plain HTTP, for `inject()` tests: the mTLS routes then always answer 401. */
  https?: { key: string; cert: string; ca: string };
  /** Per client IP. Default 1000 requests per 10 s. */
  rateLimit?: { max: number; timeWindowMs: number };
  /**
   * Whether the store answers (serve: false while polling it fails). With it, /healthz says
   * `"store": "ok"`, or answers 503 `ERR_STORE_UNAVAILABLE` so a load balancer sends issuance
   * to another replica.
   */
  storeReachable?: () => boolean;
  /** The store's own counters, read at each scrape of /metrics (both stores have them as getters). */
  storeCounters?: StoreCounters;
}

/** What the route groups share. */
export interface ApiContext {
  o: ApiServerOptions;
  log: ApiLog;
  metrics: ApiMetrics;
  admins: ReadonlySet<string>;
  checks: { certificates: CertificateStore; revocations: RevocationStore; clock: Clock };
}

/** The JSON answer for an issued certificate. */
/** The chain is the same CA certificates in every answer: their PEM is made once per certificate object. */
const chainPem = new WeakMap<Uint8Array, string>();
function caPem(der: Uint8Array): string {
  let pem = chainPem.get(der);
  if (pem === undefined) {
    pem = toPem('CERTIFICATE', der);
    chainPem.set(der, pem);
  }
  return pem;
}

export function issuedBody(c: IssuedCertificate): Record<string, unknown> {
  return {
    certificate: toPem('CERTIFICATE', c.der),
    chain: c.chain.map(caPem).join(''),
    serial: c.serial,
    spiffeId: c.spiffeId,
    instanceId: c.instanceId,
    taskId: c.taskId,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
  };
}

/** A TTL from a body (seconds, or a duration such as `15m`) in seconds; the schema checks its shape, policy its range. */
export function ttlSeconds(v: number | string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  return typeof v === 'number' ? v : parseDuration(v, what);
}
