/**
 * Real proxies consuming agentca's revocation data as-is: nginx (ssl_crl with the proxy
 * bundle file that `agentca serve` keeps current and reloads nginx for; ssl_ocsp against
 * agentca's responder) and HAProxy (crl-file). These are the configurations in the README.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initCa, makeCsr, ok, removeTempDirs, run, runCli, tempDir } from './support/cli.ts';
import { freePort, startServe, waitFor, type Served } from './support/serve.ts';

const TD = 'example.org';
let work: string;
let dir: string;
let serve: Served;
let serverCert: string;
let serverKey: string;
const clients: Record<string, { chain: string; key: string; serial: string }> = {};
const children: ChildProcess[] = [];

async function issueClient(name: string) {
  const { csr, key } = await makeCsr(work, name, 'ec-p256');
  const chain = join(work, `${name}.chain.pem`);
  const j = JSON.parse(await ok('agentca', ['issue', '--dir', dir, '--csr', csr, '--id', `spiffe://${TD}/agent/${name}`, '--out', chain, '--json']));
  clients[name] = { chain, key, serial: j.serial };
}

/** curl with a client certificate; returns the HTTP status, or the curl exit code as a negative number when the TLS handshake fails. */
async function curlStatus(port: number, client: string): Promise<number> {
  const c = clients[client]!;
  const r = await run('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', '--cert', c.chain, '--key', c.key, `https://127.0.0.1:${port}/`]);
  return r.code === 0 ? Number(r.stdout) : -(r.code ?? 1);
}

function daemon(cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.resume();
  child.stderr!.resume();
  children.push(child);
  return child;
}

async function listening(port: number): Promise<void> {
  await waitFor(`127.0.0.1:${port} to listen`, async () => (await run('ss', ['-ltnH', `sport = :${port}`])).stdout.trim().length > 0, 10_000, 50);
}

beforeAll(async () => {
  work = tempDir('proxies');
  dir = join(work, 'ca');
  await initCa(dir);
  await Promise.all(['good', 'revoked-crl', 'revoked-ocsp', 'revoked-live'].map(issueClient));
  serverCert = join(work, 'server.pem');
  serverKey = join(work, 'server.key');
  await ok('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', serverKey, '-out', serverCert, '-subj', '/CN=localhost', '-days', '1']);
  writeFileSync(join(work, 'cas.pem'), readFileSync(join(dir, 'root.pem'), 'utf8') + readFileSync(join(dir, 'intermediate.pem'), 'utf8'));
  for (const n of ['revoked-crl', 'revoked-ocsp']) {
    const r = await runCli(['revoke', '--dir', dir, '--serial', clients[n]!.serial]);
    expect(r.code, r.stderr).toBe(0);
  }
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  removeTempDirs();
});

describe('nginx', () => {
  let crlPort: number;
  let ocspPort: number;
  let prefix: string;
  let conf: string;

  beforeAll(async () => {
    prefix = join(work, 'nginx');
    mkdirSync(join(prefix, 'logs'), { recursive: true });
    crlPort = await freePort();
    ocspPort = await freePort();
    conf = join(prefix, 'nginx.conf');
    // Starts serve first: nginx's ssl_ocsp_responder needs its port.
    serve = await startServe(dir, ['--on-crl-update', `nginx -p ${prefix} -c ${conf} -s reload`]);
    writeFileSync(
      conf,
      `
user root;
error_log ${prefix}/logs/error.log info;
pid ${prefix}/nginx.pid;
events {}
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp;
  proxy_temp_path ${prefix}/tmp;
  fastcgi_temp_path ${prefix}/tmp;
  uwsgi_temp_path ${prefix}/tmp;
  scgi_temp_path ${prefix}/tmp;
  # Revocation by CRL: the proxy bundle agentca keeps current (issuing CA CRL + root CRL).
  server {
    listen 127.0.0.1:${crlPort} ssl;
    ssl_certificate ${serverCert};
    ssl_certificate_key ${serverKey};
    ssl_client_certificate ${work}/cas.pem;
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_crl ${dir}/crl.pem;
    location / { return 200 "ok $ssl_client_verify\\n"; }
  }
  # Revocation by OCSP: agentca's responder, asked about the client certificate.
  server {
    listen 127.0.0.1:${ocspPort} ssl;
    ssl_certificate ${serverCert};
    ssl_certificate_key ${serverKey};
    ssl_client_certificate ${work}/cas.pem;
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_ocsp leaf;
    ssl_ocsp_responder ${serve.url}/ocsp;
    location / { return 200 "ok $ssl_client_verify\\n"; }
  }
}
`,
    );
    mkdirSync(join(prefix, 'tmp'), { recursive: true });
    const t = await run('nginx', ['-p', prefix, '-c', conf, '-t']);
    expect(t.code, t.stderr).toBe(0);
    daemon('nginx', ['-p', prefix, '-c', conf, '-g', 'daemon off;']);
    await listening(crlPort);
    await listening(ocspPort);
  }, 60_000);

  it('ssl_crl with the proxy bundle: a good client certificate gets 200, a revoked one is refused', async () => {
    expect(await curlStatus(crlPort, 'good')).toBe(200);
    expect(await curlStatus(crlPort, 'revoked-crl')).toBe(400);
    expect(readFileSync(join(prefix, 'logs/error.log'), 'utf8')).toMatch(/certificate revoked/);
  });

  it('ssl_ocsp against agentca: good gets 200, revoked is refused', async () => {
    expect(await curlStatus(ocspPort, 'good')).toBe(200);
    expect(await curlStatus(ocspPort, 'revoked-ocsp')).toBe(400);
  });

  it('a revocation while nginx runs: serve rewrites crl.pem, reloads nginx, and the client is refused', async () => {
    expect(await curlStatus(crlPort, 'revoked-live')).toBe(200);
    const r = await runCli(['revoke', '--dir', dir, '--serial', clients['revoked-live']!.serial]);
    expect(r.code, r.stderr).toBe(0);
    await waitFor('nginx to refuse the revoked client', async () => (await curlStatus(crlPort, 'revoked-live')) === 400, 10_000, 100);
    expect(await curlStatus(crlPort, 'good')).toBe(200);
  });
});

describe('HAProxy', () => {
  it('crl-file with the proxy bundle: a good client certificate gets 200, a revoked one fails the handshake', async () => {
    const port = await freePort();
    const hdir = join(work, 'haproxy');
    mkdirSync(hdir, { recursive: true });
    writeFileSync(join(hdir, 'server-combined.pem'), readFileSync(serverCert, 'utf8') + readFileSync(serverKey, 'utf8'));
    const cfg = join(hdir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      `
global
  log stderr format raw local0
defaults
  mode http
  timeout connect 5s
  timeout client 5s
  timeout server 5s
frontend agents
  bind 127.0.0.1:${port} ssl crt ${hdir}/server-combined.pem ca-file ${work}/cas.pem verify required crl-file ${dir}/crl.pem
  http-request return status 200 content-type text/plain string "ok"
`,
    );
    const check = await run('haproxy', ['-c', '-f', cfg]);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    daemon('haproxy', ['-db', '-f', cfg]);
    await listening(port);
    expect(await curlStatus(port, 'good')).toBe(200);
    expect(await curlStatus(port, 'revoked-crl')).toBeLessThan(0);
  });
});

