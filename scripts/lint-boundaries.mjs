// Dependency rules that keep the architecture honest (STYLE.md "Boundaries"):
// - core imports no node: built-in but what WebCrypto-era runtimes share, no SQL driver, no HTTP;
// - only core/src/x509/ touches @peculiar/x509, pkijs and asn1js;
// - packages import each other only through their package name (no reaching into ../other/src);
// - the client SDK imports no agentca package at all;
// - in examples/, the workload side (an agent, a tool service) uses @agentca/client only, as a
//   team copying it would: agent.ts, tool.ts, client.ts, upstream.ts import no other agentca package;
// - only store-postgres imports pg, and it depends on @agentca/core alone.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const problems = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.(ts|mjs|js)$/.test(name)) check(p);
  }
}
const importRe = /(?:^|\n)\s*(?:import|export)[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g;
function check(file) {
  const rel = relative(root, file);
  const src = readFileSync(file, 'utf8');
  for (const m of src.matchAll(importRe)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (rel.startsWith('packages/core/src/')) {
      if (spec.startsWith('node:') || /^(fs|path|http|https|net|better-sqlite3|pg|commander)$/.test(spec))
        problems.push(`${rel}: core must not import ${spec}`);
      if (/^(@peculiar\/x509|pkijs|asn1js)$/.test(spec) && !rel.startsWith('packages/core/src/x509/'))
        problems.push(`${rel}: only core/src/x509/ may import ${spec}`);
    } else if (/^(@peculiar\/x509|pkijs|asn1js)$/.test(spec) && rel.startsWith('packages/') && !rel.includes('/test/')) {
      problems.push(`${rel}: ${spec} is reached through @agentca/core only`);
    }
    if (rel.startsWith('packages/client/src/') && (spec.startsWith('@agentca/') || spec.startsWith('../../')))
      problems.push(`${rel}: the client SDK must not depend on any agentca package (a workload never pulls in the CA)`);
    if (/^examples\/[^/]+\/(agent|tool|client|upstream)\.ts$/.test(rel) && (spec.startsWith('@agentca/') ? spec !== '@agentca/client' : /(^|\/)packages\//.test(spec)))
      problems.push(`${rel}: the workload side of an example uses @agentca/client only, not ${spec}`);
    // The PostgreSQL driver stays in its store package; everything else reaches a store through the ports.
    if (spec === 'pg' && rel.startsWith('packages/') && !rel.startsWith('packages/store-postgres/'))
      problems.push(`${rel}: only @agentca/store-postgres may import pg`);
    if (rel.startsWith('packages/store-postgres/src/') && spec.startsWith('@agentca/') && spec !== '@agentca/core')
      problems.push(`${rel}: the PostgreSQL store depends on @agentca/core only, not ${spec}`);
    if (rel.startsWith('packages/') && /^(\.\.\/)+(packages\/)?[a-z-]+\/src\//.test(spec) && !spec.startsWith('../src/'))
      problems.push(`${rel}: import ${spec} reaches into another package; use its package name`);
  }
}
walk(join(root, 'packages'));
if (existsSync(join(root, 'examples'))) walk(join(root, 'examples'));
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('boundaries ok');
