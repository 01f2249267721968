/**
 * In-process issuance rate, side by side with raw node:crypto in the same run.
 *
 *   agentca: CSR parse + proof of possession → policy → serial reserved → TBS → sign →
 *            re-check (incl. signature verify) → stored with its audit event (SQLite file, WAL, synchronous=FULL)
 *   raw:     one P-256 verify + one P-256 sign with node:crypto, synchronous, one thread —
 *            the two signature operations an issuance cannot avoid.
 *
 * usage: node --import tsx scripts/bench/issue.ts [N=4000] [CONCURRENCY=64]
 */
import { generateKeyPairSync, sign, verify, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { Authority, DEFAULT_PROFILE, buildCsr, createHierarchy, systemClock, webCryptoRandom, INTERMEDIATE_KEY } from '@agentca/core';
import { FileKeyStore, KeyObjectSigner, NodeCryptoBackend } from '@agentca/node';
import { openSqliteStore } from '@agentca/store-sqlite';

const N = Number(process.argv[2] ?? 4000);
const CONCURRENCY = Number(process.argv[3] ?? 64);

function rawRate(seconds: number): number {
  const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csrInfo = randomBytes(300); // about a P-256 CertificationRequestInfo
  const tbs = randomBytes(520); // about a leaf TBSCertificate
  const sig = sign('sha256', csrInfo, k.privateKey);
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 20; i++) {
      verify('sha256', csrInfo, k.publicKey, sig);
      sign('sha256', tbs, k.privateKey);
    }
    n += 20;
  }
  return (n * 1000) / (performance.now() - t0);
}

/** CPU time of this process's main thread in µs (Linux /proc; null elsewhere): the event loop's share, robust to a busy machine. */
function mainThreadCpuMicros(): number | null {
  try {
    const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // utime + stime, in clock ticks of 10 ms
  } catch {
    return null;
  }
}

/** BENCH_PROFILE=file.cpuprofile profiles the issuance phase alone (open it in Chrome DevTools). */
async function startProfile(): Promise<(file: string) => Promise<void>> {
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.start');
  return async (file) => {
    const { profile } = await s.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    s.disconnect();
  };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'agentca-bench-'));
  try {
    const keys = new FileKeyStore({ dir: join(dir, 'keys'), passphrase: 'bench-passphrase' });
    const { root, intermediate } = await createHierarchy({ trustDomain: 'bench.example', keyAlgorithm: 'ec-p256', keys, clock: systemClock, random: webCryptoRandom });
    const store = await openSqliteStore(join(dir, 'agentca.db'), process.env.BENCH_BATCH_MS ? { minBatchIntervalMs: Number(process.env.BENCH_BATCH_MS) } : {});
    const backend = new NodeCryptoBackend();
    const authority = await Authority.open({
      trustDomain: 'bench.example',
      issuer: { certificate: intermediate, signer: await keys.open(INTERMEDIATE_KEY) },
      roots: [root],
      profiles: [DEFAULT_PROFILE],
      store,
      crypto: backend,
      urls: { crl: ['http://127.0.0.1:8080/crl'], ocsp: ['http://127.0.0.1:8080/ocsp'] },
    });
    process.stderr.write(`making ${N} CSRs…\n`);
    let csrs: Uint8Array[] = [];
    // BENCH_CSRS=file keeps the CSRs between runs (for profiling the issuance phase alone).
    const cache = process.env.BENCH_CSRS;
    if (cache && existsSync(cache)) csrs = (JSON.parse(readFileSync(cache, 'utf8')) as string[]).slice(0, N).map((b) => new Uint8Array(Buffer.from(b, 'base64')));
    for (let i = csrs.length; i < N; i++) {
      const kp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      csrs.push(await buildCsr(new KeyObjectSigner('ec-p256', kp.privateKey, kp.publicKey)));
    }
    if (cache) writeFileSync(cache, JSON.stringify(csrs.map((c) => Buffer.from(c).toString('base64'))));
    const issueOne = (i: number) =>
      authority.issue({ csr: csrs[i]!, attestation: { spiffeId: `spiffe://bench.example/agent/a${i % 100}`, profile: 'default', method: 'operator', actor: 'bench' } });
    for (let i = 0; i < 200; i++) await issueOne(i); // warm-up (JIT), not counted
    const raw1 = rawRate(3);
    let next = 200;
    const profiler = process.env.BENCH_PROFILE ? await startProfile() : null;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const main0 = mainThreadCpuMicros();
    const mono0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < N) await issueOne(next++);
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const main1 = mainThreadCpuMicros();
    // For `perf record -k CLOCK_MONOTONIC` then `perf report --time <start>,<end>`.
    if (process.env.BENCH_PHASE_TIMES) console.log(`issuance phase (CLOCK_MONOTONIC s): ${(Number(mono0) / 1e9).toFixed(6)},${(Number(process.hrtime.bigint()) / 1e9).toFixed(6)}`);
    const cpuPct = ((cpu.user + cpu.system) / 1e6 / secs) * 100;
    if (profiler) await profiler(process.env.BENCH_PROFILE!);
    const ours = (N - 200) / secs;
    const raw2 = rawRate(3);
    const raw = (raw1 + raw2) / 2;
    const stored = await store.certificates.count();
    await store.close();
    await backend.close();
    console.log(`machine: ${cpus().length} cores, node ${process.version}, openssl ${process.versions.openssl}`);
    console.log(`agentca issuance (P-256, stored + audited, concurrency ${CONCURRENCY}): ${ours.toFixed(0)}/s  (${N - 200} certificates in ${secs.toFixed(2)} s; ${stored} rows stored in ${store.committedBatches} commits; ${cpuPct.toFixed(0)}% CPU = ${((cpu.user + cpu.system) / (N - 200)).toFixed(0)} µs CPU per certificate)`);
    if (main0 !== null && main1 !== null)
      console.log(`  main thread: ${((main1 - main0) / (N - 200)).toFixed(0)} µs CPU per certificate (the event loop's share; the rest ran on worker threads)`);
    console.log(`raw node:crypto P-256 verify+sign, one thread:                 ${raw.toFixed(0)}/s  (before ${raw1.toFixed(0)}, after ${raw2.toFixed(0)})`);
    console.log(`ratio agentca / raw: ${(ours / raw).toFixed(2)}  (goal ≥ 0.5)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
