/**
 * `agentca agent`, the sidecar for any language, against a real `agentca serve`: files appear
 * (key 0600, a chain that verifies), rotations rewrite them and run --exec, SIGTERM with
 * --retire-on-exit revokes the instance and exits 0, a spent token is the one-line error.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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

beforeAll(async () => {
  work = tempDir('agent');
  dir = join(work, 'ca');
  await initCa(dir);
  bundle = join(work, 'bundle.pem');
  await ok('agentca', ['bundle', '--dir', dir, '--out', bundle]);
  serve = await startServe(dir);
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

  it('a spent token is the one-line error', async () => {
    const t = await token(`${ID}-2`);
    await ok('agentca', ['request', '--server', serve.apiUrl, '--token', t, '--ca-bundle', bundle, '--out-dir', join(work, 'spent')]);
    const r = await runCli(['agent', '--server', serve.apiUrl, '--token', t, '--ca-bundle', bundle, '--out-dir', join(work, 'spent-agent')], { timeoutMs: 20_000 });
    expectOneLineError(r, 'ERR_TOKEN_ALREADY_USED');
    expect(existsSync(join(work, 'spent-agent', 'key.pem'))).toBe(false);
  }, 30_000);
});
