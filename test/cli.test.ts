/**
 * The CLI surface of PRODUCT §5: --help on every command, --json as one document, the files
 * init and issue write, serial formatting, inspect, list and TTLs — all through the binary.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCsr, ok, PASSPHRASE, pemBlocks, removeTempDirs, run, runCli, tempDir } from './support/cli.ts';

const TD = 'cli.example.org';
const ID = `spiffe://${TD}/agent/invoice-bot`;

let work: string;
let ca: string;
let csr: string;
let initJson: Record<string, any>;
/** One issuance, made in beforeAll with --json and --out. */
let issued: { json: Record<string, any>; out: string; startedAt: number };

beforeAll(async () => {
  work = tempDir('cli');
  ca = join(work, 'ca');
  const r = await runCli(['init', '--dir', ca, '--trust-domain', TD, '--json']);
  expect(r.code, r.stderr).toBe(0);
  initJson = JSON.parse(r.stdout);
  csr = (await makeCsr(work, 'agent', 'ec-p256')).csr;
  const out = join(work, 'chain.pem');
  const startedAt = Date.now();
  const i = await runCli(['issue', '--dir', ca, '--csr', csr, '--id', ID, '--out', out, '--json']);
  expect(i.code, i.stderr).toBe(0);
  issued = { json: JSON.parse(i.stdout), out, startedAt };
}, 60_000);

afterAll(removeTempDirs);

describe.concurrent('--help', () => {
  it.each([
    [[], ['init', 'issue', 'list', 'inspect', 'bundle', 'audit', '--version']],
    [['init'], ['--trust-domain', '--key-alg', 'ec-p256', 'ed25519', 'rsa-2048', '--name-constraints', '--dir', '--passphrase-file', '--json']],
    [['issue'], ['--csr', '--id', '--profile', '--ttl', '--dns', '--out', '--dir', '--passphrase-file', '--json']],
    [['list'], ['--status', 'valid', 'expired', '--id', '--limit', '--dir', '--json']],
    [['inspect'], ['<file>', '--json']],
    [['bundle'], ['--out', '--dir']],
    [['audit'], ['verify', 'tail']],
    [['audit', 'verify'], ['--dir', '--json']],
    [['audit', 'tail'], ['--lines', '--dir', '--json']],
  ])('agentca %j --help', async (command, mentions) => {
    const r = await runCli([...command, '--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Usage: agentca/);
    for (const m of mentions) expect(r.stdout).toContain(m);
    expect(r.stderr).toBe('');
  });
});

describe.concurrent('usage errors', () => {
  it.each([
    [['issue', '--csr', 'x.csr'], "required option '--id <spiffe-id>' not specified"],
    [['bogus'], "unknown command 'bogus'"],
    [['list', '--frob'], "unknown option '--frob'"],
    [['init'], "required option '--trust-domain <td>' not specified"],
  ])('agentca %j: one line with ERR_USAGE, exit 2', async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`error: ${message} (ERR_USAGE)\n`);
  });
});

describe.concurrent('init', () => {
  it('--json is one document describing the CA', () => {
    expect(initJson).toMatchObject({
      dir: ca,
      trustDomain: TD,
      keyAlgorithm: 'ec-p256',
      root: { file: join(ca, 'root.pem') },
      intermediate: { file: join(ca, 'intermediate.pem') },
      admin: { spiffeId: `spiffe://${TD}/admin/operator`, certificate: join(ca, 'admin', 'operator.pem'), key: join(ca, 'admin', 'operator.key.pem') },
    });
    expect(initJson.admin.serial).toMatch(/^[0-9a-f]+$/);
  });

  it('CA keys under keys/ are mode 0600 and encrypted PKCS#8 that the passphrase opens', async () => {
    const keys = readdirSync(join(ca, 'keys')).sort();
    expect(keys).toEqual(['intermediate.key.pem', 'root.key.pem']);
    for (const k of keys) {
      const file = join(ca, 'keys', k);
      expect((statSync(file).mode & 0o777).toString(8), k).toBe('600');
      const text = readFileSync(file, 'utf8');
      expect(text).toContain('-----BEGIN ENCRYPTED PRIVATE KEY-----');
      expect(text).not.toMatch(/BEGIN (EC |RSA )?PRIVATE KEY/);
      const wrong = await run('openssl', ['pkey', '-in', file, '-passin', 'pass:not-the-passphrase', '-noout']);
      expect(wrong.code).not.toBe(0);
    }
    // The intermediate key is the one its certificate certifies.
    const pub = await ok('openssl', ['pkey', '-in', join(ca, 'keys', 'intermediate.key.pem'), '-passin', 'env:AGENTCA_TEST_PASS', '-pubout'], {
      env: { AGENTCA_TEST_PASS: PASSPHRASE },
    });
    expect(pub).toBe(await ok('openssl', ['x509', '-in', join(ca, 'intermediate.pem'), '-noout', '-pubkey']));
  });

  it('admin/operator.pem is a client certificate for spiffe://TD/admin/operator, chaining to the root; its key is 0600', async () => {
    const blocks = pemBlocks(readFileSync(join(ca, 'admin', 'operator.pem'), 'utf8'));
    expect(blocks).toHaveLength(2);
    const leaf = join(tempDir('admin'), 'operator-leaf.pem');
    writeFileSync(leaf, blocks[0]!);
    const text = await ok('openssl', ['x509', '-in', leaf, '-noout', '-text']);
    expect(text.match(/URI:[^\s,]+/g)).toEqual([`URI:spiffe://${TD}/admin/operator`]);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Client Authentication\n/);
    expect(text).toMatch(/CA:FALSE/);
    expect(await ok('openssl', ['verify', '-CAfile', join(ca, 'root.pem'), '-untrusted', join(ca, 'intermediate.pem'), '-purpose', 'sslclient', leaf])).toContain(': OK');
    expect((statSync(join(ca, 'admin', 'operator.key.pem')).mode & 0o777).toString(8)).toBe('600');
    // Its key is the one the certificate certifies.
    expect(await ok('openssl', ['pkey', '-in', join(ca, 'admin', 'operator.key.pem'), '-pubout'])).toBe(await ok('openssl', ['x509', '-in', leaf, '-noout', '-pubkey']));
  });

  it('bundle prints the root certificate; --out writes the same', async () => {
    const printed = await ok('agentca', ['bundle', '--dir', ca]);
    expect(printed).toBe(readFileSync(join(ca, 'root.pem'), 'utf8'));
    const out = join(tempDir('bundle'), 'roots.pem');
    expect(await ok('agentca', ['bundle', '--dir', ca, '--out', out])).toBe('');
    expect(readFileSync(out, 'utf8')).toBe(printed);
  });

  it('AGENTCA_DIR stands in for --dir', async () => {
    const rows = JSON.parse(await ok('agentca', ['list', '--json'], { env: { AGENTCA_DIR: ca } }));
    expect(rows.map((r: { spiffeId: string }) => r.spiffeId)).toContain(ID);
  });
});

describe.concurrent('issue', () => {
  it('--json is one document; --out holds the leaf then the intermediate', async () => {
    const j = issued.json;
    expect(j).toMatchObject({ spiffeId: ID, file: issued.out });
    expect(j.instanceId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const blocks = pemBlocks(readFileSync(issued.out, 'utf8'));
    expect(blocks).toHaveLength(2);
    expect(blocks[0]).toBe(j.certificate);
    expect(blocks[1]).toBe(readFileSync(join(ca, 'intermediate.pem'), 'utf8'));
    expect(j.chain).toEqual([blocks[1]]);
    // The first certificate is the leaf: issued by the second, for the SPIFFE ID.
    const leaf = await ok('openssl', ['x509', '-noout', '-text'], { input: blocks[0] });
    expect(leaf).toContain(`URI:${ID}`);
    const intermediate = await ok('openssl', ['x509', '-noout', '-subject'], { input: blocks[1] });
    expect(leaf).toContain(`Issuer: ${intermediate.replace(/^subject=/, '').trim()}`);
  });

  it("the leaf's serial is the JSON serial: lowercase hex, no separators, ≤ 20 octets", async () => {
    const serial = issued.json.serial as string;
    expect(serial).toMatch(/^[0-9a-f]+$/);
    expect(serial.length).toBeLessThanOrEqual(40);
    const fromOpenssl = (await ok('openssl', ['x509', '-noout', '-serial'], { input: issued.json.certificate })).trim();
    expect(fromOpenssl).toBe(`serial=${serial.toUpperCase()}`);
    // The inventory and the audit log print it the same way.
    const rows = JSON.parse(await ok('agentca', ['list', '--dir', ca, '--json', '--id', ID]));
    expect(rows.map((r: { serial: string }) => r.serial)).toEqual([serial]);
    const table = await ok('agentca', ['list', '--dir', ca, '--id', ID]);
    expect(table).toContain(serial);
  });

  it('without --out, the PEM chain goes to stdout and a one-line summary to stderr', async () => {
    const r = await runCli(['issue', '--dir', ca, '--csr', csr, '--id', `spiffe://${TD}/agent/stdout`]);
    expect(r.code, r.stderr).toBe(0);
    expect(pemBlocks(r.stdout)).toHaveLength(2);
    expect(r.stdout).toBe(pemBlocks(r.stdout).join(''));
    expect(r.stderr).toMatch(/^issued [0-9a-f]+ for spiffe:\/\/cli\.example\.org\/agent\/stdout \(instance [0-9a-f-]{36}\), valid until \S+\n$/);
  });

  it('reads the CSR from stdin with --csr -', async () => {
    const r = await runCli(['issue', '--dir', ca, '--csr', '-', '--id', `spiffe://${TD}/agent/stdin`, '--json'], { input: readFileSync(csr) });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).spiffeId).toBe(`spiffe://${TD}/agent/stdin`);
  });

  it('a 10-minute TTL: notAfter ≈ now + 10 min, notBefore backdated for clock skew', async () => {
    const t0 = Date.now();
    const r = await runCli(['issue', '--dir', ca, '--csr', csr, '--id', `spiffe://${TD}/agent/short-lived`, '--ttl', '10m', '--json']);
    const t1 = Date.now();
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    const notAfter = Date.parse(j.notAfter);
    // notAfter = (issue time, whole seconds) + 600 s, and issue time lies in [t0, t1].
    expect(notAfter).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) * 1000 + 600_000);
    expect(notAfter).toBeLessThanOrEqual(t1 + 600_000);
    expect(notAfter - Date.parse(j.notBefore)).toBe(600_000 + 60_000);
    // The certificate says the same as the JSON.
    const end = (await ok('openssl', ['x509', '-noout', '-enddate'], { input: j.certificate })).trim().replace(/^notAfter=/, '');
    expect(Date.parse(end)).toBe(notAfter);
  });

  it('the default TTL is 1 h, and 24h (the profile maximum) is accepted', async () => {
    expect(Date.parse(issued.json.notAfter) - Date.parse(issued.json.notBefore)).toBe(3600_000 + 60_000);
    const r = await runCli(['issue', '--dir', ca, '--csr', csr, '--id', `spiffe://${TD}/agent/day`, '--ttl', '24h', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(Date.parse(j.notAfter) - Date.parse(j.notBefore)).toBe(86400_000 + 60_000);
  });

  it('a SPIFFE ID of exactly 2048 bytes is accepted (the limit is inclusive)', async () => {
    const prefix = `spiffe://${TD}/agent/`;
    const id = prefix + 'x'.repeat(2048 - prefix.length);
    expect(Buffer.byteLength(id)).toBe(2048);
    const r = await runCli(['issue', '--dir', ca, '--csr', csr, '--id', id, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).spiffeId).toBe(id);
  });

  it('two issuances from the same CSR get different serials and instances', async () => {
    const [a, b] = await Promise.all(
      ['twin-a', 'twin-b'].map(async (n) => JSON.parse(await ok('agentca', ['issue', '--dir', ca, '--csr', csr, '--id', `spiffe://${TD}/agent/${n}`, '--json']))),
    );
    expect(a.serial).not.toBe(b.serial);
    expect(a.instanceId).not.toBe(b.instanceId);
  });
});

describe.concurrent('inspect', () => {
  it('shows the SPIFFE ID and the instance of an issued certificate', async () => {
    const r = await runCli(['inspect', issued.out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`SAN URI\\s+${ID.replace(/[./]/g, '\\$&')} \\(critical\\)`));
    expect(r.stdout).toMatch(new RegExp(`\\binstance\\s+${issued.json.instanceId}\\n`));
    expect(r.stdout).toMatch(new RegExp(`\\bserial\\s+${issued.json.serial}\\n`));
  });

  it('--json is one document: one entry per PEM block, leaf first', async () => {
    const r = await runCli(['inspect', issued.out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toHaveLength(2);
    expect(doc[0]).toMatchObject({ kind: 'certificate', fields: { serial: issued.json.serial, subject: '(empty)', 'SAN URI': `${ID} (critical)` } });
    expect(doc[0].fields.instance).toBe(issued.json.instanceId);
    expect(doc[1].fields['basic constraints']).toMatch(/^CA:TRUE, pathLen 0/);
  });

  it('reads a CSR too', async () => {
    const doc = JSON.parse(await ok('agentca', ['inspect', csr, '--json']));
    expect(doc).toEqual([{ kind: 'certificate request', fields: { subject: 'CN=ignored-by-the-ca', key: 'ECDSA P-256' } }]);
  });
});

describe.concurrent('list', () => {
  it('--json is one document; right after issuing, --status expired is empty and --status valid has it', async () => {
    const expired = await runCli(['list', '--dir', ca, '--status', 'expired', '--json']);
    expect(expired.code, expired.stderr).toBe(0);
    expect(JSON.parse(expired.stdout)).toEqual([]);
    const valid = JSON.parse(await ok('agentca', ['list', '--dir', ca, '--status', 'valid', '--json']));
    expect(valid).toContainEqual(
      expect.objectContaining({ serial: issued.json.serial, spiffeId: ID, instanceId: issued.json.instanceId, status: 'valid', profile: 'default' }),
    );
    expect(valid).toContainEqual(expect.objectContaining({ spiffeId: `spiffe://${TD}/admin/operator`, profile: 'admin' }));
    expect(await ok('agentca', ['list', '--dir', ca, '--status', 'expired'])).toBe('no certificates\n');
  });
});

describe.concurrent('audit', () => {
  it('verify --json and tail --json are one document each', async () => {
    const v = JSON.parse(await ok('agentca', ['audit', 'verify', '--dir', ca, '--json']));
    expect(v).toMatchObject({ ok: true });
    expect(v.head).toMatch(/^[0-9a-f]{64}$/);
    const tail = JSON.parse(await ok('agentca', ['audit', 'tail', '--dir', ca, '--json', '-n', '100000']));
    // Other tests in this file may append while this one runs: the log only grows.
    expect(tail.length).toBeGreaterThanOrEqual(v.events);
    expect(tail[v.events - 1]).toMatchObject({ seq: v.events, hash: v.head });
    expect(tail[0]).toMatchObject({ seq: 1, type: 'init', outcome: 'ok', detail: { trustDomain: TD, keyAlgorithm: 'ec-p256' } });
    expect(tail).toContainEqual(expect.objectContaining({ type: 'issue', serial: issued.json.serial, spiffeId: ID, outcome: 'ok' }));
  });

  it('tail prints one line per event, newest last, limited by -n', async () => {
    const lines = (await ok('agentca', ['audit', 'tail', '--dir', ca, '-n', '2'])).trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(Number(lines[1]!.split(/\s+/)[0])).toBe(Number(lines[0]!.split(/\s+/)[0]) + 1);
  });
});
