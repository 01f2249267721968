/**
 * SPIFFE IDs, parsed by the rules of the SPIFFE ID standard (§2): `spiffe://` + trust domain
 * (`[a-z0-9._-]`) + path of segments (`[A-Za-z0-9._-]`, none empty, `.` or `..`), no trailing
 * `/`, no percent-encoding, query, fragment, userinfo or port, at most 2048 bytes. Anything
 * else — including Unicode look-alikes — is refused, never normalised.
 */
import { InvalidRequest, PolicyDenied } from '../errors.ts';

export const MAX_SPIFFE_ID_BYTES = 2048;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

export interface SpiffeId {
  trustDomain: string;
  /** `/a/b`, or `` for the trust domain's own ID. */
  path: string;
  toString(): string;
}

function invalid(id: string, why: string): never {
  throw new InvalidRequest('ERR_SPIFFE_ID_INVALID', `${JSON.stringify(id.length > 120 ? id.slice(0, 120) + '…' : id)} is not a valid SPIFFE ID: ${why}`);
}

/** Validates a trust domain name on its own (as given to `init`). */
export function parseTrustDomain(td: string): string {
  if (td.length === 0) throw new InvalidRequest('ERR_TRUST_DOMAIN_INVALID', 'the trust domain is empty');
  if (td.length > 255) throw new InvalidRequest('ERR_TRUST_DOMAIN_INVALID', 'the trust domain is longer than 255 characters');
  if (!TRUST_DOMAIN.test(td))
    throw new InvalidRequest('ERR_TRUST_DOMAIN_INVALID', `${JSON.stringify(td)} is not a valid trust domain: use lower-case letters, digits, '.', '-' and '_'`);
  return td;
}

/** Parses a SPIFFE ID; `requirePath` (the default) refuses a bare trust-domain ID, as a workload ID must have a path. */
export function parseSpiffeId(id: string, opts: { requirePath?: boolean } = {}): SpiffeId {
  const requirePath = opts.requirePath ?? true;
  if (typeof id !== 'string' || id.length === 0) invalid(String(id ?? ''), 'it is empty');
  // A UTF-16 code unit is at most 3 UTF-8 bytes: only a long ID needs counting.
  if (id.length * 3 > MAX_SPIFFE_ID_BYTES && new TextEncoder().encode(id).length > MAX_SPIFFE_ID_BYTES) invalid(id, `it is longer than ${MAX_SPIFFE_ID_BYTES} bytes`);
  if (!id.startsWith('spiffe://')) invalid(id, "the scheme must be 'spiffe://' (lower case)");
  const rest = id.slice('spiffe://'.length);
  if (/[^\x21-\x7e]/.test(rest)) invalid(id, 'it contains a character outside printable ASCII');
  if (rest.includes('%')) invalid(id, 'percent-encoding is not allowed');
  if (rest.includes('?')) invalid(id, 'a query is not allowed');
  if (rest.includes('#')) invalid(id, 'a fragment is not allowed');
  const slash = rest.indexOf('/');
  const td = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (td.includes('@')) invalid(id, 'userinfo is not allowed');
  if (td.includes(':')) invalid(id, 'a port is not allowed');
  if (td.length === 0) invalid(id, 'the trust domain is empty');
  if (!TRUST_DOMAIN.test(td)) invalid(id, "the trust domain may only contain lower-case letters, digits, '.', '-' and '_'");
  if (path === '') {
    if (requirePath) invalid(id, 'a workload ID needs a path');
  } else {
    if (path.endsWith('/')) invalid(id, "a trailing '/' is not allowed");
    for (const seg of path.slice(1).split('/')) {
      if (seg.length === 0) invalid(id, 'empty path segments are not allowed');
      if (seg === '.' || seg === '..') invalid(id, "'.' and '..' path segments are not allowed");
      if (!SEGMENT.test(seg)) invalid(id, "path segments may only contain letters, digits, '.', '-' and '_'");
    }
  }
  // A method, not an arrow property: under tsx a named arrow is renamed (Object.defineProperty)
  // each time it is created, and this runs once per issuance.
  const text = `spiffe://${td}${path}`;
  return {
    trustDomain: td,
    path,
    toString() {
      return text;
    },
  };
}

/** Parses `id` and requires it to be in `trustDomain`. */
export function parseSpiffeIdIn(id: string, trustDomain: string): SpiffeId {
  const parsed = parseSpiffeId(id);
  if (parsed.trustDomain !== trustDomain)
    throw new PolicyDenied('ERR_SPIFFE_ID_TRUST_DOMAIN', `${id} is outside the trust domain ${trustDomain}`);
  return parsed;
}

/**
 * Matches a SPIFFE ID path against a pattern: `*` stands for exactly one segment, a final
 * `**` for one or more segments; anything else matches literally.
 */
export function pathMatches(pattern: string, path: string): boolean {
  const p = pattern.split('/').slice(1);
  const s = path.split('/').slice(1);
  for (let i = 0; i < p.length; i++) {
    const seg = p[i]!;
    if (seg === '**' && i === p.length - 1) return s.length > i;
    if (i >= s.length) return false;
    if (seg !== '*' && seg !== s[i]) return false;
  }
  return p.length === s.length;
}
