/**
 * Revocation reaching real consumers: `agentca serve`'s CRL and OCSP checked with openssl and
 * GnuTLS, the propagation time from `agentca revoke` returning, and CRL numbers across a
 * restart. nginx and HAProxy are in proxies.test.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initCa, makeCsr, ok, pemBlocks, removeTempDirs, run, runCli, tempDir } from './support/cli.ts';
import { startServe, waitFor, type Served } from './support/serve.ts';
import { ocspStatus } from './support/ocsp.ts';

const TD = 'example.org';
let dir: string;
let work: string;
let serve: Served;
const certs: Record<string, { leaf: string; key: string; serial: string; chain: string }> = {};

async function issue(name: string, extra: string[] = []) {
  const { csr, key } = await makeCsr(work, name, 'ec-p256');
  const out = join(work, `${name}.chain.pem`);
  const j = JSON.parse(await ok('agentca', ['issue', '--dir', dir, '--csr', csr, '--id', `spiffe://${TD}/agent/${name}`, '--out', out, '--json', ...extra]));
  const leaf = join(work, `${name}.pem`);
  writeFileSync(leaf, pemBlocks(readFileSync(out, 'utf8'))[0]!);
  certs[name] = { leaf, key, serial: j.serial, chain: out };
  return certs[name]!;
}


async function post(url: string, body: Uint8Array): Promise<Uint8Array> {
  const r = await fetch(url, { method: 'POST', body: Buffer.from(body), headers: { 'content-type': 'application/ocsp-request' } });
  expect(r.status).toBe(200);
  return new Uint8Array(await r.arrayBuffer());
}

function serialBytes(hex: string): Buffer {
  return Buffer.from(hex, 'hex');
}

async function ocspRequest(name: string, extra: string[] = ['-no_nonce']): Promise<Uint8Array> {
  const out = join(work, `${name}-${extra.join('')}.ocsp-req`);
  await ok('openssl', ['ocsp', '-issuer', join(dir, 'intermediate.pem'), '-cert', certs[name]!.leaf, '-reqout', out, ...extra]);
  return new Uint8Array(readFileSync(out));
}

async function opensslOcsp(name: string, extra: string[] = []) {
  return run('openssl', ['ocsp', '-url', `${serve.url}/ocsp`, '-issuer', join(dir, 'intermediate.pem'), '-cert', certs[name]!.leaf, '-CAfile', join(dir, 'root.pem'), ...extra]);
}

beforeAll(async () => {
  work = tempDir('revocation');
  dir = join(work, 'ca');
  await initCa(dir);
  await Promise.all(['good', 'victim', 'burst1', 'burst2', 'burst3', 'later'].map((n) => issue(n)));
  serve = await startServe(dir);
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  removeTempDirs();
});

describe('CRL over HTTP', () => {
  it('GET /crl is a DER CRL of the issuing CA that openssl verifies against the chain', async () => {
    const r = await fetch(`${serve.url}/crl`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/pkix-crl');
    expect(r.headers.get('cache-control')).toMatch(/max-age=\d+/);
    const der = join(work, 'served.crl');
    writeFileSync(der, Buffer.from(await r.arrayBuffer()));
    const out = await ok('openssl', ['crl', '-inform', 'DER', '-in', der, '-noout', '-issuer', '-crlnumber', '-CAfile', join(dir, 'intermediate.pem')]);
    expect(out).toContain(`agentca intermediate CA ${TD}`);
    expect(out).toMatch(/crlNumber=/);
  });

  it('GET /crl.pem is the proxy bundle: the issuing CA CRL, then the root CRL — the same as the crl.pem file', async () => {
    const r = await fetch(`${serve.url}/crl.pem`);
    expect(r.status).toBe(200);
    const text = await r.text();
    const blocks = pemBlocks(text, 'X509 CRL');
    expect(blocks).toHaveLength(2);
    const issuers = await Promise.all(
      blocks.map(async (b, i) => {
        const f = join(work, `bundle-${i}.pem`);
        writeFileSync(f, b);
        return ok('openssl', ['crl', '-in', f, '-noout', '-issuer']);
      }),
    );
    expect(issuers[0]).toContain('intermediate CA');
    expect(issuers[1]).toContain('root CA');
    expect(readFileSync(join(dir, 'crl.pem'), 'utf8')).toBe(text);
  });
});

describe('OCSP', () => {
  it('openssl ocsp: good, the response verifies against the chain, and the nonce is echoed', async () => {
    const r = await opensslOcsp('good');
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain(`${certs.good!.leaf}: good`);
    expect(r.stderr).toContain('Response verify OK');
    expect(r.stderr + r.stdout).not.toMatch(/WARNING: no nonce|Nonce Verify error/);
  });

  it('never good for a serial we never issued', async () => {
    const r = await run('openssl', ['ocsp', '-url', `${serve.url}/ocsp`, '-issuer', join(dir, 'intermediate.pem'), '-serial', '0x4a0102030405060708090a0b0c0d0e0f10', '-CAfile', join(dir, 'root.pem')]);
    expect(r.stdout).toMatch(/0x4a0102030405060708090a0b0c0d0e0f10: unknown/);
    expect(r.stdout).not.toMatch(/: good/);
  });

  it("answers unauthorized for another CA's certificate", async () => {
    const other = join(work, 'other');
    await ok('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${other}-ca.key`, '-out', `${other}-ca.pem`, '-subj', '/CN=other CA', '-days', '1']);
    const r = await run('openssl', ['ocsp', '-url', `${serve.url}/ocsp`, '-issuer', `${other}-ca.pem`, '-cert', `${other}-ca.pem`, '-CAfile', `${other}-ca.pem`]);
    expect(r.stdout + r.stderr).toContain('unauthorized');
    expect(r.stdout).not.toMatch(/: good/);
  });
});

describe('propagation', () => {
  it('from agentca revoke returning to the served CRL listing the serial and OCSP answering revoked: under 1 s', async () => {
    const victim = certs.victim!;
    const req = await ocspRequest('victim');
    expect(ocspStatus(await post(`${serve.url}/ocsp`, req)).status).toBe('good');
    const r = await runCli(['revoke', '--dir', dir, '--serial', victim.serial, '--reason', 'keyCompromise']);
    const returned = performance.now();
    expect(r.code, r.stderr).toBe(0);
    const needle = serialBytes(victim.serial);
    await waitFor('the CRL and OCSP to show the revocation', async () => {
      const crl = Buffer.from(await (await fetch(`${serve.url}/crl`)).arrayBuffer());
      const ocsp = ocspStatus(await post(`${serve.url}/ocsp`, req)).status;
      return crl.includes(needle) && ocsp === 'revoked';
    }, 3000, 5);
    const elapsed = performance.now() - returned;
    expect(elapsed).toBeLessThan(1000);

    // …and the consumers agree: openssl ocsp says revoked with the reason; openssl verify fails with error 23.
    const o = await opensslOcsp('victim');
    expect(o.stdout).toContain(`${victim.leaf}: revoked`);
    expect(o.stdout).toMatch(/Reason: keyCompromise/);
    const crlFile = join(work, 'after.crl');
    writeFileSync(crlFile, Buffer.from(await (await fetch(`${serve.url}/crl`)).arrayBuffer()));
    await ok('openssl', ['crl', '-inform', 'DER', '-in', crlFile, '-out', `${crlFile}.pem`]);
    const v = await run('openssl', ['verify', '-crl_check', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'intermediate.pem'), '-CRLfile', `${crlFile}.pem`, victim.leaf]);
    expect(v.code).not.toBe(0);
    expect(v.stdout + v.stderr).toMatch(/error 23 .*certificate revoked/);
    const g = await run('openssl', ['verify', '-crl_check', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'intermediate.pem'), '-CRLfile', `${crlFile}.pem`, certs.good!.leaf]);
    expect(g.code, g.stdout + g.stderr).toBe(0);
    // GnuTLS reads the same CRL the same way.
    const both = join(work, 'victim+int.pem');
    writeFileSync(both, readFileSync(victim.leaf, 'utf8') + readFileSync(join(dir, 'intermediate.pem'), 'utf8'));
    const gt = await run('certtool', ['--verify', '--load-ca-certificate', join(dir, 'root.pem'), '--load-crl', `${crlFile}.pem`, '--infile', both]);
    expect(gt.stdout + gt.stderr).toMatch(/revoked/i);
    expect(gt.stdout).not.toMatch(/Chain verification output: Verified/);
  });

  it('a burst of revocations from several processes shows up within 1 s of the last one returning', async () => {
    const names = ['burst1', 'burst2', 'burst3'];
    const rs = await Promise.all(names.map((n) => runCli(['revoke', '--dir', dir, '--serial', certs[n]!.serial])));
    const returned = performance.now();
    for (const r of rs) expect(r.code, r.stderr).toBe(0);
    await waitFor('all three on the CRL', async () => {
      const crl = Buffer.from(await (await fetch(`${serve.url}/crl`)).arrayBuffer());
      return names.every((n) => crl.includes(serialBytes(certs[n]!.serial)));
    }, 3000, 5);
    expect(performance.now() - returned).toBeLessThan(1000);
  });
});

describe('CRL numbers', () => {
  async function crlNumber(): Promise<bigint> {
    const f = join(work, `n-${Date.now()}-${Math.random()}.crl`);
    writeFileSync(f, Buffer.from(await (await fetch(`${serve.url}/crl`)).arrayBuffer()));
    const out = await ok('openssl', ['crl', '-inform', 'DER', '-in', f, '-noout', '-crlnumber']);
    return BigInt('0x' + out.trim().split('=')[1]!.replace(/^0x/i, ''));
  }

  it('strictly increase across a restart of serve', async () => {
    const before = await crlNumber();
    expect(await serve.stop()).toBe(0);
    serve = await startServe(dir);
    const afterRestart = await crlNumber();
    expect(afterRestart).toBeGreaterThanOrEqual(before);
    const r = await runCli(['revoke', '--dir', dir, '--serial', certs.later!.serial]);
    expect(r.code, r.stderr).toBe(0);
    const after = await waitFor('a new CRL', async () => {
      const n = await crlNumber();
      return n > afterRestart ? n : undefined;
    }, 3000);
    expect(after).toBeGreaterThan(before);
  });
});
