import type { Command } from 'commander';
import { caDirFrom, resolvePassphrase } from '@agentca/node';
import type { CliIo } from './io.ts';

export interface DirOptions {
  dir?: string;
}
export interface KeyOptions extends DirOptions {
  passphraseFile?: string;
}

export const withDir = (c: Command): Command => c.option('--dir <dir>', 'CA directory (default: $AGENTCA_DIR or ./.agentca)');
export const withPassphrase = (c: Command): Command =>
  c.option('--passphrase-file <file>', 'file holding the CA key passphrase (default: $AGENTCA_PASSPHRASE)');
export const withJson = (c: Command): Command => c.option('--json', 'print one JSON document on stdout');

export const dirOf = (o: DirOptions, io: CliIo): string => caDirFrom(o.dir, io.env);
export const passphraseOf = (o: KeyOptions, io: CliIo): string =>
  resolvePassphrase({ env: io.env, ...(o.passphraseFile !== undefined ? { passphraseFile: o.passphraseFile } : {}) });
