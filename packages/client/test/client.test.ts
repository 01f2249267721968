/**
 * The SDK against a real `agentca serve` (its binary, a CA in a temp dir), plus the pure parts
 * (CSR, rotation timing, SAN parsing) on their own.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, get, type Agent, type Server } from 'node:https';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, removeTempDirs, tempDir, listed } from '../../../test/support/cli.ts';
import { freePort, startServe, waitFor, type Served } from '../../../test/support/serve.ts';
import { fetch as undiciFetch } from 'undici';
import { AgentCAClientError, AgentIdentity, authorizePeer, createCsr, generateWorkloadKey, peerSpiffeId, renewalDelayMs, retryDelayMs } from '../src/index.ts';
import { spiffeIdFromSubjectAltName } from '../src/peer.ts';

let dir: string;
let serve: Served;
let caBundle: string;
let port: number;
let server: string;
const identities: AgentIdentity[] = [];
/** Every private key the SDK held during the run, PKCS#8 PEM bodies, for the disk scan. */
const keyBodies: string[] = [];

async function token(id: string): Promise<string> {
  return (await ok('agentca', ['token', 'create', '--dir', dir, '--id', id])).trim().split('\n')[0]!;
}

async function boot(id: string, extra: Partial<Parameters<typeof AgentIdentity.bootstrap>[0]> = {}): Promise<AgentIdentity> {
  const identity = await AgentIdentity.bootstrap({ server, caBundle, token: await token(id), ...extra });
  identities.push(identity);
  remember(identity);
  identity.on('rotated', () => remember(identity));
  return identity;
}

function remember(identity: AgentIdentity): void {
  const pem = identity.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  keyBodies.push(pem.split('\n').slice(1, -2).join(''));
}

async function startCa(): Promise<Served> {
  return startServe(dir, ['--listen', `127.0.0.1:${port}`]);
}

beforeAll(async () => {
  dir = join(tempDir('client'), 'ca');
  await ok('agentca', ['init', '--trust-domain', 'example.org', '--dir', dir]);
  caBundle = await ok('agentca', ['bundle', '--dir', dir]);
  port = await freePort();
  serve = await startCa();
  server = serve.apiUrl;
  expect(server).toBe(`https://127.0.0.1:${port}`);
});

afterAll(async () => {
  for (const i of identities) i.close();
  await serve?.stop();
  removeTempDirs();
});

/** A service on 127.0.0.1 that answers 200 to allowed callers and 403 to others, with the caller's ID and serial. */
async function service(identity: AgentIdentity, allow: string[]): Promise<{ server: Server; url: string }> {
  const s = createServer(identity.serverOptions(), (req, res) => {
    const socket = req.socket as TLSSocket;
    const body = JSON.stringify({ caller: peerSpiffeId(socket), serial: socket.getPeerCertificate().serialNumber?.toLowerCase() });
    res.writeHead(authorizePeer(socket, allow) ? 200 : 403, { 'content-type': 'application/json' }).end(body);
  });
  identity.keepCurrent(s);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return { server: s, url: `https://127.0.0.1:${(s.address() as AddressInfo).port}/` };
}

function call(url: string, agent: Agent): Promise<{ status: number; body: { caller: string | null; serial: string }; serverSerial: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      const serverSerial = (res.socket as TLSSocket).getPeerCertificate().serialNumber.toLowerCase();
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text), serverSerial }));
    }).on('error', reject);
  });
}

function stripZeros(hex: string): string {
  return hex.replace(/^0+/, '');
}

describe('pure parts', () => {
  it('builds a PKCS#10 request over the in-memory key that verifies', () => {
    const key = generateWorkloadKey();
    const pem = createCsr(key);
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE REQUEST-----\n$/);
  });

  it('renews at the fraction of the lifetime counted from receipt, within the jitter', () => {
    const policy = { renewAt: 2 / 3, jitter: 0.1 };
    expect(renewalDelayMs(0, 3_600_000, 0, policy, 0.5)).toBe(2_400_000);
    expect(renewalDelayMs(0, 3_600_000, 0, policy, 0)).toBe(2_160_000);
    expect(renewalDelayMs(0, 3_600_000, 0, policy, 0.999999)).toBeLessThanOrEqual(2_640_000);
    expect(renewalDelayMs(0, 3_600_000, 3_000_000, policy, 0.5)).toBe(0);
  });

  it('backs off exponentially up to the cap', () => {
    const p = { initialMs: 1000, maxMs: 30_000 };
    expect([0, 1, 2, 3, 4, 5, 6, 60].map((n) => retryDelayMs(n, p))).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it('reads exactly one SPIFFE URI SAN', () => {
    expect(spiffeIdFromSubjectAltName('URI:spiffe://example.org/agent/x')).toBe('spiffe://example.org/agent/x');
    expect(spiffeIdFromSubjectAltName('DNS:localhost, URI:spiffe://example.org/a, IP Address:127.0.0.1')).toBe('spiffe://example.org/a');
    expect(spiffeIdFromSubjectAltName('URI:spiffe://example.org/a, URI:spiffe://example.org/b')).toBeNull();
    expect(spiffeIdFromSubjectAltName('URI:https://example.org/a')).toBeNull();
    expect(spiffeIdFromSubjectAltName('DNS:localhost')).toBeNull();
  });

  it('refuses options without exactly one credential', async () => {
    const err = await AgentIdentity.bootstrap({ server: 'https://127.0.0.1:1', caBundle: '' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentCAClientError);
    expect((err as AgentCAClientError).code).toBe('ERR_OPTION_INVALID');
    expect((err as AgentCAClientError).message).toBe('give exactly one of token and jwtFile');
  });
});

describe('against agentca serve', () => {
  it('bootstraps with a join token: a certificate for the attested ID over the in-memory key', async () => {
    const identity = await boot('spiffe://example.org/agent/x');
    expect(identity.spiffeId).toBe('spiffe://example.org/agent/x');
    const [leafPem] = identity.certificate.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)!;
    const leaf = new X509Certificate(leafPem!);
    expect(leaf.publicKey.equals(identity.publicKey)).toBe(true);
    expect(leaf.checkPrivateKey(identity.privateKey)).toBe(true);
    expect(stripZeros(leaf.serialNumber.toLowerCase())).toBe(stripZeros(identity.serial));
    expect(leaf.subjectAltName).toBe('URI:spiffe://example.org/agent/x');
    expect(identity.notAfter.getTime()).toBe(new Date(leaf.validTo).getTime());
    expect(identity.certificate.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    identity.close();
  });

  it('surfaces a refusal as AgentCAClientError with the code and status: a token used twice', async () => {
    const t = await token('spiffe://example.org/agent/twice');
    identities.push(await AgentIdentity.bootstrap({ server, caBundle, token: t }));
    const err = await AgentIdentity.bootstrap({ server, caBundle, token: t }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentCAClientError);
    expect((err as AgentCAClientError).code).toBe('ERR_TOKEN_ALREADY_USED');
    expect((err as AgentCAClientError).status).toBeGreaterThanOrEqual(400);
    expect((err as AgentCAClientError).status).toBeLessThan(500);
    expect((err as AgentCAClientError).message).toMatch(/already used/);
  });

  it('authorises mTLS callers by SPIFFE ID: allowed → 200, another ID → 403', async () => {
    const svc = await boot('spiffe://example.org/svc/billing');
    const allowed = await boot('spiffe://example.org/agent/caller');
    const other = await boot('spiffe://example.org/agent/stranger');
    const { server: s, url } = await service(svc, ['spiffe://example.org/agent/caller']);
    try {
      const a = await call(url, allowed.httpsAgent({ allow: ['spiffe://example.org/svc/billing'] }));
      expect(a.status).toBe(200);
      expect(a.body.caller).toBe('spiffe://example.org/agent/caller');
      const b = await call(url, other.httpsAgent());
      expect(b.status).toBe(403);
      expect(b.body.caller).toBe('spiffe://example.org/agent/stranger');
      // The client checks the server's SPIFFE ID too.
      const err = await call(url, allowed.httpsAgent({ allow: ['spiffe://example.org/svc/other'] })).catch((e: unknown) => e);
      expect((err as AgentCAClientError).code).toBe('ERR_PEER_NOT_ALLOWED');
    } finally {
      s.close();
    }
  });

  it('rotates before expiry with a fresh key; new connections present the new certificate', async () => {
    const svc = await boot('spiffe://example.org/svc/rotating', { ttlSeconds: 60, renewAt: 0.05, jitter: 0 });
    const caller = await boot('spiffe://example.org/agent/rotating', { ttlSeconds: 60, renewAt: 0.05, jitter: 0 });
    const { server: s, url } = await service(svc, [caller.spiffeId]);
    try {
      const agent = caller.httpsAgent({ keepAlive: false });
      const before = await call(url, agent);
      expect(stripZeros(before.body.serial)).toBe(stripZeros(caller.serial));
      const oldCaller = { serial: caller.serial, key: caller.publicKey };
      const oldSvc = svc.serial;
      const [rotated] = (await Promise.all([once(caller, 'rotated'), once(svc, 'rotated')]))[0] as [{ serial: string; notAfter: Date }];
      expect(rotated.serial).toBe(caller.serial);
      expect(caller.serial).not.toBe(oldCaller.serial);
      expect(caller.publicKey.equals(oldCaller.key)).toBe(false);
      expect(caller.spiffeId).toBe('spiffe://example.org/agent/rotating');
      const after = await call(url, agent);
      expect(after.status).toBe(200);
      expect(stripZeros(after.body.serial)).toBe(stripZeros(caller.serial));
      expect(stripZeros(after.serverSerial)).toBe(stripZeros(svc.serial));
      expect(svc.serial).not.toBe(oldSvc);
    } finally {
      s.close();
    }
  }, 30_000);

  it('CA stopped during the renewal window: keeps its certificate, backs off, recovers; no request fails meanwhile', async () => {
    const svc = await boot('spiffe://example.org/svc/steady');
    const identity = await boot('spiffe://example.org/agent/patient', { ttlSeconds: 60, renewAt: 0.05, jitter: 0, retry: { initialMs: 200, maxMs: 1000 } });
    const { server: s, url } = await service(svc, [identity.spiffeId]);
    const dispatcher = identity.dispatcher({ allow: [svc.spiffeId] });
    const serial = identity.serial;
    const certificate = identity.certificate;
    const renewalDue = Date.now() + 3000; // 0.05 of 60 s
    await serve.stop();
    const stoppedAt = Date.now();

    // Steady mTLS traffic from before the renewal window to after the recovery.
    const calls: { at: number; status?: number; serial?: string; error?: string }[] = [];
    let running = true;
    const traffic = (async () => {
      while (running) {
        const at = Date.now();
        try {
          const res = await undiciFetch(url, { dispatcher });
          const body = (await res.json()) as { serial: string };
          calls.push({ at, status: res.status, serial: stripZeros(body.serial) });
        } catch (e) {
          calls.push({ at, error: String((e as Error).cause ?? e) });
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    const failures: { code: string; retryInMs: number | null; at: number }[] = [];
    identity.on('renewal-failed', ({ error, retryInMs }) => failures.push({ code: error.code, retryInMs, at: Date.now() }));
    await waitFor('four failed renewals', async () => failures.length >= 4, 15_000, 20);
    expect(failures.slice(0, 4).map(({ code, retryInMs }) => ({ code, retryInMs }))).toEqual([
      { code: 'ERR_SERVER_UNREACHABLE', retryInMs: 200 },
      { code: 'ERR_SERVER_UNREACHABLE', retryInMs: 400 },
      { code: 'ERR_SERVER_UNREACHABLE', retryInMs: 800 },
      { code: 'ERR_SERVER_UNREACHABLE', retryInMs: 1000 },
    ]);
    // The first attempt came at the renewal point, with the CA already gone; each retry waited its backoff.
    expect(failures[0]!.at).toBeGreaterThanOrEqual(Math.max(stoppedAt, renewalDue - 500));
    for (let i = 1; i < 4; i++) expect(failures[i]!.at - failures[i - 1]!.at).toBeGreaterThanOrEqual(failures[i - 1]!.retryInMs! - 20);
    expect(identity.serial).toBe(serial);
    expect(identity.certificate).toBe(certificate);
    expect(identity.notAfter.getTime()).toBeGreaterThan(Date.now());

    serve = await startCa();
    const [rotated] = (await once(identity, 'rotated')) as [{ serial: string; notAfter: Date }];
    const recoveredAt = Date.now();
    expect(rotated.serial).not.toBe(serial);
    expect(identity.serial).toBe(rotated.serial);
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await traffic;
    await dispatcher.close();
    s.close();

    console.log(`ca-outage: ${JSON.stringify({ requests: calls.length, failed: calls.filter((c) => c.status !== 200).length, renewalFailures: failures.map((f) => f.retryInMs), outageMs: recoveredAt - stoppedAt })}`);
    // No request failed while the old certificate was valid; during the outage every request
    // presented it, and after the recovery the new one.
    expect(calls.filter((c) => c.status !== 200)).toEqual([]);
    const during = calls.filter((c) => c.at >= failures[0]!.at && c.at < failures.at(-1)!.at);
    expect(during.length).toBeGreaterThan(10);
    for (const c of during) expect(c.serial).toBe(stripZeros(serial));
    const after = calls.filter((c) => c.at > recoveredAt);
    expect(after.length).toBeGreaterThan(0);
    for (const c of after) expect(c.serial).toBe(stripZeros(rotated.serial));
    identity.close();
  }, 60_000);

  it('retire() revokes every certificate of the instance and stops renewing', async () => {
    const identity = await boot('spiffe://example.org/agent/retiring');
    const answer = await identity.retire();
    expect(answer.instanceId).toBe(identity.instanceId);
    expect(answer.revoked).toBe(1);
    const row = (await listed(dir)).find((c) => stripZeros(c.serial) === stripZeros(identity.serial));
    expect(row?.status).toBe('revoked');
    const err = await identity.renew().catch((e: unknown) => e);
    expect((err as AgentCAClientError).code).toBe('ERR_IDENTITY_CLOSED');
  });

  it('never writes a private key to disk', () => {
    expect(keyBodies.length).toBeGreaterThan(5);
    let hits: string[] = [];
    const scan = (d: string, depth: number): void => {
      let names: string[];
      try {
        names = readdirSync(d);
      } catch {
        return;
      }
      for (const n of names) {
        const p = join(d, n);
        try {
          const st = statSync(p);
          if (st.isDirectory()) {
            if (depth < 6) scan(p, depth + 1);
          } else if (st.isFile() && st.size < 4_000_000) {
            const text = readFileSync(p, 'latin1').replace(/\s/g, '');
            for (const body of keyBodies) if (text.includes(body)) hits.push(p);
          }
        } catch {
          /* vanished or unreadable */
        }
      }
    };
    // The scan finds a key that was written (a control, then removed with the temp dirs).
    const control = join(tempDir('control'), 'key.pem');
    writeFileSync(control, keyBodies[0]!.replace(/.{1,64}/g, '$&\n'));
    scan(join(control, '..'), 0);
    expect(hits).toEqual([control]);
    hits = [];
    rmSync(control);
    scan(dir, 0);
    scan(tmpdir(), 0);
    expect(hits).toEqual([]);
  });
});
