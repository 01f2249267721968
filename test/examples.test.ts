/**
 * Every example under examples/ runs with its one command (the `start` script of its
 * package.json, run as `pnpm --filter <name> start` would: in its directory, with its
 * node_modules/.bin on PATH) and tells the story its README promises. Each example runs in a
 * process group of its own, so a hung one is killed with everything it started, and the test
 * checks that a finished one left no process behind.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './support/cli.ts';

interface ExampleRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Processes of the example's group still alive after it exited. */
  leftovers: boolean;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function runExample(name: string, timeoutMs = 90_000): Promise<ExampleRun> {
  const dir = join(repoRoot, 'examples', name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; private?: boolean; scripts?: { start?: string } };
  expect(pkg.name).toBe(`@agentca-example/${name}`);
  expect(pkg.private).toBe(true);
  const start = pkg.scripts?.start;
  expect(start, `examples/${name} has a start script`).toBeTruthy();
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AGENTCA_')) env[k] = v;
  env.PATH = [join(dir, 'node_modules/.bin'), process.env.PATH].join(delimiter);
  const began = performance.now();
  const child = spawn('sh', ['-c', start!], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }, timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(timer);
  const ms = Math.round(performance.now() - began);
  // The example stops what it started before it exits; give the kernel a moment to reap.
  let leftovers = groupAlive(child.pid!);
  for (let i = 0; leftovers && i < 20; i++) {
    await new Promise((r) => setTimeout(r, 100));
    leftovers = groupAlive(child.pid!);
  }
  if (leftovers) process.kill(-child.pid!, 'SIGKILL');
  return { code, stdout, stderr, ms, leftovers };
}

function expectSuccess(r: ExampleRun): void {
  expect(r.code, `exit code\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);
  expect(r.leftovers, 'processes left behind').toBe(false);
}

describe('examples', () => {
  it('agent-to-tool-mtls: the agent gets in over mTLS, a caller off the allow-list does not, and ending the task cuts the agent off within 1 s', async () => {
    const r = await runExample('agent-to-tool-mtls');
    expectSuccess(r);
    expect(r.stdout).toMatch(/\[agent\] +booted as spiffe:\/\/example\.org\/agent\/invoice-bot: serial [0-9a-f]+, instance \S+, task invoice-run-42/);
    expect(r.stdout).toMatch(/\[agent\] +GET \/invoices → 200 \{"caller":"spiffe:\/\/example\.org\/agent\/invoice-bot","tool":"spiffe:\/\/example\.org\/tool\/invoices"/);
    expect(r.stdout).toMatch(/\[stranger\] +GET \/invoices → 403 \{"error":"spiffe:\/\/example\.org\/agent\/stranger is not on the allow-list"\}/);
    expect(r.stdout).toMatch(/\[ca\] +agentca task end invoice-run-42: revoked [0-9a-f]+ at /);
    expect(r.stdout).toMatch(/\[agent\] +GET \/invoices → 403 \{"error":"certificate [0-9a-f]+ is revoked"\}/);
    const ms = Number(/refused (\d+) ms after the revocation/.exec(r.stdout)?.[1]);
    expect(ms, r.stdout).toBeGreaterThanOrEqual(0);
    console.log(`agent-to-tool-mtls: refused ${ms} ms after the revocation; the example ran ${r.ms} ms`);
    expect(ms, r.stdout).toBeLessThan(1000);
    expect(r.stdout).toMatch(/^ok: the agent was cut off \d+ ms after its task ended/m);
    expect(r.ms).toBeLessThan(60_000);
  });

  it('nginx-sidecar: curl with the files the sidecar keeps fresh gets through nginx, before and after a rotation; revoked, nginx refuses it', async () => {
    const r = await runExample('nginx-sidecar');
    expectSuccess(r);
    const hellos = r.stdout.match(/\[curl\] +200 hello spiffe:\/\/example\.org\/agent\/report-bot \(certificate [0-9a-f]+\)/g) ?? [];
    expect(hellos, r.stdout).toHaveLength(2);
    expect(new Set(hellos).size, 'the second call presents the rotated certificate').toBe(2);
    expect(r.stdout).toMatch(/\[sidecar\] +rotated: new key and certificate [0-9a-f]+/);
    expect(r.stdout).toMatch(/\[curl\] +400 The SSL certificate error/);
    expect(r.stdout).toMatch(/\[nginx\] +client SSL certificate verify error: \(23:certificate revoked\)/);
    expect(r.stdout).toMatch(/\(ERR_CLIENT_CERTIFICATE_REVOKED\); renewal stopped/);
    const ms = Number(/\[nginx\] +refused (\d+) ms after the revocation/.exec(r.stdout)?.[1]);
    expect(ms, r.stdout).toBeGreaterThanOrEqual(0);
    console.log(`nginx-sidecar: refused ${ms} ms after the revocation; the example ran ${r.ms} ms`);
    expect(ms, r.stdout).toBeLessThan(1000);
    expect(r.stdout).toMatch(/^ok: nginx let the sidecar-fed client in, then refused it once revoked$/m);
    expect(r.ms).toBeLessThan(60_000);
  });

  it('embed-core: the core in-process issues for a SPIFFE ID from a CSR, refuses a CSR asking for another name, revokes, audits', async () => {
    const r = await runExample('embed-core');
    expectSuccess(r);
    expect(r.stdout).toMatch(/^issued [0-9a-f]+ for spiffe:\/\/example\.org\/agent\/invoice-bot, valid until /m);
    expect(r.stdout).toContain('✓ exactly one SAN: URI:spiffe://example.org/agent/invoice-bot');
    expect(r.stdout).toContain('openssl verify: leaf.pem: OK');
    expect(r.stdout).toMatch(/refused: .* \(ERR_CSR_SAN_MISMATCH\)/);
    expect(r.stdout).toMatch(/openssl verify -crl_check: error 23 at 0 depth lookup: certificate revoked/);
    expect(r.stdout).toMatch(/^audit chain: ok, 3 events, head [0-9a-f]{16}…$/m);
    expect(r.stdout).not.toContain('FAILED');
    expect(r.ms).toBeLessThan(30_000);
  });
});
