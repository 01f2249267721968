import type { Command } from 'commander';
import { InvalidRequest, ROOT_KEY, parseDuration, type Signer } from '@agentca/core';
import { FileKeyStore, RevocationRuntime, jsonLogger, openCaForIssuance, paths } from '@agentca/node';
import { startRevocationServer } from '@agentca/server';
import type { CliIo } from '../io.ts';
import { dirOf, passphraseOf, withDir, withPassphrase, type KeyOptions } from '../options.ts';

interface ServeOptions extends KeyOptions {
  httpListen: string;
  crlValidity: string;
  ocspValidity: string;
  onCrlUpdate?: string;
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
    .description('serve the CRL and OCSP over plain HTTP, keep them current, and keep the proxy CRL bundle file (crl.pem) up to date')
    .option('--http-listen <host:port>', 'plain-HTTP listener for /crl, /crl.pem, /root.crl, /ocsp, /healthz', '127.0.0.1:8080')
    .option('--crl-validity <duration>', "the issuing CA CRL's validity (republished at half-life)", '24h')
    .option('--ocsp-validity <duration>', 'OCSP response validity (cached responses are re-signed at half-life)', '1h')
    .option('--on-crl-update <command>', 'shell command run after each new crl.pem, e.g. "nginx -s reload"');
  withPassphrase(withDir(cmd)).action(async (o: ServeOptions) => {
    const log = jsonLogger((l) => io.err(l));
    const listen = parseListen(o.httpListen, '--http-listen');
    const crlValidity = parseDuration(o.crlValidity, '--crl-validity');
    const ocspValidity = parseDuration(o.ocspValidity, '--ocsp-validity');
    const passphrase = passphraseOf(o, io);
    const ca = await openCaForIssuance(dirOf(o, io), passphrase);
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
      ocsp: runtime.ocsp,
      clock: ca.authority.clock,
    });
    log.info({ event: 'serve.listening', http: `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${http.port}`, dir: ca.dir });
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    log.info({ event: 'serve.stopping' });
    await http.close();
    runtime.stop();
    await ca.close();
  });
}
