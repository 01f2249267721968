/**
 * The HTTPS issuance API: routes through `inject()`, and the mTLS routes over real TLS on
 * 127.0.0.1:0 with client certificates the Authority issues. A real Authority over in-memory
 * stores; "nothing written" and "token not burnt" are read back from the stores.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EXT,
  Unauthenticated,
  buildCsr,
  toPem,
  decodeAgentcaIdentity,
  derFromPemOrDer,
  parseCertificate,
  parseGeneralNamesDer,
  toBase64,
  type Attestation,
} from '@agentca/core';
import type { FastifyInstance } from 'fastify';
import { buildOpenApiDocument, renderApiReference, type ApiServerHandle } from '../src/api/index.ts';
import { API_ROUTES, COMMON_ERRORS } from '../src/api/schemas.ts';
// @ts-expect-error plain ESM script without types
import { collectCodes } from '../../../scripts/errors-doc.mjs';
import {
  ADMIN_ID,
  CapturingLog,
  TD,
  buildApp,
  csrPem,
  httpsCall,
  makeCa,
  newKey,
  startTls,
  type Ca,
  type Credential,
  type HttpsAnswer,
} from './support/api-fixture.ts';

const AGENT = `spiffe://${TD}/agent/invoice-bot`;
const OTHER = `spiffe://${TD}/agent/other`;

function certOf(pem: string) {
  const cert = parseCertificate(derFromPemOrDer(pem, ['CERTIFICATE'], 'certificate'));
  const san = parseGeneralNamesDer(cert.extensions.get(EXT.subjectAltName)!.value);
  const ext = decodeAgentcaIdentity(cert.extensions.get(EXT.agentcaIdentity)!.value);
  return { cert, san, ext };
}

const tokenId = (token: string) => token.split('.')[1]!;

async function signInject(app: FastifyInstance, token: string, body: Record<string, unknown>) {
  return app.inject({ method: 'POST', url: '/v1/sign', headers: { authorization: `Bearer ${token}` }, payload: body });
}

function expectError(res: { statusCode: number; json(): unknown }, status: number, code: string, message?: string | RegExp): void {
  const body = res.json() as { error: { code: string; message: string } };
  expect({ status: res.statusCode, code: body.error?.code }).toEqual({ status, code });
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message']);
  if (typeof message === 'string') expect(body.error.message).toBe(message);
  else if (message) expect(body.error.message).toMatch(message);
}

function expectTlsError(res: HttpsAnswer, status: number, code: string, message?: RegExp): void {
  expect({ status: res.status, code: res.json?.error?.code }).toEqual({ status, code });
  if (message) expect(res.json.error.message).toMatch(message);
}

describe('POST /v1/sign (inject)', () => {
  let ca: Ca;
  let app: FastifyInstance;
  beforeAll(async () => {
    ca = await makeCa();
    app = buildApp(ca);
    await app.ready();
  });
  afterAll(() => app.close());

  it('issues a certificate for the identity the token was bound to, and nothing more', async () => {
    const token = await ca.token(AGENT);
    const { signer } = await newKey();
    const before = await ca.stores.certificates.count();
    const res = await signInject(app, token, { csr: await csrPem(signer) });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual(['certificate', 'chain', 'instanceId', 'notAfter', 'notBefore', 'serial', 'spiffeId', 'taskId']);
    expect(body.spiffeId).toBe(AGENT);
    expect(body.chain).toBe(ca.intermediatePem);
    const { cert, san, ext } = certOf(body.certificate);
    expect(san.uris).toEqual([AGENT]);
    expect(ext.instanceId).toBe(body.instanceId);
    expect(body.serial).toMatch(new RegExp(`^4a${(Math.floor((ca.clock.now().getTime() * 64) / 1000) % 2 ** 24).toString(16).padStart(6, '0')}[0-9a-f]{32}$`));
    expect(new Date(body.notAfter).getTime()).toBe(cert.notAfter.getTime());
    expect(new Date(body.notAfter).getTime() - ca.clock.now().getTime()).toBe(3600_000);
    expect(await ca.stores.certificates.count()).toBe(before + 1);
    const stored = await ca.stores.certificates.get(body.serial);
    expect(stored?.spiffeId).toBe(AGENT);
    expect((await ca.stores.tokens.get(tokenId(token)))?.usedBySerial).toBe(body.serial);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('refuses the same token a second time with ERR_TOKEN_ALREADY_USED', async () => {
    const token = await ca.token(AGENT);
    const { signer } = await newKey();
    const csr = await csrPem(signer);
    expect((await signInject(app, token, { csr })).statusCode).toBe(200);
    expectError(await signInject(app, token, { csr }), 401, 'ERR_TOKEN_ALREADY_USED', `join token ${tokenId(token)} was already used`);
  });

  it('gives exactly one certificate for 50 concurrent uses of one token', async () => {
    const token = await ca.token(AGENT);
    const { signer } = await newKey();
    const csr = await csrPem(signer);
    const before = await ca.stores.certificates.count();
    const answers = await Promise.all(Array.from({ length: 50 }, () => signInject(app, token, { csr })));
    const ok = answers.filter((a) => a.statusCode === 200);
    expect(ok).toHaveLength(1);
    for (const a of answers.filter((x) => x.statusCode !== 200)) expectError(a, 401, 'ERR_TOKEN_ALREADY_USED');
    expect(await ca.stores.certificates.count()).toBe(before + 1);
  });

  it('refuses an expired token with ERR_TOKEN_EXPIRED', async () => {
    const token = await ca.token(AGENT, { ttlSeconds: 60 });
    const { signer } = await newKey();
    ca.clock.advance(61_000);
    try {
      expectError(await signInject(app, token, { csr: await csrPem(signer) }), 401, 'ERR_TOKEN_EXPIRED', /^join token [0-9a-f]{16} expired at /);
    } finally {
      ca.clock.advance(-61_000);
    }
  });

  it('refuses a CSR that asks for another SAN with 403 ERR_CSR_SAN_MISMATCH, without burning the token', async () => {
    const token = await ca.token(AGENT);
    const { signer } = await newKey();
    const before = await ca.stores.certificates.count();
    const res = await signInject(app, token, { csr: await csrPem(signer, { uris: [OTHER] }) });
    expectError(res, 403, 'ERR_CSR_SAN_MISMATCH', `the CSR asks for "${OTHER}", which is not the attested identity ${AGENT}`);
    expect((await ca.stores.tokens.get(tokenId(token)))?.usedAt).toBeNull();
    expect(await ca.stores.certificates.count()).toBe(before);
    const ok = await signInject(app, token, { csr: await csrPem(signer) });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().spiffeId).toBe(AGENT);
  });

  it('does not burn the token on a request that fails validation', async () => {
    const token = await ca.token(AGENT);
    const { signer } = await newKey();
    const good = await csrPem(signer);
    // The last byte of the DER is the last byte of the ECDSA s value: the structure stays valid, the signature does not.
    const der = await buildCsr(signer);
    der[der.length - 1] = der[der.length - 1]! ^ 0x01;
    const tampered = toPem('CERTIFICATE REQUEST', der);
    const bad: Array<[Record<string, unknown>, number, string]> = [
      [{ csr: 'not a csr' }, 400, 'ERR_CSR_MALFORMED'],
      [{ csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' }, 400, 'ERR_CSR_MALFORMED'],
      [{ csr: tampered }, 400, 'ERR_CSR_SIGNATURE'],
      [{ csr: good, ttl: 30 }, 400, 'ERR_TTL_INVALID'],
      [{ csr: good, ttl: '2d' }, 403, 'ERR_TTL_TOO_LONG'],
      [{ csr: good, ttl: 'soon' }, 400, 'ERR_REQUEST_INVALID'],
      [{ csr: good, extra: 1 }, 400, 'ERR_REQUEST_INVALID'],
      [{}, 400, 'ERR_REQUEST_INVALID'],
    ];
    for (const [body, status, code] of bad) expectError(await signInject(app, token, body), status, code);
    expect((await ca.stores.tokens.get(tokenId(token)))?.usedAt).toBeNull();
    const ok = await signInject(app, token, { csr: good, ttl: '15m' });
    expect(ok.statusCode).toBe(200);
    expect(new Date(ok.json().notAfter).getTime() - ca.clock.now().getTime()).toBe(900_000);
  });

  it('names what is wrong with the Authorization header', async () => {
    const { signer } = await newKey();
    const csr = await csrPem(signer);
    expectError(await app.inject({ method: 'POST', url: '/v1/sign', payload: { csr } }), 401, 'ERR_AUTHORIZATION_REQUIRED', 'send Authorization: Bearer <join token or JWT>');
    expectError(
      await app.inject({ method: 'POST', url: '/v1/sign', headers: { authorization: 'Basic dXNlcjpwYXNz' }, payload: { csr } }),
      401,
      'ERR_AUTHORIZATION_INVALID',
    );
    expectError(await signInject(app, 'agentca-jt.0123456789abcdef.short', { csr }), 401, 'ERR_TOKEN_INVALID', 'the join token is not valid');
    const forged = `agentca-jt.${'0'.repeat(16)}.${'A'.repeat(43)}`;
    expectError(await signInject(app, forged, { csr }), 401, 'ERR_TOKEN_INVALID');
    expectError(await signInject(app, 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln', { csr }), 401, 'ERR_JWT_UNSUPPORTED', 'this CA accepts no JWTs: present a join token');
  });

  it('refuses a token of an ended task with ERR_TASK_ENDED', async () => {
    const token = await ca.token(AGENT, { taskId: 'task-ended-early' });
    await ca.stores.tokens.endTask('task-ended-early', ca.clock.now());
    const { signer } = await newKey();
    expectError(await signInject(app, token, { csr: await csrPem(signer) }), 403, 'ERR_TASK_ENDED');
  });

  it('writes no token, CSR, key or Authorization header to the log', async () => {
    const log = new CapturingLog();
    const logged = buildApp(ca, { log });
    const token = await ca.token(AGENT);
    const { signer, keyPem } = await newKey();
    const csr = await csrPem(signer);
    const ok = await signInject(logged, token, { csr });
    expect(ok.statusCode).toBe(200);
    await signInject(logged, token, { csr }); // refused: the refusal is logged too
    await signInject(logged, `${token}x`, { csr });
    await logged.inject({ method: 'POST', url: '/v1/sign', headers: { authorization: `Bearer ${token}` }, payload: '{"csr": ' }); // malformed
    await logged.close();
    const text = log.text;
    expect(text).toContain('"event":"issued"');
    expect(text).toContain(`"actor":"token:${tokenId(token)}"`);
    expect(text).toContain('ERR_TOKEN_ALREADY_USED');
    const secret = token.split('.')[2]!;
    for (const needle of [token, secret, csr.split('\n')[1]!, keyPem.split('\n')[1]!, 'Bearer', 'authorization', 'BEGIN']) expect(text).not.toContain(needle);
  });

  it('issues with a JWT provisioner, and turns its unexpected failures into 401', async () => {
    const jwtApp = buildApp(ca, {
      jwt: {
        async authorize(jwt: string): Promise<Attestation> {
          if (jwt.endsWith('.broken')) throw new TypeError('jwks fetch blew up');
          if (jwt.endsWith('.bad')) throw new Unauthenticated('ERR_JWT_INVALID', 'the JWT signature does not verify');
          return { spiffeId: `spiffe://${TD}/ns/ci/sa/builder`, profile: 'default', method: 'jwt', actor: 'jwt:ci' };
        },
      },
    });
    const { signer } = await newKey();
    const csr = await csrPem(signer);
    const ok = await signInject(jwtApp, 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln', { csr });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().spiffeId).toBe(`spiffe://${TD}/ns/ci/sa/builder`);
    expectError(await signInject(jwtApp, 'eyJh.eyJz.bad', { csr }), 401, 'ERR_JWT_INVALID', 'the JWT signature does not verify');
    expectError(await signInject(jwtApp, 'eyJh.eyJz.broken', { csr }), 401, 'ERR_JWT_INVALID', 'the JWT is not valid');
    await jwtApp.close();
  });
});

describe('hardening (inject)', () => {
  let ca: Ca;
  let app: FastifyInstance;
  let token: string;
  let csr: string;
  beforeAll(async () => {
    ca = await makeCa();
    app = buildApp(ca);
    token = await ca.token(AGENT);
    csr = await csrPem((await newKey()).signer);
  });
  afterAll(() => app.close());

  const post = (payload: string | Buffer, contentType = 'application/json') =>
    app.inject({ method: 'POST', url: '/v1/sign', headers: { authorization: `Bearer ${token}`, 'content-type': contentType }, payload });

  it('answers malformed JSON with 400 ERR_BODY_MALFORMED', async () => {
    expectError(await post('{"csr": '), 400, 'ERR_BODY_MALFORMED', 'the request body is not a valid JSON document (keys such as __proto__ are refused)');
    expectError(await post(''), 400, 'ERR_BODY_MALFORMED');
    expectError(await post(Buffer.from([0xff, 0xfe, 0x00])), 400, 'ERR_BODY_MALFORMED');
  });

  it('refuses __proto__ and constructor.prototype keys', async () => {
    expectError(await post(`{"csr": ${JSON.stringify(csr)}, "__proto__": {"admin": true}}`), 400, 'ERR_BODY_MALFORMED');
    expectError(await post(`{"csr": ${JSON.stringify(csr)}, "constructor": {"prototype": {"admin": true}}}`), 400, 'ERR_BODY_MALFORMED');
    expectError(await post(`{"csr": ${JSON.stringify(csr)}, "constructor": 1}`), 400, 'ERR_REQUEST_INVALID', 'body must not have property "constructor"');
    // Deep nesting under the body limit: parsed and scanned for poisoned keys without a crash.
    expectError(await post(`{"constructor": 1, "a": ${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`), 400, 'ERR_REQUEST_INVALID');
    expectError(await post(`{"__proto__": 1, "a": ${'['.repeat(30_000)}${']'.repeat(30_000)}}`), 400, 'ERR_BODY_MALFORMED');
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('answers an oversized body with 413 ERR_BODY_TOO_LARGE', async () => {
    expectError(await post(JSON.stringify({ csr: 'A'.repeat(1024 * 1024) })), 413, 'ERR_BODY_TOO_LARGE', 'the request body is larger than 65536 bytes');
    // Under the body limit but over the CSR cap: the schema refuses it.
    expectError(await post(JSON.stringify({ csr: 'A'.repeat(20 * 1024) })), 400, 'ERR_REQUEST_INVALID', 'body.csr must NOT have more than 16384 characters');
  });

  it('answers another content type with 415 ERR_UNSUPPORTED_MEDIA_TYPE', async () => {
    expectError(await post(JSON.stringify({ csr }), 'text/plain'), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE', 'send the request body as application/json');
    expectError(await post('<csr/>', 'application/xml'), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
    expectError(await post('csr=x', 'application/x-www-form-urlencoded'), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses bodies of the wrong shape with ERR_REQUEST_INVALID', async () => {
    for (const p of ['[]', '"csr"', '42', 'null', '{"csr": 1}', '{"csr": ""}', '{"csr": "x", "ttl": -1}', '{"csr": "x", "ttl": 1.5}', '{"csr": "x", "ttl": "1h "}'])
      expectError(await post(p), 400, 'ERR_REQUEST_INVALID');
    expect((await ca.stores.tokens.get(tokenId(token)))?.usedAt).toBeNull();
  });

  it('answers unknown routes with 404 and wrong methods with 405', async () => {
    expectError(await app.inject({ method: 'GET', url: '/v2/nothing' }), 404, 'ERR_ROUTE_NOT_FOUND', 'there is no such route');
    expectError(await app.inject({ method: 'POST', url: '/nothing', payload: { a: 1 } }), 404, 'ERR_ROUTE_NOT_FOUND');
    const res = await app.inject({ method: 'GET', url: '/v1/sign' });
    expectError(res, 405, 'ERR_METHOD_NOT_ALLOWED', 'method GET is not allowed here: use POST');
    expect(res.headers.allow).toBe('POST');
    const del = await app.inject({ method: 'DELETE', url: '/v1/bundle' });
    expectError(del, 405, 'ERR_METHOD_NOT_ALLOWED');
    expect(del.headers.allow).toBe('GET, HEAD');
    expectError(await app.inject({ method: 'PUT', url: '/v1/tasks/t1/end' }), 405, 'ERR_METHOD_NOT_ALLOWED');
    expectError(await app.inject({ method: 'GET', url: '/v1/%E0%A4%A' }), 400, 'ERR_URL_MALFORMED');
    expectError(await app.inject({ method: 'POST', url: `/v1/tasks/${'a'.repeat(300)}/end` }), 400, 'ERR_URL_MALFORMED');
    expectError(await app.inject({ method: 'POST', url: `/v1/tasks/${'a'.repeat(129)}/end` }), 400, 'ERR_REQUEST_INVALID', 'params.id must NOT have more than 128 characters');
  });

  it('answers the mTLS routes without a client certificate with 401', async () => {
    for (const url of ['/v1/renew', '/v1/retire', '/v1/revoke', '/v1/tokens', '/v1/tasks/t1/end']) {
      const payload = url === '/v1/renew' ? { csr } : url === '/v1/revoke' ? { serial: '4a' } : url === '/v1/tokens' ? { spiffeId: AGENT } : undefined;
      expectError(
        await app.inject({ method: 'POST', url, ...(payload ? { payload } : {}) }),
        401,
        'ERR_CLIENT_CERTIFICATE_REQUIRED',
        'this route needs a client certificate issued by this CA (mTLS)',
      );
    }
  });

  it('rate-limits each client, on known and unknown routes alike', async () => {
    const limited = buildApp(ca, { rateLimit: { max: 3, timeWindowMs: 60_000 } });
    for (let i = 0; i < 3; i++) expect((await limited.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const res = await limited.inject({ method: 'GET', url: '/healthz' });
    expectError(res, 429, 'ERR_RATE_LIMITED', /^too many requests from this client: retry in /);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expectError(await limited.inject({ method: 'GET', url: '/nowhere' }), 429, 'ERR_RATE_LIMITED');
    // Another client address has its own budget.
    expect((await limited.inject({ method: 'GET', url: '/healthz', remoteAddress: '10.0.0.9' })).statusCode).toBe(200);
    await limited.close();
  });

  it('answers /healthz with 503 ERR_STORE_UNAVAILABLE while the store cannot be reached, and ok again when it can', async () => {
    let up = true;
    const watched = buildApp(ca, { storeReachable: () => up });
    expect((await watched.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok', store: 'ok' });
    up = false;
    expectError(
      await watched.inject({ method: 'GET', url: '/healthz' }),
      503,
      'ERR_STORE_UNAVAILABLE',
      'the store cannot be reached: issuance, renewal and revocation are refused until it returns',
    );
    // The bundle needs no store.
    expect((await watched.inject({ method: 'GET', url: '/v1/bundle' })).statusCode).toBe(200);
    up = true;
    const back = await watched.inject({ method: 'GET', url: '/healthz' });
    expect(back.statusCode).toBe(200);
    expect(back.json()).toEqual({ status: 'ok', store: 'ok' });
    await watched.close();
  });

  it('serves the bundle, health, metrics and the OpenAPI document', async () => {
    const bundle = await app.inject({ method: 'GET', url: '/v1/bundle' });
    expect(bundle.statusCode).toBe(200);
    expect(bundle.headers['content-type']).toBe('application/x-pem-file');
    expect(bundle.body).toBe(ca.rootPem);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });

    const metricsApp = buildApp(ca);
    const t = await ca.token(AGENT);
    expect((await signInject(metricsApp, t, { csr })).statusCode).toBe(200);
    expect((await signInject(metricsApp, t, { csr })).statusCode).toBe(401);
    const metrics = (await metricsApp.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('agentca_certificates_issued_total{method="join-token"} 1');
    expect(metrics).toContain('agentca_issuance_denied_total{method="join-token",code="ERR_TOKEN_ALREADY_USED"} 1');
    expect(metrics).toMatch(/agentca_sign_duration_seconds_count\{outcome="issued"\} 1/);
    expect(metrics).toContain('agentca_api_requests_total{route="/v1/sign",method="POST",status="200"} 1');
    expect(metrics).not.toContain('agentca_store_'); // no store counters given
    await metricsApp.close();

    // The store's counters are read at each scrape; the WAL's only where the store has one.
    const sqliteLike = { committedBatches: 7, walSyncs: 3 };
    const sqliteApp = buildApp(ca, { storeCounters: sqliteLike });
    expect((await sqliteApp.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/\nagentca_store_commits_total 7\n[^]*\nagentca_store_wal_syncs_total 3\n/);
    Object.assign(sqliteLike, { committedBatches: 9, walSyncs: 4 });
    expect((await sqliteApp.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/\nagentca_store_commits_total 9\n[^]*\nagentca_store_wal_syncs_total 4\n/);
    await sqliteApp.close();
    const postgresLike = buildApp(ca, { storeCounters: { committedBatches: 5 } });
    const pgMetrics = (await postgresLike.inject({ method: 'GET', url: '/metrics' })).body;
    expect(pgMetrics).toContain('\nagentca_store_commits_total 5\n');
    expect(pgMetrics).not.toContain('agentca_store_wal_syncs_total');
    await postgresLike.close();

    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc).toEqual(JSON.parse(JSON.stringify(buildOpenApiDocument())));
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(['/healthz', '/metrics', '/openapi.json', '/v1/bundle', '/v1/renew', '/v1/retire', '/v1/revoke', '/v1/sign', '/v1/tasks/{id}/end', '/v1/tokens']);
    expect(doc.paths['/v1/sign'].post.requestBody.content['application/json'].schema).toEqual(API_ROUTES.sign.schema.body);
    expect(doc.paths['/v1/sign'].post.security).toEqual([{ bearer: [] }]);
    expect(doc.paths['/v1/tasks/{id}/end'].post.parameters[0]).toMatchObject({ name: 'id', in: 'path', required: true });
    expect(doc.components.securitySchemes.mutualTLS.type).toBe('mutualTLS');
    const md = renderApiReference(doc);
    expect(md).toContain('## POST /v1/sign');
    expect(md).toContain('| `csr` | string | yes | ≥ 1 chars, ≤ 16384 chars |');
    expect(md).toContain('## POST /v1/tasks/{id}/end');
    expect(md).toContain('`ERR_TOKEN_ALREADY_USED`');
  });

  it('documents only error codes the source raises', () => {
    const raised = collectCodes() as Map<string, unknown>;
    const listed = [...new Set([...COMMON_ERRORS, ...Object.values(API_ROUTES).flatMap((r) => r.errors)])];
    expect(listed.filter((c) => !raised.has(c))).toEqual([]);
  });

  it('keeps every route under a body schema that refuses unknown fields and caps strings', () => {
    const strings = (s: unknown): Array<Record<string, unknown>> => {
      if (!s || typeof s !== 'object') return [];
      const o = s as Record<string, unknown>;
      const own = o.type === 'string' || (Array.isArray(o.type) && o.type.includes('string')) ? [o] : [];
      return [...own, ...Object.values(o).flatMap(strings)];
    };
    for (const r of Object.values(API_ROUTES)) {
      const s = r.schema as { body?: Record<string, unknown>; params?: Record<string, unknown>; response: Record<string, unknown> };
      for (const input of [s.body, s.params].filter(Boolean)) {
        expect(input!.additionalProperties, `${r.url}`).toBe(false);
        for (const str of strings(input)) expect(typeof str.maxLength, `${r.url} ${JSON.stringify(str)}`).toBe('number');
      }
      expect(s.response['200'], r.url).toBeDefined();
      expect(s.response['4xx'], r.url).toBeDefined();
    }
  });
});

describe('mTLS routes over TLS on 127.0.0.1', () => {
  let ca: Ca;
  let api: ApiServerHandle & { server: Credential };
  let admin: Credential;
  let trust: string;
  const log = new CapturingLog();

  beforeAll(async () => {
    ca = await makeCa();
    api = await startTls(ca, { log });
    admin = await ca.credential(ADMIN_ID, { profile: 'admin' });
    trust = ca.rootPem;
  });
  afterAll(() => api.close());

  const call = (path: string, o: { as?: Credential; body?: unknown; method?: string; headers?: Record<string, string> } = {}) =>
    httpsCall(api.port, { path, ca: trust, ...(o.as ? { key: o.as.keyPem, cert: o.as.certPem } : {}), ...o });

  /** Bootstraps a workload through the API, as a workload would. */
  async function bootstrap(spiffeId = AGENT, t: { taskId?: string; onBehalfOf?: string } = {}): Promise<Credential & { body: any }> {
    const token = await ca.token(spiffeId, t);
    const { signer, keyPem } = await newKey();
    const res = await call('/v1/sign', { body: { csr: await csrPem(signer) }, headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const issued = (await ca.stores.certificates.get(res.json.serial))!;
    return {
      body: res.json,
      keyPem,
      certPem: res.json.certificate + res.json.chain,
      issued: { ...issued, chain: [ca.intermediate], der: issued.der, notBefore: issued.notBefore } as unknown as Credential['issued'],
    };
  }

  async function renew(as: Credential, body: Record<string, unknown> = {}) {
    const { signer, keyPem } = await newKey();
    const res = await call('/v1/renew', { as, body: { csr: await csrPem(signer), ...body } });
    return { res, keyPem };
  }

  it('listens with the configured timeouts', () => {
    const server = api.app.server;
    expect({ request: server.requestTimeout, keepAlive: server.keepAliveTimeout, connection: server.timeout }).toEqual({ request: 10_000, keepAlive: 5_000, connection: 10_000 });
  });

  it('serves unauthenticated routes with the certificate the CA issued for the listener', async () => {
    const res = await call('/healthz', { method: 'GET' });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ status: 'ok' });
    expect(res.serverCert).toBe(toBase64(api.server.issued.der));
  });

  it('renews: new serial and key, same SPIFFE ID, instance, task and on-behalf-of', async () => {
    const w = await bootstrap(AGENT, { taskId: 'nightly-report', onBehalfOf: 'user:alice@example.org' });
    const { res } = await renew(w, { ttl: 600 });
    expect(res.status).toBe(200);
    expect(res.json.serial).not.toBe(w.body.serial);
    expect(res.json.spiffeId).toBe(AGENT);
    expect(res.json.instanceId).toBe(w.body.instanceId);
    expect(res.json.taskId).toBe('nightly-report');
    const { san, ext } = certOf(res.json.certificate);
    expect(san.uris).toEqual([AGENT]);
    expect(ext).toEqual({ instanceId: w.body.instanceId, taskId: 'nightly-report', onBehalfOf: 'user:alice@example.org' });
    expect(new Date(res.json.notAfter).getTime() - ca.clock.now().getTime()).toBe(600_000);
    const event = ca.stores.audit.events.findLast((e) => e.type === 'issue')!;
    expect(event).toMatchObject({ actor: AGENT, serial: res.json.serial, detail: { method: 'renewal', instanceId: w.body.instanceId } });
  });

  it('renews a renewed certificate (the chain of renewals keeps the instance)', async () => {
    const w = await bootstrap();
    const first = await renew(w);
    const second = await renew({ issued: w.issued, keyPem: first.keyPem, certPem: first.res.json.certificate + first.res.json.chain });
    expect(second.res.status).toBe(200);
    expect(second.res.json.instanceId).toBe(w.body.instanceId);
  });

  it('refuses renewal without a client certificate', async () => {
    const { signer } = await newKey();
    expectTlsError(await call('/v1/renew', { body: { csr: await csrPem(signer) } }), 401, 'ERR_CLIENT_CERTIFICATE_REQUIRED');
  });

  it('refuses renewal with a revoked certificate', async () => {
    const w = await bootstrap();
    await ca.revocations.revoke({ serial: w.body.serial }, 'keyCompromise', 'test');
    expectTlsError((await renew(w)).res, 401, 'ERR_CLIENT_CERTIFICATE_REVOKED', /was revoked \(keyCompromise\)/);
  });

  it('refuses renewal with a certificate expired on the CA clock', async () => {
    const w = await bootstrap();
    const ttl = new Date(w.body.notAfter).getTime() - ca.clock.now().getTime();
    ca.clock.advance(ttl);
    try {
      expectTlsError((await renew(w)).res, 401, 'ERR_CLIENT_CERTIFICATE_EXPIRED', /expired at /);
    } finally {
      ca.clock.advance(-ttl);
    }
  });

  it('refuses a certificate of another CA, even for the same SPIFFE ID', async () => {
    const foreign = await makeCa();
    const cred = await foreign.credential(AGENT);
    expectTlsError((await renew(cred)).res, 401, 'ERR_CLIENT_CERTIFICATE_UNTRUSTED', /does not chain to this CA/);
    expectTlsError(await call('/v1/revoke', { as: cred, body: { spiffeId: AGENT } }), 401, 'ERR_CLIENT_CERTIFICATE_UNTRUSTED');
  });

  it('refuses renewal when the task ended or the profile is not renewable', async () => {
    const w = await bootstrap(AGENT, { taskId: 'short-task' });
    await ca.stores.tokens.endTask('short-task', ca.clock.now());
    expectTlsError((await renew(w)).res, 403, 'ERR_TASK_ENDED', /task short-task has ended/);
    expectTlsError((await renew(admin)).res, 403, 'ERR_PROFILE_NOT_RENEWABLE', /profile admin cannot be renewed/);
    const orphan = await ca.credential(AGENT, { taskId: 'issued-by-operator' });
    expectTlsError((await renew(orphan)).res, 403, 'ERR_TASK_UNKNOWN', /task issued-by-operator is not known to this CA/);
  });

  it('refuses renewal with a CSR asking for another identity, and keeps the client usable', async () => {
    const w = await bootstrap();
    const { signer } = await newKey();
    expectTlsError(await call('/v1/renew', { as: w, body: { csr: await csrPem(signer, { uris: [OTHER] }) } }), 403, 'ERR_CSR_SAN_MISMATCH');
    expect((await renew(w)).res.status).toBe(200);
  });

  it('admin routes: a workload certificate is refused, the admin certificate accepted', async () => {
    const w = await bootstrap();
    expectTlsError(await call('/v1/revoke', { as: w, body: { serial: w.body.serial } }), 403, 'ERR_NOT_ADMIN', new RegExp(`^${AGENT} is not an administrator of this CA$`));
    expect(await ca.stores.revocations.get(w.body.serial)).toBeNull();
    expectTlsError(await call('/v1/revoke', { body: { serial: w.body.serial } }), 401, 'ERR_CLIENT_CERTIFICATE_REQUIRED');

    const res = await call('/v1/revoke', { as: admin, body: { serial: w.body.serial, reason: 'key-compromise' } });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ revoked: 1, changed: 1 });
    expect(await ca.stores.revocations.get(w.body.serial)).toMatchObject({ reason: 'keyCompromise' });
    expect(ca.stores.audit.events.findLast((e) => e.type === 'revoke')?.actor).toBe(ADMIN_ID);

    expectTlsError(await call('/v1/revoke', { as: admin, body: { serial: w.body.serial, instanceId: 'x' } }), 400, 'ERR_REVOCATION_SELECTOR');
    expectTlsError(await call('/v1/revoke', { as: admin, body: { serial: 'zz' } }), 400, 'ERR_SERIAL_INVALID');
    expectTlsError(await call('/v1/revoke', { as: admin, body: { spiffeId: `spiffe://${TD}/nobody` } }), 404, 'ERR_NOTHING_TO_REVOKE');
    expectTlsError(await call('/v1/revoke', { as: admin, body: { serial: w.body.serial, reason: 'bored' } }), 400, 'ERR_REVOCATION_REASON_INVALID');
  });

  it('admin mints tokens that a workload can use; a workload cannot mint', async () => {
    const w = await bootstrap();
    expectTlsError(await call('/v1/tokens', { as: w, body: { spiffeId: AGENT } }), 403, 'ERR_NOT_ADMIN');
    const res = await call('/v1/tokens', { as: admin, body: { spiffeId: OTHER, ttl: '5m', taskId: 'batch-7', taskTtl: '2h', onBehalfOf: 'user:bob' } });
    expect(res.status).toBe(200);
    expect(Object.keys(res.json).sort()).toEqual(['expiresAt', 'id', 'onBehalfOf', 'profile', 'spiffeId', 'taskDeadline', 'taskId', 'token']);
    expect(res.json).toMatchObject({ spiffeId: OTHER, profile: 'default', taskId: 'batch-7', onBehalfOf: 'user:bob' });
    expect(new Date(res.json.expiresAt).getTime() - ca.clock.now().getTime()).toBe(300_000);
    expect(new Date(res.json.taskDeadline).getTime() - ca.clock.now().getTime()).toBe(7200_000);
    const { signer } = await newKey();
    const signed = await call('/v1/sign', { body: { csr: await csrPem(signer) }, headers: { authorization: `Bearer ${res.json.token}` } });
    expect(signed.status).toBe(200);
    expect(signed.json).toMatchObject({ spiffeId: OTHER, taskId: 'batch-7' });
    expect(log.text).toContain(`"tokenId":"${res.json.id}"`);
    expect(log.text).not.toContain(res.json.token.split('.')[2]);
    expectTlsError(await call('/v1/tokens', { as: admin, body: { spiffeId: `spiffe://${TD}/admin/evil` } }), 403, 'ERR_SPIFFE_ID_NOT_ALLOWED');
    expectTlsError(await call('/v1/tokens', { as: admin, body: { spiffeId: 'spiffe://elsewhere.org/x' } }), 403, 'ERR_SPIFFE_ID_TRUST_DOMAIN');
    expectTlsError(await call('/v1/tokens', { as: admin, body: { spiffeId: AGENT, profile: 'nope' } }), 400, 'ERR_PROFILE_UNKNOWN');
  });

  it('ending a task revokes its certificates and stops its tokens and renewals', async () => {
    const a = await bootstrap(AGENT, { taskId: 'migration-42' });
    const b = await bootstrap(OTHER, { taskId: 'migration-42' });
    const unused = await ca.token(AGENT, { taskId: 'migration-42' });
    expectTlsError(await call('/v1/tasks/migration-42/end', { as: a }), 403, 'ERR_NOT_ADMIN');
    const res = await call('/v1/tasks/migration-42/end', { as: admin });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ taskId: 'migration-42', revoked: 2, changed: 2 });
    expect(new Date(res.json.endedAt).getTime()).toBe(ca.clock.now().getTime());
    for (const w of [a, b]) expect(await ca.stores.revocations.get(w.body.serial)).toMatchObject({ reason: 'cessationOfOperation' });
    const { signer } = await newKey();
    expectTlsError(await call('/v1/sign', { body: { csr: await csrPem(signer) }, headers: { authorization: `Bearer ${unused}` } }), 403, 'ERR_TASK_ENDED');
    expectTlsError((await renew(a)).res, 401, 'ERR_CLIENT_CERTIFICATE_REVOKED');
    const again = await call('/v1/tasks/migration-42/end', { as: admin });
    expect(again.json).toMatchObject({ revoked: 2, changed: 0 });
    expectTlsError(await call('/v1/tasks/no-such-task/end', { as: admin }), 404, 'ERR_TASK_NOT_FOUND');
    expectTlsError(await call('/v1/tasks/bad%20id/end', { as: admin }), 400, 'ERR_REQUEST_INVALID');
  });

  it('retire revokes every certificate of the caller\'s instance', async () => {
    const w = await bootstrap();
    const other = await bootstrap();
    const renewed = await renew(w);
    const current: Credential = { issued: w.issued, keyPem: renewed.keyPem, certPem: renewed.res.json.certificate + renewed.res.json.chain };
    const res = await call('/v1/retire', { as: current });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ instanceId: w.body.instanceId, revoked: 2, changed: 2 });
    for (const serial of [w.body.serial, renewed.res.json.serial])
      expect(await ca.stores.revocations.get(serial)).toMatchObject({ reason: 'cessationOfOperation', instanceId: w.body.instanceId });
    expect(await ca.stores.revocations.get(other.body.serial)).toBeNull();
    expect(ca.stores.audit.events.findLast((e) => e.type === 'revoke')).toMatchObject({ actor: AGENT, detail: { instanceId: w.body.instanceId, count: 2 } });
    expectTlsError(await call('/v1/retire', { as: current }), 401, 'ERR_CLIENT_CERTIFICATE_REVOKED');
  });

  it('a revoked admin certificate no longer works', async () => {
    const second = await ca.credential(ADMIN_ID, { profile: 'admin' });
    expect((await call('/v1/revoke', { as: second, body: { serial: second.issued.serial } })).status).toBe(200);
    expectTlsError(await call('/v1/tokens', { as: second, body: { spiffeId: AGENT } }), 401, 'ERR_CLIENT_CERTIFICATE_REVOKED');
  });

  it('swaps the server certificate for new connections (renewal of the listener)', async () => {
    const next = await ca.credential(`spiffe://${TD}/agentca/server`, { profile: 'server', dnsNames: ['localhost'] });
    api.setCertificate(next.certPem, next.keyPem);
    const res = await call('/healthz', { method: 'GET' });
    expect(res.status).toBe(200);
    expect(res.serverCert).toBe(toBase64(next.issued.der));
    // Client certificates still verify against the same CA after the swap.
    const w = await bootstrap();
    expect((await renew(w)).res.status).toBe(200);
  });
});
