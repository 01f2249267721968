/**
 * The JWT/OIDC provisioner: a workload proves itself with a JWT its platform signed (a
 * Kubernetes projected service-account token, a CI OIDC token). The token is verified against
 * the issuer's JWKS (RFC 7515, RFC 7519 §7.2: asymmetric algorithms from an allow-list only,
 * issuer, audience, `exp` required, at most {@link JWT_CLOCK_TOLERANCE_SECONDS} of skew), then
 * its claims are mapped into a SPIFFE ID by the issuer's template. A claim value becomes one
 * whole path segment verbatim or the token is refused: values are never percent-encoded,
 * normalised or split, so two different workloads can never map to one ID.
 *
 * Core does no I/O: the keys come from an injected {@link JwksSource} (a file or URL source
 * lives in `@agentca/node`).
 */
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { AgentCAError, InvalidRequest, PolicyDenied, Unauthenticated, Unavailable } from '../errors.ts';
import { parseSpiffeIdIn } from '../identity/spiffe-id.ts';
import type { Attestation } from '../issuance/attestation.ts';
import type { Clock } from '../ports/clock.ts';
import { checkIdentity, type Profile } from '../profile/profile.ts';

export type { JSONWebKeySet } from 'jose';

/**
 * Where an issuer's public keys come from. Implementations cache: `getKeys()` is called on
 * every authorisation and should be cheap, returning the *same object* while the keys are
 * unchanged (the provisioner rebuilds its imported key set only when the object changes).
 * `refresh: true` means a token named a key ID the set does not hold: bypass the cache once.
 * The provisioner asks for a refresh at most once per {@link JWKS_REFRESH_INTERVAL_SECONDS}
 * per issuer.
 */
export interface JwksSource {
  getKeys(options?: { refresh?: boolean }): Promise<JSONWebKeySet>;
}

export interface JwtIssuerConfig {
  /** The exact `iss` claim value, e.g. `https://kubernetes.default.svc.cluster.local`. */
  issuer: string;
  /** The `aud` value tokens must carry for this CA. */
  audience: string;
  jwks: JwksSource;
  /** The allow-list of JWS `alg` values; default {@link DEFAULT_JWT_ALGORITHMS}. Never `none` or `HS*`. */
  algorithms?: string[];
  /**
   * `spiffe://<trust domain>/…` where a whole path segment may be `{claim.path}`: a dotted
   * path into the claims (`{sub}`, `{kubernetes.io.namespace}`; a dotted key such as
   * `kubernetes.io` is matched too).
   */
  spiffeIdTemplate: string;
  /** The profile certificates for these tokens are issued under. */
  profile: string;
  /** When set, tokens need an `iat` no older than this. */
  maxTokenAgeSeconds?: number;
}

export interface JwtProvisionerOptions {
  trustDomain: string;
  issuers: JwtIssuerConfig[];
  clock: Clock;
  profile(name: string): Profile;
}

/** The default allow-list: what Kubernetes, GitHub Actions and GitLab CI sign with. */
export const DEFAULT_JWT_ALGORITHMS: readonly string[] = ['RS256', 'ES256', 'ES384', 'EdDSA'];
/** Every algorithm an allow-list may name: asymmetric signatures only (RFC 7518 §3.1, RFC 8037). */
export const JWT_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
export const JWT_CLOCK_TOLERANCE_SECONDS = 60;
export const JWKS_REFRESH_INTERVAL_SECONDS = 30;
/** Larger tokens are refused before they are decoded. */
export const MAX_JWT_BYTES = 16 * 1024;
export const MAX_ACTOR_LENGTH = 200;

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const PLACEHOLDER = /^\{([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\}$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const PRINTABLE = /^[\x21-\x7e]{1,1024}$/;
const MAX_PLACEHOLDERS = 16;
const MAX_CLAIM_PATH_PARTS = 8;

/** A parsed SPIFFE ID template: each path segment is a literal or the claim that fills it. */
export interface SpiffeIdTemplate {
  trustDomain: string;
  segments: ({ literal: string } | { claim: string; path: string[] })[];
}

const quote = (s: string, max = 120) => JSON.stringify(s.length > max ? s.slice(0, max) + '…' : s);

function configInvalid(why: string): never {
  throw new InvalidRequest('ERR_JWT_ISSUER_CONFIG_INVALID', why);
}

/**
 * Parses a template. A placeholder must be a whole path segment: two placeholders in one
 * segment (`{a}-{b}`) would let `a=x-y,b=z` and `a=x,b=y-z` share an ID.
 *
 * @example
 * parseSpiffeIdTemplate('spiffe://example.org/ns/{kubernetes.io.namespace}/sa/{kubernetes.io.serviceaccount.name}')
 */
export function parseSpiffeIdTemplate(template: string): SpiffeIdTemplate {
  const bad = (why: string): never => configInvalid(`the SPIFFE ID template ${quote(String(template))} is not valid: ${why}`);
  if (typeof template !== 'string' || template.length === 0) bad('it is empty');
  if (template.length > 2048) bad('it is longer than 2048 characters');
  if (!template.startsWith('spiffe://')) bad("it must start with 'spiffe://'");
  const rest = template.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  if (slash === -1) bad('it has no path');
  const trustDomain = rest.slice(0, slash);
  if (!TRUST_DOMAIN.test(trustDomain)) bad("the trust domain may only contain lower-case letters, digits, '.', '-' and '_'");
  const segments: SpiffeIdTemplate['segments'] = [];
  for (const seg of rest.slice(slash + 1).split('/')) {
    const m = PLACEHOLDER.exec(seg);
    if (m) {
      const path = m[1]!.split('.');
      if (path.length > MAX_CLAIM_PATH_PARTS) bad(`placeholder ${seg} has more than ${MAX_CLAIM_PATH_PARTS} parts`);
      segments.push({ claim: m[1]!, path });
    } else if (seg.includes('{') || seg.includes('}')) {
      bad(`placeholder ${quote(seg, 60)} must be a whole path segment of the form {claim} or {claim.path} ([A-Za-z0-9_-] parts)`);
    } else if (seg.length === 0) {
      bad('empty path segments are not allowed');
    } else if (seg === '.' || seg === '..' || !SEGMENT.test(seg)) {
      bad(`path segment ${quote(seg, 60)} is not valid: use letters, digits, '.', '-' and '_', and not '.' or '..'`);
    } else {
      segments.push({ literal: seg });
    }
  }
  if (segments.filter((s) => 'claim' in s).length > MAX_PLACEHOLDERS) bad(`it has more than ${MAX_PLACEHOLDERS} placeholders`);
  return { trustDomain, segments };
}

/**
 * Checks an issuer's settings (everything but the key source) and returns the algorithm
 * allow-list to use. Throws InvalidRequest `ERR_JWT_ISSUER_CONFIG_INVALID` naming the problem.
 */
export function validateJwtIssuer(c: Omit<JwtIssuerConfig, 'jwks'>, trustDomain: string): { algorithms: string[]; template: SpiffeIdTemplate } {
  if (typeof c.issuer !== 'string' || !PRINTABLE.test(c.issuer)) configInvalid('a JWT issuer must be 1-1024 printable ASCII characters');
  const where = `jwt issuer ${quote(c.issuer)}`;
  if (typeof c.audience !== 'string' || !PRINTABLE.test(c.audience)) configInvalid(`${where}: the audience must be 1-1024 printable ASCII characters`);
  const algorithms = c.algorithms ?? [...DEFAULT_JWT_ALGORITHMS];
  if (!Array.isArray(algorithms) || algorithms.length === 0) configInvalid(`${where}: algorithms must be a non-empty list`);
  for (const alg of algorithms) {
    if (typeof alg !== 'string') configInvalid(`${where}: algorithms must be strings`);
    if (alg.toLowerCase() === 'none') configInvalid(`${where}: alg none is never allowed`);
    if (/^hs/i.test(alg)) configInvalid(`${where}: ${alg} is never allowed: an HMAC secret cannot come from a public JWKS`);
    if (!JWT_ALGORITHMS.includes(alg)) configInvalid(`${where}: unknown algorithm ${quote(alg)} (use ${JWT_ALGORITHMS.join(', ')})`);
  }
  let template: SpiffeIdTemplate;
  try {
    template = parseSpiffeIdTemplate(c.spiffeIdTemplate);
  } catch (e) {
    configInvalid(`${where}: ${(e as Error).message}`);
  }
  if (template.trustDomain !== trustDomain) configInvalid(`${where}: the SPIFFE ID template is outside the trust domain ${trustDomain}`);
  if (typeof c.profile !== 'string' || c.profile.length === 0) configInvalid(`${where}: a profile is required`);
  if (c.maxTokenAgeSeconds !== undefined && (!Number.isSafeInteger(c.maxTokenAgeSeconds) || c.maxTokenAgeSeconds < 1))
    configInvalid(`${where}: maxTokenAgeSeconds must be a whole number of seconds, at least 1`);
  return { algorithms: [...new Set(algorithms)], template };
}

type KeyResolver = ReturnType<typeof createLocalJWKSet>;

interface IssuerState {
  config: JwtIssuerConfig;
  algorithms: string[];
  template: SpiffeIdTemplate;
  set: JSONWebKeySet | null;
  keys: KeyResolver | null;
  lastRefreshMs: number;
  refreshing: Promise<KeyResolver | null> | null;
}

const malformed = (why: string, cause?: unknown) => new Unauthenticated('ERR_JWT_MALFORMED', `the JWT is malformed: ${why}`, { cause });
const claimInvalid = (message: string) => new PolicyDenied('ERR_JWT_CLAIM_INVALID', message);

/** A NumericDate as ISO time when it is one, else as the number (never throws on a huge value). */
function when(v: unknown): string {
  if (typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= 8.64e12) return new Date(v * 1000).toISOString();
  return String(v);
}

/**
 * The JWT provisioner: verifies a platform-signed JWT and returns the SPIFFE ID its claims
 * map to. Like every provisioner it only authorises; issuance is the one pipeline.
 *
 * @example
 * const jwt = new JwtProvisioner({
 *   trustDomain: 'example.org',
 *   clock: systemClock,
 *   profile: (name) => authority.profile(name),
 *   issuers: [{
 *     issuer: 'https://kubernetes.default.svc.cluster.local',
 *     audience: 'agentca',
 *     jwks: fileJwksSource('/etc/agentca/cluster-jwks.json'),
 *     spiffeIdTemplate: 'spiffe://example.org/ns/{kubernetes.io.namespace}/sa/{kubernetes.io.serviceaccount.name}',
 *     profile: 'default',
 *   }],
 * });
 * const attestation = await jwt.authorize(token); // spiffe://example.org/ns/payments/sa/invoice-bot
 */
export class JwtProvisioner {
  readonly #o: JwtProvisionerOptions;
  readonly #issuers = new Map<string, IssuerState>();

  constructor(o: JwtProvisionerOptions) {
    this.#o = o;
    for (const c of o.issuers) {
      const { algorithms, template } = validateJwtIssuer(c, o.trustDomain);
      if (this.#issuers.has(c.issuer)) configInvalid(`jwt issuer ${quote(c.issuer)} is configured twice`);
      if (!c.jwks || typeof c.jwks.getKeys !== 'function') configInvalid(`jwt issuer ${quote(c.issuer)}: a JWKS source is required`);
      o.profile(c.profile);
      this.#issuers.set(c.issuer, { config: c, algorithms, template, set: null, keys: null, lastRefreshMs: -Infinity, refreshing: null });
    }
  }

  /**
   * Verifies the token and maps its claims to an attestation. Throws Unauthenticated
   * (`ERR_JWT_*`) when the token does not prove anything, PolicyDenied when it is genuine but
   * its claims do not map to an allowed identity (`ERR_JWT_CLAIM_INVALID`,
   * `ERR_SPIFFE_ID_NOT_ALLOWED`), Unavailable when the issuer's keys cannot be had.
   */
  async authorize(jwt: string): Promise<Attestation> {
    const token = typeof jwt === 'string' ? jwt.trim() : '';
    if (token.length === 0) throw malformed('it is empty');
    if (token.length > MAX_JWT_BYTES) throw malformed(`it is longer than ${MAX_JWT_BYTES} bytes`);
    if (!COMPACT_JWS.test(token)) throw malformed('it is not a compact JWS (three base64url parts)');
    let alg: unknown;
    let iss: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
      iss = decodeJwt(token).iss;
    } catch (e) {
      throw malformed('its header or claims are not a base64url JSON object', e);
    }
    if (typeof alg !== 'string' || alg.length === 0) throw malformed('the header has no alg');
    if (alg.toLowerCase() === 'none') throw new Unauthenticated('ERR_JWT_ALGORITHM', 'unsigned JWTs (alg none) are never accepted');
    if (typeof iss !== 'string') throw malformed('it has no iss claim');
    const issuer = this.#issuers.get(iss);
    if (!issuer) throw new Unauthenticated('ERR_JWT_ISSUER_UNKNOWN', `no JWT issuer ${quote(iss)} is configured`);
    if (!issuer.algorithms.includes(alg))
      throw new Unauthenticated('ERR_JWT_ALGORITHM', `alg ${quote(alg, 20)} is not allowed for JWT issuer ${quote(iss)} (allowed: ${issuer.algorithms.join(', ')})`);

    const claims = await this.#verify(token, issuer);
    const sub = claims.sub;
    if (typeof sub !== 'string' || sub.length === 0) throw claimInvalid('the JWT has no sub claim, which the audit log needs');
    const td = this.#o.trustDomain;
    const path = issuer.template.segments.map((s) => ('literal' in s ? s.literal : claimSegment(claims, s.claim, s.path, iss)));
    const id = parseSpiffeIdIn(`spiffe://${td}/${path.join('/')}`, td);
    const profile = this.#o.profile(issuer.config.profile);
    checkIdentity(profile, id);
    return {
      spiffeId: id.toString(),
      profile: profile.name,
      taskId: null,
      taskDeadline: null,
      onBehalfOf: null,
      method: 'jwt',
      actor: `jwt:${iss}#${sub}`.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_ACTOR_LENGTH),
    };
  }

  async #verify(token: string, issuer: IssuerState): Promise<JWTPayload> {
    const keys = await this.#currentKeys(issuer);
    try {
      return await this.#verifyWith(token, issuer, keys);
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey)) throw fromJose(e, issuer);
      const fresh = await this.#refreshKeys(issuer);
      if (!fresh || fresh === keys) throw fromJose(e, issuer);
      try {
        return await this.#verifyWith(token, issuer, fresh);
      } catch (again) {
        throw fromJose(again, issuer);
      }
    }
  }

  async #verifyWith(token: string, issuer: IssuerState, keys: KeyResolver): Promise<JWTPayload> {
    const options: JWTVerifyOptions = {
      algorithms: issuer.algorithms,
      issuer: issuer.config.issuer,
      audience: issuer.config.audience,
      clockTolerance: JWT_CLOCK_TOLERANCE_SECONDS,
      currentDate: this.#o.clock.now(),
      requiredClaims: ['exp'],
      ...(issuer.config.maxTokenAgeSeconds !== undefined ? { maxTokenAge: issuer.config.maxTokenAgeSeconds } : {}),
    };
    try {
      return (await jwtVerify(token, keys, options)).payload;
    } catch (e) {
      // A token without `kid` may match several keys of the set; try each (jose's documented pattern).
      if (!(e instanceof errors.JWKSMultipleMatchingKeys)) throw e;
      for await (const key of e) {
        try {
          return (await jwtVerify(token, key, options)).payload;
        } catch (inner) {
          if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
        }
      }
      throw new errors.JWSSignatureVerificationFailed();
    }
  }

  async #currentKeys(issuer: IssuerState): Promise<KeyResolver> {
    let set: JSONWebKeySet;
    try {
      set = await issuer.config.jwks.getKeys();
    } catch (e) {
      if (issuer.keys) return issuer.keys;
      throw jwksUnavailable(e, issuer);
    }
    return this.#adopt(issuer, set);
  }

  /** One refresh per interval per issuer; concurrent misses share it. Null when throttled or failed. */
  #refreshKeys(issuer: IssuerState): Promise<KeyResolver | null> {
    if (issuer.refreshing) return issuer.refreshing;
    const now = this.#o.clock.now().getTime();
    if (now - issuer.lastRefreshMs < JWKS_REFRESH_INTERVAL_SECONDS * 1000) return Promise.resolve(null);
    issuer.lastRefreshMs = now;
    issuer.refreshing = (async () => {
      try {
        return this.#adopt(issuer, await issuer.config.jwks.getKeys({ refresh: true }));
      } catch {
        return null;
      } finally {
        issuer.refreshing = null;
      }
    })();
    return issuer.refreshing;
  }

  #adopt(issuer: IssuerState, set: JSONWebKeySet): KeyResolver {
    if (issuer.keys && set === issuer.set) return issuer.keys;
    let keys: KeyResolver;
    try {
      keys = createLocalJWKSet(set);
    } catch (e) {
      if (issuer.keys) return issuer.keys;
      throw new Unavailable('ERR_JWKS_INVALID', `the JWKS of JWT issuer ${quote(issuer.config.issuer)} is not a valid JSON Web Key Set`, { cause: e });
    }
    issuer.set = set;
    issuer.keys = keys;
    return keys;
  }
}

function jwksUnavailable(e: unknown, issuer: IssuerState): AgentCAError {
  if (e instanceof AgentCAError) return e;
  return new Unavailable('ERR_JWKS_UNAVAILABLE', `the JWKS of JWT issuer ${quote(issuer.config.issuer)} is not available`, { cause: e });
}

/** Maps a jose failure to our codes; the message names the check, never the token. */
function fromJose(e: unknown, issuer: IssuerState): AgentCAError {
  if (e instanceof AgentCAError) return e;
  const iss = quote(issuer.config.issuer);
  if (!(e instanceof errors.JOSEError)) return new Unauthenticated('ERR_JWT_SIGNATURE', `the JWT signature could not be verified with the keys of issuer ${iss}`, { cause: e });
  const claimFailure = e instanceof errors.JWTClaimValidationFailed || e instanceof errors.JWTExpired ? e : null;
  switch (e.code) {
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return new Unauthenticated('ERR_JWT_ALGORITHM', `the JWT algorithm is not allowed for issuer ${iss}`, { cause: e });
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return new Unauthenticated('ERR_JWT_SIGNATURE', `the JWT signature does not verify with the keys of issuer ${iss}`, { cause: e });
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return new Unauthenticated('ERR_JWT_KEY_UNKNOWN', `no key of JWT issuer ${iss} matches the token's kid and alg`, { cause: e });
    case 'ERR_JWKS_INVALID':
    case 'ERR_JWK_INVALID':
      return new Unavailable('ERR_JWKS_INVALID', `the JWKS of JWT issuer ${iss} holds a key that cannot be used`, { cause: e });
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return malformed('it is not a valid JWS/JWT', e);
  }
  if (!claimFailure) return new Unauthenticated('ERR_JWT_SIGNATURE', `the JWT could not be verified with the keys of issuer ${iss}`, { cause: e });
  const { claim, reason, payload } = claimFailure;
  if (claim === 'aud')
    return new Unauthenticated('ERR_JWT_AUDIENCE', reason === 'missing' ? 'the JWT has no aud claim' : `the JWT audience does not include ${quote(issuer.config.audience)}`, { cause: e });
  if (reason === 'missing') return claim === 'exp' ? malformed('it has no exp claim, and only expiring tokens are accepted', e) : malformed(`it has no ${claim} claim`, e);
  if (reason === 'invalid') return malformed(`its ${claim} claim is not a number`, e);
  switch (claim) {
    case 'exp':
      return new Unauthenticated('ERR_JWT_EXPIRED', `the JWT expired at ${when(payload.exp)}`, { cause: e });
    case 'nbf':
      return new Unauthenticated('ERR_JWT_NOT_YET_VALID', `the JWT is not valid before ${when(payload.nbf)}`, { cause: e });
    case 'iat':
      return e instanceof errors.JWTExpired
        ? new Unauthenticated('ERR_JWT_EXPIRED', `the JWT was issued at ${when(payload.iat)}, more than ${issuer.config.maxTokenAgeSeconds} s ago`, { cause: e })
        : new Unauthenticated('ERR_JWT_NOT_YET_VALID', `the JWT was issued in the future (${when(payload.iat)})`, { cause: e });
    case 'iss':
      return new Unauthenticated('ERR_JWT_ISSUER_UNKNOWN', `the JWT issuer is not ${iss}`, { cause: e });
  }
  return new Unauthenticated('ERR_JWT_MALFORMED', `the JWT claim ${claim} is not valid`, { cause: e });
}

/** Every way `path` can name a claim, where a key may itself contain dots (`kubernetes.io`); stops at two. */
function resolveClaim(value: unknown, path: readonly string[], found: unknown[]): void {
  if (found.length > 1) return;
  if (path.length === 0) {
    found.push(value);
    return;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
  for (let i = 1; i <= path.length; i++) {
    const key = path.slice(0, i).join('.');
    if (Object.hasOwn(value, key)) resolveClaim((value as Record<string, unknown>)[key], path.slice(i), found);
  }
}

function claimSegment(claims: JWTPayload, name: string, path: readonly string[], iss: string): string {
  const found: unknown[] = [];
  resolveClaim(claims, path, found);
  if (found.length === 0) throw claimInvalid(`the JWT has no claim ${name}, which the SPIFFE ID template of issuer ${quote(iss)} needs`);
  if (found.length > 1) throw claimInvalid(`the claim path ${name} names more than one claim`);
  const v = found[0];
  if (typeof v !== 'string') throw claimInvalid(`claim ${name} is not a string`);
  if (v === '.' || v === '..' || !SEGMENT.test(v))
    throw claimInvalid(`claim ${name} is not a valid SPIFFE ID path segment: it must be [A-Za-z0-9._-]+ and not '.' or '..'`);
  return v;
}
