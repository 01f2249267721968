/** What a command writes and reads: injected so tests can run the CLI in-process. */
import { readFileSync, statSync } from 'node:fs';
import { InvalidRequest } from '@agentca/core';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  readStdin(): Uint8Array;
}

export const processIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
  readStdin: () => readFileSync(0),
};

/** Reads a user-named input file (or `-` for stdin) with a size cap and a clear error. */
export function readInput(io: CliIo, file: string, what: string, maxBytes = 1024 * 1024): Uint8Array {
  if (file === '-') return io.readStdin();
  try {
    if (statSync(file).size > maxBytes) throw new InvalidRequest('ERR_INPUT_TOO_LARGE', `${what} ${file} is larger than ${maxBytes} bytes`);
    return new Uint8Array(readFileSync(file));
  } catch (e) {
    if (e instanceof InvalidRequest) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InvalidRequest('ERR_INPUT_UNREADABLE', code === 'ENOENT' ? `${what} ${file} not found` : `cannot read ${what} ${file} (${code ?? 'error'})`);
  }
}

export function json(io: CliIo, doc: unknown): void {
  io.out(JSON.stringify(doc, null, 2) + '\n');
}
