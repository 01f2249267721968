import type { Command } from 'commander';
import { parseDuration } from '@agentca/core';
import { writeFileAtomic } from '@agentca/node';
import { postJson } from '../http-client.ts';
import { json, readInput, type CliIo } from '../io.ts';
import { withJson } from '../options.ts';
import { newKeyAndCsr, type SignResponse } from '../workload-files.ts';

interface RenewOptions {
  server: string;
  cert: string;
  key: string;
  caBundle: string;
  keyAlg: string;
  ttl?: string;
  json?: boolean;
}

export function register(program: Command, io: CliIo): void {
  const cmd = program
    .command('renew')
    .description('renew over mTLS with the current certificate and a fresh key; replaces both files in place, atomically')
    .requiredOption('--server <url>', 'the CA, e.g. https://127.0.0.1:8443')
    .requiredOption('--cert <file>', 'current certificate (leaf + intermediate)')
    .requiredOption('--key <file>', 'current key')
    .requiredOption('--ca-bundle <file>', 'trust bundle to verify the CA server with')
    .option('--key-alg <alg>', 'algorithm of the new key', 'ec-p256')
    .option('--ttl <duration>', 'requested lifetime');
  withJson(cmd).action(async (o: RenewOptions) => {
    const dec = (b: Uint8Array) => new TextDecoder().decode(b);
    const ca = dec(readInput(io, o.caBundle, 'CA bundle'));
    const cert = dec(readInput(io, o.cert, 'certificate'));
    const key = dec(readInput(io, o.key, 'key'));
    const ttl = o.ttl !== undefined ? parseDuration(o.ttl, '--ttl') : undefined;
    const fresh = await newKeyAndCsr(o.keyAlg);
    const r = await postJson<SignResponse>(o.server, '/v1/renew', { csr: fresh.csrPem, ...(ttl !== undefined ? { ttl } : {}) }, { ca, cert, key });
    // The key first: a reader that sees the new certificate always finds its key.
    writeFileAtomic(o.key, fresh.keyPem, 0o600);
    writeFileAtomic(o.cert, r.certificate + r.chain);
    if (o.json) return json(io, { serial: r.serial, spiffeId: r.spiffeId, instanceId: r.instanceId, notAfter: r.notAfter });
    io.err(`renewed: ${r.serial} for ${r.spiffeId}${r.instanceId ? ` (instance ${r.instanceId})` : ''}, valid until ${r.notAfter}\n`);
  });
}
