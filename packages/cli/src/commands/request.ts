import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseDuration } from '@agentca/core';
import { writeFileAtomic } from '@agentca/node';
import { postJson } from '../http-client.ts';
import { json, readInput, type CliIo } from '../io.ts';
import { withJson } from '../options.ts';
import { newKeyAndCsr, type SignResponse } from '../workload-files.ts';

interface RequestOptions {
  server: string;
  token: string;
  caBundle: string;
  outDir: string;
  keyAlg: string;
  ttl?: string;
  json?: boolean;
}

export function register(program: Command, io: CliIo): void {
  const cmd = program
    .command('request')
    .description('workload side: make a key here, send a CSR with a join token, write cert.pem (leaf + intermediate), key.pem (0600) and bundle.pem')
    .requiredOption('--server <url>', 'the CA, e.g. https://127.0.0.1:8443')
    .requiredOption('--token <token>', 'the one-time join token (or @file to read it from a file)')
    .requiredOption('--ca-bundle <file>', 'trust bundle to verify the CA server with')
    .requiredOption('--out-dir <dir>', 'where to write cert.pem, key.pem and bundle.pem')
    .option('--key-alg <alg>', 'key algorithm', 'ec-p256')
    .option('--ttl <duration>', 'requested lifetime (default: the profile default)');
  withJson(cmd).action(async (o: RequestOptions) => {
    const token = o.token.startsWith('@') ? new TextDecoder().decode(readInput(io, o.token.slice(1), 'token file', 4096)).trim() : o.token;
    const ca = new TextDecoder().decode(readInput(io, o.caBundle, 'CA bundle'));
    const ttl = o.ttl !== undefined ? parseDuration(o.ttl, '--ttl') : undefined;
    const { keyPem, csrPem } = await newKeyAndCsr(o.keyAlg);
    const r = await postJson<SignResponse>(o.server, '/v1/sign', { csr: csrPem, ...(ttl !== undefined ? { ttl } : {}) }, { ca, bearer: token });
    mkdirSync(o.outDir, { recursive: true, mode: 0o700 });
    writeFileAtomic(join(o.outDir, 'key.pem'), keyPem, 0o600);
    writeFileAtomic(join(o.outDir, 'cert.pem'), r.certificate + r.chain);
    writeFileAtomic(join(o.outDir, 'bundle.pem'), ca);
    if (o.json) return json(io, { serial: r.serial, spiffeId: r.spiffeId, instanceId: r.instanceId, notAfter: r.notAfter, dir: o.outDir });
    io.err(`got ${r.serial} for ${r.spiffeId}${r.instanceId ? ` (instance ${r.instanceId})` : ''}, valid until ${r.notAfter} → ${join(o.outDir, 'cert.pem')}\n`);
  });
}

