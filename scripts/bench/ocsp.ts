/**
 * OCSP responders side by side, in one run, under the same load: wrk POSTs one pre-made,
 * nonce-less request for a good certificate (RFC 5019 style, what proxies and browsers send)
 * at each concurrency, and we compare requests/s and p99.
 *
 *   agentca   the plain-HTTP revocation listener (@agentca/server) over OcspResponder, in a
 *             child process: one process, then node:cluster with 2 workers
 *   openssl   `openssl ocsp -index … -port` (signs every response), one process and -multi 2
 *   cfssl     `cfssl ocspserve` over a pre-signed responses file (what `cfssl ocspdump` writes
 *             from its DB; here made by `cfssl ocspsign`)
 *
 * All three sign with the same delegated responder certificate (issued by an agentca
 * intermediate) and answer the same request, so the responses are the same size.
 * `openssl ocsp -port` listens on every interface, so the whole run re-executes itself inside a
 * private network namespace (`unshare --net`, only `lo`), where every responder and wrk live.
 * openssl is restarted before every load, readiness is checked with `ss` (a probe connection
 * wedges it, openssl#23934), and processes are stopped by PID, children included.
 *
 * usage: node --import tsx scripts/bench/ocsp.ts [DURATION_S=10] [CONCURRENCIES=16,64]
 *        BENCH_PROFILE=1 also profiles the single agentca process (--cpu-prof, in the temp dir, kept)
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import cluster from 'node:cluster';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  OcspResponder,
  createHierarchy,
  createOcspResponderCertificate,
  encodeTbsCertificate,
  fromBase64,
  generateWebCryptoSigner,
  newSerial,
  parsePem,
  parseCertificate,
  serialHex,
  signTbs,
  signatureSchemeFor,
  systemClock,
  toPem,
  webCryptoRandom,
  type KeyAlgorithm,
  type KeyStore,
  type Signer,
} from '@agentca/core';
import { KeyObjectSigner } from '@agentca/node';
// @agentca/server is not (yet) a dependency of the repository root: reach it by path.
import { startRevocationServer } from '@agentca/server';

const SELF = fileURLToPath(import.meta.url);
const POST_LUA = '/work/shared/peers/post.lua';
const PORTS = { agentca: 18901, openssl: 18902, cfssl: 18903 };
const WARMUP_S = 2;
const INDEX_ENTRIES = 100_000;

// ---------------------------------------------------------------- the agentca listener (child role)

/** `ocsp.ts serve DIR PORT WORKERS`: the listener, as `agentca serve` would run it, over the files in DIR. */
async function serve(dir: string, port: number, workers: number): Promise<void> {
  if (workers > 1 && cluster.isPrimary) {
    let ready = 0;
    for (let i = 0; i < workers; i++) cluster.fork({ BENCH_ROLE_ARGS: JSON.stringify([dir, port, 1]) });
    cluster.on('message', (_w, m) => {
      if (m === 'ready' && ++ready === workers) console.log('ready');
    });
    process.on('SIGTERM', () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
      process.exit(0);
    });
    return;
  }
  const der = (name: string) => parsePem(readFileSync(join(dir, name), 'utf8'))[0]!.der;
  const key = createPrivateKey(readFileSync(join(dir, 'ocsp-key.pem')));
  const signer = new KeyObjectSigner('ec-p256', key, createPublicKey(key));
  const goodSerial = readFileSync(join(dir, 'serial.txt'), 'utf8').trim();
  const ocsp = new OcspResponder({
    issuerCertificate: der('int.pem'),
    responder: { certificate: der('ocsp.pem'), signer },
    lookup: (serial) => (serial === goodSerial ? { status: 'good' } : { status: 'unknown' }),
    clock: systemClock,
    digest: (alg, data) => createHash(alg === 'SHA-1' ? 'sha1' : 'sha256').update(data).digest(),
  });
  await ocsp.ready();
  const srv = await startRevocationServer({ host: '127.0.0.1', port, crl: () => null, ocsp, clock: systemClock });
  process.on('SIGTERM', () => void srv.close().then(() => process.exit(0)));
  if (cluster.isWorker) process.send!('ready');
  else console.log('ready');
}

// ---------------------------------------------------------------- process handling

interface Running {
  label: string;
  child: ChildProcess;
}

function waitListen(port: number, timeoutMs = 20_000): void {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const out = spawnSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).stdout;
    if (out.trim()) return;
    spawnSync('sleep', ['0.05']);
  }
  throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
}

/** Stops a process by PID, then any child it forked (openssl -multi ignores SIGTERM in its children), by PID. */
async function stop(r: Running | null): Promise<void> {
  if (!r || r.child.pid === undefined) return;
  const pid = r.child.pid;
  let kids: number[] = [];
  try {
    kids = readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    /* already gone */
  }
  const exited = new Promise<void>((resolve) => (r.child.exitCode !== null || r.child.signalCode !== null ? resolve() : r.child.once('exit', () => resolve())));
  r.child.kill('SIGTERM');
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
  for (const k of kids) {
    try {
      process.kill(k, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

function startAgentca(dir: string, workers: number, profile: boolean): Promise<Running> {
  const args = [...process.execArgv, ...(profile ? ['--cpu-prof', '--cpu-prof-dir', join(dir, 'profile')] : []), SELF, 'serve', dir, String(PORTS.agentca), String(workers)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('ready')) resolve({ label: 'agentca', child });
    });
    child.once('exit', (code) => reject(new Error(`agentca listener exited ${code} before it was ready`)));
  });
}

function startOpenssl(dir: string, multi: number): Running {
  const child = spawn(
    'openssl',
    ['ocsp', '-port', String(PORTS.openssl), '-index', join(dir, 'index.txt'), '-CA', join(dir, 'int.pem'), '-rsigner', join(dir, 'ocsp.pem'), '-rkey', join(dir, 'ocsp-key.pem'), '-nmin', '60', ...(multi > 1 ? ['-multi', String(multi)] : [])],
    { stdio: 'ignore' },
  );
  waitListen(PORTS.openssl);
  return { label: 'openssl', child };
}

function startCfssl(dir: string): Running {
  const child = spawn('cfssl', ['ocspserve', '-address', '127.0.0.1', '-port', String(PORTS.cfssl), '-responses', join(dir, 'responses.b64'), '-loglevel', '3'], { stdio: 'ignore' });
  waitListen(PORTS.cfssl);
  return { label: 'cfssl', child };
}

// ---------------------------------------------------------------- load

interface WrkResult {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  requests: number;
  errors: number;
}

function wrk(url: string, body: string, conc: number, seconds: number): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['-t1', `-c${conc}`, `-d${seconds}s`, '--timeout', '5s', '--latency', '-s', POST_LUA, url], {
      env: { ...process.env, BODY_FILE: body, CONTENT_TYPE: 'application/ocsp-request' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.on('exit', () => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('WRKJSON '));
      if (!line) return reject(new Error(`wrk gave no result for ${url}:\n${out}`));
      const j = JSON.parse(line.slice(8));
      resolve({ rps: j.rps, p50_ms: j.p50_ms, p99_ms: j.p99_ms, requests: j.requests, errors: j.err_status + j.err_connect + j.err_read + j.err_write + j.err_timeout });
    });
  });
}

/** One full round trip verified by openssl, as a relying party would. */
function verifyWithOpenssl(dir: string, url: string): string {
  const r = spawnSync(
    'openssl',
    ['ocsp', '-url', url, '-issuer', join(dir, 'int.pem'), '-cert', join(dir, 'leaf.pem'), '-CAfile', join(dir, 'root.pem'), '-no_nonce'],
    { encoding: 'utf8', timeout: 30_000 },
  );
  const verdict = `${r.stdout}${r.stderr}`;
  if (!verdict.includes('Response verify OK') || !verdict.includes(': good')) throw new Error(`${url} did not give a verified good answer:\n${verdict}`);
  return verdict.includes('Response verify OK') ? 'verified good' : verdict;
}

function responseSize(url: string, body: string): number {
  const out = execFileSync('curl', ['-s', '-H', 'Content-Type: application/ocsp-request', '--data-binary', `@${body}`, url]);
  return out.length;
}

// ---------------------------------------------------------------- fixtures

class BenchKeyStore implements KeyStore {
  keys = new Map<string, Signer>();
  async generate(name: string, alg: KeyAlgorithm) {
    const s = await generateWebCryptoSigner(alg);
    this.keys.set(name, s);
    return s;
  }
  async open(name: string) {
    return this.keys.get(name)!;
  }
}

async function fixtures(dir: string): Promise<{ request: string }> {
  const keys = new BenchKeyStore();
  const { root, intermediate } = await createHierarchy({ trustDomain: 'bench.example', keyAlgorithm: 'ec-p256', keys, clock: systemClock, random: webCryptoRandom });
  const intSigner = await keys.open('intermediate');
  const now = Date.now();
  // The leaf: only its serial and issuer matter to OCSP.
  const leafKey = await generateWebCryptoSigner('ec-p256');
  const serial = newSerial(webCryptoRandom, new Date());
  const leaf = await signTbs(
    encodeTbsCertificate({
      serial,
      scheme: signatureSchemeFor('ec-p256'),
      issuer: parseCertificate(intermediate).subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 3_600_000),
      subject: Uint8Array.of(0x30, 0),
      spki: leafKey.publicKey,
      extensions: [],
    }),
    intSigner,
  );
  // The responder key is a node:crypto key so that openssl and cfssl can load the same one.
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' }) as { privateKey: KeyObject };
  const responderSpki = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  const responderCert = await createOcspResponderCertificate({
    issuerCertificate: intermediate,
    issuerSigner: intSigner,
    responderPublicKey: responderSpki,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    random: webCryptoRandom,
  });
  writeFileSync(join(dir, 'root.pem'), toPem('CERTIFICATE', root));
  writeFileSync(join(dir, 'int.pem'), toPem('CERTIFICATE', intermediate));
  writeFileSync(join(dir, 'leaf.pem'), toPem('CERTIFICATE', leaf));
  writeFileSync(join(dir, 'ocsp.pem'), toPem('CERTIFICATE', responderCert));
  writeFileSync(join(dir, 'ocsp-key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'serial.txt'), serialHex(serial));

  // openssl's index: the real serial among many fabricated ones (a hash lookup either way).
  const lines: string[] = [];
  for (let i = 1; i <= INDEX_ENTRIES; i++) lines.push(`V\t301231235959Z\t\t${(i + 4096).toString(16).toUpperCase().padStart(32, '0')}\tunknown\t/CN=fab-${i}`);
  lines.push(`V\t301231235959Z\t\t${serialHex(serial).toUpperCase()}\tunknown\t/CN=agent`);
  writeFileSync(join(dir, 'index.txt'), lines.join('\n') + '\n');
  writeFileSync(join(dir, 'index.txt.attr'), 'unique_subject = no\n');

  // cfssl: a pre-signed response, in the format `cfssl ocspdump` writes from its DB.
  const signed = execFileSync(
    'cfssl',
    ['ocspsign', '-ca', join(dir, 'int.pem'), '-responder', join(dir, 'ocsp.pem'), '-responder-key', join(dir, 'ocsp-key.pem'), '-cert', join(dir, 'leaf.pem'), '-status', 'good', '-interval', '1h', '-loglevel', '3'],
    { encoding: 'utf8' },
  );
  const b64 = (JSON.parse(signed) as { ocspResponse: string }).ocspResponse;
  fromBase64(b64); // fails loudly if cfssl printed something else
  writeFileSync(join(dir, 'responses.b64'), `${b64}\n`);

  const request = join(dir, 'req.der');
  execFileSync('openssl', ['ocsp', '-issuer', join(dir, 'int.pem'), '-cert', join(dir, 'leaf.pem'), '-no_nonce', '-reqout', request], { stdio: 'ignore' });
  return { request };
}

// ---------------------------------------------------------------- the run

interface Target {
  name: string;
  url: string;
  start(): Promise<Running>;
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 10);
  const concs = (process.argv[3] ?? '16,64').split(',').map(Number);
  const profile = process.env.BENCH_PROFILE === '1';
  for (const tool of ['wrk', 'openssl', 'cfssl', 'ss', 'curl']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`missing tool: ${tool}`);
  }
  if (!existsSync(POST_LUA)) throw new Error(`missing ${POST_LUA}`);
  spawnSync('ip', ['link', 'set', 'lo', 'up']);

  const dir = mkdtempSync(join(tmpdir(), 'agentca-bench-ocsp-'));
  let running: Running | null = null;
  const onSignal = () => void stop(running).finally(() => process.exit(130));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const { request } = await fixtures(dir);
    const base = (port: number, path = '/') => `http://127.0.0.1:${port}${path}`;
    const targets: Target[] = [
      { name: 'agentca (1 process)', url: base(PORTS.agentca, '/ocsp'), start: () => startAgentca(dir, 1, profile) },
      { name: 'agentca (cluster, 2 workers)', url: base(PORTS.agentca, '/ocsp'), start: () => startAgentca(dir, 2, false) },
      { name: 'openssl ocsp (1 process)', url: base(PORTS.openssl), start: async () => startOpenssl(dir, 1) },
      { name: 'openssl ocsp -multi 2', url: base(PORTS.openssl), start: async () => startOpenssl(dir, 2) },
      { name: 'cfssl ocspserve (pre-signed)', url: base(PORTS.cfssl), start: async () => startCfssl(dir) },
    ];

    console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), node ${process.version}, ${execFileSync('openssl', ['version']).toString().trim()}, cfssl ${execFileSync('cfssl', ['version']).toString().split('\n')[0]!.replace('Version: ', '')}`);
    console.log(`load: wrk -t1 -cC -d${seconds}s, POST of one nonce-less request for a good certificate (${readFileSync(request).length} bytes), after a ${WARMUP_S} s warm-up; network namespace: ${process.env.AGENTCA_BENCH_NETNS ? 'private (unshare --net)' : 'host'}`);

    const results = new Map<string, Map<number, WrkResult>>();
    for (const t of targets) {
      running = await t.start();
      const check = verifyWithOpenssl(dir, t.url);
      const size = responseSize(t.url, request);
      await stop(running);
      console.log(`  ${t.name}: ${check} by openssl ocsp -url, response ${size} bytes`);
      const byConc = new Map<number, WrkResult>();
      for (const c of concs) {
        // Restarted before every load: openssl wedges on connections wrk drops when it stops.
        running = await t.start();
        await wrk(t.url, request, c, WARMUP_S);
        if (t.name.startsWith('openssl')) {
          await stop(running);
          running = await t.start();
        }
        const r = await wrk(t.url, request, c, seconds);
        await stop(running);
        running = null;
        byConc.set(c, r);
        console.log(`  ${t.name} c${c}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50_ms.toFixed(2)} ms, p99 ${r.p99_ms.toFixed(2)} ms, errors ${r.errors} (load ${loadavg()[0]!.toFixed(2)})`);
      }
      results.set(t.name, byConc);
    }

    const pad = (s: string, n: number) => s.padEnd(n);
    const cell = (r: WrkResult | undefined) => (r ? `${r.rps.toFixed(0).padStart(7)} ${r.p99_ms.toFixed(2).padStart(7)}` : '      -       -');
    console.log('');
    console.log(pad('responder', 32) + concs.map((c) => `  c${c}: req/s  p99 ms`.padEnd(22)).join(''));
    for (const t of targets) console.log(pad(t.name, 32) + concs.map((c) => `  ${cell(results.get(t.name)?.get(c))}`.padEnd(22)).join(''));
    console.log('');
    const rps = (name: string, c: number) => results.get(name)?.get(c)?.rps ?? NaN;
    for (const mode of ['agentca (1 process)', 'agentca (cluster, 2 workers)']) {
      for (const c of concs) {
        const vsCfssl = rps(mode, c) / rps('cfssl ocspserve (pre-signed)', c);
        const vsOpenssl = rps(mode, c) / rps('openssl ocsp -multi 2', c);
        console.log(
          `${pad(mode, 30)} c${String(c).padEnd(3)} agentca/cfssl ${vsCfssl.toFixed(2)}× (goal ≥ 2: ${vsCfssl >= 2 ? 'met' : 'MISSED'})   agentca/openssl-multi2 ${vsOpenssl.toFixed(2)}× (goal ≥ 1.5: ${vsOpenssl >= 1.5 ? 'met' : 'MISSED'})`,
        );
      }
    }
    if (profile) console.log(`\nCPU profile of the single agentca process: ${join(dir, 'profile')} (kept)`);
  } finally {
    await stop(running);
    if (!profile) rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- entry

const roleArgs = process.env.BENCH_ROLE_ARGS;
if (roleArgs) {
  const [dir, port, workers] = JSON.parse(roleArgs) as [string, number, number];
  await serve(dir, port, workers);
} else if (process.argv[2] === 'serve') {
  await serve(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]));
} else if (!process.env.AGENTCA_BENCH_NETNS && spawnSync('unshare', ['--net', 'true']).status === 0) {
  // Re-run inside a private network namespace: `openssl ocsp -port` binds every interface.
  const r = spawnSync('unshare', ['--net', process.execPath, ...process.execArgv, SELF, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, AGENTCA_BENCH_NETNS: '1' },
  });
  process.exit(r.status ?? 1);
} else {
  if (!process.env.AGENTCA_BENCH_NETNS) console.error('warning: no private network namespace (unshare --net failed): openssl ocsp listens on every interface during its runs');
  await main();
}
