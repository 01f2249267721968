/**
 * CRL generation at scale, side by side with `openssl ca -gencrl` in the same run, on the same
 * serials and the same P-256 CA key.
 *
 *   agentca: buildCrl (encode the TBSCertList + sign with KeyObjectSigner from @agentca/node,
 *            node:crypto on the threadpool) over entries already in memory, as the revocation
 *            store hands them over. Median of REPEATS, after one small warm-up build.
 *   openssl: `openssl ca -gencrl` over an index.txt with the same serials and reasons (it also
 *            parses index.txt and writes PEM: the CLI has no in-memory path). Median of hyperfine runs.
 *
 * Each size runs in its own child process so that its peak RSS is its own:
 *   peak = process.resourceUsage().maxRSS at the end; growth = maxRSS − RSS before the first timed
 *   build (entries already allocated, after a full GC), after the first build and after all.
 *   openssl's peak RSS is /usr/bin/time's %M over its runs.
 * Entries: 17-byte serials (0x4a + 16 random bytes, as agentca issued them until 2026-11-29; they are 20 bytes now, with
 * three octets of time after the 0x4a, and the README's figures are from 17), all revoked an hour ago,
 * reasons cycling unspecified / keyCompromise / superseded / cessationOfOperation / affiliationChanged.
 *
 * usage: node --import tsx scripts/bench/crl.ts [sizes=10000,100000,1000000] [REPEATS=3]
 */
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCrl, derFromPemOrDer, keyIdentifier, parseCertificate, type CrlEntry, type CrlInput, type RevocationReason } from '@agentca/core';
import { KeyObjectSigner } from '@agentca/node';

const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const REASON_MIX: readonly RevocationReason[] = ['unspecified', 'keyCompromise', 'superseded', 'cessationOfOperation', 'affiliationChanged'];
const CRL_NUMBER = 1000n;

interface ChildReport {
  n: number;
  buildSeconds: number[];
  rssBeforeKb: number;
  /** maxRSS after the first timed build, and after all of them. */
  firstPeakRssKb: number;
  peakRssKb: number;
  derBytes: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function sh(cmd: string, args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(cmd: string, args: string[], cwd: string): string {
  const r = sh(cmd, args, cwd);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

const utcTime = (d: Date) => d.toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.\d+Z$/, '$1$2$3$4$5$6Z');

/** Child: makes the entries, writes them as openssl's index.txt too, then times buildCrl. */
async function child(n: number, caDir: string, outDir: string, repeats: number): Promise<void> {
  const caPem = readFileSync(join(caDir, 'ca.pem'), 'utf8');
  const privateKey = createPrivateKey(readFileSync(join(caDir, 'ca.key')));
  const signer = new KeyObjectSigner('ec-p256', privateKey, createPublicKey(privateKey));
  const ca = parseCertificate(derFromPemOrDer(caPem, ['CERTIFICATE'], 'the CA certificate'));

  const revokedAt = new Date(Date.now() - 3_600_000);
  const entries: CrlEntry[] = new Array(n);
  const index = openSync(join(outDir, 'index.txt'), 'w');
  const rev = utcTime(revokedAt);
  let lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const serial = Buffer.concat([Buffer.of(0x4a), randomBytes(16)]).toString('hex');
    const reason = REASON_MIX[i % REASON_MIX.length]!;
    entries[i] = { serial, revokedAt, reason };
    // openssl ca writes a reasonCode extension for every named reason, "unspecified" included: leave it out as agentca does.
    lines.push(`R\t491231235959Z\t${rev}${reason === 'unspecified' ? '' : `,${reason}`}\t${serial.toUpperCase()}\tunknown\t/CN=x${i}\n`);
    if (lines.length === 10_000) {
      writeSync(index, lines.join(''));
      lines = [];
    }
  }
  writeSync(index, lines.join(''));
  closeSync(index);
  writeFileSync(join(outDir, 'index.txt.attr'), 'unique_subject = no\n');

  const issuerKeyId = await keyIdentifier(ca.spki);
  const now = new Date();
  const input = (list: readonly CrlEntry[]): CrlInput => ({
    issuerName: ca.subject,
    issuerKeyId,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + 86_400_000),
    crlNumber: CRL_NUMBER,
    entries: list,
  });
  await buildCrl(input(entries.slice(0, 1000)), signer); // warm-up (JIT), not counted

  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const rssBeforeKb = Math.round(process.memoryUsage().rss / 1024);
  const buildSeconds: number[] = [];
  let der: Uint8Array = new Uint8Array(0);
  let firstPeakRssKb = 0;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    der = await buildCrl(input(entries), signer);
    buildSeconds.push((performance.now() - t0) / 1000);
    if (r === 0) firstPeakRssKb = process.resourceUsage().maxRSS;
    if (r < repeats - 1) {
      der = new Uint8Array(0);
      gc?.();
    }
  }
  const peakRssKb = process.resourceUsage().maxRSS;
  writeFileSync(join(outDir, 'agentca.der'), der);
  const report: ChildReport = { n, buildSeconds, rssBeforeKb, firstPeakRssKb, peakRssKb, derBytes: der.length };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** Entry count and signature check of a CRL file, by openssl. */
function checkCrl(path: string, inform: 'DER' | 'PEM', caPem: string, cwd: string): { entries: number; verify: string } {
  const parse = sh('openssl', ['crl', '-inform', inform, '-in', path, '-noout'], cwd);
  if (parse.status !== 0) return { entries: -1, verify: `parse failed: ${parse.stderr.trim()}` };
  const count = sh('sh', ['-c', `openssl crl -inform ${inform} -in '${path}' -text -noout | grep -c 'Serial Number:'`], cwd);
  const v = sh('openssl', ['crl', '-inform', inform, '-in', path, '-noout', '-CAfile', caPem], cwd);
  return { entries: Number(count.stdout.trim()), verify: /verify OK/.test(`${v.stdout}${v.stderr}`) ? 'OK' : `${v.stdout}${v.stderr}`.trim() };
}

async function parent(sizes: number[], repeats: number): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'agentca-bench-crl-'));
  try {
    // The CA as 05_crl.sh makes it; agentca signs with the same key.
    must('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '3650',
      '-subj', '/O=bench/CN=CRL Bench CA', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], work);
    const caPem = join(work, 'ca.pem');
    const rows: string[][] = [];
    for (const n of sizes) {
      const d = join(work, `n${n}`);
      mkdirSync(d);
      process.stderr.write(`N=${n}: agentca (child process)…\n`);
      const c = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', SCRIPT, '--child', String(n), work, d, String(repeats)], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
      if (c.status !== 0) throw new Error(`child for N=${n} failed: ${c.stderr}`);
      const report = JSON.parse(c.stdout.trim().split('\n').pop()!) as ChildReport;

      process.stderr.write(`N=${n}: openssl ca -gencrl…\n`);
      writeFileSync(join(d, 'crlnumber'), `${CRL_NUMBER.toString(16).toUpperCase().padStart(4, '0')}\n`);
      writeFileSync(join(d, 'openssl.cnf'), `[ ca ]
default_ca = bench
[ bench ]
dir = ${d}
database = $dir/index.txt
crlnumber = $dir/crlnumber
certificate = ${caPem}
private_key = ${join(work, 'ca.key')}
default_md = sha256
default_crl_hours = 24
crl_extensions = crl_ext
unique_subject = no
[ crl_ext ]
authorityKeyIdentifier = keyid:always
`);
      const runs = n >= 1_000_000 ? 2 : 3;
      const rssFile = join(d, 'openssl-rss.txt');
      const gen = `/usr/bin/time -a -o ${rssFile} -f %M openssl ca -config ${join(d, 'openssl.cnf')} -gencrl -out ${join(d, 'openssl.pem')} -batch`;
      must('hyperfine', ['--style', 'none', '--runs', String(runs), '--warmup', '0', '--export-json', join(d, 'hyperfine.json'), gen], d);
      const times = (JSON.parse(readFileSync(join(d, 'hyperfine.json'), 'utf8')) as { results: { times: number[] }[] }).results[0]!.times;
      const opensslRssKb = Math.max(...readFileSync(rssFile, 'utf8').trim().split('\n').map(Number));
      const opensslDer = derFromPemOrDer(readFileSync(join(d, 'openssl.pem'), 'utf8'), ['X509 CRL'], 'the openssl CRL');

      process.stderr.write(`N=${n}: checking both CRLs with openssl crl…\n`);
      const ours = checkCrl(join(d, 'agentca.der'), 'DER', caPem, d);
      const theirs = checkCrl(join(d, 'openssl.pem'), 'PEM', caPem, d);
      const a = median(report.buildSeconds);
      const o = median(times);
      rows.push([
        String(n),
        a.toFixed(3),
        o.toFixed(3),
        (a / o).toFixed(2),
        (report.peakRssKb / 1024).toFixed(0),
        `${((report.firstPeakRssKb - report.rssBeforeKb) / 1024).toFixed(0)} / ${((report.peakRssKb - report.rssBeforeKb) / 1024).toFixed(0)}`,
        (opensslRssKb / 1024).toFixed(0),
        `${report.derBytes} / ${opensslDer.length}`,
        `${ours.entries} / ${theirs.entries}`,
        `${ours.verify} / ${theirs.verify}`,
      ]);
      process.stderr.write(`  agentca runs: ${report.buildSeconds.map((s) => s.toFixed(3)).join(', ')} s; openssl runs: ${times.map((s) => s.toFixed(3)).join(', ')} s\n`);
    }
    const head = ['N', 'agentca s', 'openssl s', 'ratio a/o', 'agentca peak RSS MB', 'agentca RSS growth MB (1st build / all)', 'openssl peak RSS MB', 'DER bytes a / o', 'entries a / o', 'verify a / o'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
    console.log(`machine: ${cpus().length} cores, node ${process.version}, ${must('openssl', ['version'], work).trim()}; agentca signs with KeyObjectSigner (node:crypto), P-256; ${repeats} agentca repeats (median), openssl 3 runs (2 at 1M, median)`);
    console.log(line(head));
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const r of rows) console.log(line(r));
    const worst = Math.max(...rows.map((r) => Number(r[3])));
    console.log(`goal: ratio ≤ 1.0 at every size — ${worst <= 1 ? 'met' : 'NOT met'} (worst ${worst.toFixed(2)})`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
if (args[0] === '--child') {
  await child(Number(args[1]), args[2]!, args[3]!, Number(args[4]));
} else {
  const sizes = (args[0] ?? '10000,100000,1000000').split(',').map(Number);
  if (sizes.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new Error('sizes must be positive integers, comma-separated');
  const repeats = Number(args[1] ?? 3);
  if (!Number.isSafeInteger(repeats) || repeats < 3) throw new Error('REPEATS must be at least 3');
  await parent(sizes, repeats);
}
