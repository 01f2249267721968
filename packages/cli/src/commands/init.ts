import type { Command } from 'commander';
import { InvalidRequest, isKeyAlgorithm, KEY_ALGORITHMS, parseCertificate } from '@agentca/core';
import { describeStore, initCaDir, isPostgresStore } from '@agentca/node';
import { json, type CliIo } from '../io.ts';
import { dirOf, passphraseOf, storeOf, withDir, withJson, withPassphrase, type KeyOptions, type StoreOptions } from '../options.ts';

interface InitOptions extends KeyOptions, StoreOptions {
  trustDomain: string;
  keyAlg: string;
  nameConstraints?: boolean;
  publicUrl?: string;
  json?: boolean;
}

export function register(program: Command, io: CliIo): void {
  const cmd = program
    .command('init')
    .description('create a CA: root, intermediate, config, store, and an admin client certificate')
    .requiredOption('--trust-domain <td>', 'SPIFFE trust domain, e.g. example.org')
    .option('--key-alg <alg>', `CA key algorithm: ${KEY_ALGORITHMS.join(', ')}`, 'ec-p256')
    .option('--name-constraints', 'constrain the intermediate to SPIFFE IDs of the trust domain')
    .option('--public-url <url>', "base URL of agentca serve's plain-HTTP listener as relying parties reach it; puts CRL and OCSP URLs into certificates")
    .option(
      '--store <url>',
      'where the state lives, recorded in agentca.json: sqlite:<file> in the CA directory, or postgresql://user@host:5432/database (an empty database every replica shares; the password may come from PGPASSWORD or ~/.pgpass instead) (default: $AGENTCA_STORE, else sqlite:agentca.db)',
    );
  withJson(withPassphrase(withDir(cmd))).action(async (o: InitOptions) => {
    if (!isKeyAlgorithm(o.keyAlg)) throw new InvalidRequest('ERR_KEY_ALGORITHM_UNSUPPORTED', `unknown key algorithm ${o.keyAlg}: use one of ${KEY_ALGORITHMS.join(', ')}`);
    const storeOption = storeOf(o, io);
    const r = await initCaDir({
      dir: dirOf(o, io),
      trustDomain: o.trustDomain,
      keyAlgorithm: o.keyAlg,
      passphrase: passphraseOf(o, io),
      nameConstraints: !!o.nameConstraints,
      ...(o.publicUrl ? { publicUrl: o.publicUrl } : {}),
      ...(storeOption !== undefined ? { store: storeOption } : {}),
    });
    const store = await describeStore(r.config.store);
    const shared = isPostgresStore(r.config.store);
    const root = parseCertificate(r.root);
    const int = parseCertificate(r.intermediate);
    if (o.json) {
      return json(io, {
        dir: r.dir,
        trustDomain: r.config.trustDomain,
        keyAlgorithm: r.config.keyAlgorithm,
        store,
        root: { file: `${r.dir}/root.pem`, notAfter: root.notAfter.toISOString() },
        intermediate: { file: `${r.dir}/intermediate.pem`, notAfter: int.notAfter.toISOString() },
        admin: { spiffeId: r.admin.spiffeId, serial: r.admin.serial, certificate: r.admin.certificate, key: r.admin.key, notAfter: r.admin.notAfter.toISOString() },
      });
    }
    io.out(
      [
        `created a CA for trust domain ${r.config.trustDomain} in ${r.dir}`,
        `  root          root.pem           ${r.config.keyAlgorithm}, valid until ${root.notAfter.toISOString()}`,
        `  intermediate  intermediate.pem   valid until ${int.notAfter.toISOString()}`,
        `  keys          keys/*.key.pem     encrypted (PKCS#8, AES-256), mode 0600`,
        shared ? `  store         ${store}  PostgreSQL, shared by every replica (keys and config stay here)` : `  store         ${store.replace(/^sqlite:/, '').padEnd(18)} SQLite, WAL`,
        `  CRLs          crl.pem            issuing CA CRL + root CRL (for nginx, HAProxy, Envoy); agentca serve keeps it current`,
        `  admin         ${r.admin.spiffeId}`,
        `                admin/operator.pem, admin/operator.key.pem (valid until ${r.admin.notAfter.toISOString()})`,
        `next: agentca issue --csr agent.csr --id spiffe://${r.config.trustDomain}/agent/NAME`,
        '',
      ].join('\n'),
    );
  });
}
