/**
 * The database goes away under a running `agentca serve` (its connections are reset and new
 * ones refused, through a relay in front of PostgreSQL): issuance fails closed with 503
 * ERR_STORE_UNAVAILABLE, the CRL and the last good OCSP answers keep being served until their
 * nextUpdate, and when the database is back everything works again without a restart.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, removeTempDirs, tempDir } from './support/cli.ts';
import { createTestDatabase, endpoint, startTcpProxy, viaPort, type TcpProxy, type TestDatabase } from './support/postgres.ts';
import { ocspStatus } from './support/ocsp.ts';
import { ApiClient, csrPem, logEvents, mintTokens, ocsp, ocspRequestWithNonce, ocspRequests, servedCrl } from './support/replicas.ts';
import { startServe, waitFor, type Served } from './support/serve.ts';

let db: TestDatabase;
let proxy: TcpProxy;
let work: string;
let dir: string;
let serve: Served;
let api: ApiClient;
let admin: ApiClient;

const OCSP_VALIDITY_S = 6;

async function health(): Promise<{ store: string; crl: { crlNumber: string } }> {
  return (await fetch(`${serve.url}/healthz`)).json() as Promise<{ store: string; crl: { crlNumber: string } }>;
}

beforeAll(async () => {
  db = await createTestDatabase('outage');
  proxy = await startTcpProxy(endpoint(db.url));
  work = tempDir('pg-outage');
  dir = join(work, 'ca');
  await ok('agentca', ['init', '--dir', dir, '--trust-domain', 'example.org', '--store', db.url]);
  // This replica reaches the database only through the relay: --store overrides agentca.json.
  serve = await startServe(dir, ['--store', viaPort(db.url, proxy.port), '--ocsp-validity', `${OCSP_VALIDITY_S}s`]);
  api = new ApiClient(dir);
  admin = new ApiClient(dir, { admin: true });
}, 120_000);

afterAll(async () => {
  api?.close();
  admin?.close();
  await serve?.stop();
  await proxy?.close();
  await db?.drop();
  removeTempDirs();
});

describe('the database unreachable from a running replica', () => {
  it('fails issuance closed with 503, keeps serving the last good CRL and OCSP answers, and recovers without a restart', async () => {
    const csr = await csrPem();
    const ocspFor = await ocspRequests(dir, work);
    const tokens = await mintTokens(dir, 4, 'outage');
    const [good, revoked] = await Promise.all([api.sign(serve.apiUrl, tokens[0]!, csr), api.sign(serve.apiUrl, tokens[1]!, csr)]);
    expect((await admin.revoke(serve.apiUrl, revoked.body.serial)).status).toBe(200);
    await waitFor('the revocation served', async () => (await servedCrl(serve.url)).serials.has(revoked.body.serial));
    const answered = new Map<string, { status: string; thisUpdate?: number }>();
    for (const s of [good.body.serial, revoked.body.serial]) answered.set(s, await ocsp(serve.url, ocspFor(s)));
    const crlBefore = new Uint8Array(await (await fetch(`${serve.url}/crl`)).arrayBuffer());
    const withNonce = await ocspRequestWithNonce(dir, work, revoked.body.serial);
    expect((await ocsp(serve.url, withNonce)).status).toBe('revoked');
    const cutAt = Date.now();

    proxy.cut();
    await waitFor('/healthz to report the store unreachable', async () => (await health()).store === 'unreachable', 5000, 20);
    // The API's own /healthz fails too, so a load balancer sends issuance elsewhere.
    expect(await api.get(`${serve.apiUrl}/healthz`)).toMatchObject({ status: 503, body: { error: { code: 'ERR_STORE_UNAVAILABLE' } } });

    // Issuance fails closed, with a stable code, quickly.
    const started = Date.now();
    const refused = await api.sign(serve.apiUrl, tokens[2]!, csr);
    expect(refused).toMatchObject({ status: 503, body: { error: { code: 'ERR_STORE_UNAVAILABLE', message: 'the store is unavailable: retry later' } } });
    expect(Date.now() - started).toBeLessThan(6000);
    const revoking = await admin.revoke(serve.apiUrl, good.body.serial);
    expect(revoking).toMatchObject({ status: 503, body: { error: { code: 'ERR_STORE_UNAVAILABLE' } } });

    // The CRL is served as it was; OCSP answers as before, also past the half-life at which an
    // answer is normally re-signed, until its nextUpdate.
    expect(new Uint8Array(await (await fetch(`${serve.url}/crl`)).arrayBuffer())).toEqual(crlBefore);
    await new Promise((r) => setTimeout(r, Math.max(0, cutAt + (OCSP_VALIDITY_S * 1000) / 2 + 500 - Date.now())));
    for (const [s, before] of answered) expect(await ocsp(serve.url, ocspFor(s))).toEqual(before);
    // A request with a nonce needs a fresh signature: it gets the last good answer about its serial, without a nonce.
    expect(await ocsp(serve.url, withNonce)).toEqual(answered.get(revoked.body.serial));
    // A serial never asked about cannot be looked up: tryLater (RFC 6960 §2.3), not an error page.
    const tokensLeft = tokens.slice(3);
    expect(await ocsp(serve.url, ocspFor(`4a${'12'.repeat(19)}`))).toEqual({ status: 'error:3' });

    // The database is back: no restart, the replica notices and works again.
    proxy.restore();
    await waitFor('/healthz to report the store reachable', async () => (await health()).store === 'ok', 5000, 20);
    expect(await api.get(`${serve.apiUrl}/healthz`)).toEqual({ status: 200, body: { status: 'ok', store: 'ok' } });
    const again = await api.sign(serve.apiUrl, tokensLeft[0]!, csr);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    // The token refused during the outage was not spent.
    expect((await api.sign(serve.apiUrl, tokens[2]!, csr)).status).toBe(200);
    expect((await admin.revoke(serve.apiUrl, good.body.serial)).status).toBe(200);
    await waitFor('the new revocation served', async () => (await ocsp(serve.url, ocspFor(good.body.serial))).status === 'revoked', 2000);
    // A fresh answer again, not the one kept for the outage.
    const fresh = ocspStatus(new Uint8Array(await (await fetch(`${serve.url}/ocsp`, { method: 'POST', body: Buffer.from(ocspFor(revoked.body.serial)) })).arrayBuffer()));
    expect(fresh.status).toBe('revoked');

    // One warning for the outage and one note for the recovery, not one per poll; no password.
    expect(logEvents(serve.logs, 'store.unreachable')).toHaveLength(1);
    expect(logEvents(serve.logs, 'store.reachable')).toHaveLength(1);
    expect(serve.logs.join('')).not.toContain(new URL(db.url).password);
  }, 60_000);
});
