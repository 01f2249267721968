/**
 * A service that embeds @agentca/core: it creates a CA in-process, signs a workload's CSR for
 * the SPIFFE ID the service vouches for, checks the result with node:crypto and openssl,
 * refuses a CSR that asks for another name, revokes, and checks the CRL. Exits 0 when every
 * step behaved.
 *
 *   pnpm --filter embed-core start
 */
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentCAError, toPem } from '@agentca/core';
import { EmbeddedCa } from './ca.ts';

const SPIFFE_ID = 'spiffe://example.org/agent/invoice-bot';
const work = mkdtempSync(join(tmpdir(), 'agentca-example-embed-'));

function say(text: string): void {
  console.log(text);
}

function openssl(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile('openssl', args, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, out: (stdout + stderr).trim() })),
  );
}

/** The workload's side: its own key (it never leaves the workload) and a CSR; the subject it asks for is ignored. */
async function workloadCsr(name: string, extra: string[] = []): Promise<{ csr: string; keyFile: string }> {
  const keyFile = join(work, `${name}.key`);
  const csrFile = join(work, `${name}.csr`);
  const r = await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', '/CN=ignored', ...extra]);
  if (r.code !== 0) throw new Error(`openssl req: ${r.out}`);
  return { csr: readFileSync(csrFile, 'utf8'), keyFile };
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
  say(`  ✓ ${what}`);
}

async function main(): Promise<void> {
  const ca = await EmbeddedCa.create('example.org', join(work, 'ca.db'));
  try {
    say(`CA for ${ca.trustDomain}: root + intermediate (ECDSA P-256, non-extractable WebCrypto keys), store ${join(work, 'ca.db')}`);

    const workload = await workloadCsr('workload');
    const issued = await ca.sign(workload.csr, SPIFFE_ID);
    say(`issued ${issued.serial} for ${SPIFFE_ID}, valid until ${issued.notAfter.toISOString()}`);

    const leaf = new X509Certificate(issued.certificatePem);
    const intermediate = new X509Certificate(ca.intermediatePem);
    const root = new X509Certificate(ca.rootPem);
    say('node:crypto X509Certificate:');
    check(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey), 'signed by the intermediate');
    check(intermediate.verify(root.publicKey) && root.verify(root.publicKey), 'intermediate signed by the root');
    check(leaf.subjectAltName === `URI:${SPIFFE_ID}`, `exactly one SAN: ${leaf.subjectAltName}`);
    check(!leaf.subject && !leaf.ca, 'empty subject (the CSR asked for CN=ignored), CA:FALSE');
    check(leaf.checkPrivateKey(createPrivateKey(readFileSync(workload.keyFile))), "certifies the workload's own key (the CSR's public key)");

    const files = { root: join(work, 'root.pem'), intermediate: join(work, 'intermediate.pem'), leaf: join(work, 'leaf.pem'), crl: join(work, 'crl.pem') };
    writeFileSync(files.root, ca.rootPem);
    writeFileSync(files.intermediate, ca.intermediatePem);
    writeFileSync(files.leaf, issued.certificatePem);
    const verified = await openssl(['verify', '-CAfile', files.root, '-untrusted', files.intermediate, files.leaf]);
    say(`openssl verify: ${verified.out.replace(work + '/', '')}`);
    check(verified.code === 0, 'openssl accepts the chain');

    const greedy = await workloadCsr('greedy', ['-addext', 'subjectAltName=URI:spiffe://example.org/admin/operator']);
    try {
      await ca.sign(greedy.csr, SPIFFE_ID);
      throw new Error('a CSR asking for spiffe://example.org/admin/operator was signed');
    } catch (e) {
      if (!(e instanceof AgentCAError)) throw e;
      say(`a CSR asking for another name: refused: ${e.message} (${e.code})`);
      check(e.code === 'ERR_CSR_SAN_MISMATCH', 'refused with ERR_CSR_SAN_MISMATCH');
    }

    const crl = await ca.revoke(issued.serial);
    writeFileSync(files.crl, toPem('X509 CRL', crl.crlDer));
    say(`revoked ${issued.serial} (keyCompromise); CRL #${crl.crlNumber} signed`);
    const refused = await openssl(['verify', '-crl_check', '-CAfile', files.root, '-untrusted', files.intermediate, '-CRLfile', files.crl, files.leaf]);
    say(`openssl verify -crl_check: ${refused.out.split('\n').find((l) => l.includes('error')) ?? refused.out}`);
    check(refused.code !== 0 && refused.out.includes('certificate revoked'), 'openssl refuses the revoked certificate');

    const audit = await ca.authority.verifyAudit();
    say(`audit chain: ${audit.ok ? `ok, ${audit.events} events, head ${audit.head.slice(0, 16)}…` : `BROKEN at event ${audit.seq}: ${audit.reason}`}`);
    check(audit.ok && audit.events === 3, 'issue, deny and revoke are all in the hash-chained audit log');
  } finally {
    await ca.close();
  }
  say('ok: the core issued, refused, revoked and audited in-process');
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(`FAILED: ${(e as Error).message}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
