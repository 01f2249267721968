/**
 * nginx requires client certificates and checks them against the CRL file `agentca serve`
 * keeps current (reloading nginx after each new one); an `agentca agent` sidecar keeps the
 * client's key and certificate files fresh; curl calls through nginx with them → 200; the
 * operator revokes the instance → nginx refuses it. Exits 0 when all of that happened.
 *
 *   pnpm --filter nginx-sidecar start
 */
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { LocalCa } from './ca.ts';
import { Nginx, selfSignedServerCertificate } from './nginx.ts';
import { startUpstream } from './upstream.ts';
import { Sidecar } from './sidecar.ts';
import { callThroughNginx } from './client.ts';

const TRUST_DOMAIN = 'example.org';
const CLIENT_ID = `spiffe://${TRUST_DOMAIN}/agent/report-bot`;

const work = mkdtempSync(join(tmpdir(), 'agentca-example-nginx-'));
let ca: LocalCa | undefined;
let nginx: Nginx | undefined;
let upstream: Server | undefined;
let sidecar: Sidecar | undefined;

function say(who: string, text: string): void {
  console.log(`${`[${who}]`.padEnd(10)}${text}`);
}

async function cleanUp(): Promise<void> {
  await sidecar?.stop().catch(() => {});
  await nginx?.stop().catch(() => {});
  await ca?.stop().catch(() => {});
  upstream?.close();
  rmSync(work, { recursive: true, force: true });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanUp().finally(() => process.exit(130)));
}

/**
 * A loopback port for nginx's config, drawn below the kernel's ephemeral range (32768 and up on
 * Linux): a port the kernel handed out and took back can be reused by any outgoing connection
 * before nginx binds it.
 */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + randomInt(12_000);
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free loopback port found in 20000–31999');
}

async function main(): Promise<void> {
  ca = new LocalCa(join(work, 'ca'));
  await ca.init(TRUST_DOMAIN);
  say('ca', `agentca init: a CA for ${TRUST_DOMAIN}; the proxy CRL file is ${ca.crlFile}`);

  const up = await startUpstream();
  upstream = up.server;
  const server = await selfSignedServerCertificate(work);
  const clientCas = join(work, 'cas.pem');
  writeFileSync(clientCas, ca.bundle + ca.intermediate);
  const port = await freePort();
  nginx = new Nginx({ prefix: join(work, 'nginx'), port, upstreamPort: up.port, serverCert: server.cert, serverKey: server.key, clientCas, crlFile: ca.crlFile });
  await nginx.start();
  say('nginx', `https://127.0.0.1:${port} → upstream http://127.0.0.1:${up.port}; ssl_verify_client on, ssl_crl ${ca.crlFile}`);

  await ca.serve({ onCrlUpdate: nginx.reloadCommand });
  say('ca', `agentca serve --on-crl-update 'nginx … -s reload': API ${ca.apiUrl}`);

  const tokenFile = join(work, 'token');
  writeFileSync(tokenFile, await ca.createToken(CLIENT_ID), { mode: 0o600 });
  say('ca', `agentca token create --id ${CLIENT_ID} → ${tokenFile}`);

  // A 1-minute certificate renewed at 5% of its life: a rotation every ~3 s, to watch one happen.
  sidecar = new Sidecar({ server: ca.apiUrl, tokenFile, caBundleFile: join(ca.dir, 'root.pem'), outDir: join(work, 'identity'), ttl: '1m', renewAt: '0.05' });
  const boot = await sidecar.next('bootstrapped', 30_000, 0);
  say('sidecar', `agentca agent: ${String(boot.spiffeId)}, instance ${String(boot.instanceId)}, serial ${String(boot.serial)} → ${sidecar.outDir}/{cert,key,bundle}.pem`);

  const url = `https://127.0.0.1:${port}/`;
  const files = { cacert: server.cert, cert: sidecar.certFile, key: sidecar.keyFile };
  const first = await callThroughNginx(url, files);
  say('curl', `${first.status} ${first.body.trim()}`);
  if (first.status !== 200 || !first.body.includes(CLIENT_ID)) throw new Error(`expected 200 from the upstream for ${CLIENT_ID}, got ${first.status} ${first.body}`);

  const rotated = await sidecar.next('rotated', 15_000);
  say('sidecar', `rotated: new key and certificate ${String(rotated.serial)}, files replaced atomically`);
  const second = await callThroughNginx(url, files);
  say('curl', `${second.status} ${second.body.trim()}`);
  if (second.status !== 200 || !second.body.includes(String(rotated.serial))) throw new Error(`expected 200 with the rotated certificate ${String(rotated.serial)}, got ${second.status} ${second.body}`);

  const mark = sidecar.log.length;
  const revocation = await ca.revokeInstance(String(boot.instanceId));
  if (!revocation.revokedAt) throw new Error('agentca revoke revoked nothing');
  const revokedAt = revocation.revokedAt.getTime();
  say('ca', `agentca revoke --instance ${String(boot.instanceId)}: ${revocation.serials.join(', ')} at ${revocation.revokedAt.toISOString()}`);
  // A renewal already in flight when the revocation landed would leave the sidecar a certificate
  // the revocation did not name: say so rather than wait for a refusal that cannot come.
  const renewedMeanwhile = (serial: string | undefined): void => {
    if (serial && !revocation.serials.includes(serial)) throw new Error(`the sidecar renewed to ${serial} while the revocation was being made; run again`);
  };
  const current = [...sidecar.log].reverse().find((e) => e.event === 'agent.rotated' || e.event === 'agent.bootstrapped');
  renewedMeanwhile(String(current?.serial));

  for (;;) {
    const r = await callThroughNginx(url, files);
    const elapsed = Date.now() - revokedAt;
    if (r.status === 200) {
      renewedMeanwhile(/\(certificate ([0-9a-f]+)\)/.exec(r.body)?.[1]);
      if (elapsed > 10_000) throw new Error(`nginx still let the revoked client in ${elapsed} ms after the revocation`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    const title = (/<title>([^<]*)<\/title>/.exec(r.body)?.[1] ?? r.body.trim()).replace(/^\d+\s*/, '');
    say('curl', `${r.status} ${title}`);
    if (r.status !== 400) throw new Error(`expected nginx to refuse the revoked certificate with 400, got ${r.status} (curl exit ${r.curlExit})`);
    const logged = nginx.logLines('certificate revoked').at(-1);
    say('nginx', logged ? logged.replace(/^.*?\[info\] \d+#\d+: \*\d+ /, '') : '(no "certificate revoked" line in the error log)');
    say('ca', `serve: ${timeline(ca.serveLog, revokedAt)}`);
    say('nginx', `refused ${elapsed} ms after the revocation`);
    break;
  }

  const refused = await sidecar.next('renewal-failed', 10_000, mark);
  say('sidecar', `renewal refused: ${String(refused.message)} (${String(refused.code)}); ${refused.retryInMs === null ? 'renewal stopped' : `retry in ${String(refused.retryInMs)} ms`}`);
  if (refused.code !== 'ERR_CLIENT_CERTIFICATE_REVOKED') throw new Error(`expected the sidecar's renewal to be refused as revoked, got ${String(refused.code)}`);
  console.log('ok: nginx let the sidecar-fed client in, then refused it once revoked');
}

/** When serve saw the revocation and published the CRL that nginx reloaded, relative to it. */
function timeline(log: readonly string[], revokedAt: number): string {
  const at = (event: string, pred: (e: Record<string, unknown>) => boolean = () => true): string => {
    for (const line of log) {
      const e = JSON.parse(line) as Record<string, unknown>;
      const t = Date.parse(String(e.time));
      if (e.event === event && t >= revokedAt && pred(e)) return `+${t - revokedAt} ms`;
    }
    return 'not seen';
  };
  return `saw the revocation at ${at('revocations.seen')}, wrote crl.pem and ran the reload at ${at('crl.published', (e) => e.issuer === 'intermediate')}`;
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(`FAILED: ${(e as Error).message}`);
  if (ca?.serveLog.length) console.error(`agentca serve's last log lines:\n${ca.serveLog.slice(-8).join('\n')}`);
} finally {
  await cleanUp();
}
process.exit(failed ? 1 : 0);
