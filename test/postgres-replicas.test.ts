/**
 * Two real `agentca serve` processes of one CA sharing one PostgreSQL database: a token is used
 * once across both, 20,000 concurrent issuances through both repeat no serial, a revocation made
 * on one is in the other's OCSP answers and CRL within a second, CRL numbers keep increasing
 * across both, and the audit chain both wrote verifies with `agentca audit verify`.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { ok, removeTempDirs, runCli, tempDir } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';
import { ApiClient, csrPem, logEvents, mintTokens, ocsp, ocspRequests, servedCrl } from './support/replicas.ts';
import { startServe, waitFor, type Served } from './support/serve.ts';

const TD = 'example.org';
let db: TestDatabase;
let work: string;
let dir: string;
let a: Served;
let b: Served;
let api: ApiClient;
let admin: ApiClient;
let csr: string;
let ocspFor: (serial: string) => Uint8Array;
const password = () => new URL(db.url).password;

async function sql<T extends pg.QueryResultRow>(text: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query<T>(text)).rows;
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  db = await createTestDatabase('replicas');
  work = tempDir('pg-replicas');
  dir = join(work, 'ca');
  const init = await ok('agentca', ['init', '--dir', dir, '--trust-domain', TD, '--store', db.url]);
  expect(init).toContain(`postgresql://agentca_test:***@`);
  // The store is recorded: the replicas are started without --store.
  [a, b] = await Promise.all([startServe(dir, ['--rate-limit', '10000000']), startServe(dir, ['--rate-limit', '10000000'])]);
  api = new ApiClient(dir);
  admin = new ApiClient(dir, { admin: true });
  csr = await csrPem();
  ocspFor = await ocspRequests(dir, work);
}, 120_000);

afterAll(async () => {
  api?.close();
  admin?.close();
  await Promise.all([a?.stop(), b?.stop()]);
  await db?.drop();
  removeTempDirs();
});

describe('two replicas on one database', () => {
  it('lets 50 concurrent uses of one token, split across both replicas, yield exactly one certificate', async () => {
    const [token] = await mintTokens(dir, 1, 'once');
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => api.sign((i % 2 ? a : b).apiUrl, token!, csr)));
    const issued = answers.filter((r) => r.status === 200);
    expect(issued).toHaveLength(1);
    for (const r of answers.filter((x) => x.status !== 200)) expect(r).toMatchObject({ status: 401, body: { error: { code: 'ERR_TOKEN_ALREADY_USED' } } });
    const rows = await sql<{ n: string }>(`SELECT count(*) AS n FROM agentca.join_tokens WHERE used_by_serial = '${issued[0]!.body.serial}'`);
    expect(rows[0]!.n).toBe('1');
  });

  it('issues 20,000 certificates concurrently through both replicas without repeating a serial', async () => {
    const tokens = await mintTokens(dir, 20_000, 'load');
    const before = Number((await sql<{ n: string }>('SELECT count(*) AS n FROM agentca.certificates'))[0]!.n);
    const serials: string[] = [];
    const failures: unknown[] = [];
    const perReplica = new Map<Served, number>();
    let next = 0;
    const started = performance.now();
    // 64 request loops, half on each replica, each with its own tokens.
    await Promise.all(
      Array.from({ length: 64 }, async (_, loop) => {
        const server = loop % 2 ? a : b;
        for (let i = next++; i < tokens.length; i = next++) {
          const r = await api.sign(server.apiUrl, tokens[i]!, csr);
          if (r.status === 200) {
            serials.push(r.body.serial as string);
            perReplica.set(server, (perReplica.get(server) ?? 0) + 1);
          } else failures.push(r.body);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    console.log(`20,000 issuances through two replicas: ${seconds.toFixed(1)} s, ${(20_000 / seconds).toFixed(0)}/s`);
    expect(failures).toEqual([]);
    expect(serials).toHaveLength(20_000);
    expect(new Set(serials).size).toBe(20_000);
    const [counts] = await sql<{ certificates: string; distinct: string; reserved: string }>(
      'SELECT (SELECT count(*) FROM agentca.certificates) AS certificates, (SELECT count(DISTINCT serial) FROM agentca.certificates) AS distinct, (SELECT count(*) FROM agentca.serials) AS reserved',
    );
    expect(Number(counts!.certificates)).toBe(before + 20_000);
    expect(counts!.distinct).toBe(counts!.certificates);
    // Each replica took its share of the load.
    for (const s of [a, b]) expect(perReplica.get(s)).toBeGreaterThan(5000);
  }, 180_000);

  it('puts a revocation made on one replica into the other one’s OCSP answers and CRL within a second, both ways', async () => {
    const [t1, t2] = await mintTokens(dir, 2, 'victim');
    const latencies: { ocsp: number; crl: number }[] = [];
    for (const [token, on, other] of [
      [t1!, a, b],
      [t2!, b, a],
    ] as const) {
      const issued = await api.sign(on.apiUrl, token, csr);
      expect(issued.status).toBe(200);
      const serial = issued.body.serial as string;
      const request = ocspFor(serial);
      // The other replica has answered "good" before (a cached answer is what must be dropped).
      expect((await ocsp(other.url, request)).status).toBe('good');
      expect((await servedCrl(other.url)).serials.has(serial)).toBe(false);

      const revoked = await admin.revoke(on.apiUrl, serial);
      const at = performance.now();
      expect(revoked).toMatchObject({ status: 200, body: { revoked: 1, changed: 1 } });
      let ocspMs = -1;
      let crlMs = -1;
      await waitFor(
        'the revocation on the other replica',
        async () => {
          const [o, c] = await Promise.all([ocspMs < 0 ? ocsp(other.url, request) : null, crlMs < 0 ? servedCrl(other.url) : null]);
          if (o?.status === 'revoked') ocspMs = performance.now() - at;
          if (c?.serials.has(serial)) crlMs = performance.now() - at;
          return ocspMs >= 0 && crlMs >= 0;
        },
        3000,
        10,
      );
      latencies.push({ ocsp: Math.round(ocspMs), crl: Math.round(crlMs) });
    }
    console.log(`revocation on one replica seen by the other: ${JSON.stringify(latencies)} ms`);
    for (const l of latencies) {
      expect(l.ocsp).toBeLessThan(1000);
      expect(l.crl).toBeLessThan(1000);
    }
  });

  it('keeps CRL numbers strictly increasing across both replicas, and never serves two CRLs under one number', async () => {
    const tokens = await mintTokens(dir, 4, 'crl');
    let previous = -1n;
    for (const [i, token] of tokens.entries()) {
      const on = i % 2 ? a : b;
      const serial = (await api.sign(on.apiUrl, token, csr)).body.serial as string;
      expect((await admin.revoke(on.apiUrl, serial)).status).toBe(200);
      // Once both serve a CRL listing it, each of those CRLs is newer than any CRL served before.
      const round = await waitFor('both CRLs listing the revocation', async () => {
        const crls = await Promise.all([servedCrl(a.url), servedCrl(b.url)]);
        return crls.every((c) => c.serials.has(serial)) && crls;
      });
      for (const c of round) expect(c.number).toBeGreaterThan(previous);
      previous = round.reduce((max, c) => (c.number > max ? c.number : max), previous);
    }
    // Each number was signed by one replica only (the other may adopt it, never re-sign it).
    const published = [...logEvents(a.logs, 'crl.published'), ...logEvents(b.logs, 'crl.published')].filter((e) => e.issuer === 'intermediate').map((e) => e.crlNumber);
    expect(new Set(published).size).toBe(published.length);
    const [state] = await sql<{ last_number: string }>("SELECT last_number FROM agentca.crl_state WHERE issuer = 'intermediate'");
    expect(Math.max(...published)).toBeLessThanOrEqual(Number(state!.last_number));
  });

  it('leaves one audit chain that agentca audit verify accepts (the store taken from agentca.json, or --store)', async () => {
    const [head] = await sql<{ seq: string }>('SELECT seq FROM agentca.audit_head');
    const started = performance.now();
    const r = await runCli(['audit', 'verify', '--dir', dir, '--json']);
    console.log(`agentca audit verify over ${head!.seq} events: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true });
    expect(JSON.parse(r.stdout).events).toBeGreaterThanOrEqual(Number(head!.seq));
    const revoked = JSON.parse(await ok('agentca', ['list', '--dir', dir, '--store', db.url, '--json', '--status', 'revoked', '--id', `spiffe://${TD}/agent/crl0`]));
    expect(revoked).toMatchObject([{ status: 'revoked', reason: 'superseded' }]);
  });

  it('never writes the database password into a log line or command output', async () => {
    expect(password()).not.toBe('');
    for (const s of [a, b]) {
      expect(s.logs.join('')).not.toContain(password());
      expect(logEvents(s.logs, 'serve.listening')[0]!.store).toMatch(/^postgresql:\/\/agentca_test:\*\*\*@/);
    }
    const tail = await ok('agentca', ['audit', 'tail', '--dir', dir, '-n', '50']);
    expect(tail).not.toContain(password());
  });
});
