import type { Command } from 'commander';
import { describe } from '@agentca/core/inspect';
import { json, readInput, type CliIo } from '../io.ts';
import { withJson } from '../options.ts';

export function register(program: Command, io: CliIo): void {
  const cmd = program.command('inspect').description('show a certificate, CSR or CRL (PEM or DER) in human-readable form').argument('<file>', 'file to read (- for stdin)');
  withJson(cmd).action(async (file: string, o: { json?: boolean }) => {
    const items = describe(readInput(io, file, 'file', 64 * 1024 * 1024));
    if (o.json) return json(io, items.map((d) => ({ kind: d.kind, fields: Object.fromEntries(groupFields(d.fields)) })));
    items.forEach((d, i) => {
      if (i) io.out('\n');
      io.out(`${d.kind}\n`);
      const w = Math.max(...d.fields.map(([k]) => k.length));
      for (const [k, v] of d.fields) io.out(`  ${k.padEnd(w)}  ${v}\n`);
    });
  });
}

function groupFields(fields: [string, string][]): [string, string | string[]][] {
  const m = new Map<string, string[]>();
  for (const [k, v] of fields) m.set(k, [...(m.get(k) ?? []), v]);
  return [...m].map(([k, v]) => [k, v.length === 1 ? v[0]! : v]);
}
