// Regenerates docs/api.md from the OpenAPI document the server serves at /openapi.json.
// test/api-doc.test.ts fails when docs/api.md is stale.
import { writeFileSync } from 'node:fs';
import { buildOpenApiDocument, renderApiReference } from '@agentca/server';

writeFileSync(new URL('../docs/api.md', import.meta.url), renderApiReference(buildOpenApiDocument()));
console.log('docs/api.md written');
