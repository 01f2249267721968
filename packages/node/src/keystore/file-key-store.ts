import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { access, link, mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { inspect } from 'node:util';
import {
  Conflict,
  InvalidRequest,
  isKeyAlgorithm,
  KEY_ALGORITHMS,
  Unavailable,
  type KeyAlgorithm,
  type KeyStore,
  type Signer,
} from '@agentca/core';
import { checkPassphraseStrength } from '../passphrase.ts';
import { encodeEncryptedPem, encryptPrivateKeyInfo, readEncryptedPem } from './encrypted-pkcs8.ts';
import { KeyObjectSigner } from './file-signer.ts';
import { describeKey, generateKeyObjects, keyAlgorithmOf } from './key-algorithms.ts';

const KEY_NAME = /^[a-z0-9-]{1,64}$/;
/** An RSA-4096 key file is about 3.4 KiB; anything far larger is not one of ours. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

export interface FileKeyStoreOptions {
  /** Directory holding `<name>.key.pem` files; created (0700) on first generate. */
  dir: string;
  /** Encrypts and decrypts every key file; at least 8 characters. */
  passphrase: string;
}

/**
 * A KeyStore of passphrase-encrypted PKCS#8 files: `<dir>/<name>.key.pem`, PEM
 * `ENCRYPTED PRIVATE KEY` (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC), mode 0600. OpenSSL reads
 * the files (`openssl pkey -in root.key.pem -passin env:AGENTCA_PASSPHRASE`); the store
 * itself only ever hands out a {@link Signer}.
 *
 * Errors: InvalidRequest `ERR_KEY_NAME`, `ERR_KEY_ALGORITHM_UNSUPPORTED`,
 * `ERR_PASSPHRASE_REQUIRED`, `ERR_PASSPHRASE_TOO_SHORT`; Conflict `ERR_KEY_EXISTS`;
 * Unavailable `ERR_KEY_MISSING`, `ERR_KEY_PASSPHRASE`, `ERR_KEY_CORRUPT`,
 * `ERR_KEY_NOT_ENCRYPTED`, `ERR_KEY_UNSUPPORTED`, `ERR_KEY_PERMISSIONS`,
 * `ERR_KEY_UNREADABLE`, `ERR_KEY_WRITE`.
 *
 * @example
 * ```ts
 * const keys = new FileKeyStore({ dir: '.agentca/keys', passphrase: resolvePassphrase() });
 * const root = await keys.generate('root', 'ec-p384');
 * const signature = await (await keys.open('root')).sign(tbsCertificate);
 * ```
 */
export class FileKeyStore implements KeyStore {
  readonly dir: string;
  readonly #passphrase: string;

  constructor({ dir, passphrase }: FileKeyStoreOptions) {
    if (typeof dir !== 'string' || dir === '') throw new InvalidRequest('ERR_KEY_DIR', 'the key directory must be a non-empty path');
    if (typeof passphrase !== 'string' || passphrase === '') {
      throw new InvalidRequest('ERR_PASSPHRASE_REQUIRED', 'a passphrase is required to encrypt and decrypt key files');
    }
    checkPassphraseStrength(passphrase);
    this.dir = dir;
    this.#passphrase = passphrase;
  }

  /** Path of the file that holds key `name`. */
  pathOf(name: string): string {
    checkKeyName(name);
    return join(this.dir, `${name}.key.pem`);
  }

  async generate(name: string, algorithm: KeyAlgorithm): Promise<Signer> {
    const file = this.pathOf(name);
    if (typeof algorithm !== 'string' || !isKeyAlgorithm(algorithm)) {
      throw new InvalidRequest(
        'ERR_KEY_ALGORITHM_UNSUPPORTED',
        `unsupported key algorithm ${JSON.stringify(String(algorithm)).slice(0, 40)}: use one of ${KEY_ALGORITHMS.join(', ')}`,
      );
    }
    // Fail before spending seconds on an RSA key; the link() below is the real guard.
    if (await exists(file)) throw keyExists(file);
    const { privateKey, publicKey } = await generateKeyObjects(algorithm);
    const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
    let pem: string;
    try {
      pem = encodeEncryptedPem(await encryptPrivateKeyInfo(pkcs8, this.#passphrase));
    } finally {
      pkcs8.fill(0);
    }
    await writeNewFile(file, pem);
    return new KeyObjectSigner(algorithm, privateKey, publicKey);
  }

  async open(name: string): Promise<Signer> {
    const file = this.pathOf(name);
    const text = await readKeyFile(file);
    const pem = readEncryptedPem(text);
    if (pem.kind === 'unencrypted') {
      throw new Unavailable('ERR_KEY_NOT_ENCRYPTED', `key file ${file} holds an unencrypted private key: agentca only reads encrypted keys`);
    }
    if (pem.kind === 'malformed') {
      throw new Unavailable('ERR_KEY_CORRUPT', `key file ${file} is not an encrypted private key (${pem.reason})`);
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: pem.der, format: 'der', type: 'pkcs8', passphrase: this.#passphrase });
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_OSSL_EVP_UNSUPPORTED') {
        throw new Unavailable('ERR_KEY_CORRUPT', `key file ${file} is encrypted with an unsupported scheme`);
      }
      // The container is intact (checked above), so a failure here is the passphrase: a
      // bad padding, or (about 1 in 256 wrong passphrases) a plaintext that is not PKCS#8.
      throw new Unavailable('ERR_KEY_PASSPHRASE', `cannot decrypt key file ${file}: wrong passphrase?`);
    }
    const algorithm = keyAlgorithmOf(privateKey);
    if (!algorithm) {
      throw new Unavailable(
        'ERR_KEY_UNSUPPORTED',
        `key file ${file} holds an unsupported key (${describeKey(privateKey)}): agentca signs with ${KEY_ALGORITHMS.join(', ')}`,
      );
    }
    return new KeyObjectSigner(algorithm, privateKey, createPublicKey(privateKey));
  }

  [inspect.custom](): string {
    return `FileKeyStore { dir: ${JSON.stringify(this.dir)} }`;
  }
}

function checkKeyName(name: string): void {
  if (typeof name !== 'string' || !KEY_NAME.test(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 64)) : typeof name;
    throw new InvalidRequest('ERR_KEY_NAME', `invalid key name ${shown}: use 1 to 64 characters from a-z, 0-9 and -`);
  }
}

function keyExists(file: string): Conflict {
  return new Conflict('ERR_KEY_EXISTS', `key file ${file} already exists: refusing to overwrite it`);
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

async function readKeyFile(file: string): Promise<string> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (e) {
    throw fsReadError(e, file);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Unavailable('ERR_KEY_CORRUPT', `key file ${file} is not a regular file`);
    // Checked on the open descriptor, so a chmod between check and read changes nothing.
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
      throw new Unavailable('ERR_KEY_PERMISSIONS', `key file ${file} is accessible by group or others (mode ${mode}): run chmod 600 ${file}`);
    }
    if (stat.size > MAX_KEY_FILE_BYTES) throw new Unavailable('ERR_KEY_CORRUPT', `key file ${file} is too large to be a key`);
    return await handle.readFile({ encoding: 'latin1' });
  } catch (e) {
    if (e instanceof Unavailable) throw e;
    throw fsReadError(e, file);
  } finally {
    await handle.close();
  }
}

function fsReadError(e: unknown, file: string): Unavailable {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new Unavailable('ERR_KEY_MISSING', `key file ${file} not found`);
  if (code === 'EACCES' || code === 'EPERM') return new Unavailable('ERR_KEY_UNREADABLE', `cannot read key file ${file}: permission denied`);
  return new Unavailable('ERR_KEY_UNREADABLE', `cannot read key file ${file} (${code ?? 'error'})`, { cause: e });
}

/**
 * Writes `data` to `file`, which must not exist: a 0600 temp file in the same directory,
 * fsync, then link(2) to the final name — atomic, and unlike rename(2) it fails with
 * EEXIST instead of replacing a key that appeared meanwhile — then fsync the directory.
 */
async function writeNewFile(file: string, data: string): Promise<void> {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${randomBytes(8).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await linkNoReplace(tmp, file);
    await syncDir(dir);
  } catch (e) {
    if (e instanceof Conflict) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new Unavailable('ERR_KEY_WRITE', `cannot write key file ${file} (${code ?? 'error'})`, { cause: e });
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

async function linkNoReplace(tmp: string, file: string): Promise<void> {
  try {
    await link(tmp, file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw keyExists(file);
    // Filesystems without hard links (some FUSE, SMB, FAT mounts): rename after a check.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
    if (await exists(file)) throw keyExists(file);
    await rename(tmp, file);
  }
}

async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
