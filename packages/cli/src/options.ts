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

export interface StoreOptions {
  store?: string;
}
/** `--store`: where the CA's state lives, when not (or not only) as agentca.json says. */
export const withStore = (c: Command): Command =>
  c.option('--store <url>', 'the state: sqlite:<file> or postgresql://user@host:5432/database, shared by replicas (default: $AGENTCA_STORE, else the store in agentca.json)');
export const storeOf = (o: StoreOptions, io: CliIo): string | undefined => o.store ?? (io.env.AGENTCA_STORE || undefined);

export const dirOf = (o: DirOptions, io: CliIo): string => caDirFrom(o.dir, io.env);
export const passphraseOf = (o: KeyOptions, io: CliIo): string =>
  resolvePassphrase({ env: io.env, ...(o.passphraseFile !== undefined ? { passphraseFile: o.passphraseFile } : {}) });
