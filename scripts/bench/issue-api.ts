/**
 * CSR-signing throughput and latency over the network, agentca side by side with `cfssl serve`, in one run.
 *
 *   agentca: `agentca serve`, POST https://127.0.0.1:P/v1/sign {"csr"} with a fresh single-use join token per
 *            request (tokens minted in-process into the store before serve starts). HTTPS (keep-alive).
 *   cfssl:   `cfssl serve` 1.2 with its SQLite certificate DB in WAL mode (as /work/shared/peers/03_cfssl_sign.sh),
 *            POST http://127.0.0.1:P/api/v1/cfssl/sign {"certificate_request","profile":"leaf"}. Plain HTTP.
 *
 * The load generator is wrk (`wrk -t1 -cC`, scripts/bench/issue-api.lua), as in the peers' scripts the issue's cfssl
 * figures come from: C keep-alive connections, a WARMUP_S run then a DURATION_S measured run per concurrency; for
 * agentca each request carries the next unused join token. wrk's CPU per request is printed (here ~55-75 µs per agentca
 * request at c16-c64, ~165-185 at c1); the Node HTTPS client this bench used before 2026-11-29 took ~315 µs per
 * agentca request and ~200 per cfssl request at c16, CPU the servers did not get. wrk's connections all come from 127.0.0.1, so `agentca serve` runs with a per-address rate
 * limit high enough not to bind (the limiter still runs). Servers and wrk share the cores.
 *
 * In the same run, two rows of scripts/bench/issue-floor-server.mjs: the least work any Node implementation of
 * `/v1/sign` must do per request over HTTPS (the CSR's signature checked, one CA signature; then also a token consumed
 * and the certificate and an audit row stored durably in SQLite), with none of agentca's checks. Their ratios to
 * cfssl bound what a Node server doing this work in one process reaches on this machine; BENCH_FLOOR=0 leaves them out.
 *
 * usage: node --import tsx scripts/bench/issue-api.ts [DURATION_S=8] [WARMUP_S=2] [TOKENS=60000]
 *        BENCH_NO_PEER=1 measures agentca alone (its `agentca c=…` lines, no ratio): to compare two builds of agentca,
 *        alternated. scripts/bench/slow-sync.c simulates a slower disk.
 *
 * With --stores, agentca against itself on its stores instead of against cfssl, side by side in one run: SQLite
 * (one `agentca serve`), PostgreSQL with one replica, and PostgreSQL with two replicas of one CA sharing the
 * database (the client's connections split evenly between them, as a load balancer would). This mode keeps the Node
 * load generator (this file run with `--client`): C request loops, each connection from its own 127.x.y.z address,
 * moved to a fresh one every 400 requests, and URLs split between replicas. PostgreSQL is reached at
 * $AGENTCA_BENCH_PG_URL (else $AGENTCA_TEST_PG_URL, else the local test role of test/support/postgres-server.sh): a
 * role that may CREATE DATABASE; the bench makes a database of its own and drops it.
 *
 * usage: node --import tsx scripts/bench/issue-api.ts --stores [DURATION_S=8] [WARMUP_S=2] [TOKENS=60000]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const REPO = resolve(dirname(SELF), '../..');
const CLI = join(REPO, 'packages/cli/bin/agentca.js');
const PEERS = '/work/shared/peers';
/** BENCH_CONCS="16" (comma-separated) measures only those concurrencies; the ratio lines need 16 among them. */
const CONCS = (process.env.BENCH_CONCS ?? '1,16,64').split(',').map(Number);
const PASSPHRASE = 'bench-passphrase';
const FLOOR_SERVER = join(dirname(SELF), 'issue-floor-server.mjs');
const FLOOR = process.env.BENCH_FLOOR !== '0';
const FLOOR_NO_STORE = 'floor: verify + sign (HTTPS)';
const FLOOR_STORE = 'floor: + SQLite store (HTTPS)';

/** The --stores mode's load: HTTPS POSTs of one CSR to agentca, each with the next unused join token. */
interface ClientJob {
  url: string;
  /** Several servers (replicas): request loop i sends to urls[i % urls.length]. */
  urls?: string[];
  conc: number;
  warmupS: number;
  durationS: number;
  csrPem: string;
  caFile: string;
  tokensFile: string;
  tokenOffset: number;
  addrBase: number;
}

interface ClientResult {
  rps: number;
  p50: number | null;
  p99: number | null;
  ok: number; // all OK requests, warm-up included
  errors: number; // non-2xx / refused / network errors, warm-up included
  errorSamples: string[];
  tokensUsed: number;
  tokensExhausted: boolean;
  /** The load generator's own CPU (user + system, all its threads) per request it sent, warm-up included: what it takes from the servers' cores. */
  clientCpuUs: number;
}

// ---------------------------------------------------------------- load generator (child process)

async function runClient(job: ClientJob): Promise<ClientResult> {
  const ca = readFileSync(job.caFile, 'utf8');
  // Model many agents: each connection has its own loopback source address (127.0.0.0/8), never reused within the
  // run, and a loop moves to a fresh address (a new TLS handshake) every ROTATE requests.
  let addrSeq = job.addrBase;
  const nextAddr = () => {
    const n = addrSeq++;
    return `127.${1 + Math.floor(n / 62500)}.${Math.floor(n / 250) % 250}.${1 + (n % 250)}`;
  };
  const newAgent = () => new https.Agent({ keepAlive: true, maxSockets: 1, ca, localAddress: nextAddr() });
  const ROTATE = 400;
  const tokens = readFileSync(job.tokensFile, 'utf8').split('\n').filter(Boolean).slice(job.tokenOffset);
  let nextToken = 0;
  const body = JSON.stringify({ csr: job.csrPem });
  const urls = (job.urls ?? [job.url]).map((u) => new URL(u));

  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const tMeasure = t0 + job.warmupS * 1000;
  const tEnd = tMeasure + job.durationS * 1000;
  const lat: number[] = [];
  let ok = 0;
  let errors = 0;
  let exhausted = false;
  const errorSamples: string[] = [];
  const fail = (what: string) => {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(what.slice(0, 300));
  };

  const once = (url: URL, agent: https.Agent, headers: Record<string, string>, body: string) =>
    new Promise<{ status: number; text: string }>((res, rej) => {
      const req = https.request(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => res({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          r.on('error', rej);
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', rej);
      req.end(body);
    });

  const agents: https.Agent[] = [];
  const loop = async (_: unknown, index: number) => {
    const url = urls[index % urls.length]!;
    let agent = newAgent();
    agents.push(agent);
    let sent = 0;
    while (performance.now() < tEnd) {
      if (sent++ === ROTATE) {
        agent.destroy();
        agent = newAgent();
        agents.push(agent);
        sent = 1;
      }
      if (nextToken >= tokens.length) {
        exhausted = true;
        return;
      }
      const headers = { authorization: `Bearer ${tokens[nextToken++]}` };
      const start = performance.now();
      try {
        const r = await once(url, agent, headers, body);
        const end = performance.now();
        const good = r.status === 200 && r.text.includes('-----BEGIN CERTIFICATE-----');
        if (!good) fail(`${r.status} ${r.text}`);
        else {
          ok++;
          if (start >= tMeasure && end <= tEnd) lat.push(end - start);
        }
      } catch (e) {
        fail(`network: ${(e as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: job.conc }, loop));
  const cpu = process.cpuUsage(cpu0);
  for (const a of agents) a.destroy();
  lat.sort((a, b) => a - b);
  const pct = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)]! : NaN);
  return {
    rps: lat.length / job.durationS,
    p50: pct(50),
    p99: pct(99),
    ok,
    errors,
    errorSamples,
    tokensUsed: nextToken,
    tokensExhausted: exhausted,
    clientCpuUs: (cpu.user + cpu.system) / Math.max(1, ok + errors),
  };
}

function clientProcess(job: ClientJob): Promise<ClientResult> {
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, ['--import', 'tsx', SELF, '--client', JSON.stringify(job)], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', rej);
    c.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) return rej(new Error(`client exited ${code}: ${out}`));
      res(JSON.parse(line.slice(7)) as ClientResult);
    });
  });
}

/**
 * The main comparison's load generator: wrk, one thread, C keep-alive connections, as in the peers' scripts
 * (/work/shared/peers/03_cfssl_sign.sh, where the issue's cfssl figures come from). A warm-up run, then the
 * measured one; with a tokens file each request carries the next unused join token. wrk runs under
 * /usr/bin/time so its own CPU per request is known.
 */
async function wrkLoad(o: { url: string; conc: number; warmupS: number; durationS: number; bodyFile: string; tokensFile?: string; tokenOffset?: number }): Promise<ClientResult> {
  const run = (seconds: number, offset: number) =>
    new Promise<{ j: Record<string, number>; cpuS: number }>((res, rej) => {
      const env = { ...process.env, BODY_FILE: o.bodyFile, ...(o.tokensFile ? { TOKENS_FILE: o.tokensFile, TOKEN_OFFSET: String(offset) } : {}) };
      const args = ['-f', 'WRKCPU %U %S', 'wrk', '-t1', `-c${o.conc}`, `-d${seconds}s`, '--timeout', '10s', '-s', join(dirname(SELF), 'issue-api.lua'), o.url];
      const c = spawn('/usr/bin/time', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr.on('data', (d: Buffer) => (out += d.toString()));
      c.on('error', rej);
      c.on('exit', () => {
        const line = out.split('\n').find((l) => l.startsWith('WRKJSON '));
        const cpu = /WRKCPU ([\d.]+) ([\d.]+)/.exec(out);
        if (!line || !cpu) return rej(new Error(`wrk gave no result: ${out}`));
        res({ j: JSON.parse(line.slice(8)) as Record<string, number>, cpuS: Number(cpu[1]) + Number(cpu[2]) });
      });
    });
  const offset = o.tokenOffset ?? 0;
  const warm = await run(o.warmupS, offset);
  const m = await run(o.durationS, offset + warm.j.tokens_used!);
  const errorsOf = (j: Record<string, number>) => j.err_status! + j.err_connect! + j.err_read! + j.err_write! + j.err_timeout!;
  const errors = errorsOf(warm.j) + errorsOf(m.j);
  return {
    rps: m.j.rps!,
    p50: m.j.p50_ms!,
    p99: m.j.p99_ms!,
    ok: warm.j.requests! - warm.j.err_status! + (m.j.requests! - m.j.err_status!),
    errors,
    errorSamples: errors ? [`wrk: ${JSON.stringify(warm.j)} then ${JSON.stringify(m.j)}`] : [],
    tokensUsed: warm.j.tokens_used! + m.j.tokens_used!,
    tokensExhausted: m.j.tokens_exhausted === 1,
    clientCpuUs: ((warm.cpuS + m.cpuS) * 1e6) / Math.max(1, warm.j.requests! + m.j.requests!),
  };
}

// ---------------------------------------------------------------- orchestration

const started: ChildProcess[] = [];
const ms = (x: number | null) => (x === null || !Number.isFinite(x) ? 'n/a' : x.toFixed(2));

async function stopServer(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null || p.pid === undefined) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  process.kill(p.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (p.exitCode === null && p.signalCode === null && p.pid !== undefined) process.kill(p.pid, 'SIGKILL');
  }, 5000);
  await exited;
  clearTimeout(timer);
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => res(port));
    });
  });
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Starts a server whose stdout and stderr go to `logFile`, stopped at the end of the run, and waits until `ready()`;
 * an exit before that throws with the log.
 */
async function startLogged(what: string, command: string, args: string[], logFile: string, ready: () => boolean | Promise<boolean>, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ChildProcess> {
  const fd = openSync(logFile, 'w');
  const p = spawn(command, args, { ...options, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  started.push(p);
  await waitFor(`${what} (${logFile})`, () => {
    if (p.exitCode !== null) throw new Error(`${what} exited: ${readFileSync(logFile, 'utf8')}`);
    return ready();
  });
  return p;
}

const logSays = (logFile: string, text: string) => () => readFileSync(logFile, 'utf8').includes(text);

/** A measured row, printed on stderr as the run goes (`BENCH_NO_PEER` runs are read from the `agentca c=…` lines). */
function progress(name: string, conc: number, r: ClientResult): void {
  const sample = r.errorSamples.length ? ` e.g. ${r.errorSamples[0]}` : '';
  console.error(`${name} c=${conc}: ${r.rps.toFixed(0)} req/s p50 ${ms(r.p50)} ms p99 ${ms(r.p99)} ms errors ${r.errors}${sample}${r.tokensExhausted ? ' (ran out of tokens)' : ''}`);
}

const canConnect = (port: number) =>
  new Promise<boolean>((res) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), res(true)));
    s.once('error', () => res(false));
  });

function sh(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...o.env }, cwd: o.cwd ?? REPO });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

async function mintTokens(dir: string, n: number, file: string): Promise<number> {
  const { joinTokensOf, openCaDir } = await import('@agentca/node');
  const ca = await openCaDir(dir);
  const t0 = performance.now();
  try {
    const jt = joinTokensOf(ca);
    const out: string[] = [];
    const CHUNK = 512; // concurrent creates share the store's write batches
    for (let i = 0; i < n; i += CHUNK) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(CHUNK, n - i) }, (_, k) =>
          jt.create({ spiffeId: `spiffe://bench.example/agent/b${i + k}`, profile: 'default', ttlSeconds: 3600, actor: 'operator' }),
        ),
      );
      for (const t of batch) out.push(t.token);
    }
    writeFileSync(file, out.join('\n') + '\n');
  } finally {
    await ca.close();
  }
  return (performance.now() - t0) / 1000;
}

async function main() {
  const DURATION_S = Number(process.argv[2] ?? 8);
  const WARMUP_S = Number(process.argv[3] ?? 2);
  const N_TOKENS = Number(process.argv[4] ?? 60000);
  const work = mkdtempSync(join(tmpdir(), 'agentca-issue-api-'));
  const rows: { server: string; conc: number; r: ClientResult }[] = [];
  const notes: string[] = [];
  let agentcaOk = 0;
  let agentcaTokens = 0;
  let agentcaErrors = 0;
  let agentcaDbCount = -1;
  let agentcaUsedTokens = -1;
  let cfsslOk = 0;
  let cfsslDbCount = -1;
  let cfsslJournal = '';
  let floorCheck = '';
  try {
    // ---- agentca CA, tokens, CSR
    const caDir = join(work, 'ca');
    const env = { AGENTCA_PASSPHRASE: PASSPHRASE };
    sh(process.execPath, [CLI, 'init', '--trust-domain', 'bench.example', '--dir', caDir], { env });
    const tokensFile = join(work, 'tokens.txt');
    const mintS = await mintTokens(caDir, N_TOKENS, tokensFile);
    const { buildCsr, toPem } = await import('@agentca/core');
    const { KeyObjectSigner } = await import('@agentca/node');
    const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const csrPem = toPem('CERTIFICATE REQUEST', await buildCsr(new KeyObjectSigner('ec-p256', k.privateKey, k.publicKey), { subject: { commonName: 'agent' } }));
    const csrBodyFile = join(work, 'agentca-sign.json');
    writeFileSync(csrBodyFile, JSON.stringify({ csr: csrPem }));

    // ---- cfssl CA (the peers' setup: P-256 root + intermediate, leaf CSR, SQLite schema, WAL db-config)
    const cfsslScratch = join(work, 'peer');
    sh('bash', ['-c', `source "${PEERS}/common.sh" && source "${PEERS}/00_ca_setup.sh" && setup_ca`], { env: { SCRATCH: cfsslScratch } });
    const W = join(cfsslScratch, 'cfssl');

    const machine = [
      `date: ${new Date().toISOString()}`,
      `cpu: ${cpus()[0]?.model} x${cpus().length}  kernel: ${release()}  node: ${process.version}`,
      `cfssl: ${sh('cfssl', ['version']).split('\n')[0]}  loadavg: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      `agentca: ${N_TOKENS} join tokens minted in-process in ${mintS.toFixed(1)} s (before serve)`,
      `load: wrk -t1 -cC, ${WARMUP_S} s warm-up run + ${DURATION_S} s measured run per concurrency C, keep-alive connections from 127.0.0.1; wrk shares the same ${cpus().length} cores`,
    ];
    console.error(machine.join('\n'));

    // ---- agentca serve
    {
      const { p, url } = await startAgentca(caDir, join(work, 'agentca-serve.log'), env);
      try {
        let offset = 0;
        for (const conc of CONCS) {
          const r = await wrkLoad({ url, conc, warmupS: WARMUP_S, durationS: DURATION_S, bodyFile: csrBodyFile, tokensFile, tokenOffset: offset });
          offset += r.tokensUsed;
          agentcaOk += r.ok;
          agentcaTokens += r.tokensUsed;
          agentcaErrors += r.errors;
          rows.push({ server: 'agentca (HTTPS)', conc, r });
          progress('agentca', conc, r);
          if (r.tokensExhausted) notes.push(`agentca c=${conc}: ran out of join tokens (${N_TOKENS}) — raise TOKENS; figures for this row are truncated`);
        }
      } finally {
        await stopServer(p);
      }
      agentcaDbCount = Number(sh('sqlite3', [join(caDir, 'agentca.db'), 'select count(*) from certificates']).trim());
      agentcaUsedTokens = Number(sh('sqlite3', [join(caDir, 'agentca.db'), 'select count(*) from join_tokens where used_at is not null']).trim());
    }

    // BENCH_NO_PEER: agentca's lines (above, on stderr) are the whole output.
    if (process.env.BENCH_NO_PEER) return;
    if (FLOOR) floorCheck = await floorRows(work, rows, csrBodyFile, WARMUP_S, DURATION_S);
    // ---- cfssl serve with SQLite DB in WAL mode
    {
      const port = await freePort();
      const p = await startLogged(
        'cfssl serve',
        'cfssl',
        ['serve', '-address', '127.0.0.1', '-port', String(port), '-ca', 'int.pem', '-ca-key', 'int-key.pem', '-config', 'config.json', '-loglevel', '3', '-db-config', join(W, 'db-config-wal.json')],
        join(work, 'cfssl-serve.log'),
        () => canConnect(port),
        { cwd: W },
      );
      try {
        for (const conc of CONCS) {
          const r = await wrkLoad({ url: `http://127.0.0.1:${port}/api/v1/cfssl/sign`, conc, warmupS: WARMUP_S, durationS: DURATION_S, bodyFile: join(W, 'sign-req.json') });
          cfsslOk += r.ok;
          rows.push({ server: 'cfssl+SQLite WAL (HTTP)', conc, r });
          progress('cfssl', conc, r);
        }
      } finally {
        await stopServer(p);
      }
      cfsslDbCount = Number(sh('sqlite3', [join(W, 'certs.db'), 'select count(*) from certificates']).trim());
      cfsslJournal = sh('sqlite3', [join(W, 'certs.db'), 'pragma journal_mode']).trim();
    }

    // ---- report
    console.log('\n# HTTPS/HTTP CSR signing: agentca vs cfssl serve (one run)\n');
    console.log(machine.map((l) => `  ${l}`).join('\n'));
    console.log('');
    const header = ['server', 'conc', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'ok (incl. warm-up)', 'client CPU µs/req'];
    const table = rows.map(({ server, conc, r }) => [server, String(conc), r.rps.toFixed(0), ms(r.p50), ms(r.p99), String(r.errors), String(r.ok), r.clientCpuUs.toFixed(0)]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
    const fmt = (cols: string[]) => '| ' + cols.map((c, i) => (i < 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
    console.log(fmt(header));
    console.log('|' + widths.map((w, i) => (i < 1 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|');
    for (const t of table) console.log(fmt(t));
    const a16 = rows.find((x) => x.server.startsWith('agentca') && x.conc === 16)!.r;
    const c16 = rows.find((x) => x.server.startsWith('cfssl') && x.conc === 16)!.r;
    const ratio = a16.rps / c16.rps;
    console.log('');
    console.log(`ratio agentca/cfssl req/s at c16: ${ratio.toFixed(2)}x  (goal >= 2x: ${ratio >= 2 ? 'MET' : 'NOT MET'})`);
    for (const c of CONCS) {
      const a = rows.find((x) => x.server.startsWith('agentca') && x.conc === c)!.r;
      const b = rows.find((x) => x.server.startsWith('cfssl') && x.conc === c)!.r;
      console.log(`  c${c}: ${(a.rps / b.rps).toFixed(2)}x`);
    }
    console.log(`agentca p99 at c16: ${ms(a16.p99)} ms  (goal <= 25 ms: ${a16.p99 !== null && a16.p99 <= 25 ? 'MET' : 'NOT MET'})`);
    if (FLOOR) {
      const bare = rows.find((x) => x.server === FLOOR_NO_STORE && x.conc === 16)!.r.rps;
      const stored = rows.find((x) => x.server === FLOOR_STORE && x.conc === 16)!.r.rps;
      console.log(
        `the floor (no checks, nothing but the work named) / cfssl at c16: ${(bare / c16.rps).toFixed(2)}x with no store, ${(stored / c16.rps).toFixed(2)}x storing durably; agentca / the floor with a store: ${(a16.rps / stored).toFixed(2)}`,
      );
    }
    const budget = (cpus().length * 1e6) / (2 * c16.rps);
    console.log(
      `CPU the machine has per request at the goal (2x cfssl's c16 rate on ${cpus().length} cores): ${budget.toFixed(0)} µs for everything; the load generator alone took ${a16.clientCpuUs.toFixed(0)} µs per agentca request (${c16.clientCpuUs.toFixed(0)} per cfssl request)`,
    );
    console.log('');
    // wrk stops a run with requests in flight: the server still answers (and agentca stores) most of them, wrk
    // counts none, and a request written as wrk closes its connection may never be read. So: every token the store
    // saw used bought exactly one stored certificate, and that count lies between wrk's 200s and the tokens it sent.
    const expected = agentcaUsedTokens + 2;
    const storeOk = agentcaDbCount === expected && agentcaUsedTokens >= agentcaOk && agentcaUsedTokens <= agentcaTokens;
    console.log(
      `agentca store check: ${agentcaDbCount} certificates = ${agentcaUsedTokens} join tokens used + 1 admin + 1 server cert = ${expected}, ` +
        `used tokens within [${agentcaOk} 200s counted by wrk, ${agentcaTokens} tokens sent]: ${storeOk ? 'OK' : 'MISMATCH'}; non-200: ${agentcaErrors}`,
    );
    if (FLOOR) console.log(floorCheck);
    console.log(`cfssl store check: ${cfsslDbCount} rows for ${cfsslOk} successful signs counted by wrk (plus those in flight at the end of a run); journal_mode=${cfsslJournal}`);
    console.log('notes: agentca runs with --rate-limit 10000000, as every wrk connection comes from 127.0.0.1 (the limiter still runs on each request);');
    console.log('       agentca is measured over HTTPS (keep-alive), cfssl over plain HTTP (it is run without TLS, as in the peer scripts);');
    console.log('       cfssl 1.2 drops URI SANs, so its leaves are not SVIDs; agentca audits every issuance and consumes a join token per request.');
    console.log(`       loadavg at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (on ${cpus().length} cores: other work on the machine makes absolute figures noisy; compare ratios)`);
    for (const n of notes) console.log(`NOTE: ${n}`);
    for (const { server, conc, r } of rows) if (r.errorSamples.length) console.log(`error samples ${server} c${conc}: ${r.errorSamples.join(' || ')}`);
    if (agentcaErrors > 0 || !storeOk || cfsslDbCount < cfsslOk || floorCheck.includes('MISMATCH')) process.exitCode = 1;
  } finally {
    for (const p of started) await stopServer(p).catch(() => {});
    if (!process.env.BENCH_KEEP) rmSync(work, { recursive: true, force: true });
    else console.error(`kept ${work}`);
  }
}

/**
 * The floor's two rows at each concurrency (scripts/bench/issue-floor-server.mjs): without a store, then with its
 * SQLite store and join tokens of its own (random, enough for 8,000 req/s). Returns the store check's line.
 */
async function floorRows(
  work: string,
  rows: { server: string; conc: number; r: ClientResult }[],
  bodyFile: string,
  warmupS: number,
  durationS: number,
): Promise<string> {
  const key = join(work, 'floor-key.pem');
  const cert = join(work, 'floor-cert.pem');
  sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-days', '1']);
  const tokensFile = join(work, 'floor-tokens.txt');
  const n = Math.ceil(8000 * (warmupS + durationS)) * CONCS.length;
  writeFileSync(tokensFile, Array.from({ length: n }, () => randomBytes(24).toString('base64url')).join('\n') + '\n');
  const db = join(work, 'floor.db');
  let check = '';
  for (const store of [false, true]) {
    const port = await freePort();
    const logFile = join(work, `floor-${store ? 'store' : 'bare'}.log`);
    const p = await startLogged('the floor server', process.execPath, [FLOOR_SERVER, String(port), key, cert, tokensFile], logFile, logSays(logFile, 'listening'), {
      env: { ...process.env, STORE: store ? '1' : '0', DB: db },
    });
    let ok = 0;
    let sent = 0;
    try {
      let offset = 0;
      for (const conc of CONCS) {
        const r = await wrkLoad({ url: `https://127.0.0.1:${port}/`, conc, warmupS, durationS, bodyFile, ...(store ? { tokensFile, tokenOffset: offset } : {}) });
        offset += r.tokensUsed;
        ok += r.ok;
        sent += r.tokensUsed;
        const server = store ? FLOOR_STORE : FLOOR_NO_STORE;
        rows.push({ server, conc, r });
        progress(server, conc, r);
      }
    } finally {
      await stopServer(p);
    }
    if (store) {
      const [certs, used, audit] = sh('sqlite3', [db, 'select count(*) from certificates; select count(*) from tokens where used = 1; select count(*) from audit'])
        .trim()
        .split('\n')
        .map(Number);
      const good = certs === used && audit === used && used! >= ok && used! <= sent;
      check = `floor store check: ${certs} certificates, ${audit} audit rows, ${used} tokens used, within [${ok} 200s counted by wrk, ${sent} tokens sent]: ${good ? 'OK' : 'MISMATCH'}`;
    }
  }
  return check;
}

// ---------------------------------------------------------------- --stores: SQLite, PostgreSQL x1, PostgreSQL x2

/** Starts `agentca serve` on free ports and waits for it to listen; returns its API URL. */
/** BENCH_SERVE_NODE_ARGS: extra node flags for `agentca serve` (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it). */
function serveNodeArgs(): string[] {
  return (process.env.BENCH_SERVE_NODE_ARGS ?? '').split(' ').filter(Boolean);
}

/**
 * `--rate-limit`: every wrk connection comes from 127.0.0.1, and the default (5,000 requests per address per 10 s)
 * would cap the run at 500 req/s; the limiter still runs on every request.
 */
async function startAgentca(caDir: string, logFile: string, env: NodeJS.ProcessEnv): Promise<{ p: ChildProcess; url: string }> {
  const port = await freePort();
  const httpPort = await freePort();
  const args = [...serveNodeArgs(), CLI, 'serve', '--dir', caDir, '--listen', `127.0.0.1:${port}`, '--http-listen', `127.0.0.1:${httpPort}`, '--rate-limit', '10000000'];
  const p = await startLogged('agentca serve', process.execPath, args, logFile, logSays(logFile, '"serve.listening"'), { cwd: REPO, env: { ...process.env, ...env } });
  return { p, url: `https://127.0.0.1:${port}/v1/sign` };
}

async function storesMain() {
  const DURATION_S = Number(process.argv[3] ?? 8);
  const WARMUP_S = Number(process.argv[4] ?? 2);
  const N_TOKENS = Number(process.argv[5] ?? 60000);
  const adminUrl = process.env.AGENTCA_BENCH_PG_URL ?? process.env.AGENTCA_TEST_PG_URL ?? 'postgresql://agentca_test:agentca-test-only@127.0.0.1:5432/postgres';
  const work = mkdtempSync(join(tmpdir(), 'agentca-issue-api-stores-'));
  const env = { AGENTCA_PASSPHRASE: PASSPHRASE };
  const { default: pg } = await import('pg');
  const dbName = `agentca_bench_${process.pid}_${Date.now().toString(36)}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      return await c.query(sql);
    } finally {
      await c.end();
    }
  };
  const rows: { setup: string; conc: number; r: ClientResult }[] = [];
  const checks: string[] = [];
  let failed = false;
  let addrBase = 0;
  const { buildCsr, toPem } = await import('@agentca/core');
  const { KeyObjectSigner, paths } = await import('@agentca/node');
  const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csrPem = toPem('CERTIFICATE REQUEST', await buildCsr(new KeyObjectSigner('ec-p256', k.privateKey, k.publicKey), { subject: { commonName: 'agent' } }));
  try {
    await admin(`CREATE DATABASE ${dbName}`);
    const dbUrl = new URL(adminUrl);
    dbUrl.pathname = `/${dbName}`;
    const setups: { name: string; caDir: string; replicas: number; store?: string }[] = [
      { name: 'SQLite (1 process)', caDir: join(work, 'ca-sqlite'), replicas: 1 },
      { name: 'PostgreSQL, 1 replica', caDir: join(work, 'ca-pg'), replicas: 1, store: dbUrl.toString() },
      { name: 'PostgreSQL, 2 replicas', caDir: join(work, 'ca-pg'), replicas: 2, store: dbUrl.toString() },
    ];
    const tokenFiles = new Map<string, { file: string; offset: number; ok: number }>();
    const machine = [
      `date: ${new Date().toISOString()}`,
      `cpu: ${cpus()[0]?.model} x${cpus().length}  kernel: ${release()}  node: ${process.version}  loadavg: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      `load: ${WARMUP_S} s warm-up + ${DURATION_S} s measured per concurrency; client is a separate Node process sharing the same ${cpus().length} cores`,
    ];
    for (const setup of setups) {
      if (!tokenFiles.has(setup.caDir)) {
        sh(process.execPath, [CLI, 'init', '--trust-domain', 'bench.example', '--dir', setup.caDir, ...(setup.store ? ['--store', setup.store] : [])], { env });
        const file = join(work, `tokens-${tokenFiles.size}.txt`);
        const mintS = await mintTokens(setup.caDir, N_TOKENS, file);
        machine.push(`${setup.store ? 'PostgreSQL' : 'SQLite'} CA: ${N_TOKENS} join tokens minted in-process in ${mintS.toFixed(1)} s`);
        tokenFiles.set(setup.caDir, { file, offset: 0, ok: 0 });
      }
      const tokens = tokenFiles.get(setup.caDir)!;
      const servers = [];
      for (let i = 0; i < setup.replicas; i++) servers.push(await startAgentca(setup.caDir, join(work, `serve-${rows.length}-${i}.log`), env));
      try {
        for (const conc of CONCS) {
          const r = await clientProcess({
            url: servers[0]!.url,
            urls: servers.map((x) => x.url),
            conc,
            warmupS: WARMUP_S,
            durationS: DURATION_S,
            csrPem,
            caFile: paths(setup.caDir).root,
            tokensFile: tokens.file,
            tokenOffset: tokens.offset,
            addrBase,
          });
          addrBase += 20_000;
          tokens.offset += r.tokensUsed;
          tokens.ok += r.ok;
          rows.push({ setup: setup.name, conc, r });
          progress(setup.name, conc, r);
          if (r.errors > 0) failed = true;
          if (r.tokensExhausted) checks.push(`NOTE ${setup.name} c=${conc}: ran out of join tokens (${N_TOKENS}): raise TOKENS; this row is truncated`);
        }
      } finally {
        for (const x of servers) await stopServer(x.p);
      }
    }
    // Every 200 is a stored certificate: the admin and one server certificate per serve start are the others.
    const sqliteCount = Number(sh('sqlite3', [join(setups[0]!.caDir, 'agentca.db'), 'select count(*) from certificates']).trim());
    const pgCount = Number((await (async () => {
      const c = new pg.Client({ connectionString: dbUrl.toString() });
      await c.connect();
      try {
        return (await c.query('SELECT count(*) AS n FROM agentca.certificates')).rows[0].n as string;
      } finally {
        await c.end();
      }
    })()));
    const sqliteWant = tokenFiles.get(setups[0]!.caDir)!.ok + 1 + 1;
    const pgWant = tokenFiles.get(setups[1]!.caDir)!.ok + 1 + 3;
    checks.push(`SQLite store: ${sqliteCount} certificates, expected ${sqliteWant}: ${sqliteCount === sqliteWant ? 'OK' : 'MISMATCH'}`);
    checks.push(`PostgreSQL store: ${pgCount} certificates, expected ${pgWant}: ${pgCount === pgWant ? 'OK' : 'MISMATCH'}`);
    if (sqliteCount !== sqliteWant || pgCount !== pgWant) failed = true;

    console.log('\n# HTTPS CSR signing by store: SQLite vs PostgreSQL with one and two replicas (one run)\n');
    console.log(machine.map((l) => `  ${l}`).join('\n'));
    console.log('');
    const names = setups.map((x) => x.name);
    const header = ['conc', ...names.map((n) => `${n} req/s (p99 ms)`)];
    const table = CONCS.map((conc) => [
      String(conc),
      ...names.map((n) => {
        const r = rows.find((x) => x.setup === n && x.conc === conc)!.r;
        return `${r.rps.toFixed(0)} (${ms(r.p99)})`;
      }),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
    const fmt = (cols: string[]) => '| ' + cols.map((c, i) => c.padStart(widths[i]!)).join(' | ') + ' |';
    console.log(fmt(header));
    console.log('|' + widths.map((w) => '-'.repeat(w + 1) + ':').join('|') + '|');
    for (const t of table) console.log(fmt(t));
    console.log('');
    for (const conc of CONCS) {
      const [sq, p1, p2] = names.map((n) => rows.find((x) => x.setup === n && x.conc === conc)!.r.rps);
      const cpu = names.map((n) => rows.find((x) => x.setup === n && x.conc === conc)!.r.clientCpuUs.toFixed(0)).join(' / ');
      console.log(`c${conc}: PostgreSQL 1 replica / SQLite ${(p1! / sq!).toFixed(2)}x; 2 replicas / 1 replica ${(p2! / p1!).toFixed(2)}x; load generator CPU µs/request ${cpu}`);
    }
    for (const c of checks) console.log(c);
    console.log(`notes: every request consumes a join token and is stored and audited; two replicas share the same ${cpus().length} cores as the database and the client,`);
    console.log('       so a second replica adds no CPU here: on separate machines it adds its own. loadavg at the end: ' + loadavg().map((x) => x.toFixed(2)).join(' '));
    for (const { setup, conc, r } of rows) if (r.errorSamples.length) console.log(`error samples ${setup} c${conc}: ${r.errorSamples.join(' || ')}`);
    if (failed) process.exitCode = 1;
  } finally {
    for (const p of started) await stopServer(p).catch(() => {});
    await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch((e) => console.error(`could not drop ${dbName}: ${(e as Error).message}`));
    if (!process.env.BENCH_KEEP) rmSync(work, { recursive: true, force: true });
    else console.error(`kept ${work}`);
  }
}

if (process.argv[2] === '--client') {
  runClient(JSON.parse(process.argv[3]!) as ClientJob).then(
    (r) => console.log(`RESULT ${JSON.stringify(r)}`),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
} else {
  process.on('SIGINT', () => {
    for (const p of started) if (p.pid !== undefined && p.exitCode === null) process.kill(p.pid, 'SIGTERM');
    process.exit(130);
  });
  (process.argv[2] === '--stores' ? storesMain() : main()).catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
