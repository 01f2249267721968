/**
 * The CRL consumers agentca's CRLs must satisfy, run as processes: openssl (`crl`, `verify`) and
 * GnuTLS certtool. Unlike `openssl()` in ./openssl.ts these return the exit status instead of
 * throwing, since a refusal is often the expected outcome.
 */
import { spawnSync } from 'node:child_process';

export interface ToolResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together (openssl prints verify errors on stderr, results on stdout). */
  output: string;
}

export function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): ToolResult {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000, maxBuffer: 512 * 1024 * 1024, env: { ...process.env, ...env } });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, output: `${r.stdout}\n${r.stderr}` };
}

/** certtool has no `-attime`: run it under libfaketime at `at` (UTC). */
export function certtoolAt(at: Date, args: string[], cwd: string): ToolResult {
  const stamp = at.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
  return run('faketime', [stamp, 'certtool', ...args], cwd, { TZ: 'UTC' });
}

export interface OpensslCrlEntry {
  /** As openssl prints it: upper-case hex without sign pad. */
  serial: string;
  revocationDate: string;
  /** The "X509v3 CRL Reason Code" text, or null when the entry has no extensions. */
  reason: string | null;
  hasEntryExtensions: boolean;
}

/** The revoked entries of `openssl crl -text` output, in order. */
export function opensslCrlEntries(text: string): OpensslCrlEntry[] {
  if (text.includes('No Revoked Certificates.')) return [];
  const at = text.indexOf('Revoked Certificates:');
  if (at < 0) throw new Error('no "Revoked Certificates:" section');
  const section = text.slice(at, text.search(/\n\s*Signature Algorithm:[^\n]*\n\s*Signature Value:/));
  return section
    .split(/\n\s*Serial Number: /)
    .slice(1)
    .map((block) => {
      const serial = block.split('\n', 1)[0]!.trim();
      const date = block.match(/Revocation Date: ([^\n]+)/)?.[1]?.trim() ?? '';
      const reason = block.match(/X509v3 CRL Reason Code:\s*\n\s*([^\n]+)/)?.[1]?.trim() ?? null;
      return { serial, revocationDate: date, reason, hasEntryExtensions: block.includes('CRL entry extensions:') };
    });
}
