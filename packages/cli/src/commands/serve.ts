import type { Command } from 'commander';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  InvalidRequest,
  JoinTokens,
  JwtProvisioner,
  ROOT_KEY,
  RevocationService,
  buildCsr,
  parseDuration,
  toPem,
  webCryptoRandom,
  type Authority,
  type Signer,
} from '@agentca/core';
import {
  FileKeyStore,
  KeyObjectSigner,
  NodeCryptoBackend,
  RevocationRuntime,
  jsonLogger,
  jwtIssuersFromConfig,
  openCaForIssuance,
  paths,
  type Logger,
} from '@agentca/node';
import { startApiServer, startRevocationServer } from '@agentca/server';
import type { CliIo } from '../io.ts';
import { dirOf, passphraseOf, storeOf, withDir, withPassphrase, withStore, type KeyOptions, type StoreOptions } from '../options.ts';

interface ServeOptions extends KeyOptions, StoreOptions {
  listen: string;
  serverName: string[];
  httpListen: string;
  crlValidity: string;
  ocspValidity: string;
  onCrlUpdate?: string;
  rateLimit: string;
}

function parseRateLimit(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 10_000_000) throw new InvalidRequest('ERR_RATE_LIMIT_INVALID', '--rate-limit must be a whole number of requests, 1-10000000');
  return n;
}

export function parseListen(text: string, what: string): { host: string; port: number } {
  const m = text.match(/^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InvalidRequest('ERR_LISTEN_INVALID', `${what} ${JSON.stringify(text)} is not host:port`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

export function register(program: Command, io: CliIo): void {
  const cmd = program
    .command('serve')
    .description('run the CA: the HTTPS issuance API, and the CRL and OCSP over plain HTTP, kept current with the proxy CRL bundle file (crl.pem)')
    .option('--listen <host:port>', 'HTTPS issuance API (/v1/sign, /v1/renew, /v1/retire, admin routes over mTLS)', '127.0.0.1:8443')
    .option('--http-listen <host:port>', 'plain-HTTP listener for /crl, /crl.pem, /root.crl, /ocsp, /healthz', '127.0.0.1:8080')
    .option('--crl-validity <duration>', "the issuing CA CRL's validity (republished at half-life)", '24h')
    .option('--ocsp-validity <duration>', 'OCSP response validity (cached responses are re-signed at half-life)', '1h')
    .option('--rate-limit <n>', 'API requests per client address per 10 s (a load balancer in front counts as one address)', '5000')
    .option('--on-crl-update <command>', 'shell command run after each new crl.pem, e.g. "nginx -s reload"')
    .option(
      '--server-name <name>',
      "a DNS name or IP address clients reach the API by, e.g. a load balancer's (repeatable); in the API's certificate with localhost, 127.0.0.1 and the --listen host",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    );
  withStore(withPassphrase(withDir(cmd))).action(async (o: ServeOptions) => {
    const log = jsonLogger((l) => io.err(l));
    const apiListen = parseListen(o.listen, '--listen');
    const listen = parseListen(o.httpListen, '--http-listen');
    const crlValidity = parseDuration(o.crlValidity, '--crl-validity');
    const ocspValidity = parseDuration(o.ocspValidity, '--ocsp-validity');
    const passphrase = passphraseOf(o, io);
    const backend = new NodeCryptoBackend();
    const ecdsa = backend.ecdsaPath;
    if (ecdsa.path !== 'native') log.warn({ event: 'serve.native_verifier_unavailable', reason: ecdsa.reason, hint: 'CSRs are verified through WebCrypto, at about half the rate; run pnpm install with a C compiler' });
    const names = serverNames(apiListen.host, o.serverName);
    const ca = await openCaForIssuance(dirOf(o, io), passphrase, { crypto: backend, store: storeOf(o, io), serverNames: names });
    let rootSigner: Signer | null = null;
    try {
      rootSigner = await new FileKeyStore({ dir: paths(ca.dir).keys, passphrase }).open(ROOT_KEY);
    } catch {
      log.warn({ event: 'serve.root_key_offline', hint: "the root's CRL is served as saved and not re-signed" });
    }
    const runtime = new RevocationRuntime({
      dir: ca.dir,
      store: ca.store,
      clock: ca.authority.clock,
      intermediate: { certificate: ca.intermediate, signer: ca.signer },
      root: { certificate: ca.root, signer: rootSigner },
      crlValiditySeconds: crlValidity,
      ocspValiditySeconds: ocspValidity,
      ...(o.onCrlUpdate ? { onCrlUpdate: o.onCrlUpdate } : {}),
      log,
    });
    await runtime.start();
    const http = await startRevocationServer({
      host: listen.host,
      port: listen.port,
      crl: () => runtime.crl(),
      rootCrl: () => runtime.rootCrl.current,
      ocsp: runtime.ocspAnswerer,
      clock: ca.authority.clock,
      health: () => ({ store: runtime.storeReachable ? 'ok' : 'unreachable' }),
    });
    const authority = ca.authority;
    const joinTokens = new JoinTokens({
      trustDomain: ca.config.trustDomain,
      profile: (name) => authority.profile(name),
      tokens: ca.store.tokens,
      clock: authority.clock,
      random: webCryptoRandom,
      crypto: backend,
    });
    const jwtIssuers = jwtIssuersFromConfig(ca.config, ca.dir);
    const jwt = jwtIssuers.length
      ? new JwtProvisioner({ trustDomain: ca.config.trustDomain, issuers: jwtIssuers, clock: authority.clock, profile: (name) => authority.profile(name) })
      : undefined;
    const bundlePem = readFileSync(paths(ca.dir).root, 'utf8');
    const tlsCa = bundlePem + toPem('CERTIFICATE', ca.intermediate);
    const serverCert = await issueServerCertificate(authority, ca.config.trustDomain, names);
    const api = await startApiServer({
      host: apiListen.host,
      port: apiListen.port,
      authority,
      joinTokens,
      ...(jwt ? { jwt } : {}),
      revocations: new RevocationService({ revocations: ca.store.revocations, clock: authority.clock }),
      store: { certificates: ca.store.certificates, revocations: ca.store.revocations, tokens: ca.store.tokens },
      admins: ca.config.admins,
      rateLimit: { max: parseRateLimit(o.rateLimit), timeWindowMs: 10_000 },
      bundlePem,
      clock: authority.clock,
      log,
      https: { key: serverCert.key, cert: serverCert.cert, ca: tlsCa },
      storeReachable: () => runtime.storeReachable,
      storeCounters: ca.store,
    });
    const renewServer = scheduleServerRenewal(serverCert.notAfter, async () => {
      const next = await issueServerCertificate(authority, ca.config.trustDomain, names);
      api.setCertificate(next.cert, next.key);
      log.info({ event: 'serve.server_certificate_renewed', notAfter: next.notAfter.toISOString() });
      return next.notAfter;
    }, log);
    const hostUrl = (h: string) => (h.includes(':') ? `[${h}]` : h);
    log.info({
      event: 'serve.listening',
      https: `https://${hostUrl(apiListen.host)}:${api.port}`,
      http: `http://${hostUrl(listen.host)}:${http.port}`,
      dir: ca.dir,
      store: ca.storeLocation,
      csrVerify: ecdsa.path,
    });
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    log.info({ event: 'serve.stopping' });
    renewServer.stop();
    await api.close();
    await http.close();
    await backend.close();
    runtime.stop();
    await ca.close();
  });
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** The listen host (unless a wildcard) and every --server-name, as DNS names and IP addresses beyond localhost and 127.0.0.1. */
function serverNames(listenHost: string, extra: readonly string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const all = [listenHost, ...extra].filter((h) => !['0.0.0.0', '::', 'localhost', '127.0.0.1'].includes(h));
  for (const h of extra) {
    if (!IPV4.test(h) && !/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(h))
      throw new InvalidRequest('ERR_SERVER_NAME_INVALID', `--server-name ${JSON.stringify(h)} is not a DNS name or an IPv4 address`);
  }
  return { dnsNames: [...new Set(all.filter((h) => !IPV4.test(h)).map((h) => h.toLowerCase()))], ipAddresses: [...new Set(all.filter((h) => IPV4.test(h)))] };
}

/** The API's own TLS certificate, issued by this CA: `spiffe://TD/agentca/server`, localhost, 127.0.0.1, the listen address and every --server-name. */
async function issueServerCertificate(authority: Authority, trustDomain: string, names: { dnsNames: string[]; ipAddresses: string[] }): Promise<{ cert: string; key: string; notAfter: Date }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csr = await buildCsr(new KeyObjectSigner('ec-p256', privateKey, publicKey));
  const c = await authority.issue({
    csr,
    attestation: {
      spiffeId: `spiffe://${trustDomain}/agentca/server`,
      profile: 'agentca-server',
      method: 'serve',
      actor: 'agentca-serve',
      dnsNames: ['localhost', ...names.dnsNames],
      ipAddresses: ['127.0.0.1', ...names.ipAddresses],
    },
  });
  return { cert: toPem('CERTIFICATE', c.der) + c.chain.map((d) => toPem('CERTIFICATE', d)).join(''), key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, notAfter: c.notAfter };
}

/** Renews the server certificate at two thirds of its lifetime; retries every minute on failure. */
function scheduleServerRenewal(notAfter: Date, renew: () => Promise<Date>, log: Logger): { stop(): void } {
  let timer: ReturnType<typeof setTimeout>;
  const arm = (until: Date) => {
    const wait = Math.max(60_000, ((until.getTime() - Date.now()) * 2) / 3);
    timer = setTimeout(async () => {
      try {
        arm(await renew());
      } catch (e) {
        log.error({ event: 'serve.server_certificate_renewal_failed', error: (e as Error).message });
        arm(new Date(Date.now() + 90_000));
      }
    }, Math.min(wait, 2 ** 31 - 1));
    timer.unref();
  };
  arm(notAfter);
  return { stop: () => clearTimeout(timer) };
}
