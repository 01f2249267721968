/**
 * CrlChecker against a real `agentca serve`: good, revoked within a second of `agentca revoke`,
 * fail closed on a dead URL and on a stale CRL, and a tampered CRL refused (the last good one kept).
 */
import { once } from 'node:events';
import { createServer as createHttpServer, get as httpGet, type Server as HttpServer } from 'node:http';
import { createServer, get, type Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, removeTempDirs, tempDir } from '../../../test/support/cli.ts';
import { freePort, startServe, waitFor, type Served } from '../../../test/support/serve.ts';
import { AgentIdentity, authorizePeerWithRevocation, CrlChecker, normalizeSerial } from '../src/index.ts';
import { parseCrl } from '../src/crl-checker.ts';

let dir: string;
let serve: Served;
let caBundle: string;
let server: string;
let crlUrl: string;
let intermediatePem: string;
const identities: AgentIdentity[] = [];
const checkers: CrlChecker[] = [];
const closers: (() => void)[] = [];

async function boot(id: string): Promise<AgentIdentity> {
  const token = (await ok('agentca', ['token', 'create', '--dir', dir, '--id', id])).trim().split('\n')[0]!;
  const identity = await AgentIdentity.bootstrap({ server, caBundle, token });
  identities.push(identity);
  return identity;
}

function checker(url: string, errors: Error[] = []): CrlChecker {
  const c = new CrlChecker({ url, issuerCertificatePem: intermediatePem, refreshMs: 200, timeoutMs: 1000 });
  c.on('error', (e) => errors.push(e));
  checkers.push(c);
  return c;
}

function fetchDer(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    httpGet(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
    }).on('error', reject);
  });
}

beforeAll(async () => {
  dir = join(tempDir('crl-checker'), 'ca');
  await ok('agentca', ['init', '--trust-domain', 'example.org', '--dir', dir]);
  caBundle = await ok('agentca', ['bundle', '--dir', dir]);
  serve = await startServe(dir, ['--listen', `127.0.0.1:${await freePort()}`]);
  server = serve.apiUrl;
  crlUrl = `${serve.url.replace(/\/$/, '')}/crl`;
  const probe = await boot('spiffe://example.org/agent/probe');
  intermediatePem = probe.certificate.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)![1]!;
}, 30_000);

afterAll(async () => {
  for (const c of checkers) c.stop();
  for (const close of closers) close();
  for (const i of identities) i.close();
  await serve?.stop();
  removeTempDirs();
});

/** A service that answers 200 only to callers passing authorizePeerWithRevocation. */
async function service(identity: AgentIdentity, allow: string[], c: CrlChecker): Promise<string> {
  const s = createServer(identity.serverOptions(), (req, res) => {
    const socket = req.socket as TLSSocket;
    res.writeHead(authorizePeerWithRevocation(socket, allow, c) ? 200 : 403).end(String(c.isAllowed(socket)));
  });
  identity.keepCurrent(s);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  closers.push(() => s.close());
  return `https://127.0.0.1:${(s.address() as AddressInfo).port}/`;
}

function call(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    }).on('error', reject);
  });
}

describe('CrlChecker', () => {
  it('says good for a bootstrapped agent, then revoked within 1 s of agentca revoke', async () => {
    const c = checker(crlUrl).start();
    await waitFor('first CRL', async () => c.crl !== null, 5000);
    const svc = await boot('spiffe://example.org/svc/guarded');
    const agent = await boot('spiffe://example.org/agent/revokee');
    expect(c.status(agent.serial)).toBe('good');
    const url = await service(svc, [agent.spiffeId], c);
    const httpsAgent = agent.httpsAgent({ keepAlive: false });
    expect(await call(url, httpsAgent)).toBe(200);

    await ok('agentca', ['revoke', '--dir', dir, '--serial', agent.serial]);
    const revokedAt = Date.now();
    await waitFor('revoked', async () => c.status(agent.serial) === 'revoked', 3000);
    expect(Date.now() - revokedAt).toBeLessThan(1000);
    // Both serial spellings: the SDK's and the peer certificate's (uppercase, maybe 00-padded).
    expect(c.status(agent.serial.toUpperCase())).toBe('revoked');
    expect(c.status('00' + agent.serial)).toBe('revoked');
    expect(await call(url, httpsAgent)).toBe(403);
    // Another agent stays good.
    const other = await boot('spiffe://example.org/agent/bystander');
    expect(c.status(other.serial)).toBe('good');
  }, 20_000);

  it('fails closed: a dead URL gives unknown, and so does a CRL past its nextUpdate', async () => {
    const errors: Error[] = [];
    const dead = checker(`http://127.0.0.1:${await freePort()}/crl`, errors).start();
    await waitFor('a fetch error', async () => errors.length > 0, 3000);
    expect(dead.crl).toBeNull();
    expect(dead.status(identities[0]!.serial)).toBe('unknown');
    expect(dead.isAllowed({ getPeerCertificate: () => ({}) } as unknown as TLSSocket)).toBe(false);

    const der = await fetchDer(crlUrl);
    const { nextUpdate } = parseCrl(der);
    let now = Date.now();
    const stale = new CrlChecker({ url: crlUrl, issuerCertificatePem: intermediatePem, now: () => now });
    expect(stale.load(der)).toBe(true);
    expect(stale.status(identities[0]!.serial)).toBe('good');
    now = nextUpdate!.getTime() + 1;
    expect(stale.status(identities[0]!.serial)).toBe('unknown');
  });

  it('refuses a tampered CRL and keeps the last good one', async () => {
    let tamper = false;
    let served = 0;
    const proxy: HttpServer = createHttpServer((_req, res) => {
      void fetchDer(crlUrl).then((der) => {
        if (tamper) {
          // Change the seconds of thisUpdate (still a well-formed time): the signature no longer covers it.
          const t = Buffer.from(der);
          const { thisUpdate } = parseCrl(der);
          const stamp = Buffer.from(thisUpdate.toISOString().replace(/\D/g, '').slice(2, 14) + 'Z', 'latin1');
          const at = t.indexOf(stamp);
          expect(at).toBeGreaterThan(0);
          t[at + 11] = t[at + 11] === 0x30 ? 0x31 : 0x30;
          der = t;
        }
        served++;
        res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(der);
      });
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    closers.push(() => proxy.close());
    const errors: Error[] = [];
    const c = checker(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}/crl`, errors).start();
    await waitFor('first CRL', async () => c.crl !== null, 5000);
    const good = c.crl!;
    const agent = identities[0]!;
    expect(c.status(agent.serial)).toBe('good');

    tamper = true;
    const before = served;
    await waitFor('a refused CRL', async () => errors.some((e) => /signature does not verify/.test(e.message)) && served > before, 3000);
    expect(c.crl).toBe(good);
    expect(c.status(agent.serial)).toBe('good');

    // A CRL signed by a key that is not the issuer's is refused too (here: the root's CRL).
    const rootCrl = await fetchDer(`${serve.url.replace(/\/$/, '')}/root.crl`);
    expect(c.load(rootCrl)).toBe(false);
    expect(errors.at(-1)!.message).toMatch(/another CA|signature/);
    expect(c.crl).toBe(good);
  }, 15_000);

  it('normalises serials the same way on both sides', () => {
    expect(normalizeSerial('00AB01')).toBe('ab01');
    expect(normalizeSerial('ab01')).toBe('ab01');
    expect(normalizeSerial('00')).toBe('0');
  });
});
