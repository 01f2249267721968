/**
 * Failover: two `agentca serve` replicas on one PostgreSQL database under a load of issuances
 * and revocations, one of them killed with SIGKILL in the middle. Every revocation that was
 * acknowledged (HTTP 200) is in the survivor's CRL and OCSP answers (and in the restarted
 * replica's), the survivor kept serving throughout, no serial was handed out twice, and the
 * audit chain the dead replica was writing to still verifies.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, removeTempDirs, runCli, tempDir } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';
import { ApiClient, csrPem, mintTokens, ocsp, ocspRequests, servedCrl } from './support/replicas.ts';
import { startServe, waitFor, type Served } from './support/serve.ts';

let db: TestDatabase;
let work: string;
let dir: string;
let a: Served;
let b: Served;
let restarted: Served | undefined;
const clients: ApiClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase('failover');
  work = tempDir('pg-failover');
  dir = join(work, 'ca');
  await ok('agentca', ['init', '--dir', dir, '--trust-domain', 'example.org', '--store', db.url]);
  [a, b] = await Promise.all([startServe(dir, ['--rate-limit', '10000000']), startServe(dir, ['--rate-limit', '10000000'])]);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all([a?.stop(), b?.stop(), restarted?.stop()]);
  await db?.drop();
  removeTempDirs();
});

describe('kill -9 of one replica under load', () => {
  it('loses no acknowledged revocation, keeps the other replica serving, and repeats no serial', async () => {
    // Separate connection pools per replica, so the dead one's sockets do not hold up the other's requests.
    const apiA = new ApiClient(dir, { maxSockets: 32 });
    const apiB = new ApiClient(dir, { maxSockets: 32 });
    const adminA = new ApiClient(dir, { admin: true, maxSockets: 8 });
    const adminB = new ApiClient(dir, { admin: true, maxSockets: 8 });
    clients.push(apiA, apiB, adminA, adminB);
    const csr = await csrPem();
    const ocspFor = await ocspRequests(dir, work);
    const tokens = await mintTokens(dir, 4000, 'load');

    // Certificates to revoke during the load, issued through both replicas.
    const victims: string[] = [];
    let t = 0;
    await Promise.all(
      Array.from({ length: 16 }, async (_, loop) => {
        while (t < 400) {
          const r = await (loop % 2 ? apiA.sign(a.apiUrl, tokens[t++]!, csr) : apiB.sign(b.apiUrl, tokens[t++]!, csr));
          expect(r.status).toBe(200);
          victims.push(r.body.serial as string);
        }
      }),
    );

    const issued: string[] = [...victims];
    const acknowledged = new Set<string>();
    const onB = { ok: 0, failed: [] as unknown[], afterKill: 0 };
    let killedAt = 0;
    let stop = false;
    let v = 0;
    const issuing = Array.from({ length: 16 }, async (_, loop) => {
      const toA = loop % 2 === 1;
      while (!stop && t < tokens.length) {
        // A's clients give up on it once it is gone (a load balancer would stop sending to it).
        if (toA && killedAt) return;
        const token = tokens[t++]!;
        try {
          const r = toA ? await apiA.sign(a.apiUrl, token, csr) : await apiB.sign(b.apiUrl, token, csr);
          if (r.status === 200) issued.push(r.body.serial as string);
          if (!toA) {
            if (r.status === 200) {
              onB.ok++;
              if (killedAt) onB.afterKill++;
            } else onB.failed.push(r.body);
          }
        } catch (e) {
          if (!toA) onB.failed.push(String(e));
          // A refused connection once A is dead: the client would retry elsewhere.
          else await new Promise((r) => setTimeout(r, 5));
        }
      }
    });
    const revoking = Array.from({ length: 8 }, async (_, loop) => {
      const toA = loop % 2 === 1;
      while (!stop && v < victims.length) {
        if (toA && killedAt) return;
        const serial = victims[v++]!;
        try {
          const r = toA ? await adminA.revoke(a.apiUrl, serial) : await adminB.revoke(b.apiUrl, serial);
          // Acknowledged: the store committed it before the answer was sent.
          if (r.status === 200) acknowledged.add(serial);
          if (!toA && r.status !== 200) onB.failed.push(r.body);
        } catch (e) {
          if (!toA) onB.failed.push(String(e));
          else await new Promise((r) => setTimeout(r, 5));
        }
      }
    });
    // Kill A mid-load: once both kinds of work are well under way on it.
    await waitFor('load under way', async () => acknowledged.size >= 80 && issued.length >= 800, 60_000, 5);
    killedAt = performance.now();
    a.child.kill('SIGKILL');
    expect(await a.stop()).toBeNull();
    await waitFor('B serving after the kill', async () => onB.afterKill >= 300 && v >= victims.length - 40, 60_000, 10).catch(() => undefined);
    stop = true;
    await Promise.all([...issuing, ...revoking]);
    console.log(`failover: ${issued.length} issued, ${acknowledged.size} revocations acknowledged, B served ${onB.afterKill} issuances after A was killed`);

    // B kept serving: no failure at all, and work after the kill.
    expect(onB.failed).toEqual([]);
    expect(onB.afterKill).toBeGreaterThan(0);

    // Every acknowledged revocation is in B's CRL and OCSP answers.
    await waitFor('B’s CRL listing every acknowledged revocation', async () => {
      const crl = await servedCrl(b.url);
      return [...acknowledged].every((s) => crl.serials.has(s));
    }, 5000);
    for (const s of acknowledged) expect((await ocsp(b.url, ocspFor(s))).status, s).toBe('revoked');

    // And in a replica started after the failure (it rebuilds its CRL from the store).
    restarted = await startServe(dir, ['--rate-limit', '10000000']);
    const crl = await servedCrl(restarted.url);
    for (const s of acknowledged) {
      expect(crl.serials.has(s), s).toBe(true);
      expect((await ocsp(restarted.url, ocspFor(s))).status, s).toBe('revoked');
    }

    // No serial was handed out twice, and every certificate answered is stored.
    expect(new Set(issued).size).toBe(issued.length);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const rows = (await c.query<{ serial: string }>('SELECT serial FROM agentca.certificates')).rows.map((r) => r.serial);
      expect(new Set(rows).size).toBe(rows.length);
      const stored = new Set(rows);
      expect(issued.filter((s) => !stored.has(s))).toEqual([]);
    } finally {
      await c.end();
    }

    // The chain the killed replica was appending to is still one valid chain.
    const verify = await runCli(['audit', 'verify', '--dir', dir, '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
  }, 240_000);
});
