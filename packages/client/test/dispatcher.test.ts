/**
 * Calls out with the current certificate, over real mTLS against a real `agentca serve`: the undici
 * dispatcher (undici's fetch and Node's global fetch) and the keep-alive https.Agent pool
 * connections per certificate. After a rotation the next request opens a connection with the new
 * certificate, while a request in flight on the old one finishes.
 */
import { once } from 'node:events';
import { createServer, request, type Agent, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, removeTempDirs, tempDir } from '../../../test/support/cli.ts';
import { startServe, type Served } from '../../../test/support/serve.ts';
import { AgentCAClientError, AgentIdentity, authorizePeer, peerSpiffeId } from '../src/index.ts';

let dir: string;
let serve: Served;
let caBundle: string;
const identities: AgentIdentity[] = [];
const dispatchers: Dispatcher[] = [];
let svc: AgentIdentity;
let server: Server;
let url: string;

interface Seen {
  caller: string | null;
  serial: string;
  port: number;
}

async function boot(id: string): Promise<AgentIdentity> {
  const token = (await ok('agentca', ['token', 'create', '--dir', dir, '--id', id])).trim().split('\n')[0]!;
  const identity = await AgentIdentity.bootstrap({ server: serve.apiUrl, caBundle, token });
  identities.push(identity);
  return identity;
}

const strip = (hex: string): string => hex.toLowerCase().replace(/^0+/, '');

beforeAll(async () => {
  dir = join(tempDir('dispatcher'), 'ca');
  await ok('agentca', ['init', '--trust-domain', 'example.org', '--dir', dir]);
  caBundle = await ok('agentca', ['bundle', '--dir', dir]);
  serve = await startServe(dir);
  svc = await boot('spiffe://example.org/svc/echo');
  // Answers who called, with which certificate serial, from which client port; /slow after 1.5 s.
  server = createServer(svc.serverOptions(), (req, res) => {
    const socket = req.socket as TLSSocket;
    const seen: Seen = { caller: peerSpiffeId(socket), serial: strip(socket.getPeerCertificate().serialNumber ?? ''), port: socket.remotePort! };
    const allowed = authorizePeer(socket, ['spiffe://example.org/agent/caller']);
    setTimeout(() => res.writeHead(allowed ? 200 : 403, { 'content-type': 'application/json' }).end(JSON.stringify(seen)), req.url === '/slow' ? 1500 : 0);
  });
  svc.keepCurrent(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}, 60_000);

afterAll(async () => {
  await Promise.all(dispatchers.map((d) => d.close()));
  server?.close();
  for (const i of identities) i.close();
  await serve?.stop();
  removeTempDirs();
});

async function viaFetch(path: string, dispatcher: Dispatcher, f: typeof undiciFetch = undiciFetch): Promise<{ status: number; seen: Seen }> {
  const res = await f(new URL(path, url), { dispatcher });
  return { status: res.status, seen: (await res.json()) as Seen };
}

function viaAgent(path: string, agent: Agent): Promise<{ status: number; seen: Seen; server: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    request(new URL(path, url), { agent }, (res) => {
      const server = strip((res.socket as TLSSocket).getPeerCertificate().serialNumber);
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, seen: JSON.parse(text) as Seen, server, connection: res.headers.connection }));
    })
      .on('error', reject)
      .end();
  });
}

describe('identity.dispatcher()', () => {
  it('fetch presents the current certificate after each rotation, pools connections per certificate, and cuts no request in flight', async () => {
    const caller = await boot('spiffe://example.org/agent/caller');
    const dispatcher = caller.dispatcher({ allow: [svc.spiffeId] });
    dispatchers.push(dispatcher);
    const s0 = strip(caller.serial);

    // Keep-alive: a handful of connections at most (undici may open a second one when a request
    // goes out before the previous connection is released), all with the first certificate.
    const before: Seen[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await viaFetch('/', dispatcher);
      expect(r).toMatchObject({ status: 200, seen: { caller: caller.spiffeId, serial: s0 } });
      before.push(r.seen);
    }
    const portsBefore = new Set(before.map((r) => r.port));
    expect(portsBefore.size).toBeLessThanOrEqual(2);

    const slow = viaFetch('/slow', dispatcher);
    await new Promise((r) => setTimeout(r, 200)); // the slow request is on the wire
    await caller.renew();
    const s1 = strip(caller.serial);
    expect(s1).not.toBe(s0);
    const after: Seen[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await viaFetch('/', dispatcher);
      expect(r).toMatchObject({ status: 200, seen: { caller: caller.spiffeId, serial: s1 } });
      after.push(r.seen);
    }
    for (const r of after) expect(portsBefore.has(r.port)).toBe(false);
    expect(new Set(after.map((r) => r.port)).size).toBeLessThanOrEqual(2);
    const slowAnswer = await slow;
    expect(slowAnswer).toMatchObject({ status: 200, seen: { serial: s0 } });
    expect(portsBefore.has(slowAnswer.seen.port)).toBe(true);

    await caller.renew();
    const s2 = strip(caller.serial);
    const r5 = await viaFetch('/', dispatcher);
    expect(r5.seen.serial).toBe(s2);
    // Node's own fetch takes the dispatcher too.
    const r6 = await viaFetch('/', dispatcher, globalThis.fetch as unknown as typeof undiciFetch);
    expect(r6).toMatchObject({ status: 200, seen: { serial: s2 } });
  }, 60_000);

  it('checks the server by SPIFFE ID, and the server checks the caller', async () => {
    const caller = await boot('spiffe://example.org/agent/caller');
    const wrongServer = caller.dispatcher({ allow: ['spiffe://example.org/svc/other'] });
    dispatchers.push(wrongServer);
    const err = (await undiciFetch(url, { dispatcher: wrongServer }).catch((e: unknown) => e)) as Error & { cause?: unknown };
    expect(err).toBeInstanceOf(TypeError);
    expect(err.cause).toBeInstanceOf(AgentCAClientError);
    expect((err.cause as AgentCAClientError).code).toBe('ERR_PEER_NOT_ALLOWED');
    expect((err.cause as AgentCAClientError).message).toBe(`the server at 127.0.0.1 is ${svc.spiffeId}, which is not allowed`);

    const stranger = await boot('spiffe://example.org/agent/stranger');
    const d = stranger.dispatcher();
    dispatchers.push(d);
    expect(await viaFetch('/', d)).toMatchObject({ status: 403, seen: { caller: stranger.spiffeId } });
  }, 30_000);

  it('close() waits for requests in flight', async () => {
    const caller = await boot('spiffe://example.org/agent/caller');
    const d = caller.dispatcher();
    const slow = viaFetch('/slow', d);
    await new Promise((r) => setTimeout(r, 200));
    await caller.renew();
    await d.close();
    expect((await slow).status).toBe(200);
    await expect(viaFetch('/', d)).rejects.toThrow();
  }, 30_000);
});

describe('identity.httpsAgent({ keepAlive: true })', () => {
  it('pools connections per certificate: the next request after a rotation opens a connection with the new one', async () => {
    const caller = await boot('spiffe://example.org/agent/caller');
    const agent = caller.httpsAgent({ keepAlive: true, allow: [svc.spiffeId] });
    try {
      const s0 = strip(caller.serial);
      const r1 = await viaAgent('/', agent);
      expect(r1).toMatchObject({ status: 200, seen: { serial: s0 } });
      expect((await viaAgent('/', agent)).seen).toEqual(r1.seen);
      const slow = viaAgent('/slow', agent);
      await new Promise((r) => setTimeout(r, 200));
      // A second connection, idle in the pool when the rotation comes.
      const idle = await viaAgent('/', agent);
      expect(idle).toMatchObject({ status: 200, seen: { serial: s0 } });
      expect(idle.seen.port).not.toBe(r1.seen.port);
      expect(Object.values(agent.freeSockets).flat().length).toBe(1);
      await caller.renew();
      const r3 = await viaAgent('/', agent);
      expect(r3).toMatchObject({ status: 200, seen: { serial: strip(caller.serial) } });
      expect([r1.seen.port, idle.seen.port]).not.toContain(r3.seen.port);
      expect(await slow).toMatchObject({ status: 200, seen: { serial: s0, port: r1.seen.port } });
      expect((await viaAgent('/', agent)).seen).toEqual(r3.seen);
      // The connections made with the old certificate were closed (the busy one once its request
      // ended, the idle one when the new certificate's connection opened) and left the pools.
      await new Promise((r) => setTimeout(r, 100));
      expect(Object.values(agent.freeSockets).flat().length).toBe(1);
      expect(Object.values(agent.sockets).flat().length).toBe(0);
    } finally {
      agent.destroy();
    }
  }, 30_000);
});

describe('identity.keepCurrent(server)', () => {
  it('closes a kept-alive connection made with the previous service certificate after its next response', async () => {
    const caller = await boot('spiffe://example.org/agent/caller');
    const agent = caller.httpsAgent({ keepAlive: true, allow: [svc.spiffeId] });
    try {
      const before = strip(svc.serial);
      const r1 = await viaAgent('/', agent);
      expect(r1).toMatchObject({ status: 200, server: before, connection: 'keep-alive' });
      expect((await viaAgent('/', agent)).seen.port).toBe(r1.seen.port);
      await svc.renew();
      // The next request rides the old connection, whose answer closes it…
      const r3 = await viaAgent('/', agent);
      expect(r3).toMatchObject({ status: 200, server: before, connection: 'close' });
      expect(r3.seen.port).toBe(r1.seen.port);
      // …so the one after that gets the service's new certificate.
      const r4 = await viaAgent('/', agent);
      expect(r4).toMatchObject({ status: 200, server: strip(svc.serial), connection: 'keep-alive' });
      expect(r4.server).not.toBe(before);
      expect(r4.seen.port).not.toBe(r1.seen.port);
    } finally {
      agent.destroy();
    }
  }, 30_000);
});
