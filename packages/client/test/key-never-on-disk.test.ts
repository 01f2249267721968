/**
 * "The private key never touches disk in SDK mode", asserted two ways beyond client.test.ts's scan:
 *
 * 1. A whole SDK lifecycle (bootstrap, two rotations each for two identities, mTLS both ways
 *    through the dispatcher and the https.Agent, retire) runs in a process under Node's
 *    permission model with no write permission at all (so no file can be written, whatever the
 *    SDK does), and with node:fs's writing functions wrapped, so that even an attempt that
 *    failed and was swallowed shows. The run proves the restriction was in force.
 * 2. Every file modified while it ran, anywhere the process or the CA could write (the temp dir,
 *    the repository, the home directory), is searched for each key it held, in the encodings a
 *    key is written in: PKCS#8 DER, its PEM body, SEC1 DER, and the bare private scalar (raw, hex,
 *    base64, base64url).
 */
import { spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listed, ok, removeTempDirs, repoRoot, tempDir } from '../../../test/support/cli.ts';
import { startServe, type Served } from '../../../test/support/serve.ts';

let dir: string;
let bundle: string;
let serve: Served;

beforeAll(async () => {
  const work = tempDir('key-never-on-disk');
  dir = join(work, 'ca');
  await ok('agentca', ['init', '--trust-domain', 'example.org', '--dir', dir]);
  bundle = join(work, 'bundle.pem');
  await ok('agentca', ['bundle', '--dir', dir, '--out', bundle]);
  serve = await startServe(dir);
}, 60_000);

afterAll(async () => {
  await serve?.stop();
  removeTempDirs();
});

/**
 * The SDK and the lifecycle script as plain JavaScript in `out` (TypeScript's transpileModule,
 * `.ts` imports rewritten), with undici linked: the restricted process then needs no loader —
 * tsx would want a worker, a child process (esbuild) and a cache on disk.
 */
function compile(out: string): string {
  const client = join(repoRoot, 'packages/client');
  const files = [...readdirSync(join(client, 'src')).map((f) => `src/${f}`), 'test/fixtures/sdk-lifecycle.ts'];
  for (const f of files) {
    const js = ts.transpileModule(readFileSync(join(client, f), 'utf8'), {
      fileName: f,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, rewriteRelativeImportExtensions: true, verbatimModuleSyntax: false },
    }).outputText;
    mkdirSync(join(out, dirname(f)), { recursive: true });
    writeFileSync(join(out, f.replace(/\.ts$/, '.js')), js);
  }
  writeFileSync(join(out, 'package.json'), '{"type":"module"}');
  mkdirSync(join(out, 'node_modules'));
  symlinkSync(realpathSync(join(client, 'node_modules/undici')), join(out, 'node_modules/undici'));
  return join(out, 'test/fixtures/sdk-lifecycle.js');
}

function runLifecycle(script: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Read anything, write nothing; no worker, child process, addon or WASI either (Node's defaults under the permission model).
  const child = spawn(process.execPath, ['--experimental-permission', '--allow-fs-read=*', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b));
  child.stderr.on('data', (b: Buffer) => (stderr += b));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** Files under `root` modified at or after `since` (ms), skipping node_modules, .git and /proc-like trees. */
function modifiedSince(root: string, since: number, out: string[] = [], depth = 0): string[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return out;
  }
  for (const n of names) {
    if (n === 'node_modules' || n === '.git') continue;
    const p = join(root, n);
    try {
      const st = statSync(p);
      if (st.isDirectory()) {
        if (depth < 8) modifiedSince(p, since, out, depth + 1);
      } else if (st.isFile() && st.mtimeMs >= since && st.size < 64 * 1024 * 1024) out.push(p);
    } catch {
      /* vanished or unreadable */
    }
  }
  return out;
}

describe('the private key never touches disk in SDK mode', () => {
  it('runs a whole lifecycle where no file can be written, and no file written meanwhile holds a key', async () => {
    const token = async (id: string): Promise<string> => (await ok('agentca', ['token', 'create', '--dir', dir, '--id', id])).trim();
    const env = {
      LIFECYCLE_SERVER: serve.apiUrl,
      LIFECYCLE_BUNDLE: bundle,
      LIFECYCLE_TOKEN_SVC: await token('spiffe://example.org/svc/diskless'),
      LIFECYCLE_TOKEN_CALLER: await token('spiffe://example.org/agent/diskless'),
    };
    const script = compile(tempDir('lifecycle-js'));
    const since = Date.now() - 1000; // mtime granularity
    const r = await runLifecycle(script, env);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { writeDenied: string | null; writeAttempts: string[]; fsWrite: boolean | null; keys: string[]; serials: string[]; statuses: number[]; retired: number[] };

    // The restriction was in force, and the SDK did all its work under it.
    expect(result.writeDenied).toBe('ERR_ACCESS_DENIED');
    // The SDK did not even try: the only attempt is the control's.
    expect(result.writeAttempts).toEqual([expect.stringMatching(/^writeFileSync .*agentca-lifecycle-probe-\d+$/)]);
    expect(result.fsWrite).toBe(false);
    expect(result.keys.length).toBeGreaterThanOrEqual(6); // two identities × bootstrap + two rotations
    expect(new Set(result.keys).size).toBe(result.keys.length);
    expect(result.statuses).toEqual([200, 200, 200, 200]);
    expect(result.retired[0]! + result.retired[1]!).toBeGreaterThanOrEqual(result.keys.length);
    const issued = new Map((await listed(dir)).map((c) => [c.serial.replace(/^0+/, ''), c.status]));
    for (const s of result.serials) expect(issued.get(s.replace(/^0+/, ''))).toBe('revoked');

    // Belt and braces: what was written meanwhile (by the CA, the tools, anyone) holds none of them.
    const needles: { what: string; bytes: Buffer }[] = [];
    for (const hex of result.keys) {
      const pkcs8 = Buffer.from(hex, 'hex');
      const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
      const d = Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
      const sec1 = key.export({ type: 'sec1', format: 'der' }) as Buffer;
      needles.push(
        { what: 'pkcs8 der', bytes: pkcs8 },
        { what: 'pkcs8 pem body', bytes: Buffer.from(pkcs8.toString('base64').slice(0, 64)) },
        { what: 'sec1 der', bytes: sec1 },
        { what: 'scalar', bytes: d },
        { what: 'scalar hex', bytes: Buffer.from(d.toString('hex')) },
        { what: 'scalar base64', bytes: Buffer.from(d.toString('base64').slice(0, 40)) },
        { what: 'scalar base64url', bytes: Buffer.from(d.toString('base64url').slice(0, 40)) },
      );
    }
    const files = [...new Set([tmpdir(), repoRoot, homedir()].flatMap((root) => modifiedSince(root, since)))];
    expect(files.length).toBeGreaterThan(0); // the CA's database at least
    expect(files.some((f) => f.startsWith(dir))).toBe(true);
    const hits: string[] = [];
    for (const f of files) {
      let content: Buffer;
      try {
        content = readFileSync(f);
      } catch {
        continue;
      }
      for (const n of needles) if (content.includes(n.bytes)) hits.push(`${f}: ${n.what}`);
    }
    expect(hits).toEqual([]);
  }, 90_000);
});
