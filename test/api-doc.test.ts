import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument, renderApiReference } from '@agentca/server';

describe('API reference', () => {
  it('docs/api.md is generated from the current OpenAPI document (run node --import tsx scripts/api-reference.ts)', () => {
    expect(readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8')).toBe(renderApiReference(buildOpenApiDocument()));
  });
});
