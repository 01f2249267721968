/**
 * The JWT/OIDC provisioner: a genuine platform token maps to its SPIFFE ID; every hostile
 * token (alg none, HS256 signed with the public key, forged or tampered signatures, wrong
 * issuer or audience, outside its validity, claims that would smuggle a path) is refused
 * with a stable code and a message that never repeats the token. Keys are made per run.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWK, type JSONWebKeySet, type JWTPayload } from 'jose';
import { AgentCAError, DEFAULT_PROFILE, FixedClock, InvalidRequest, PolicyDenied, Unauthenticated, Unavailable, type Profile } from '../src/index.ts';
import {
  DEFAULT_JWT_ALGORITHMS,
  JWKS_REFRESH_INTERVAL_SECONDS,
  JwtProvisioner,
  MAX_JWT_BYTES,
  parseSpiffeIdTemplate,
  type JwksSource,
  type JwtIssuerConfig,
} from '../src/attestation/jwt.ts';
import { caught, caughtSync, expectAgentError } from './support/errors.ts';
import { Prng, seedFrom } from './support/prng.ts';

const NOW = Date.parse('2026-03-01T12:00:00Z') / 1000;
const K8S = 'https://kubernetes.default.svc.cluster.local';
const CI = 'https://ci.example.com';
const AUD = 'agentca';
const K8S_TEMPLATE = 'spiffe://example.org/ns/{kubernetes.io.namespace}/sa/{kubernetes.io.serviceaccount.name}';

const K8S_PROFILE: Profile = { ...DEFAULT_PROFILE, name: 'k8s', allow: ['/ns/*/sa/*'], deny: ['/ns/kube-system/**'] };
const CI_PROFILE: Profile = { ...DEFAULT_PROFILE, name: 'ci', allow: ['/ci/**'], deny: [] };
const PROFILES = new Map([K8S_PROFILE, CI_PROFILE, DEFAULT_PROFILE].map((p) => [p.name, p]));
const profile = (name: string): Profile => {
  const p = PROFILES.get(name);
  if (!p) throw new InvalidRequest('ERR_PROFILE_UNKNOWN', `there is no profile named ${JSON.stringify(name)}`);
  return p;
};

type Alg = 'RS256' | 'ES256' | 'EdDSA';
interface Key {
  alg: Alg;
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}
async function makeKey(alg: Alg, kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {});
  return { alg, kid, privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/**
 * A JWKS endpoint with a cache in front, like the real sources: it serves what it last
 * fetched until asked to refresh, when it picks up what the platform now publishes.
 */
class FakeJwks implements JwksSource {
  published: JSONWebKeySet;
  served: JSONWebKeySet;
  calls = 0;
  refreshes = 0;
  fail: Error | null = null;
  constructor(keys: JWK[]) {
    this.published = this.served = { keys };
  }
  publish(keys: JWK[]): void {
    this.published = { keys };
  }
  async getKeys(o?: { refresh?: boolean }): Promise<JSONWebKeySet> {
    this.calls++;
    if (o?.refresh) this.refreshes++;
    if (this.fail) throw this.fail;
    if (o?.refresh) this.served = this.published;
    return this.served;
  }
}

const b64url = (s: string | Uint8Array) => Buffer.from(s).toString('base64url');
const k8sClaims = (ns = 'payments', sa = 'invoice-bot'): JWTPayload => ({
  iss: K8S,
  aud: [AUD],
  sub: `system:serviceaccount:${ns}:${sa}`,
  iat: NOW - 10,
  nbf: NOW - 10,
  exp: NOW + 3600,
  'kubernetes.io': { namespace: ns, pod: { name: `${sa}-7d9f`, uid: '0b9e' }, serviceaccount: { name: sa, uid: '5f1c' } },
});

async function sign(key: Key, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }).sign(key.privateKey);
}

/** A JWS made by hand: any header, any payload, any signature. */
function craft(header: object, claims: object, signature = ''): string {
  return `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}.${signature}`;
}

let rsa: Key;
let ec: Key;
let ed: Key;
let rotated: Key;
let stranger: Key;

beforeAll(async () => {
  [rsa, ec, ed, rotated, stranger] = await Promise.all([
    makeKey('RS256', 'k8s-1'),
    makeKey('ES256', 'ci-es'),
    makeKey('EdDSA', 'ci-ed'),
    makeKey('RS256', 'k8s-2'),
    makeKey('RS256', 'k8s-1'),
  ]);
});

function setup(o: { k8s?: Partial<JwtIssuerConfig>; k8sKeys?: JWK[] } = {}) {
  const clock = new FixedClock(NOW * 1000);
  const k8sJwks = new FakeJwks(o.k8sKeys ?? [rsa.jwk]);
  const ciJwks = new FakeJwks([ec.jwk, ed.jwk]);
  const jwt = new JwtProvisioner({
    trustDomain: 'example.org',
    clock,
    profile,
    issuers: [
      { issuer: K8S, audience: AUD, jwks: k8sJwks, spiffeIdTemplate: K8S_TEMPLATE, profile: 'k8s', ...o.k8s },
      { issuer: CI, audience: AUD, jwks: ciJwks, algorithms: ['ES256', 'EdDSA'], spiffeIdTemplate: 'spiffe://example.org/ci/{repository_owner}/{job}', profile: 'ci' },
    ],
  });
  return { jwt, clock, k8sJwks, ciJwks };
}

/** The token must be refused; the message names the check and repeats no part of the token. */
async function refused(jwt: JwtProvisioner, token: string): Promise<AgentCAError> {
  const e = await caught(() => jwt.authorize(token));
  for (const part of token.split('.')) if (part.length >= 8) expect(e.message).not.toContain(part);
  return e;
}

describe('JwtProvisioner: genuine tokens', () => {
  it('maps a Kubernetes service-account token to spiffe://example.org/ns/payments/sa/invoice-bot', async () => {
    const { jwt } = setup();
    const a = await jwt.authorize(await sign(rsa, k8sClaims()));
    expect(a).toEqual({
      spiffeId: 'spiffe://example.org/ns/payments/sa/invoice-bot',
      profile: 'k8s',
      taskId: null,
      taskDeadline: null,
      onBehalfOf: null,
      method: 'jwt',
      actor: `jwt:${K8S}#system:serviceaccount:payments:invoice-bot`,
    });
  });

  it.each(['ES256', 'EdDSA'] as const)('maps a CI token signed with %s', async (alg) => {
    const { jwt } = setup();
    const key = alg === 'ES256' ? ec : ed;
    const a = await jwt.authorize(await sign(key, { iss: CI, aud: AUD, sub: 'repo:acme/billing:ref:refs/heads/main', repository_owner: 'acme', job: 'deploy', exp: NOW + 300 }));
    expect(a.spiffeId).toBe('spiffe://example.org/ci/acme/deploy');
    expect(a.actor).toBe(`jwt:${CI}#repo:acme/billing:ref:refs/heads/main`);
  });

  it('fills {sub} and literal segments', async () => {
    const { jwt } = setup({ k8s: { spiffeIdTemplate: 'spiffe://example.org/ns/workload/sa/{sub}' } });
    const a = await jwt.authorize(await sign(rsa, { ...k8sClaims(), sub: 'invoice-bot' }));
    expect(a.spiffeId).toBe('spiffe://example.org/ns/workload/sa/invoice-bot');
  });

  it('accepts a token with surrounding whitespace (a token file with a newline)', async () => {
    const { jwt } = setup();
    expect((await jwt.authorize(`${await sign(rsa, k8sClaims())}\n`)).spiffeId).toBe('spiffe://example.org/ns/payments/sa/invoice-bot');
  });

  it('tries every key when the token has no kid and several keys fit', async () => {
    const noKid = (k: Key): JWK => ({ ...k.jwk, kid: undefined });
    const { jwt } = setup({ k8sKeys: [noKid(stranger), noKid(rsa)] });
    const token = await new SignJWT(k8sClaims()).setProtectedHeader({ alg: 'RS256' }).sign(rsa.privateKey);
    expect((await jwt.authorize(token)).spiffeId).toBe('spiffe://example.org/ns/payments/sa/invoice-bot');
    const forged = await new SignJWT(k8sClaims()).setProtectedHeader({ alg: 'RS256' }).sign(rotated.privateKey);
    expectAgentError(await refused(jwt, forged), Unauthenticated, 'ERR_JWT_SIGNATURE', `the JWT signature does not verify with the keys of issuer "${K8S}"`);
  });

  it('truncates the actor to 200 printable characters', async () => {
    const { jwt } = setup();
    const a = await jwt.authorize(await sign(rsa, { ...k8sClaims(), sub: `é${'x'.repeat(300)}` }));
    expect(a.actor).toBe(`jwt:${K8S}#?${'x'.repeat(200 - K8S.length - 6)}`);
    expect(a.actor).toHaveLength(200);
  });
});

describe('JwtProvisioner: hostile tokens', () => {
  const NOT_ALLOWED = `alg "HS256" is not allowed for JWT issuer "${K8S}" (allowed: RS256, ES256, ES384, EdDSA)`;

  it.each(['none', 'None', 'NONE', 'nOnE'])('refuses alg %s, with or without a signature', async (alg) => {
    const { jwt } = setup();
    for (const sig of ['', b64url('x'.repeat(32))]) {
      const e = await refused(jwt, craft({ alg, typ: 'JWT' }, k8sClaims(), sig));
      expectAgentError(e, Unauthenticated, 'ERR_JWT_ALGORITHM', 'unsigned JWTs (alg none) are never accepted');
    }
  });

  it('refuses HS256 signed with the RSA public key as the HMAC secret (key confusion)', async () => {
    const { jwt } = setup();
    const pem = await exportSPKI(rsa.publicKey);
    const secrets = [
      new TextEncoder().encode(pem),
      new TextEncoder().encode(pem.trim()),
      new TextEncoder().encode(JSON.stringify(rsa.jwk)),
      Buffer.from(rsa.jwk.n!, 'base64url'),
    ];
    for (const secret of secrets) {
      for (const header of [{ alg: 'HS256', kid: rsa.kid }, { alg: 'HS256' }]) {
        const token = await new SignJWT(k8sClaims()).setProtectedHeader(header).sign(secret);
        expectAgentError(await refused(jwt, token), Unauthenticated, 'ERR_JWT_ALGORITHM', NOT_ALLOWED);
      }
    }
  });

  it('refuses an algorithm outside the issuer allow-list', async () => {
    const { jwt } = setup();
    const token = await sign(rsa, { ...k8sClaims(), iss: CI, repository_owner: 'acme', job: 'deploy' });
    expectAgentError(await refused(jwt, token), Unauthenticated, 'ERR_JWT_ALGORITHM', `alg "RS256" is not allowed for JWT issuer "${CI}" (allowed: ES256, EdDSA)`);
  });

  it('refuses an unknown issuer, before any key is fetched', async () => {
    const { jwt, k8sJwks } = setup();
    const e = await refused(jwt, await sign(rsa, { ...k8sClaims(), iss: 'https://evil.example' }));
    expectAgentError(e, Unauthenticated, 'ERR_JWT_ISSUER_UNKNOWN', 'no JWT issuer "https://evil.example" is configured');
    expectAgentError(await refused(jwt, await sign(rsa, { ...k8sClaims(), iss: `${K8S}/` })), Unauthenticated, 'ERR_JWT_ISSUER_UNKNOWN', `no JWT issuer "${K8S}/" is configured`);
    expect(k8sJwks.calls).toBe(0);
  });

  it('refuses a token with no iss', async () => {
    const { jwt } = setup();
    const { iss: _, ...claims } = k8sClaims();
    expectAgentError(await refused(jwt, await sign(rsa, claims)), Unauthenticated, 'ERR_JWT_MALFORMED', 'the JWT is malformed: it has no iss claim');
  });

  it('refuses another audience, and a token with none', async () => {
    const { jwt } = setup();
    for (const aud of ['vault', ['vault', 'kubernetes'], 'agentca2', 'AGENTCA']) {
      expectAgentError(await refused(jwt, await sign(rsa, { ...k8sClaims(), aud })), Unauthenticated, 'ERR_JWT_AUDIENCE', 'the JWT audience does not include "agentca"');
    }
    const { aud: _, ...noAud } = k8sClaims();
    expectAgentError(await refused(jwt, await sign(rsa, noAud)), Unauthenticated, 'ERR_JWT_AUDIENCE', 'the JWT has no aud claim');
    expect((await jwt.authorize(await sign(rsa, { ...k8sClaims(), aud: ['vault', AUD] }))).profile).toBe('k8s');
  });

  it('refuses a token expired beyond the 60 s skew, and accepts one within it', async () => {
    const { jwt } = setup();
    for (const exp of [NOW - 61, NOW - 3600]) {
      const e = await refused(jwt, await sign(rsa, { ...k8sClaims(), iat: NOW - 7200, nbf: NOW - 7200, exp }));
      expectAgentError(e, Unauthenticated, 'ERR_JWT_EXPIRED', `the JWT expired at ${new Date(exp * 1000).toISOString()}`);
    }
    for (const exp of [NOW - 59, NOW - 1, NOW]) {
      expect((await jwt.authorize(await sign(rsa, { ...k8sClaims(), iat: NOW - 7200, nbf: NOW - 7200, exp }))).spiffeId).toContain('/ns/payments/');
    }
  });

  it('refuses a token not valid yet (nbf beyond the skew), and accepts one within it', async () => {
    const { jwt } = setup();
    for (const nbf of [NOW + 61, NOW + 3600]) {
      const e = await refused(jwt, await sign(rsa, { ...k8sClaims(), iat: NOW, nbf }));
      expectAgentError(e, Unauthenticated, 'ERR_JWT_NOT_YET_VALID', `the JWT is not valid before ${new Date(nbf * 1000).toISOString()}`);
    }
    expect((await jwt.authorize(await sign(rsa, { ...k8sClaims(), iat: NOW, nbf: NOW + 59 }))).profile).toBe('k8s');
    const far = await refused(jwt, await sign(rsa, { ...k8sClaims(), nbf: 1e300 }));
    expectAgentError(far, Unauthenticated, 'ERR_JWT_NOT_YET_VALID', 'the JWT is not valid before 1e+300');
  });

  it('refuses a token without exp, or with a non-numeric one', async () => {
    const { jwt } = setup();
    const { exp: _, ...claims } = k8sClaims();
    expectAgentError(await refused(jwt, await sign(rsa, claims)), Unauthenticated, 'ERR_JWT_MALFORMED', 'the JWT is malformed: it has no exp claim, and only expiring tokens are accepted');
    expectAgentError(await refused(jwt, await sign(rsa, { ...k8sClaims(), exp: String(NOW + 60) as unknown as number })), Unauthenticated, 'ERR_JWT_MALFORMED', 'the JWT is malformed: its exp claim is not a number');
  });

  it('enforces maxTokenAgeSeconds when set', async () => {
    const { jwt } = setup({ k8s: { maxTokenAgeSeconds: 600 } });
    expect((await jwt.authorize(await sign(rsa, { ...k8sClaims(), iat: NOW - 600 }))).profile).toBe('k8s');
    const old = await refused(jwt, await sign(rsa, { ...k8sClaims(), iat: NOW - 661 }));
    expectAgentError(old, Unauthenticated, 'ERR_JWT_EXPIRED', `the JWT was issued at ${new Date((NOW - 661) * 1000).toISOString()}, more than 600 s ago`);
    const { iat: _, ...noIat } = k8sClaims();
    expectAgentError(await refused(jwt, await sign(rsa, noIat)), Unauthenticated, 'ERR_JWT_MALFORMED', 'the JWT is malformed: it has no iat claim');
  });

  it.each(['RS256', 'ES256', 'EdDSA'] as const)('refuses a %s token with a flipped signature byte', async (alg) => {
    const { jwt } = setup();
    const key = { RS256: rsa, ES256: ec, EdDSA: ed }[alg];
    const claims = alg === 'RS256' ? k8sClaims() : { iss: CI, aud: AUD, sub: 's', repository_owner: 'acme', job: 'deploy', exp: NOW + 60 };
    const [h, p, s] = (await sign(key, claims)).split('.') as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    sig[sig.length >> 1]! ^= 0x01;
    const e = await refused(jwt, `${h}.${p}.${sig.toString('base64url')}`);
    const iss = alg === 'RS256' ? K8S : CI;
    expectAgentError(e, Unauthenticated, 'ERR_JWT_SIGNATURE', `the JWT signature does not verify with the keys of issuer "${iss}"`);
  });

  it('refuses claims swapped under a genuine signature', async () => {
    const { jwt } = setup();
    const [h, , s] = (await sign(rsa, k8sClaims())).split('.');
    const e = await refused(jwt, `${h}.${b64url(JSON.stringify(k8sClaims('kube-admin', 'root')))}.${s}`);
    expectAgentError(e, Unauthenticated, 'ERR_JWT_SIGNATURE', `the JWT signature does not verify with the keys of issuer "${K8S}"`);
  });

  it('refuses a token signed by another key under a known kid', async () => {
    const { jwt } = setup();
    const e = await refused(jwt, await sign(stranger, k8sClaims()));
    expectAgentError(e, Unauthenticated, 'ERR_JWT_SIGNATURE', `the JWT signature does not verify with the keys of issuer "${K8S}"`);
  });

  it.each([
    ['empty', '', 'it is empty'],
    ['one part', 'abc', 'it is not a compact JWS (three base64url parts)'],
    ['two parts', 'abc.def', 'it is not a compact JWS (three base64url parts)'],
    ['four parts', 'a.b.c.d', 'it is not a compact JWS (three base64url parts)'],
    ['JWE (five parts)', 'a.b.c.d.e', 'it is not a compact JWS (three base64url parts)'],
    ['padding', 'eyJhbGciOiJSUzI1NiJ9.e30=.sig', 'it is not a compact JWS (three base64url parts)'],
    ['standard base64', 'eyJhbGciOiJSUzI1NiJ9.e3+/.sig', 'it is not a compact JWS (three base64url parts)'],
    ['header not JSON', `${b64url('{alg')}.${b64url('{}')}.c2ln`, 'its header or claims are not a base64url JSON object'],
    ['claims not JSON', `${b64url('{"alg":"RS256"}')}.${b64url('not json')}.c2ln`, 'its header or claims are not a base64url JSON object'],
    ['claims an array', `${b64url('{"alg":"RS256"}')}.${b64url('[1]')}.c2ln`, 'its header or claims are not a base64url JSON object'],
    ['no alg', craft({ typ: 'JWT' }, { iss: K8S }, 'c2ln'), 'the header has no alg'],
    ['alg a number', craft({ alg: 256 }, { iss: K8S }, 'c2ln'), 'the header has no alg'],
    ['iss a number', craft({ alg: 'RS256' }, { iss: 7 }, 'c2ln'), 'it has no iss claim'],
    ['too long', `${b64url('{"alg":"RS256"}')}.${'A'.repeat(MAX_JWT_BYTES)}.c2ln`, `it is longer than ${MAX_JWT_BYTES} bytes`],
  ])('refuses a malformed token: %s', async (_label, token, why) => {
    const { jwt } = setup();
    expectAgentError(await refused(jwt, token), Unauthenticated, 'ERR_JWT_MALFORMED', `the JWT is malformed: ${why}`);
  });

  it('refuses input that is not a string', async () => {
    const { jwt } = setup();
    for (const v of [undefined, null, 42, {}, ['a.b.c']]) {
      expectAgentError(await caught(() => jwt.authorize(v as unknown as string)), Unauthenticated, 'ERR_JWT_MALFORMED', 'the JWT is malformed: it is empty');
    }
  });
});

describe('JwtProvisioner: key rotation and the JWKS', () => {
  it('refreshes once on an unknown kid and picks up the rotated key', async () => {
    const { jwt, k8sJwks } = setup();
    await jwt.authorize(await sign(rsa, k8sClaims()));
    expect(k8sJwks.refreshes).toBe(0);
    k8sJwks.publish([rsa.jwk, rotated.jwk]);
    const a = await jwt.authorize(await sign(rotated, k8sClaims('payments', 'ledger')));
    expect(a.spiffeId).toBe('spiffe://example.org/ns/payments/sa/ledger');
    expect(k8sJwks.refreshes).toBe(1);
    await jwt.authorize(await sign(rotated, k8sClaims()));
    expect(k8sJwks.refreshes).toBe(1);
  });

  it('refreshes at most once per 30 s per issuer', async () => {
    const { jwt, clock, k8sJwks } = setup();
    const unknown = await makeKey('RS256', 'k8s-9');
    const token = await sign(unknown, k8sClaims());
    const why = `no key of JWT issuer "${K8S}" matches the token's kid and alg`;
    expectAgentError(await refused(jwt, token), Unauthenticated, 'ERR_JWT_KEY_UNKNOWN', why);
    expect(k8sJwks.refreshes).toBe(1);
    expectAgentError(await refused(jwt, token), Unauthenticated, 'ERR_JWT_KEY_UNKNOWN', why);
    clock.advance((JWKS_REFRESH_INTERVAL_SECONDS - 1) * 1000);
    expectAgentError(await refused(jwt, token), Unauthenticated, 'ERR_JWT_KEY_UNKNOWN', why);
    expect(k8sJwks.refreshes).toBe(1);
    clock.advance(1000);
    k8sJwks.publish([rsa.jwk, unknown.jwk]);
    expect((await jwt.authorize(token)).profile).toBe('k8s');
    expect(k8sJwks.refreshes).toBe(2);
  });

  it('shares one refresh between concurrent misses', async () => {
    const { jwt, k8sJwks } = setup();
    k8sJwks.publish([rsa.jwk, rotated.jwk]);
    const tokens = await Promise.all(Array.from({ length: 5 }, () => sign(rotated, k8sClaims())));
    const results = await Promise.all(tokens.map((t) => jwt.authorize(t)));
    expect(results.every((r) => r.spiffeId === 'spiffe://example.org/ns/payments/sa/invoice-bot')).toBe(true);
    expect(k8sJwks.refreshes).toBe(1);
  });

  it('stops accepting a key once the source no longer serves it', async () => {
    const { jwt, k8sJwks } = setup({ k8sKeys: [rsa.jwk, rotated.jwk] });
    const old = await sign(rsa, k8sClaims());
    await jwt.authorize(old);
    k8sJwks.served = { keys: [rotated.jwk] };
    k8sJwks.published = k8sJwks.served;
    expectAgentError(await refused(jwt, old), Unauthenticated, 'ERR_JWT_KEY_UNKNOWN', `no key of JWT issuer "${K8S}" matches the token's kid and alg`);
  });

  it('reports a JWKS it cannot get or use as Unavailable, and keeps the last good keys', async () => {
    const { jwt, k8sJwks } = setup();
    const token = await sign(rsa, k8sClaims());
    k8sJwks.fail = new Error('connect ECONNREFUSED');
    expectAgentError(await caught(() => jwt.authorize(token)), Unavailable, 'ERR_JWKS_UNAVAILABLE', `the JWKS of JWT issuer "${K8S}" is not available`);
    k8sJwks.fail = new Unavailable('ERR_JWKS_UNAVAILABLE', 'cannot fetch the JWKS from https://k8s.example/jwks: HTTP status 500');
    expectAgentError(await caught(() => jwt.authorize(token)), Unavailable, 'ERR_JWKS_UNAVAILABLE', 'cannot fetch the JWKS from https://k8s.example/jwks: HTTP status 500');
    k8sJwks.fail = null;
    k8sJwks.served = { keys: 'nope' } as unknown as JSONWebKeySet;
    expectAgentError(await caught(() => jwt.authorize(token)), Unavailable, 'ERR_JWKS_INVALID', `the JWKS of JWT issuer "${K8S}" is not a valid JSON Web Key Set`);
    k8sJwks.served = { keys: [rsa.jwk] };
    await jwt.authorize(token);
    k8sJwks.fail = new Error('timeout');
    expect((await jwt.authorize(token)).profile).toBe('k8s');
    k8sJwks.fail = null;
    k8sJwks.served = { keys: 'nope' } as unknown as JSONWebKeySet;
    expect((await jwt.authorize(token)).profile).toBe('k8s');
  });

  it('never uses a private key found in the JWKS', async () => {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const priv = { ...(await exportJWK(privateKey)), kid: 'k8s-1' };
    const { jwt } = setup({ k8sKeys: [priv] });
    const e = await caught(async () => jwt.authorize(await new SignJWT(k8sClaims()).setProtectedHeader({ alg: 'RS256', kid: 'k8s-1' }).sign(privateKey)));
    expectAgentError(e, Unavailable, 'ERR_JWKS_INVALID', `the JWKS of JWT issuer "${K8S}" holds a key that cannot be used`);
  });
});

describe('JwtProvisioner: claims to SPIFFE ID', () => {
  const claimRule = "it must be [A-Za-z0-9._-]+ and not '.' or '..'";
  it.each([
    ['a slash', 'pay/ments'],
    ['a path climb', '..'],
    ['a dot', '.'],
    ['a climb inside', '../admin'],
    ['percent-encoding', 'pay%2Fments'],
    ['a Cyrillic look-alike', 'paym\u0435nts'],
    ['a full-width letter', '\uff50ayments'],
    ['a NUL', 'pay\u0000ments'],
    ['a space', 'pay ments'],
    ['empty', ''],
    ['a colon', 'system:masters'],
  ])('refuses a namespace claim with %s, never normalising it', async (_label, ns) => {
    const { jwt } = setup();
    const e = await refused(jwt, await sign(rsa, k8sClaims(ns)));
    expectAgentError(e, PolicyDenied, 'ERR_JWT_CLAIM_INVALID', `claim kubernetes.io.namespace is not a valid SPIFFE ID path segment: ${claimRule}`);
  });

  it('refuses a claim the template needs that is missing or not a string', async () => {
    const { jwt } = setup();
    const missing = k8sClaims();
    delete (missing['kubernetes.io'] as Record<string, unknown>)['namespace'];
    expectAgentError(
      await refused(jwt, await sign(rsa, missing)),
      PolicyDenied,
      'ERR_JWT_CLAIM_INVALID',
      `the JWT has no claim kubernetes.io.namespace, which the SPIFFE ID template of issuer "${K8S}" needs`,
    );
    for (const v of [7, true, null, ['payments'], { name: 'payments' }]) {
      const c = k8sClaims();
      (c['kubernetes.io'] as Record<string, unknown>)['namespace'] = v;
      expectAgentError(await refused(jwt, await sign(rsa, c)), PolicyDenied, 'ERR_JWT_CLAIM_INVALID', 'claim kubernetes.io.namespace is not a string');
    }
  });

  it('resolves only own claims, never inherited properties', async () => {
    const { jwt } = setup({ k8s: { spiffeIdTemplate: 'spiffe://example.org/ns/{constructor.name}/sa/{sub}' } });
    expectAgentError(
      await refused(jwt, await sign(rsa, { ...k8sClaims(), sub: 'x' })),
      PolicyDenied,
      'ERR_JWT_CLAIM_INVALID',
      `the JWT has no claim constructor.name, which the SPIFFE ID template of issuer "${K8S}" needs`,
    );
  });

  it('refuses a claim path that names two claims', async () => {
    const { jwt } = setup();
    const claims = { ...k8sClaims(), kubernetes: { io: { namespace: 'kube-system' } } };
    expectAgentError(await refused(jwt, await sign(rsa, claims)), PolicyDenied, 'ERR_JWT_CLAIM_INVALID', 'the claim path kubernetes.io.namespace names more than one claim');
  });

  it('refuses a token with no sub', async () => {
    const { jwt } = setup();
    const { sub: _, ...claims } = k8sClaims();
    expectAgentError(await refused(jwt, await sign(rsa, claims)), PolicyDenied, 'ERR_JWT_CLAIM_INVALID', 'the JWT has no sub claim, which the audit log needs');
  });

  it('refuses an ID outside the profile', async () => {
    const { jwt } = setup();
    const e = await refused(jwt, await sign(rsa, k8sClaims('kube-system', 'admin')));
    expectAgentError(e, PolicyDenied, 'ERR_SPIFFE_ID_NOT_ALLOWED', 'spiffe://example.org/ns/kube-system/sa/admin is not allowed by profile k8s');
  });

  it('refuses an ID the SPIFFE rules refuse (over 2048 bytes)', async () => {
    const { jwt } = setup();
    const e = await refused(jwt, await sign(rsa, k8sClaims('n'.repeat(2100))));
    expect(e).toBeInstanceOf(InvalidRequest);
    expect(e.code).toBe('ERR_SPIFFE_ID_INVALID');
  });
});

describe('JwtProvisioner: issuer configuration', () => {
  const base = (c: Partial<JwtIssuerConfig>): JwtIssuerConfig => ({
    issuer: K8S,
    audience: AUD,
    jwks: new FakeJwks([]),
    spiffeIdTemplate: K8S_TEMPLATE,
    profile: 'k8s',
    ...c,
  });
  const make = (...issuers: JwtIssuerConfig[]) => () => new JwtProvisioner({ trustDomain: 'example.org', clock: new FixedClock(0), profile, issuers });
  const where = `jwt issuer "${K8S}"`;

  it('defaults the allow-list to asymmetric algorithms', () => {
    expect(DEFAULT_JWT_ALGORITHMS).toEqual(['RS256', 'ES256', 'ES384', 'EdDSA']);
    expect(make(base({}))).not.toThrow();
  });

  it.each([
    [['none'], `${where}: alg none is never allowed`],
    [['RS256', 'NONE'], `${where}: alg none is never allowed`],
    [['HS256'], `${where}: HS256 is never allowed: an HMAC secret cannot come from a public JWKS`],
    [['RS256', 'hs512'], `${where}: hs512 is never allowed: an HMAC secret cannot come from a public JWKS`],
    [['RS1'], `${where}: unknown algorithm "RS1" (use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519)`],
    [[], `${where}: algorithms must be a non-empty list`],
  ])('refuses algorithms %j', (algorithms, message) => {
    expectAgentError(caughtSync(make(base({ algorithms }))), InvalidRequest, 'ERR_JWT_ISSUER_CONFIG_INVALID', message);
  });

  it.each([
    ['spiffe://other.org/ns/{sub}', `${where}: the SPIFFE ID template is outside the trust domain example.org`],
    ['spiffe://example.org/ns/{a}-{b}', `${where}: the SPIFFE ID template "spiffe://example.org/ns/{a}-{b}" is not valid: placeholder "{a}-{b}" must be a whole path segment of the form {claim} or {claim.path} ([A-Za-z0-9_-] parts)`],
    ['spiffe://example.org/ns/{a..b}', `${where}: the SPIFFE ID template "spiffe://example.org/ns/{a..b}" is not valid: placeholder "{a..b}" must be a whole path segment of the form {claim} or {claim.path} ([A-Za-z0-9_-] parts)`],
    ['spiffe://example.org/ns/{sub', `${where}: the SPIFFE ID template "spiffe://example.org/ns/{sub" is not valid: placeholder "{sub" must be a whole path segment of the form {claim} or {claim.path} ([A-Za-z0-9_-] parts)`],
    ['spiffe://example.org/ns/{}', `${where}: the SPIFFE ID template "spiffe://example.org/ns/{}" is not valid: placeholder "{}" must be a whole path segment of the form {claim} or {claim.path} ([A-Za-z0-9_-] parts)`],
    ['spiffe://example.org/../{sub}', `${where}: the SPIFFE ID template "spiffe://example.org/../{sub}" is not valid: path segment ".." is not valid: use letters, digits, '.', '-' and '_', and not '.' or '..'`],
    ['spiffe://example.org//{sub}', `${where}: the SPIFFE ID template "spiffe://example.org//{sub}" is not valid: empty path segments are not allowed`],
    ['spiffe://example.org/{sub}/', `${where}: the SPIFFE ID template "spiffe://example.org/{sub}/" is not valid: empty path segments are not allowed`],
    ['spiffe://example.org', `${where}: the SPIFFE ID template "spiffe://example.org" is not valid: it has no path`],
    ['https://example.org/{sub}', `${where}: the SPIFFE ID template "https://example.org/{sub}" is not valid: it must start with 'spiffe://'`],
    ['spiffe://Example.org/{sub}', `${where}: the SPIFFE ID template "spiffe://Example.org/{sub}" is not valid: the trust domain may only contain lower-case letters, digits, '.', '-' and '_'`],
  ])('refuses the template %s', (spiffeIdTemplate, message) => {
    expectAgentError(caughtSync(make(base({ spiffeIdTemplate }))), InvalidRequest, 'ERR_JWT_ISSUER_CONFIG_INVALID', message);
  });

  it('parses a template into literals and claim paths', () => {
    expect(parseSpiffeIdTemplate(K8S_TEMPLATE)).toEqual({
      trustDomain: 'example.org',
      segments: [
        { literal: 'ns' },
        { claim: 'kubernetes.io.namespace', path: ['kubernetes', 'io', 'namespace'] },
        { literal: 'sa' },
        { claim: 'kubernetes.io.serviceaccount.name', path: ['kubernetes', 'io', 'serviceaccount', 'name'] },
      ],
    });
  });

  it('refuses a duplicate issuer, an unknown profile, a bad max age, a missing source', () => {
    expectAgentError(caughtSync(make(base({}), base({}))), InvalidRequest, 'ERR_JWT_ISSUER_CONFIG_INVALID', `jwt issuer "${K8S}" is configured twice`);
    expectAgentError(caughtSync(make(base({ profile: 'nope' }))), InvalidRequest, 'ERR_PROFILE_UNKNOWN', 'there is no profile named "nope"');
    expectAgentError(caughtSync(make(base({ maxTokenAgeSeconds: 0 }))), InvalidRequest, 'ERR_JWT_ISSUER_CONFIG_INVALID', `${where}: maxTokenAgeSeconds must be a whole number of seconds, at least 1`);
    expectAgentError(caughtSync(make(base({ jwks: undefined as unknown as JwksSource }))), InvalidRequest, 'ERR_JWT_ISSUER_CONFIG_INVALID', `${where}: a JWKS source is required`);
    expectAgentError(caughtSync(make(base({ issuer: '' }))), InvalidRequest, 'ERR_JWT_ISSUER_CONFIG_INVALID', 'a JWT issuer must be 1-1024 printable ASCII characters');
    expectAgentError(caughtSync(make(base({ audience: ' ' }))), InvalidRequest, 'ERR_JWT_ISSUER_CONFIG_INVALID', `${where}: the audience must be 1-1024 printable ASCII characters`);
  });
});

/**
 * Property test: any mutation of a genuine token is refused with an AgentCAError (never a
 * TypeError or RangeError, never accepted). Replay with JWT_FUZZ_SEED=<n>.
 */
describe('JwtProvisioner: mutated tokens', () => {
  const SEED = seedFrom('JWT_FUZZ_SEED');
  it(`refuses every mutation with an AgentCAError (seed ${SEED})`, async () => {
    const { jwt } = setup();
    const prng = new Prng(SEED);
    const good = await sign(rsa, k8sClaims());
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}"\u0435';
    for (let i = 0; i < 2000; i++) {
      let t = good;
      const n = 1 + prng.int(3);
      for (let j = 0; j < n; j++) {
        const at = prng.int(t.length);
        switch (prng.int(4)) {
          case 0:
            t = t.slice(0, at) + prng.pick([...alphabet]) + t.slice(at + 1);
            break;
          case 1:
            t = t.slice(0, at) + t.slice(at + 1);
            break;
          case 2:
            t = t.slice(0, at) + prng.pick([...alphabet]) + t.slice(at);
            break;
          default:
            t = t.slice(0, at);
        }
      }
      if (t === good) continue;
      let outcome: unknown;
      try {
        outcome = await jwt.authorize(t);
      } catch (e) {
        outcome = e;
      }
      if (outcome instanceof AgentCAError) continue;
      // base64url has slack bits: a change in the last character may decode to the same bytes.
      const same = (x: string) => x.split('.').map((p) => Buffer.from(p, 'base64url').toString('hex')).join('.');
      if (same(t.trim()) === same(good) && !(outcome instanceof Error)) continue;
      throw new Error(`seed ${SEED}: mutation ${i} gave ${String(outcome)}`, { cause: outcome });
    }
  });
});
