import type { Command } from 'commander';
import { CrlPublisher, toPem } from '@agentca/core';
import { openCaForIssuance, paths, writeFileAtomic } from '@agentca/node';
import type { CliIo } from '../io.ts';
import { dirOf, passphraseOf, storeOf, withDir, withPassphrase, withStore, type KeyOptions, type StoreOptions } from '../options.ts';

export function register(program: Command, io: CliIo): void {
  const cmd = program
    .command('crl')
    .description("sign and print a current CRL of the issuing CA (DER, or PEM with --pem); also refreshes the proxy bundle file crl.pem")
    .option('--out <file>', 'write it here instead of stdout')
    .option('--pem', 'PEM instead of DER');
  withStore(withPassphrase(withDir(cmd))).action(async (o: KeyOptions & StoreOptions & { out?: string; pem?: boolean }) => {
    const ca = await openCaForIssuance(dirOf(o, io), passphraseOf(o, io), { store: storeOf(o, io) });
    try {
      const crl = await new CrlPublisher({
        issuer: 'intermediate',
        certificate: ca.intermediate,
        signer: ca.signer,
        revocations: ca.store.revocations,
        crls: ca.store.crls,
        clock: ca.authority.clock,
      }).publish();
      const root = await ca.store.crls.latest('root');
      writeFileAtomic(paths(ca.dir).crlBundle, toPem('X509 CRL', crl.der) + (root ? toPem('X509 CRL', root.der) : ''));
      const body = o.pem ? toPem('X509 CRL', crl.der) : crl.der;
      if (o.out) writeFileAtomic(o.out, body);
      else if (typeof body === 'string') io.out(body);
      else process.stdout.write(body);
      io.err(`CRL number ${crl.crlNumber}, next update ${crl.nextUpdate.toISOString()}${o.out ? ` → ${o.out}` : ''}\n`);
    } finally {
      await ca.close();
    }
  });
}
