/**
 * Fuzz of the issuance API's network input: 10,000 random and mutated requests (seeded) to
 * POST /v1/sign through `inject()`, with a live join token. The property: every answer is a
 * 4xx with a stable code, nothing is written (no certificate, no reserved serial, the token
 * unused), and the app still answers afterwards.
 *
 * Every CSR in the corpus is signed by one key that a keyCompromise revocation has blocked, so
 * even an intact request runs the whole pipeline (parse, policy, proof of possession) and is
 * refused just before the serial reservation — and no mutation can make a CSR for another key
 * without breaking its signature.
 *
 * Replay: the seed is printed on failure; API_FUZZ_SEED=<n> re-runs the same sequence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCsr, fromBase64, toBase64, toPem, type Signer } from '@agentca/core';
import type { FastifyInstance } from 'fastify';
import { TD, buildApp, csrPem, makeCa, newKey, type Ca } from './support/api-fixture.ts';
import { Prng, seedFrom } from '@agentca/core/testing';

const ITERATIONS = 10_000;
const SEED = seedFrom('API_FUZZ_SEED');
const AGENT = `spiffe://${TD}/agent/fuzz`;

let ca: Ca;
let app: FastifyInstance;
let token: string;
let blocked: Signer;
/** Valid CSRs (PEM) of the blocked key: no SAN, the token's SAN, another SAN. */
const corpus: string[] = [];

beforeAll(async () => {
  ca = await makeCa();
  app = buildApp(ca, { rateLimit: { max: 1_000_000, timeWindowMs: 60_000 } });
  await app.ready();
  const k = await newKey();
  blocked = k.signer;
  const victim = await ca.authority.issue({
    csr: await csrPem(blocked),
    attestation: { spiffeId: `spiffe://${TD}/agent/victim`, profile: 'default', method: 'operator', actor: 'test' },
  });
  await ca.revocations.revoke({ serial: victim.serial }, 'keyCompromise', 'test');
  corpus.push(await csrPem(blocked), await csrPem(blocked, { uris: [AGENT] }), await csrPem(blocked, { uris: [`spiffe://${TD}/agent/other`], dnsNames: ['x.example.org'] }));
  token = await ca.token(AGENT);
});
afterAll(() => app.close());

// ------------------------------------------------------------------ generators

const KEYS = ['csr', 'ttl', 'csr', 'ttl', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'spiffeId', 'serial', '', 'CSR', 'csr\u0000', 'x'.repeat(300)];

function randomString(r: Prng): string {
  switch (r.int(9)) {
    case 0:
      return '';
    case 1:
      return r.pick(['15m', '1h', '1h30m', '0s', '60', '59s', '99999999999d', '1d', '25h', '-1h', '1.5h', '1h ', ' 1h', '1H', 'infinity', 'NaN']);
    case 2:
      return String.fromCharCode(...Array.from({ length: r.int(40) }, () => r.int(0x80)));
    case 3:
      return String.fromCharCode(...Array.from({ length: r.int(20) }, () => r.pick([0, 0xd800, 0xdfff, 0xfeff, 0x2028, 0xffff, r.int(0x10000)])));
    case 4:
      return 'A'.repeat(r.pick([16383, 16384, 16385, 40_000, 70_000]));
    case 5:
      return r.pick(corpus);
    case 6:
      return `-----BEGIN ${r.pick(['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST', 'CERTIFICATE', 'PRIVATE KEY', 'X'])}-----\n${toBase64(r.bytes(r.int(300)))}\n-----END CERTIFICATE REQUEST-----\n`;
    case 7:
      return token;
    default:
      return toBase64(r.bytes(r.int(200)));
  }
}

function randomValue(r: Prng, depth: number): unknown {
  switch (r.int(depth > 3 ? 5 : 8)) {
    case 0:
      return null;
    case 1:
      return r.chance(0.5);
    case 2:
      return r.pick([0, -1, 1, 59, 60, 61, 3600, 86400, 86401, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, 1.5, -0.0001, 31_536_000, 31_536_001]);
    case 3:
    case 4:
      return randomString(r);
    case 5:
      return Array.from({ length: r.int(5) }, () => randomValue(r, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: r.int(5) }, () => [r.pick(KEYS), randomValue(r, depth + 1)]));
  }
}

/** Flip, insert, delete, duplicate or truncate bytes of `s`. */
function mutateText(r: Prng, s: string, rounds = 1 + r.int(4)): string {
  let b = Buffer.from(s, 'utf8');
  for (let i = 0; i < rounds && b.length > 0; i++) {
    const at = r.int(b.length);
    switch (r.int(5)) {
      case 0:
        b[at] = b[at]! ^ (1 << r.int(8));
        break;
      case 1:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(r.bytes(1 + r.int(4))), b.subarray(at)]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + r.int(16))]);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + r.int(32)), b.subarray(at)]);
        break;
      default:
        b = b.subarray(0, at);
    }
  }
  return b.toString('latin1');
}

/** A PEM CSR whose DER has a few bytes changed (structure, key, signature, extensions). */
function mutateCsrDer(r: Prng): string {
  const pem = r.pick(corpus);
  const der = fromBase64(pem.split('\n').filter((l) => l && !l.startsWith('-----')).join(''));
  const out = new Uint8Array(der);
  for (let i = 0, n = 1 + r.int(3); i < n; i++) {
    const at = r.int(out.length);
    out[at] = r.chance(0.5) ? out[at]! ^ (1 << r.int(8)) : r.pick([0x00, 0x30, 0x80, 0x81, 0x82, 0xff, 0x04, 0x03, 0x05]);
  }
  return toPem('CERTIFICATE REQUEST', r.chance(0.1) ? out.subarray(0, r.int(out.length)) : out);
}

function body(r: Prng): string | Buffer {
  const ttl = (): Record<string, unknown> => (r.chance(0.5) ? { ttl: randomValue(r, 3) } : {});
  switch (r.int(8)) {
    case 0:
      return JSON.stringify(randomValue(r, 0)) ?? '';
    case 1:
      return JSON.stringify({ csr: mutateCsrDer(r), ...ttl() });
    case 2:
      return JSON.stringify({ csr: mutateText(r, r.pick(corpus)), ...ttl() });
    case 3:
      return mutateText(r, JSON.stringify({ csr: r.pick(corpus), ...ttl() }));
    case 4:
      return Buffer.from(r.bytes(r.int(2048)));
    case 5: {
      const hostile = r.pick(['"__proto__": {"polluted": true}', '"constructor": {"prototype": {"polluted": true}}', '"a": {"__proto__": {"polluted": 1}}', '"csr": "x", "csr": 1']);
      return `{"csr": ${JSON.stringify(r.pick(corpus))}, ${hostile}}`;
    }
    case 6:
      return JSON.stringify({ csr: r.pick(corpus), ...ttl(), ...(r.chance(0.5) ? { [r.pick(KEYS)]: randomValue(r, 2) } : {}) });
    default:
      // Intact requests: run the whole pipeline and stop at the blocked key (or policy).
      return JSON.stringify({ csr: r.pick(corpus), ...(r.chance(0.5) ? { ttl: r.pick([60, 600, '15m', '1h', 3600]) } : {}) });
  }
}

function authorization(r: Prng): string | undefined {
  switch (r.int(12)) {
    case 0:
      return undefined;
    case 1:
      return `Bearer ${mutateText(r, token, 1)}`.replace(/[^\x20-\x7e]/g, '');
    case 2:
      return `Bearer eyJ${toBase64(r.bytes(20)).replace(/[+/=]/g, '')}.e30.${toBase64(r.bytes(8)).replace(/[+/=]/g, '')}`;
    case 3:
      return r.pick(['Bearer', 'Bearer ', 'bearer  ' + token, 'Basic Zm9vOmJhcg==', `Bearer ${token} extra`, `Bearer ${'A'.repeat(9000)}`]);
    default:
      return `Bearer ${token}`;
  }
}

function contentType(r: Prng): string | undefined {
  if (r.chance(0.85)) return 'application/json';
  return r.pick([undefined, 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream', 'multipart/form-data; boundary=x', 'application/JSON', '']);
}

// ------------------------------------------------------------------ the property

describe(`POST /v1/sign fuzz (seed ${SEED})`, () => {
  it(`answers ${ITERATIONS} random and mutated requests with a 4xx and writes nothing`, async () => {
    const r = new Prng(SEED);
    const certificates = await ca.stores.certificates.count();
    const reserved = ca.stores.certificates.reserved.size;
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    const codes = new Map<string, number>();
    for (let i = 0; i < ITERATIONS; i++) {
      const payload = body(r);
      const auth = authorization(r);
      const type = contentType(r);
      const url = r.chance(0.95) ? '/v1/sign' : r.pick(['/v1/renew', '/v1/tokens', '/v1/revoke', '/v1/retire', '/v1/tasks/x/end']);
      const headers: Record<string, string> = {};
      if (auth !== undefined) headers.authorization = auth;
      if (type !== undefined) headers['content-type'] = type;
      const res = await app.inject({ method: 'POST', url, headers, payload });
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      let code = '';
      try {
        code = (res.json() as { error: { code: string } }).error.code;
      } catch {
        code = '(not JSON)';
      }
      codes.set(code, (codes.get(code) ?? 0) + 1);
      if (res.statusCode < 400 || res.statusCode >= 500 || !/^ERR_[A-Z0-9_]+$/.test(code))
        failures.push(`#${i} ${url} ${res.statusCode} ${code}: ${String(payload).slice(0, 200)} ${res.body.slice(0, 200)}`);
      if (failures.length >= 5) break;
    }
    if (process.env.API_FUZZ_STATS) console.log(JSON.stringify({ statuses: [...statuses], codes: [...codes].sort((a, b) => b[1] - a[1]) }));
    expect(failures, `seed ${SEED} (replay with API_FUZZ_SEED=${SEED})`).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(await ca.stores.certificates.count()).toBe(certificates);
    expect(ca.stores.certificates.reserved.size).toBe(reserved);
    expect((await ca.stores.tokens.get(token.split('.')[1]!))?.usedAt).toBeNull();
    // The whole pipeline was reached, not only the schema: keys were checked for blocking.
    expect(codes.get('ERR_KEY_BLOCKED') ?? 0).toBeGreaterThan(100);
    expect(codes.get('ERR_CSR_SIGNATURE') ?? 0).toBeGreaterThan(10);
    expect(codes.get('ERR_CSR_MALFORMED') ?? 0).toBeGreaterThan(100);

    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    // And the token, never burnt, still buys exactly one certificate for a good request.
    const { signer } = await newKey();
    const ok = await app.inject({ method: 'POST', url: '/v1/sign', headers: { authorization: `Bearer ${token}` }, payload: { csr: toPem('CERTIFICATE REQUEST', await buildCsr(signer)) } });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().spiffeId).toBe(AGENT);
  });
});
