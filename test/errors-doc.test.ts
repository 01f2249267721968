import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM script without types
import { collectCodes } from '../scripts/errors-doc.mjs';

describe('error catalogue', () => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const codes = collectCodes() as Map<string, unknown>;

  it('finds the codes in the source', () => {
    expect(codes.size).toBeGreaterThan(50);
    expect(codes.has('ERR_CSR_SIGNATURE')).toBe(true);
  });

  it('documents every code the source can raise (run node scripts/errors-doc.mjs)', () => {
    const missing = [...codes.keys()].filter((c) => !doc.includes(`\`${c}\``));
    expect(missing).toEqual([]);
  });

  it('documents no code the source no longer raises', () => {
    const documented = [...doc.matchAll(/^\| `(ERR_[A-Z0-9_]+)`/gm)].map((m) => m[1]!);
    expect(documented.filter((c) => !codes.has(c))).toEqual([]);
  });
});
