/**
 * The workload's first boot over real HTTPS: a join token → `agentca request` → a certificate
 * that passes the conformance validators; `agentca renew` over mTLS → a new serial, the same
 * identity; `/v1/retire` → OCSP says revoked. Hostile cases live in
 * packages/server/test/api*.test.ts; this file drives the real binary and server.
 */
import { readFileSync, statSync, writeFileSync as require_write } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_CHAIN, initCa, ok, pemBlocks, removeTempDirs, run, runCli, tempDir, expectOneLineError } from './support/cli.ts';
import { startServe, type Served } from './support/serve.ts';

const TD = 'example.org';
let work: string;
let dir: string;
let serve: Served;
let bundle: string;

beforeAll(async () => {
  work = tempDir('api');
  dir = join(work, 'ca');
  await initCa(dir);
  bundle = join(work, 'bundle.pem');
  await ok('agentca', ['bundle', '--dir', dir, '--out', bundle]);
  serve = await startServe(dir);
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  removeTempDirs();
});

async function token(id: string, extra: string[] = []): Promise<string> {
  return (await ok('agentca', ['token', 'create', '--dir', dir, '--id', id, ...extra])).trim();
}

function split(certFile: string): { leaf: string; chain: string } {
  const blocks = pemBlocks(readFileSync(certFile, 'utf8'));
  const leaf = join(work, `leaf-${Math.random().toString(36).slice(2)}.pem`);
  const chain = join(work, `chain-${Math.random().toString(36).slice(2)}.pem`);
  require_write(leaf, blocks[0]!);
  require_write(chain, blocks.slice(1).join(''));
  return { leaf, chain };
}


describe('workload first boot', () => {
  it('serve verifies CSRs with the native verifier the install built, and says so at start', () => {
    const listening = serve.logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string; csrVerify?: string }).find((j) => j.event === 'serve.listening');
    expect(listening?.csrVerify).toBe('native');
    expect(serve.logs.join('')).not.toContain('serve.native_verifier_unavailable');
  });

  it('token → agentca request → conformant certificate; renew → new serial, same identity; retire → revoked', async () => {
    const id = `spiffe://${TD}/agent/invoice-bot`;
    const t = await token(id, ['--task', 'job-42', '--task-ttl', '2h', '--on-behalf-of', 'alice@example.org']);
    expect(t).toMatch(/^agentca-jt\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    const out = join(work, 'wl');
    const r = JSON.parse(await ok('agentca', ['request', '--server', serve.apiUrl, '--token', t, '--ca-bundle', bundle, '--out-dir', out, '--json']));
    expect(r.spiffeId).toBe(id);
    expect(statSync(join(out, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(out, 'bundle.pem'), 'utf8')).toBe(readFileSync(bundle, 'utf8'));
    const first = split(join(out, 'cert.pem'));
    const check = await run('bash', [CHECK_CHAIN, first.leaf, first.chain, bundle, '--id', id, '--max-ttl', '3600']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toMatch(/openssl: ok\ngnutls: ok\npython-cryptography: ok/);
    const text = await ok('agentca', ['inspect', first.leaf]);
    expect(text).toContain('job-42');
    expect(text).toContain('alice@example.org');

    // The token is spent.
    const again = await runCli(['request', '--server', serve.apiUrl, '--token', t, '--ca-bundle', bundle, '--out-dir', join(work, 'wl-again')]);
    expectOneLineError(again, 'ERR_TOKEN_ALREADY_USED');

    // Renew over mTLS: new serial and key, same SPIFFE ID and instance; files replaced in place.
    const keyBefore = readFileSync(join(out, 'key.pem'), 'utf8');
    const n = JSON.parse(await ok('agentca', ['renew', '--server', serve.apiUrl, '--cert', join(out, 'cert.pem'), '--key', join(out, 'key.pem'), '--ca-bundle', bundle, '--json']));
    expect(n.serial).not.toBe(r.serial);
    expect(n.spiffeId).toBe(id);
    expect(n.instanceId).toBe(r.instanceId);
    expect(readFileSync(join(out, 'key.pem'), 'utf8')).not.toBe(keyBefore);
    const second = split(join(out, 'cert.pem'));
    const check2 = await run('bash', [CHECK_CHAIN, second.leaf, second.chain, bundle, '--id', id]);
    expect(check2.code, check2.stdout + check2.stderr).toBe(0);

    // Retire: the instance ends itself; OCSP says revoked for both of its certificates.
    const retire = await run('curl', ['-s', '--fail-with-body', '--cacert', bundle, '--cert', join(out, 'cert.pem'), '--key', join(out, 'key.pem'), '-X', 'POST', '-H', 'content-type: application/json', '-d', '{}', `${serve.apiUrl}/v1/retire`]);
    expect(retire.code, retire.stdout + retire.stderr).toBe(0);
    for (const leaf of [first.leaf, second.leaf]) {
      const o = await run('openssl', ['ocsp', '-url', `${serve.url}/ocsp`, '-issuer', join(dir, 'intermediate.pem'), '-cert', leaf, '-CAfile', join(dir, 'root.pem')]);
      expect(o.stdout).toContain(`${leaf}: revoked`);
      expect(o.stdout).toContain('Reason: cessationOfOperation');
    }
  });

  it("serve's /metrics counts the SQLite store's commits and its WAL syncs, made off the event loop", async () => {
    const scrape = async () => {
      const m = await run('curl', ['-s', '--fail-with-body', '--cacert', bundle, `${serve.apiUrl}/metrics`]);
      expect(m.code, m.stdout + m.stderr).toBe(0);
      const value = (name: string) => Number(new RegExp(`\\n${name} (\\d+)\\n`).exec(m.stdout)?.[1]);
      return { commits: value('agentca_store_commits_total'), walSyncs: value('agentca_store_wal_syncs_total') };
    };
    const before = await scrape();
    const t = await token(`spiffe://${TD}/agent/metrics-bot`);
    await ok('agentca', ['request', '--server', serve.apiUrl, '--token', t, '--ca-bundle', bundle, '--out-dir', join(work, 'wl-metrics')]);
    const after = await scrape();
    // The token was created by another process (the CLI's own connection): serve committed the
    // reservation and the record, and synced the log at least for the record.
    expect(after.commits - before.commits).toBeGreaterThanOrEqual(2);
    expect(after.walSyncs - before.walSyncs).toBeGreaterThanOrEqual(1);
    expect(after.walSyncs).toBeLessThanOrEqual(after.commits);
  });

  it('a token for identity A only ever yields A, and an expired token is refused', async () => {
    const t = await token(`spiffe://${TD}/agent/a`, ['--ttl', '1s']);
    await new Promise((r) => setTimeout(r, 1500));
    const r = await runCli(['request', '--server', serve.apiUrl, '--token', t, '--ca-bundle', bundle, '--out-dir', join(work, 'expired')]);
    expectOneLineError(r, 'ERR_TOKEN_EXPIRED');
  });

  it('agentca task end revokes the task and stops renewal', async () => {
    const t = await token(`spiffe://${TD}/agent/worker`, ['--task', 'batch-7']);
    const out = join(work, 'task');
    await ok('agentca', ['request', '--server', serve.apiUrl, '--token', t, '--ca-bundle', bundle, '--out-dir', out]);
    await ok('agentca', ['task', 'end', 'batch-7', '--dir', dir]);
    const r = await runCli(['renew', '--server', serve.apiUrl, '--cert', join(out, 'cert.pem'), '--key', join(out, 'key.pem'), '--ca-bundle', bundle]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^error: .+ \(ERR_(CLIENT_CERTIFICATE_REVOKED|TASK_ENDED)\)\n$/);
  });
});
