import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { InvalidRequest } from '@agentca/core';

/** The shortest passphrase agentca accepts for its key files. */
export const MIN_PASSPHRASE_LENGTH = 8;
/** A passphrase file larger than this is a wrong path (a key, a log), not a passphrase. */
const MAX_PASSPHRASE_FILE_BYTES = 4096;

export interface PassphraseSources {
  /** Where to look for `AGENTCA_PASSPHRASE`; defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** The `--passphrase-file` path; when given, it wins over the environment. */
  passphraseFile?: string;
}

/**
 * Finds the key passphrase: the content of `--passphrase-file` (trailing newlines
 * stripped; the file must not be accessible to group or others), else
 * `AGENTCA_PASSPHRASE`. Never from argv. Throws InvalidRequest with a stable code.
 *
 * @example
 * ```ts
 * const passphrase = resolvePassphrase({ passphraseFile: opts.passphraseFile });
 * const keys = new FileKeyStore({ dir: join(caDir, 'keys'), passphrase });
 * ```
 */
export function resolvePassphrase({ env = process.env, passphraseFile }: PassphraseSources = {}): string {
  const passphrase = passphraseFile !== undefined ? readPassphraseFile(passphraseFile) : env.AGENTCA_PASSPHRASE;
  if (!passphrase) {
    throw new InvalidRequest('ERR_PASSPHRASE_REQUIRED', 'a passphrase is required: set AGENTCA_PASSPHRASE or pass --passphrase-file');
  }
  checkPassphraseStrength(passphrase);
  return passphrase;
}

/** Throws InvalidRequest('ERR_PASSPHRASE_TOO_SHORT') for a passphrase under MIN_PASSPHRASE_LENGTH characters. */
export function checkPassphraseStrength(passphrase: string): void {
  if ([...passphrase].length < MIN_PASSPHRASE_LENGTH) {
    throw new InvalidRequest('ERR_PASSPHRASE_TOO_SHORT', `the passphrase is too short: use at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
}

function readPassphraseFile(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InvalidRequest('ERR_PASSPHRASE_FILE_MISSING', `passphrase file ${file} not found`);
    throw new InvalidRequest('ERR_PASSPHRASE_FILE_UNREADABLE', `cannot read passphrase file ${file} (${code ?? 'error'})`, { cause: e });
  }
  try {
    const mode = fstatSync(fd).mode;
    if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
      throw new InvalidRequest(
        'ERR_PASSPHRASE_FILE_PERMISSIONS',
        `passphrase file ${file} is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): run chmod 600 ${file}`,
      );
    }
    // Read up to one byte past the limit: works for pipes (`<(...)`) too, where size is unknown.
    const buf = Buffer.alloc(MAX_PASSPHRASE_FILE_BYTES + 1);
    let length = 0;
    while (length < buf.length) {
      const n = readWithin(fd, buf, length, file);
      if (n === 0) break;
      length += n;
    }
    if (length > MAX_PASSPHRASE_FILE_BYTES) {
      throw new InvalidRequest('ERR_PASSPHRASE_FILE_TOO_LARGE', `passphrase file ${file} is larger than ${MAX_PASSPHRASE_FILE_BYTES} bytes`);
    }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, length));
    } catch {
      throw new InvalidRequest('ERR_PASSPHRASE_FILE_ENCODING', `passphrase file ${file} is not valid UTF-8`);
    } finally {
      buf.fill(0);
    }
    const passphrase = text.replace(/[\r\n]+$/, '');
    if (passphrase === '') throw new InvalidRequest('ERR_PASSPHRASE_FILE_EMPTY', `passphrase file ${file} is empty`);
    return passphrase;
  } finally {
    closeSync(fd);
  }
}

function readWithin(fd: number, buf: Buffer, offset: number, file: string): number {
  try {
    return readSync(fd, buf, offset, buf.length - offset, null);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InvalidRequest('ERR_PASSPHRASE_FILE_UNREADABLE', `cannot read passphrase file ${file} (${code ?? 'error'})`, { cause: e });
  }
}
