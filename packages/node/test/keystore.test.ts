import { spawnSync } from 'node:child_process';
import { constants, createPrivateKey, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AgentCAError, Conflict, InternalError, InvalidRequest, KEY_ALGORITHMS, Unavailable, type KeyAlgorithm, type Signer } from '@agentca/core';
import { FileKeyStore, KeyObjectSigner, PBKDF2_ITERATIONS } from '../src/keystore/index.ts';
import { resolvePassphrase } from '../src/passphrase.ts';

const PASSPHRASE = 'correct horse battery staple';
const OTHER_PASSPHRASE = 'tr0ub4dor&3-wrong';
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const isRoot = process.getuid?.() === 0;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'agentca-keystore-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function caught(p: Promise<unknown> | (() => unknown)): Promise<AgentCAError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(AgentCAError);
    return e as AgentCAError;
  }
  throw new Error('expected an AgentCAError, got success');
}

function expectNoSecret(err: Error): void {
  expect(err.message).not.toContain(PASSPHRASE);
  expect(err.message).not.toContain(OTHER_PASSPHRASE);
  expect(err.message).not.toMatch(/BEGIN|[A-Za-z0-9+/]{40}/);
}

function verifyWith(signer: Signer, data: Uint8Array, signature: Uint8Array): boolean {
  const publicKey = createPublicKey({ key: Buffer.from(signer.publicKey), format: 'der', type: 'spki' });
  const hash = signer.algorithm === 'ed25519' ? null : signer.algorithm === 'ec-p384' ? 'sha384' : 'sha256';
  const options =
    publicKey.asymmetricKeyType === 'ec'
      ? { key: publicKey, dsaEncoding: 'der' as const }
      : publicKey.asymmetricKeyType === 'rsa'
        ? { key: publicKey, padding: constants.RSA_PKCS1_PADDING }
        : publicKey;
  return verify(hash, data, options, signature);
}

/** Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }, short-form lengths for P-256/P-384. */
function expectDerEcdsaSignature(sig: Uint8Array): void {
  expect(sig[0]).toBe(0x30);
  const bodyStart = sig[1]! & 0x80 ? 3 : 2;
  const bodyLength = sig[1]! & 0x80 ? sig[2]! : sig[1]!;
  expect(bodyStart + bodyLength).toBe(sig.length);
  expect(sig[bodyStart]).toBe(0x02);
  const rEnd = bodyStart + 2 + sig[bodyStart + 1]!;
  expect(sig[rEnd]).toBe(0x02);
  expect(rEnd + 2 + sig[rEnd + 1]!).toBe(sig.length);
}

function openssl(args: string[]): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Writes a key of a type agentca does not sign with, encrypted with PASSPHRASE. */
function writeForeignKey(name: string, privateKey: ReturnType<typeof generateKeyPairSync>['privateKey']): void {
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASSPHRASE });
  writeFileSync(join(dir, `${name}.key.pem`), pem, { mode: 0o600 });
}

function rewrapDer(pem: string, change: (der: Buffer) => Buffer): string {
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, ''), 'base64');
  const b64 = change(der).toString('base64').match(/.{1,64}/g)!.join('\n');
  return `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${b64}\n-----END ENCRYPTED PRIVATE KEY-----\n`;
}

describe('FileKeyStore: generate, open, sign', () => {
  describe.each(KEY_ALGORITHMS)('%s', (alg: KeyAlgorithm) => {
    let algDir: string;
    let generated: Signer;
    beforeAll(async () => {
      algDir = mkdtempSync(join(tmpdir(), `agentca-keystore-${alg}-`));
      generated = await new FileKeyStore({ dir: algDir, passphrase: PASSPHRASE }).generate('ca', alg);
    }, 60_000);
    afterAll(() => rmSync(algDir, { recursive: true, force: true }));

    it('opens the generated key and signs verifiably with the X.509 signature scheme', async () => {
      const opened = await new FileKeyStore({ dir: algDir, passphrase: PASSPHRASE }).open('ca');
      expect(generated.algorithm).toBe(alg);
      expect(opened.algorithm).toBe(alg);
      expect(opened.publicKey).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(opened.publicKey).equals(Buffer.from(generated.publicKey))).toBe(true);
      const spki = createPublicKey({ key: Buffer.from(opened.publicKey), format: 'der', type: 'spki' });
      expect(spki.asymmetricKeyType).toBe(alg.startsWith('ec-') ? 'ec' : alg.startsWith('rsa-') ? 'rsa' : 'ed25519');

      const data = new TextEncoder().encode(`tbsCertificate for ${alg}`);
      for (const signer of [generated, opened]) {
        const signature = await signer.sign(data);
        expect(signature).toBeInstanceOf(Uint8Array);
        expect(verifyWith(opened, data, signature)).toBe(true);
        expect(verifyWith(opened, new TextEncoder().encode('other data'), signature)).toBe(false);
        if (alg.startsWith('ec-')) expectDerEcdsaSignature(signature);
        if (alg === 'ed25519') expect(signature.length).toBe(64);
        if (alg.startsWith('rsa-')) expect(signature.length * 8).toBe(Number(alg.slice(4)));
      }
    });

    it('wrote a 0600 PBES2/AES-256-CBC encrypted PKCS#8 PEM that openssl reads with the passphrase only', { timeout: 30_000 }, () => {
      const file = join(algDir, 'ca.key.pem');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const pem = readFileSync(file, 'utf8');
      expect(pem).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
      expect(pem).toMatch(/\n-----END ENCRYPTED PRIVATE KEY-----\n$/);
      expect(readdirSync(algDir)).toEqual(['ca.key.pem']);
      // Read as an unencrypted key, the file is refused.
      expect(() => createPrivateKey(pem)).toThrow();
      expect(() => createPrivateKey({ key: pem, format: 'pem', type: 'pkcs8' })).toThrow();

      if (!hasOpenssl) return;
      const parsed = openssl(['asn1parse', '-in', file]);
      expect(parsed.status).toBe(0);
      const asn1 = parsed.stdout.toString();
      expect(asn1).toContain(':PBES2');
      expect(asn1).toContain(':PBKDF2');
      expect(asn1).toContain(':hmacWithSHA256');
      expect(asn1).toContain(':aes-256-cbc');
      expect(asn1).toContain(`:${PBKDF2_ITERATIONS.toString(16).toUpperCase().padStart(6, '0')}`);

      const pub = openssl(['pkey', '-in', file, '-passin', `pass:${PASSPHRASE}`, '-pubout', '-outform', 'DER']);
      expect(pub.status, pub.stderr).toBe(0);
      expect(pub.stdout.equals(Buffer.from(generated.publicKey))).toBe(true);
      const wrong = openssl(['pkey', '-in', file, '-passin', `pass:${OTHER_PASSPHRASE}`, '-noout']);
      expect(wrong.status).not.toBe(0);
    });
  });
});

describe('FileKeyStore: generate', () => {
  it('refuses to overwrite an existing key and leaves it untouched', async () => {
    const store = new FileKeyStore({ dir, passphrase: PASSPHRASE });
    await store.generate('root', 'ec-p256');
    const before = readFileSync(join(dir, 'root.key.pem'));
    const err = await caught(store.generate('root', 'ed25519'));
    expect(err).toBeInstanceOf(Conflict);
    expect(err.code).toBe('ERR_KEY_EXISTS');
    expect(err.message).toBe(`key file ${join(dir, 'root.key.pem')} already exists: refusing to overwrite it`);
    expect(readFileSync(join(dir, 'root.key.pem')).equals(before)).toBe(true);
    expect((await store.open('root')).algorithm).toBe('ec-p256');
    expect(readdirSync(dir)).toEqual(['root.key.pem']);
  });

  it('lets exactly one of two concurrent generates of a name win', async () => {
    const store = new FileKeyStore({ dir, passphrase: PASSPHRASE });
    const results = await Promise.allSettled([store.generate('race', 'ec-p256'), store.generate('race', 'ed25519')]);
    const won = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<Signer>[];
    const lost = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.reason).toBeInstanceOf(Conflict);
    expect(lost[0]!.reason.code).toBe('ERR_KEY_EXISTS');
    const opened = await store.open('race');
    expect(Buffer.from(opened.publicKey).equals(Buffer.from(won[0]!.value.publicKey))).toBe(true);
    expect(readdirSync(dir)).toEqual(['race.key.pem']);
  });

  it('creates the key directory (0700) when it does not exist', async () => {
    const nested = join(dir, 'ca', 'keys');
    await new FileKeyStore({ dir: nested, passphrase: PASSPHRASE }).generate('intermediate', 'ec-p256');
    expect(statSync(nested).mode & 0o777).toBe(0o700);
    expect(statSync(join(nested, 'intermediate.key.pem')).mode & 0o777).toBe(0o600);
  });

  it.each(['', 'Root', 'a.b', '../root', 'a/b', 'root key', 'x'.repeat(65), 'root\n'])('refuses the key name %j', async (name) => {
    const store = new FileKeyStore({ dir, passphrase: PASSPHRASE });
    for (const attempt of [() => store.generate(name, 'ec-p256'), () => store.open(name)]) {
      const err = await caught(attempt);
      expect(err).toBeInstanceOf(InvalidRequest);
      expect(err.code).toBe('ERR_KEY_NAME');
      expect(err.message).toBe(`invalid key name ${JSON.stringify(name.slice(0, 64))}: use 1 to 64 characters from a-z, 0-9 and -`);
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses an unknown algorithm', async () => {
    const err = await caught(new FileKeyStore({ dir, passphrase: PASSPHRASE }).generate('root', 'rsa-1024' as KeyAlgorithm));
    expect(err).toBeInstanceOf(InvalidRequest);
    expect(err.code).toBe('ERR_KEY_ALGORITHM_UNSUPPORTED');
    expect(err.message).toBe('unsupported key algorithm "rsa-1024": use one of ec-p256, ec-p384, ed25519, rsa-2048, rsa-3072, rsa-4096');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a missing or short passphrase at construction', async () => {
    const missing = await caught(() => new FileKeyStore({ dir, passphrase: '' }));
    expect(missing).toBeInstanceOf(InvalidRequest);
    expect(missing.code).toBe('ERR_PASSPHRASE_REQUIRED');
    expect(missing.message).toBe('a passphrase is required to encrypt and decrypt key files');
    const short = await caught(() => new FileKeyStore({ dir, passphrase: 'hunter2' }));
    expect(short).toBeInstanceOf(InvalidRequest);
    expect(short.code).toBe('ERR_PASSPHRASE_TOO_SHORT');
    expect(short.message).toBe('the passphrase is too short: use at least 8 characters');
    expect(short.message).not.toContain('hunter2');
  });
});

describe('FileKeyStore: open failures', () => {
  const file = () => join(dir, 'root.key.pem');
  let fixture: string;
  beforeAll(async () => {
    const fixtureDir = mkdtempSync(join(tmpdir(), 'agentca-keystore-fixture-'));
    await new FileKeyStore({ dir: fixtureDir, passphrase: PASSPHRASE }).generate('root', 'ec-p256');
    fixture = readFileSync(join(fixtureDir, 'root.key.pem'), 'utf8');
    rmSync(fixtureDir, { recursive: true, force: true });
  });
  /** Puts a copy of one generated ec-p256 key at `root.key.pem` (saves a PBKDF2 run per test). */
  const installKey = () => writeFileSync(file(), fixture, { mode: 0o600 });
  async function openRoot(passphrase = PASSPHRASE): Promise<AgentCAError> {
    const err = await caught(new FileKeyStore({ dir, passphrase }).open('root'));
    expect(err).toBeInstanceOf(Unavailable);
    expectNoSecret(err);
    return err;
  }

  it('a missing key file: ERR_KEY_MISSING', async () => {
    const err = await openRoot();
    expect(err.code).toBe('ERR_KEY_MISSING');
    expect(err.message).toBe(`key file ${file()} not found`);
  });

  it('a wrong passphrase: ERR_KEY_PASSPHRASE', async () => {
    installKey();
    const err = await openRoot(OTHER_PASSPHRASE);
    expect(err.code).toBe('ERR_KEY_PASSPHRASE');
    expect(err.message).toBe(`cannot decrypt key file ${file()}: wrong passphrase?`);
  });

  it('a passphrase that only differs by a trailing newline is wrong', async () => {
    installKey();
    expect((await openRoot(`${PASSPHRASE}\n`)).code).toBe('ERR_KEY_PASSPHRASE');
  });

  it.each([
    ['truncated in the middle', (pem: string) => pem.slice(0, Math.floor(pem.length / 2))],
    ['missing its END line', (pem: string) => pem.replace(/-----END[^\n]*\n$/, '')],
    ['missing a base64 line', (pem: string) => pem.split('\n').filter((_, i) => i !== 2).join('\n')],
    ['missing its last 16 DER bytes', (pem: string) => rewrapDer(pem, (der) => der.subarray(0, der.length - 16))],
    ['with a byte appended to the DER', (pem: string) => rewrapDer(pem, (der) => Buffer.concat([der, Buffer.from([0])]))],
    ['with a wrong outer length', (pem: string) => rewrapDer(pem, (der) => Buffer.concat([der.subarray(0, 2), Buffer.from([der[2]! + 1]), der.subarray(3)]))],
    ['garbage', () => 'this is not a key\n\x00\x01\x02'],
    ['empty', () => ''],
    ['a certificate', () => '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'],
    ['bad base64', (pem: string) => pem.replace(/\n([A-Za-z0-9+/]{10})/, '\n!!!!!!!!!!')],
    ['two keys', (pem: string) => pem + pem],
  ])('a key file %s: ERR_KEY_CORRUPT', async (_label, damage) => {
    installKey();
    const damaged = damage(fixture);
    expect(damaged).not.toBe(fixture);
    writeFileSync(file(), damaged);
    const err = await openRoot();
    expect(err.code).toBe('ERR_KEY_CORRUPT');
    expect(err.message).toMatch(new RegExp(`^key file ${file().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not an encrypted private key \\(.+\\)$`));
  });

  it('random binary bytes: ERR_KEY_CORRUPT', async () => {
    writeFileSync(file(), Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 131 + 7) & 0xff)), { mode: 0o600 });
    const err = await openRoot();
    expect(err.code).toBe('ERR_KEY_CORRUPT');
    expect(err.message).toBe(`key file ${file()} is not an encrypted private key (no complete PEM block)`);
  });

  it('a directory in place of the file: ERR_KEY_CORRUPT', async () => {
    mkdirSync(file(), { mode: 0o700 });
    const err = await openRoot();
    expect(err.code).toBe('ERR_KEY_CORRUPT');
    expect(err.message).toBe(`key file ${file()} is not a regular file`);
  });

  it('an oversized file: ERR_KEY_CORRUPT', async () => {
    writeFileSync(file(), 'A'.repeat(65 * 1024), { mode: 0o600 });
    const err = await openRoot();
    expect(err.code).toBe('ERR_KEY_CORRUPT');
    expect(err.message).toBe(`key file ${file()} is too large to be a key`);
  });

  it('an unencrypted private key: ERR_KEY_NOT_ENCRYPTED', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(file(), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const err = await openRoot();
    expect(err.code).toBe('ERR_KEY_NOT_ENCRYPTED');
    expect(err.message).toBe(`key file ${file()} holds an unencrypted private key: agentca only reads encrypted keys`);
  });

  it.each([
    ['rsa 1024 bits', () => generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey],
    ['rsa 2560 bits', () => generateKeyPairSync('rsa', { modulusLength: 2560 }).privateKey],
    ['ec prime192v1', () => generateKeyPairSync('ec', { namedCurve: 'prime192v1' }).privateKey],
    ['ec secp256k1', () => generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey],
    ['ed448', () => generateKeyPairSync('ed448').privateKey],
    ['rsa-pss 2048 bits', () => generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey],
  ])('a %s key: ERR_KEY_UNSUPPORTED', async (description, make) => {
    writeForeignKey('root', make());
    const err = await openRoot();
    expect(err.code).toBe('ERR_KEY_UNSUPPORTED');
    expect(err.message).toBe(
      `key file ${file()} holds an unsupported key (${description}): agentca signs with ec-p256, ec-p384, ed25519, rsa-2048, rsa-3072, rsa-4096`,
    );
  });

  it('reads a key encrypted by node:crypto defaults (2048 PBKDF2 iterations) too', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    writeForeignKey('root', privateKey);
    expect((await new FileKeyStore({ dir, passphrase: PASSPHRASE }).open('root')).algorithm).toBe('ec-p384');
  });

  it.each([0o644, 0o640, 0o604, 0o660, 0o606].map((m) => [m.toString(8).padStart(4, '0'), m] as const))(
    'a key file with mode %s: ERR_KEY_PERMISSIONS',
    async (shown, mode) => {
      installKey();
      chmodSync(file(), mode);
      const err = await openRoot();
      expect(err.code).toBe('ERR_KEY_PERMISSIONS');
      expect(err.message).toBe(`key file ${file()} is accessible by group or others (mode ${shown}): run chmod 600 ${file()}`);
      chmodSync(file(), 0o600);
      expect((await new FileKeyStore({ dir, passphrase: PASSPHRASE }).open('root')).algorithm).toBe('ec-p256');
    },
  );

  it.skipIf(isRoot)('an unreadable key file: ERR_KEY_UNREADABLE', async () => {
    installKey();
    chmodSync(file(), 0o000);
    const err = await openRoot();
    expect(err.code).toBe('ERR_KEY_UNREADABLE');
    expect(err.message).toBe(`cannot read key file ${file()}: permission denied`);
  });
});

describe('FileKeyStore: the private key stays inside', () => {
  it('is not reachable through properties, getters, JSON or util.inspect', async () => {
    const store = new FileKeyStore({ dir, passphrase: PASSPHRASE });
    const signer = await store.generate('root', 'ec-p256');
    const secret = createPrivateKey({ key: readFileSync(join(dir, 'root.key.pem'), 'utf8'), passphrase: PASSPHRASE });
    const jwk = secret.export({ format: 'jwk' });
    const pkcs8 = secret.export({ type: 'pkcs8', format: 'der' });
    const leaks = [jwk.d!, pkcs8.toString('base64'), pkcs8.toString('hex'), PASSPHRASE, 'PrivateKeyObject', 'kKeyType', 'kHandle'];

    for (const target of [signer, await store.open('root'), store]) {
      const outputs = [
        JSON.stringify(target),
        inspect(target),
        inspect(target, { showHidden: true, depth: Infinity, getters: true, customInspect: false }),
        String(target),
      ];
      for (const out of outputs) for (const leak of leaks) expect(out).not.toContain(leak);

      const values: unknown[] = [];
      for (let o: object | null = target; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
        for (const key of Reflect.ownKeys(o)) {
          const d = Object.getOwnPropertyDescriptor(o, key)!;
          values.push(d.get ? d.get.call(target) : d.value);
        }
      }
      for (const v of values) {
        expect(v?.constructor?.name ?? '').not.toMatch(/^(Private|Public|Secret)?KeyObject$/);
        if (typeof v === 'string') for (const leak of leaks) expect(v).not.toContain(leak);
      }
    }
    expect(Object.keys(signer)).toEqual(['algorithm']);
    expect(JSON.parse(JSON.stringify(signer))).toEqual({ algorithm: 'ec-p256' });
    expect(inspect(signer)).toBe("KeyObjectSigner { algorithm: 'ec-p256' }");
  });

  it('KeyObjectSigner refuses a key that does not match its algorithm', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const mismatch = await caught(() => new KeyObjectSigner('ec-p256', privateKey, publicKey));
    expect(mismatch).toBeInstanceOf(InternalError);
    expect(mismatch.code).toBe('ERR_KEY_ALGORITHM_MISMATCH');
    expect(mismatch.message).toBe('a private ec secp384r1 key cannot sign as ec-p256');
    const notPrivate = await caught(() => new KeyObjectSigner('ec-p384', publicKey, publicKey));
    expect(notPrivate.code).toBe('ERR_KEY_ALGORITHM_MISMATCH');
    expect(notPrivate.message).toBe('a public ec secp384r1 key cannot sign as ec-p384');
    const other = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
    const pair = await caught(() => new KeyObjectSigner('ec-p384', privateKey, other));
    expect(pair).toBeInstanceOf(InternalError);
    expect(pair.code).toBe('ERR_KEY_PAIR_MISMATCH');
    expect(pair.message).toBe('the public key does not match the ec-p384 private key');
    expect(new KeyObjectSigner('ec-p384', privateKey, publicKey).algorithm).toBe('ec-p384');
  });

  it('hands out copies of the public key', async () => {
    const signer = await new FileKeyStore({ dir, passphrase: PASSPHRASE }).generate('root', 'ed25519');
    const first = signer.publicKey;
    first.fill(0);
    expect(signer.publicKey.some((b) => b !== 0)).toBe(true);
  });
});

describe('resolvePassphrase', () => {
  function passphraseFile(content: string | Buffer, mode = 0o600): string {
    const f = join(dir, 'passphrase');
    writeFileSync(f, content, { mode });
    chmodSync(f, mode);
    return f;
  }
  async function refused(sources: Parameters<typeof resolvePassphrase>[0], code: string, message: string): Promise<void> {
    const err = await caught(() => resolvePassphrase(sources));
    expect(err).toBeInstanceOf(InvalidRequest);
    expect(err.code).toBe(code);
    expect(err.message).toBe(message);
    expectNoSecret(err);
  }

  it('reads AGENTCA_PASSPHRASE', () => {
    expect(resolvePassphrase({ env: { AGENTCA_PASSPHRASE: PASSPHRASE } })).toBe(PASSPHRASE);
  });

  it('prefers --passphrase-file over the environment, stripping the trailing newline', () => {
    const f = passphraseFile(`${PASSPHRASE}\n`);
    expect(resolvePassphrase({ env: { AGENTCA_PASSPHRASE: OTHER_PASSPHRASE }, passphraseFile: f })).toBe(PASSPHRASE);
  });

  it.each([
    ['CRLF', `${PASSPHRASE}\r\n`],
    ['several newlines', `${PASSPHRASE}\n\n`],
    ['no newline', PASSPHRASE],
  ])('strips trailing line ends (%s) and nothing else', (_label, content) => {
    expect(resolvePassphrase({ env: {}, passphraseFile: passphraseFile(content) })).toBe(PASSPHRASE);
  });

  it('keeps spaces and inner newlines', () => {
    expect(resolvePassphrase({ env: {}, passphraseFile: passphraseFile('  two\nlines  \n') })).toBe('  two\nlines  ');
  });

  it('requires a passphrase', async () => {
    const message = 'a passphrase is required: set AGENTCA_PASSPHRASE or pass --passphrase-file';
    await refused({ env: {} }, 'ERR_PASSPHRASE_REQUIRED', message);
    await refused({ env: { AGENTCA_PASSPHRASE: '' } }, 'ERR_PASSPHRASE_REQUIRED', message);
  });

  it('refuses a passphrase shorter than 8 characters', async () => {
    const message = 'the passphrase is too short: use at least 8 characters';
    await refused({ env: { AGENTCA_PASSPHRASE: 'hunter2' } }, 'ERR_PASSPHRASE_TOO_SHORT', message);
    await refused({ env: {}, passphraseFile: passphraseFile('hunter2\n') }, 'ERR_PASSPHRASE_TOO_SHORT', message);
    expect(resolvePassphrase({ env: { AGENTCA_PASSPHRASE: 'hunter22' } })).toBe('hunter22');
  });

  it('refuses an empty passphrase file', async () => {
    for (const content of ['', '\n', '\r\n']) {
      const f = passphraseFile(content);
      await refused({ env: { AGENTCA_PASSPHRASE: PASSPHRASE }, passphraseFile: f }, 'ERR_PASSPHRASE_FILE_EMPTY', `passphrase file ${f} is empty`);
    }
  });

  it.each([0o644, 0o640, 0o604, 0o620].map((m) => [m.toString(8).padStart(4, '0'), m] as const))('refuses a passphrase file with mode %s', async (shown, mode) => {
    const f = passphraseFile(`${PASSPHRASE}\n`, mode);
    await refused(
      { env: {}, passphraseFile: f },
      'ERR_PASSPHRASE_FILE_PERMISSIONS',
      `passphrase file ${f} is accessible by group or others (mode ${shown}): run chmod 600 ${f}`,
    );
  });

  it('refuses a missing passphrase file even when the environment has one', async () => {
    const f = join(dir, 'nope');
    await refused({ env: { AGENTCA_PASSPHRASE: PASSPHRASE }, passphraseFile: f }, 'ERR_PASSPHRASE_FILE_MISSING', `passphrase file ${f} not found`);
  });

  it('refuses a directory, an oversized file and invalid UTF-8', async () => {
    const sub = join(dir, 'sub');
    mkdirSync(sub, { mode: 0o700 });
    await refused({ env: {}, passphraseFile: sub }, 'ERR_PASSPHRASE_FILE_UNREADABLE', `cannot read passphrase file ${sub} (EISDIR)`);
    const big = passphraseFile('x'.repeat(4097));
    await refused({ env: {}, passphraseFile: big }, 'ERR_PASSPHRASE_FILE_TOO_LARGE', `passphrase file ${big} is larger than 4096 bytes`);
    const binary = passphraseFile(Buffer.from([0xff, 0xfe, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48]));
    await refused({ env: {}, passphraseFile: binary }, 'ERR_PASSPHRASE_FILE_ENCODING', `passphrase file ${binary} is not valid UTF-8`);
  });

  it('defaults to process.env', () => {
    const saved = process.env.AGENTCA_PASSPHRASE;
    process.env.AGENTCA_PASSPHRASE = PASSPHRASE;
    try {
      expect(resolvePassphrase()).toBe(PASSPHRASE);
    } finally {
      if (saved === undefined) delete process.env.AGENTCA_PASSPHRASE;
      else process.env.AGENTCA_PASSPHRASE = saved;
    }
  });

  it('a passphrase from a file opens keys made with it', async () => {
    const passphrase = resolvePassphrase({ env: {}, passphraseFile: passphraseFile(`${PASSPHRASE}\n`) });
    await new FileKeyStore({ dir: join(dir, 'keys'), passphrase }).generate('root', 'ed25519');
    expect((await new FileKeyStore({ dir: join(dir, 'keys'), passphrase: PASSPHRASE }).open('root')).algorithm).toBe('ed25519');
  });
});
