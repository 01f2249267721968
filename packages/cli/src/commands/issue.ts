import type { Command } from 'commander';
import { parseDuration, toPem } from '@agentca/core';
import { openCaForIssuance, writeFileAtomic } from '@agentca/node';
import { json, readInput, type CliIo } from '../io.ts';
import { dirOf, passphraseOf, storeOf, withDir, withJson, withPassphrase, withStore, type KeyOptions, type StoreOptions } from '../options.ts';

interface IssueOptions extends KeyOptions, StoreOptions {
  csr: string;
  id: string;
  profile: string;
  ttl?: string;
  dns: string[];
  out?: string;
  json?: boolean;
}

export function register(program: Command, io: CliIo): void {
  const cmd = program
    .command('issue')
    .description('issue a certificate from a CSR for an identity the operator names (writes the leaf, then the intermediate, as PEM)')
    .requiredOption('--csr <file>', 'PKCS#10 request, PEM or DER (- for stdin)')
    .requiredOption('--id <spiffe-id>', 'the SPIFFE ID to certify, e.g. spiffe://example.org/agent/invoice-bot')
    .option('--profile <name>', 'certificate profile', 'default')
    .option('--ttl <duration>', 'lifetime, e.g. 15m, 1h (default: the profile default; above the profile max is refused)')
    .option('--dns <name>', 'a DNS SAN, if the profile allows it (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--out <file>', 'write the PEM chain here instead of stdout');
  withJson(withStore(withPassphrase(withDir(cmd)))).action(async (o: IssueOptions) => {
    const csr = readInput(io, o.csr, 'CSR', 64 * 1024);
    const ttlSeconds = o.ttl !== undefined ? parseDuration(o.ttl, 'TTL') : undefined;
    const ca = await openCaForIssuance(dirOf(o, io), passphraseOf(o, io), { store: storeOf(o, io) });
    try {
      const c = await ca.authority.issue({
        csr,
        attestation: { spiffeId: o.id, profile: o.profile, method: 'operator', actor: 'operator', ...(o.dns.length ? { dnsNames: o.dns } : {}) },
        ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
      });
      const pem = toPem('CERTIFICATE', c.der) + c.chain.map((d) => toPem('CERTIFICATE', d)).join('');
      if (o.out) writeFileAtomic(o.out, pem);
      if (o.json) {
        json(io, {
          serial: c.serial,
          spiffeId: c.spiffeId,
          instanceId: c.instanceId,
          notBefore: c.notBefore.toISOString(),
          notAfter: c.notAfter.toISOString(),
          certificate: toPem('CERTIFICATE', c.der),
          chain: c.chain.map((d) => toPem('CERTIFICATE', d)),
          ...(o.out ? { file: o.out } : {}),
        });
      } else {
        if (!o.out) io.out(pem);
        io.err(`issued ${c.serial} for ${c.spiffeId} (instance ${c.instanceId}), valid until ${c.notAfter.toISOString()}${o.out ? ` → ${o.out}` : ''}\n`);
      }
    } finally {
      await ca.close();
    }
  });
}
