import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { paths, readConfig, writeFileAtomic } from '@agentca/node';
import type { CliIo } from '../io.ts';
import { dirOf, withDir, type DirOptions } from '../options.ts';

export function register(program: Command, io: CliIo): void {
  const cmd = program.command('bundle').description('print the trust bundle (root certificates, PEM)').option('--out <file>', 'write it here instead of stdout');
  withDir(cmd).action(async (o: DirOptions & { out?: string }) => {
    const p = paths(dirOf(o, io));
    readConfig(p.config);
    const pem = readFileSync(p.root, 'utf8');
    if (o.out) writeFileAtomic(o.out, pem);
    else io.out(pem);
  });
}
