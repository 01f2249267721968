/**
 * JWKS sources and the `jwtIssuers` section of agentca.json: the file source reloads on
 * change, the URL source caches, refreshes, keeps its last good set, caps size and time
 * (against a real HTTP server on 127.0.0.1:0); the config refuses what the provisioner would.
 */
import { createSign, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentCAError, DEFAULT_PROFILE, FixedClock, InvalidRequest, JwtProvisioner, Unavailable } from '@agentca/core';
import { CONFIG_FILE, defaultConfig, jwtIssuersFromConfig, readConfig, type CaConfig, type JwtIssuerConfigEntry } from '../src/config.ts';
import { JWKS_MAX_BYTES, JWKS_RETRY_SECONDS, checkJwksUrl, fileJwksSource, urlJwksSource } from '../src/jwks.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'agentca-jwks-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function caught(fn: () => unknown): Promise<AgentCAError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AgentCAError);
    return e as AgentCAError;
  }
  throw new Error('expected an AgentCAError, got success');
}

function expectError(e: AgentCAError, cls: abstract new (...a: never[]) => AgentCAError, code: string, message: string | RegExp): void {
  expect(e).toBeInstanceOf(cls);
  expect(e.code).toBe(code);
  if (typeof message === 'string') expect(e.message).toBe(message);
  else expect(e.message).toMatch(message);
}

function rsaKey(kid: string): { privateKey: KeyObject; jwk: Record<string, unknown> } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}
const jwks = (...kids: string[]) => ({ keys: kids.map((kid) => ({ kty: 'EC', crv: 'P-256', kid, x: 'x', y: 'y' })) });
const kidsOf = (s: { keys: { kid?: string }[] }) => s.keys.map((k) => k.kid);

describe('fileJwksSource', () => {
  it('serves the file, the same object while it is unchanged, and re-reads it when it changes', async () => {
    const path = join(dir, 'jwks.json');
    writeFileSync(path, JSON.stringify(jwks('a')));
    utimesSync(path, 1_000_000, 1_000_000);
    const source = fileJwksSource(path);
    const first = await source.getKeys();
    expect(kidsOf(first)).toEqual(['a']);
    expect(await source.getKeys()).toBe(first);
    writeFileSync(path, JSON.stringify(jwks('b', 'c')));
    utimesSync(path, 1_000_100, 1_000_100);
    const second = await source.getKeys();
    expect(kidsOf(second)).toEqual(['b', 'c']);
    utimesSync(path, 1_000_200, 1_000_200);
    expect(await source.getKeys()).toBe(second);
  });

  it('keeps the last good set when the file turns invalid or disappears', async () => {
    const path = join(dir, 'jwks.json');
    writeFileSync(path, JSON.stringify(jwks('a')));
    const source = fileJwksSource(path);
    const good = await source.getKeys();
    for (const [i, text] of ['{"keys": [', '[]', JSON.stringify({ keys: [{ kty: 'RSA', n: 'n', e: 'AQAB', d: 'secret' }] })].entries()) {
      writeFileSync(path, text);
      utimesSync(path, 2_000_000 + i, 2_000_000 + i);
      expect(await source.getKeys()).toBe(good);
    }
    unlinkSync(path);
    expect(await source.getKeys()).toBe(good);
  });

  it.each([
    ['missing', null, 'ENOENT'],
    ['not JSON', '{"keys": [', 'it is not valid JSON'],
    ['not a key set', '{"kty": "RSA"}', 'it is not a JSON Web Key Set (no keys list)'],
    ['a key without kty', '{"keys": [{"n": "x"}]}', 'a key is not a JWK object with a kty'],
    ['a private key', JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'd' }] }), 'it holds private or secret key material'],
    ['a secret key', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), 'it holds private or secret key material'],
    ['too large', JSON.stringify({ keys: [], pad: 'x'.repeat(JWKS_MAX_BYTES) }), `it is larger than ${JWKS_MAX_BYTES} bytes`],
  ])('refuses a file that is %s', async (_label, text, why) => {
    const path = join(dir, 'jwks.json');
    if (text !== null) writeFileSync(path, text);
    const e = await caught(() => fileJwksSource(path).getKeys());
    expectError(e, Unavailable, 'ERR_JWKS_UNAVAILABLE', `cannot read the JWKS file ${path}: ${why}`);
  });
});

describe('urlJwksSource', () => {
  let server: Server;
  let base: string;
  let hits = 0;
  let handler: (req: IncomingMessage, res: ServerResponse) => void;
  const serve = (body: unknown, status = 200) => (_req: IncomingMessage, res: ServerResponse) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  };

  beforeEach(async () => {
    hits = 0;
    handler = serve(jwks('a'));
    server = createServer((req, res) => {
      hits++;
      handler(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('caches for the TTL, then fetches again', async () => {
    const clock = new FixedClock('2026-03-01T12:00:00Z');
    const source = urlJwksSource(`${base}/jwks`, { ttlSeconds: 300, clock });
    const first = await source.getKeys();
    expect(kidsOf(first)).toEqual(['a']);
    clock.advance(299_000);
    expect(await source.getKeys()).toBe(first);
    expect(hits).toBe(1);
    clock.advance(1_000);
    expect(await source.getKeys()).toBe(first);
    expect(hits).toBe(2);
    handler = serve(jwks('a', 'b'));
    clock.advance(300_000);
    expect(kidsOf(await source.getKeys())).toEqual(['a', 'b']);
    expect(hits).toBe(3);
  });

  it('fetches at once when asked to refresh (refreshers share one request; other callers keep the cache meanwhile)', async () => {
    const clock = new FixedClock(0);
    const source = urlJwksSource(`${base}/jwks`, { clock });
    await source.getKeys();
    handler = serve(jwks('rotated'));
    expect(kidsOf(await source.getKeys())).toEqual(['a']);
    const all = await Promise.all([source.getKeys({ refresh: true }), source.getKeys({ refresh: true }), source.getKeys()]);
    expect(all.map(kidsOf)).toEqual([['rotated'], ['rotated'], ['a']]);
    expect(all[0]).toBe(all[1]);
    expect(hits).toBe(2);
    expect(kidsOf(await source.getKeys())).toEqual(['rotated']);
  });

  it('keeps the last good set on a 500, and retries after 30 s', async () => {
    const clock = new FixedClock(0);
    const source = urlJwksSource(`${base}/jwks`, { ttlSeconds: 60, clock });
    const good = await source.getKeys();
    handler = serve('{"error":"boom"}', 500);
    clock.advance(61_000);
    expect(await source.getKeys()).toBe(good);
    expect(hits).toBe(2);
    clock.advance(JWKS_RETRY_SECONDS * 1000 - 1);
    expect(await source.getKeys()).toBe(good);
    expect(hits).toBe(2);
    clock.advance(1);
    handler = serve('not json');
    expect(await source.getKeys()).toBe(good);
    expect(hits).toBe(3);
    clock.advance(JWKS_RETRY_SECONDS * 1000);
    handler = serve(jwks('b'));
    expect(kidsOf(await source.getKeys())).toEqual(['b']);
  });

  it('throws Unavailable when it never had a good set, without hammering the server', async () => {
    const clock = new FixedClock(0);
    handler = serve('{}', 500);
    const source = urlJwksSource(`${base}/jwks`, { clock });
    const why = `cannot fetch the JWKS from ${base}/jwks: HTTP status 500`;
    expectError(await caught(() => source.getKeys()), Unavailable, 'ERR_JWKS_UNAVAILABLE', why);
    expectError(await caught(() => source.getKeys()), Unavailable, 'ERR_JWKS_UNAVAILABLE', why);
    expect(hits).toBe(1);
    handler = serve(jwks('a'));
    expect(kidsOf(await source.getKeys({ refresh: true }))).toEqual(['a']);
    expect(hits).toBe(2);
  });

  it('refuses a response over 256 KB, declared or streamed', async () => {
    const big = JSON.stringify({ keys: [], pad: 'x'.repeat(JWKS_MAX_BYTES) });
    const why = `cannot fetch the JWKS from ${base}/jwks: the response is larger than ${JWKS_MAX_BYTES} bytes`;
    handler = serve(big);
    expectError(await caught(() => urlJwksSource(`${base}/jwks`).getKeys()), Unavailable, 'ERR_JWKS_UNAVAILABLE', why);
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < big.length; i += 16384) res.write(big.slice(i, i + 16384));
      res.end();
    };
    expectError(await caught(() => urlJwksSource(`${base}/jwks`).getKeys()), Unavailable, 'ERR_JWKS_UNAVAILABLE', why);
    const justUnder = JSON.stringify({ keys: jwks('a').keys, pad: '' });
    handler = serve(justUnder.replace('"pad":""', `"pad":"${'x'.repeat(JWKS_MAX_BYTES - justUnder.length)}"`));
    expect(kidsOf(await urlJwksSource(`${base}/jwks`).getKeys())).toEqual(['a']);
  });

  it('times out a server that never answers, or stalls mid-body', async () => {
    handler = () => {};
    const started = Date.now();
    const why = `cannot fetch the JWKS from ${base}/jwks: timed out after 200 ms`;
    expectError(await caught(() => urlJwksSource(`${base}/jwks`, { timeoutMs: 200 }).getKeys()), Unavailable, 'ERR_JWKS_UNAVAILABLE', why);
    expect(Date.now() - started).toBeLessThan(5000);
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys": [');
    };
    expectError(await caught(() => urlJwksSource(`${base}/jwks`, { timeoutMs: 200 }).getKeys()), Unavailable, 'ERR_JWKS_UNAVAILABLE', why);
  });

  it('does not follow redirects', async () => {
    handler = (_req, res) => res.writeHead(302, { location: 'http://example.com/jwks' }).end();
    const e = await caught(() => urlJwksSource(`${base}/jwks`).getKeys());
    expectError(e, Unavailable, 'ERR_JWKS_UNAVAILABLE', new RegExp(`^cannot fetch the JWKS from ${base}/jwks: `));
    expect(hits).toBe(1);
  });

  it('reports a refused connection', async () => {
    const url = `${base}/jwks`;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    expectError(await caught(() => urlJwksSource(url).getKeys()), Unavailable, 'ERR_JWKS_UNAVAILABLE', `cannot fetch the JWKS from ${url}: fetch failed (ECONNREFUSED)`);
  });

  it.each([
    ['http://example.com/jwks', 'use https://, or http:// to 127.0.0.1 or localhost only'],
    ['http://10.0.0.1/jwks', 'use https://, or http:// to 127.0.0.1 or localhost only'],
    ['http://127.0.0.1.nip.io/jwks', 'use https://, or http:// to 127.0.0.1 or localhost only'],
    ['ftp://example.com/jwks', 'use https://, or http:// to 127.0.0.1 or localhost only'],
    ['file:///etc/jwks.json', 'use https://, or http:// to 127.0.0.1 or localhost only'],
    ['https://user:pw@example.com/jwks', 'credentials in the URL are not allowed'],
    ['example.com/jwks', 'it is not a URL'],
  ])('refuses the URL %s', (url, why) => {
    let e: unknown;
    try {
      urlJwksSource(url);
    } catch (err) {
      e = err;
    }
    expectError(e as AgentCAError, InvalidRequest, 'ERR_JWKS_URL_INVALID', `${JSON.stringify(url)} is not a usable JWKS URL: ${why}`);
  });

  it('accepts https and loopback http URLs', () => {
    for (const u of ['https://token.actions.githubusercontent.com/.well-known/jwks', 'http://127.0.0.1:8001/openid/v1/jwks', 'http://localhost/jwks', 'http://[::1]:8001/jwks'])
      expect(checkJwksUrl(u).href).toBe(new URL(u).href);
  });
});

describe('agentca.json jwtIssuers', () => {
  const K8S = 'https://kubernetes.default.svc.cluster.local';
  const TEMPLATE = 'spiffe://example.org/ns/{kubernetes.io.namespace}/sa/{kubernetes.io.serviceaccount.name}';
  const entry = (e: Partial<JwtIssuerConfigEntry> & Record<string, unknown> = {}): JwtIssuerConfigEntry =>
    ({ issuer: K8S, audience: 'agentca', jwksFile: 'cluster-jwks.json', spiffeIdTemplate: TEMPLATE, ...e }) as JwtIssuerConfigEntry;
  function write(jwtIssuers: unknown): string {
    const c = { ...defaultConfig('example.org', 'ec-p256'), jwtIssuers } as CaConfig;
    if (jwtIssuers === undefined) delete c.jwtIssuers;
    const path = join(dir, CONFIG_FILE);
    writeFileSync(path, JSON.stringify(c));
    return path;
  }
  const invalid = (jwtIssuers: unknown, why: string) => {
    let e: unknown;
    try {
      readConfig(write(jwtIssuers));
    } catch (err) {
      e = err;
    }
    expectError(e as AgentCAError, InvalidRequest, 'ERR_CONFIG_INVALID', `${CONFIG_FILE}: ${why}`);
  };

  it('reads a config without the section as before', () => {
    const c = readConfig(write(undefined));
    expect(c).not.toHaveProperty('jwtIssuers');
    expect(jwtIssuersFromConfig(c, dir)).toEqual([]);
  });

  it('resolves a relative jwksFile against the CA directory, and maps a token end to end', async () => {
    const key = rsaKey('k8s-1');
    writeFileSync(join(dir, 'cluster-jwks.json'), JSON.stringify({ keys: [key.jwk] }));
    const c = readConfig(write([entry({ maxTokenAge: '1h' }), entry({ issuer: 'https://ci.example.com', jwksFile: undefined, jwksUrl: 'https://ci.example.com/jwks', profile: 'default', algorithms: ['ES256'], spiffeIdTemplate: 'spiffe://example.org/ci/{sub}' })]));
    const issuers = jwtIssuersFromConfig(c, dir);
    expect(issuers.map(({ jwks: _, ...rest }) => rest)).toEqual([
      { issuer: K8S, audience: 'agentca', spiffeIdTemplate: TEMPLATE, profile: 'default', maxTokenAgeSeconds: 3600 },
      { issuer: 'https://ci.example.com', audience: 'agentca', algorithms: ['ES256'], spiffeIdTemplate: 'spiffe://example.org/ci/{sub}', profile: 'default' },
    ]);

    const now = Date.parse('2026-03-01T12:00:00Z') / 1000;
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const input = `${b64({ alg: 'RS256', kid: 'k8s-1', typ: 'JWT' })}.${b64({
      iss: K8S,
      aud: ['agentca'],
      sub: 'system:serviceaccount:payments:invoice-bot',
      iat: now - 5,
      exp: now + 600,
      'kubernetes.io': { namespace: 'payments', serviceaccount: { name: 'invoice-bot', uid: randomUUID() } },
    })}`;
    const token = `${input}.${createSign('sha256').update(input).sign(key.privateKey).toString('base64url')}`;
    const jwt = new JwtProvisioner({ trustDomain: 'example.org', issuers, clock: new FixedClock(now * 1000), profile: () => DEFAULT_PROFILE });
    const a = await jwt.authorize(token);
    expect(a).toMatchObject({ spiffeId: 'spiffe://example.org/ns/payments/sa/invoice-bot', method: 'jwt', profile: 'default' });
  });

  it('keeps an absolute jwksFile as it is', async () => {
    const abs = join(dir, 'elsewhere.json');
    writeFileSync(abs, JSON.stringify(jwks('z')));
    const [issuer] = jwtIssuersFromConfig(readConfig(write([entry({ jwksFile: abs })])), '/nonexistent');
    expect(kidsOf(await issuer!.jwks.getKeys())).toEqual(['z']);
  });

  it.each<[string, unknown, string]>([
    ['not a list', { issuer: K8S }, 'jwtIssuers must be a list'],
    ['an entry not an object', ['x'], 'jwtIssuers[0] must be an object'],
    ['an unknown field', [entry({ algorithm: 'RS256' })], 'jwtIssuers[0]: unknown field "algorithm"'],
    ['no issuer', [entry({ issuer: undefined })], 'jwtIssuers[0]: issuer must be a string'],
    ['a non-string audience', [entry({ audience: 7 as unknown as string })], 'jwtIssuers[0]: audience must be a string'],
    ['both jwksFile and jwksUrl', [entry({ jwksUrl: 'https://k8s.example/jwks' })], 'jwtIssuers[0]: give exactly one of jwksFile and jwksUrl'],
    ['neither jwksFile nor jwksUrl', [entry({ jwksFile: undefined })], 'jwtIssuers[0]: give exactly one of jwksFile and jwksUrl'],
    ['a plain-http URL', [entry({ jwksFile: undefined, jwksUrl: 'http://k8s.example/jwks' })], 'jwtIssuers[0]: "http://k8s.example/jwks" is not a usable JWKS URL: use https://, or http:// to 127.0.0.1 or localhost only'],
    ['alg none', [entry({ algorithms: ['RS256', 'none'] })], `jwtIssuers[0]: jwt issuer "${K8S}": alg none is never allowed`],
    ['HS256', [entry({ algorithms: ['HS256'] })], `jwtIssuers[0]: jwt issuer "${K8S}": HS256 is never allowed: an HMAC secret cannot come from a public JWKS`],
    ['algorithms not strings', [entry({ algorithms: [256] as unknown as string[] })], 'jwtIssuers[0]: algorithms must be a list of strings'],
    [
      'a placeholder inside a segment',
      [entry({ spiffeIdTemplate: 'spiffe://example.org/ns-{sub}' })],
      `jwtIssuers[0]: jwt issuer "${K8S}": the SPIFFE ID template "spiffe://example.org/ns-{sub}" is not valid: placeholder "ns-{sub}" must be a whole path segment of the form {claim} or {claim.path} ([A-Za-z0-9_-] parts)`,
    ],
    ['a template in another trust domain', [entry({ spiffeIdTemplate: 'spiffe://other.org/{sub}' })], `jwtIssuers[0]: jwt issuer "${K8S}": the SPIFFE ID template is outside the trust domain example.org`],
    ['an unknown profile', [entry({ profile: 'k8s' })], 'jwtIssuers[0]: there is no profile named "k8s"'],
    ['a bad maxTokenAge', [entry({ maxTokenAge: 'soon' })], 'jwtIssuers[0]: maxTokenAge "soon" is not a duration (use e.g. 90s, 10m, 1h, 30d)'],
    ['a zero maxTokenAge', [entry({ maxTokenAge: '0' })], `jwtIssuers[0]: jwt issuer "${K8S}": maxTokenAgeSeconds must be a whole number of seconds, at least 1`],
    ['a duplicate issuer', [entry(), entry()], `jwtIssuers[1]: issuer "${K8S}" is configured twice`],
  ])('refuses %s', (_label, jwtIssuers, why) => invalid(jwtIssuers, why));
});
