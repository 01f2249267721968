/**
 * `agentca agent`, the sidecar for any language, against a real `agentca serve`: files appear
 * (key 0600, a chain that verifies), rotations rewrite them and run --exec, SIGTERM with
 * --retire-on-exit revokes the instance and exits 0, a spent token is the one-line error. When
 * renewal stops for good it exits 1 with a one-line error instead of looping: the CA refusing
 * (task ended), and the certificate expiring while the CA is unreachable (that sidecar starts in
 * beforeAll, as its 60-second certificate runs out while the other tests run).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENTCA_BIN, PASSPHRASE, expectOneLineError, initCa, listed, ok, pemBlocks, removeTempDirs, run, runCli, tempDir } from './support/cli.ts';
import { startServe, waitFor, type Served } from './support/serve.ts';

const ID = 'spiffe://example.org/agent/sidecar';
let work: string;
let dir: string;
let serve: Served;
let bundle: string;
const children: ChildProcess[] = [];
/** The sidecar whose CA goes away after bootstrap (see the last test). */
let expiring: { agent: ReturnType<typeof startAgent>; out: string; bootstrappedAt: number };

/** A TCP relay to the CA's API that can be shut: connections refused from then on. */
async function relay(port: number): Promise<{ port: number; shut: () => void }> {
  const sockets = new Set<Socket>();
  const server = createServer((c) => {
    const up = connect(port, '127.0.0.1');
    for (const s of [c, up]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    c.pipe(up).pipe(c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    shut: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

beforeAll(async () => {
  work = tempDir('agent');
  dir = join(work, 'ca');
  await initCa(dir);
  bundle = join(work, 'bundle.pem');
  await ok('agentca', ['bundle', '--dir', dir, '--out', bundle]);
  serve = await startServe(dir);

  const r = await relay(Number(new URL(serve.apiUrl).port));
  const out = join(work, 'expiring');
  const agent = startAgent(['--server', `https://127.0.0.1:${r.port}`, '--token', await token(`${ID}-expiring`), '--ca-bundle', bundle, '--out-dir', out, '--ttl', '60s', '--renew-at', '0.5']);
  await waitFor('cert.pem of the expiring sidecar', async () => existsSync(join(out, 'cert.pem')), 20_000, 50);
  expiring = { agent, out, bootstrappedAt: Date.now() };
  r.shut();
}, 60_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await serve?.stop();
  removeTempDirs();
});

async function token(id: string): Promise<string> {
  return (await ok('agentca', ['token', 'create', '--dir', dir, '--id', id])).trim();
}

function startAgent(args: string[]): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AGENTCA_')) env[k] = v;
  env.AGENTCA_PASSPHRASE = PASSPHRASE;
  const child = spawn(process.execPath, [AGENTCA_BIN, 'agent', ...args], { env, cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  child.stdout!.resume();
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, stderr: () => err, exited };
}

function serialOf(certFile: string): string {
  return new X509Certificate(pemBlocks(readFileSync(certFile, 'utf8'))[0]!).serialNumber.toLowerCase();
}

/**
 * The sidecar's stderr on a fatal error: JSON event lines, then exactly one last line
 * `error: <message> (<code>)`. Returns the events and the message.
 */
function fatal(stderr: string, code: string): { events: { event: string; [k: string]: unknown }[]; message: string } {
  const lines = stderr.trimEnd().split('\n');
  const last = lines.pop()!;
  const m = /^error: (.+) \((ERR_[A-Z_]+)\)$/.exec(last);
  expect(m, `last line is "error: <message> (<code>)": ${last}`).not.toBeNull();
  expect(m![2]).toBe(code);
  return { events: lines.map((l) => JSON.parse(l) as { event: string }), message: m![1]! };
}

describe('agentca agent', () => {
  it('bootstraps, writes the files, rotates with --exec, retires on SIGTERM', async () => {
    const t = await token(ID);
    const tokenFile = join(work, 'token');
    writeFileSync(tokenFile, t + '\n', { mode: 0o600 });
    const out = join(work, 'id');
    const rotations = join(out, 'rotations.log');
    // A process that reloads on SIGUSR1, as a server in any language would.
    const reloads = join(work, 'reloads.log');
    const reloader = spawn('sh', ['-c', `trap 'echo reload >> ${JSON.stringify(reloads)}' USR1; while :; do sleep 0.1; done`], { stdio: 'ignore' });
    children.push(reloader);
    const a = startAgent([
      '--server', serve.apiUrl, '--token', `@${tokenFile}`, '--ca-bundle', bundle, '--out-dir', out,
      '--ttl', '60s', '--renew-at', '0.05', '--retire-on-exit', '--signal', `${reloader.pid}:USR1`,
      '--exec', `echo rotated "$AGENTCA_CERT" >> ${JSON.stringify(rotations)}`,
    ]);

    const certFile = join(out, 'cert.pem');
    const keyFile = join(out, 'key.pem');
    await waitFor('cert.pem', async () => existsSync(certFile) && existsSync(join(out, 'bundle.pem')), 20_000, 50);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(out, 'bundle.pem'), 'utf8')).toBe(readFileSync(bundle, 'utf8'));
    const blocks = pemBlocks(readFileSync(certFile, 'utf8'));
    expect(blocks.length).toBe(2);
    const leaf = join(work, 'leaf.pem');
    writeFileSync(leaf, blocks[0]!);
    const v = await run('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'intermediate.pem'), leaf]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    // The key on disk belongs to the certificate on disk.
    const pubOfKey = await ok('openssl', ['pkey', '-in', keyFile, '-pubout']);
    const pubOfCert = await ok('openssl', ['x509', '-in', leaf, '-noout', '-pubkey']);
    expect(pubOfKey).toBe(pubOfCert);
    const first = serialOf(certFile);

    // renew-at 0.05 of 60 s: about every 3 s.
    await waitFor(
      'two rotations',
      async () => existsSync(rotations) && readFileSync(rotations, 'utf8').trim().split('\n').length >= 2,
      15_000,
      100,
    );
    expect(serialOf(certFile)).not.toBe(first);
    await waitFor('the reloader was signalled', async () => existsSync(reloads) && readFileSync(reloads, 'utf8').includes('reload'), 5_000, 50);
    expect(readFileSync(rotations, 'utf8')).toContain(`rotated ${certFile}`);
    const events = a.stderr().trim().split('\n').map((l) => JSON.parse(l) as { event: string; serial?: string; notAfter?: string });
    const rotated = events.filter((e) => e.event === 'agent.rotated');
    expect(rotated.length).toBeGreaterThanOrEqual(2);
    expect(rotated[0]!.serial).toMatch(/^[0-9a-f]+$/);
    expect(rotated[0]!.notAfter).toBeTruthy();
    expect(a.stderr()).not.toContain(t);
    expect(a.stderr()).not.toContain('PRIVATE KEY');

    a.child.kill('SIGTERM');
    expect(await a.exited, a.stderr()).toBe(0);
    expect(a.stderr()).toContain('"event":"agent.retired"');
    const mine = (await listed(dir)).filter((c) => c.spiffeId === ID);
    expect(mine.length).toBeGreaterThanOrEqual(3);
    for (const c of mine) expect(c.status).toBe('revoked');
    reloader.kill('SIGKILL');
  }, 45_000);

  it('exits 1 with a one-line error when the CA refuses renewal for good (its task ended)', async () => {
    const id = `${ID}-task`;
    const t = (await ok('agentca', ['token', 'create', '--dir', dir, '--id', id, '--task', 'sidecar-task', '--task-ttl', '10m'])).trim();
    const out = join(work, 'task');
    const a = startAgent(['--server', serve.apiUrl, '--token', t, '--ca-bundle', bundle, '--out-dir', out, '--ttl', '60s', '--renew-at', '0.05']);
    await waitFor('a rotation', async () => a.stderr().includes('"event":"agent.rotated"'), 20_000, 50);
    await ok('agentca', ['task', 'end', 'sidecar-task', '--dir', dir]);
    const ended = Date.now();
    const code = await Promise.race([a.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 15_000))]);
    expect(code, a.stderr()).toBe(1);
    // renew-at 0.05 of 60 s: the next renewal came within about 3 s, and was the last.
    expect(Date.now() - ended).toBeLessThan(10_000);
    const why = /ERR_CLIENT_CERTIFICATE_REVOKED/.test(a.stderr()) ? 'ERR_CLIENT_CERTIFICATE_REVOKED' : 'ERR_TASK_ENDED';
    const { events, message } = fatal(a.stderr(), why);
    expect(message).toMatch(why === 'ERR_TASK_ENDED' ? /^renewal refused for good: task sidecar-task has ended$/ : /^renewal refused for good: the client certificate [0-9a-f]+ was revoked \(\w+\) at \S+$/);
    const last = events.at(-1)!;
    expect(last).toMatchObject({ event: 'agent.renewal-failed', code: why, retryInMs: null });
    expect(last.status).toBeGreaterThanOrEqual(400);
    expect(last.status).toBeLessThan(500);
    expect(events.filter((e) => e.event === 'agent.renewal-failed')).toHaveLength(1);
  }, 45_000);

  it('a spent token is the one-line error', async () => {
    const t = await token(`${ID}-2`);
    await ok('agentca', ['request', '--server', serve.apiUrl, '--token', t, '--ca-bundle', bundle, '--out-dir', join(work, 'spent')]);
    const r = await runCli(['agent', '--server', serve.apiUrl, '--token', t, '--ca-bundle', bundle, '--out-dir', join(work, 'spent-agent')], { timeoutMs: 20_000 });
    expectOneLineError(r, 'ERR_TOKEN_ALREADY_USED');
    expect(existsSync(join(work, 'spent-agent', 'key.pem'))).toBe(false);
  }, 30_000);

  it('exits 1 with a one-line error when its certificate expires without a successful renewal (the CA unreachable)', async () => {
    const { agent: a, out, bootstrappedAt } = expiring;
    const serial = serialOf(join(out, 'cert.pem'));
    const notAfter = new Date(new X509Certificate(pemBlocks(readFileSync(join(out, 'cert.pem'), 'utf8'))[0]!).validTo).getTime();
    const code = await Promise.race([a.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), Math.max(0, notAfter - Date.now()) + 15_000))]);
    expect(code, a.stderr()).toBe(1);
    expect(Date.now()).toBeGreaterThanOrEqual(notAfter);
    expect(Date.now() - bootstrappedAt).toBeGreaterThan(55_000);
    const { events, message } = fatal(a.stderr(), 'ERR_CERTIFICATE_EXPIRED');
    expect(message).toMatch(new RegExp(`^certificate 0*${serial.replace(/^0+/, '')} expired at \\S+ without a successful renewal; last attempt: cannot reach https://127\\.0\\.0\\.1:\\d+: connect ECONNREFUSED`));
    // It kept trying, with growing backoff, and stopped at expiry.
    const failures = events.filter((e) => e.event === 'agent.renewal-failed');
    expect(failures.length).toBeGreaterThanOrEqual(3);
    for (const f of failures) expect(f).toMatchObject({ code: 'ERR_SERVER_UNREACHABLE', status: null });
    const delays = failures.map((f) => f.retryInMs as number);
    expect(delays.slice(0, 3)).toEqual([1000, 2000, 4000]);
    expect(events.at(-1)).toMatchObject({ event: 'agent.expired' });
    expect(events.some((e) => e.event === 'agent.rotated')).toBe(false);
  }, 90_000);
});
