/**
 * SPIFFE ID parsing by the rules in identity/spiffe-id.ts (SPIFFE ID standard §2): every rule
 * of the module doc has a row here, including Unicode look-alikes that must be refused, never
 * normalised.
 */
import { describe, expect, it } from 'vitest';
import {
  InvalidRequest,
  MAX_SPIFFE_ID_BYTES,
  PolicyDenied,
  parseSpiffeId,
  parseSpiffeIdIn,
  parseTrustDomain,
  pathMatches,
} from '../src/index.ts';
import { caughtSync, expectAgentError } from './support/errors.ts';

const PREFIX = 'spiffe://example.org/';
/** An ID of exactly `bytes` UTF-8 bytes (ASCII path). */
const idOfBytes = (bytes: number): string => PREFIX + 'a'.repeat(bytes - PREFIX.length);

describe('parseSpiffeId: valid IDs', () => {
  it.each([
    ['spiffe://example.org/agent/invoice-bot', 'example.org', '/agent/invoice-bot'],
    ['spiffe://example.org/a', 'example.org', '/a'],
    ['spiffe://a-b_c.d0/A.b-c_D/e', 'a-b_c.d0', '/A.b-c_D/e'],
    ['spiffe://1.2.3.4/ns/prod/sa/x', '1.2.3.4', '/ns/prod/sa/x'],
    ['spiffe://example.org/.../..a/a..', 'example.org', '/.../..a/a..'],
    ['spiffe://example.org/UPPER/Case', 'example.org', '/UPPER/Case'],
    ['spiffe://x/' + 'a/'.repeat(100) + 'b', 'x', '/' + 'a/'.repeat(100) + 'b'],
    [idOfBytes(MAX_SPIFFE_ID_BYTES), 'example.org', '/' + 'a'.repeat(MAX_SPIFFE_ID_BYTES - PREFIX.length)],
  ])('%s', (id, trustDomain, path) => {
    const parsed = parseSpiffeId(id);
    expect(parsed.trustDomain).toBe(trustDomain);
    expect(parsed.path).toBe(path);
    expect(parsed.toString()).toBe(id);
    expect(String(parsed)).toBe(id);
  });

  it('accepts the bare trust-domain ID only when no path is required', () => {
    const td = parseSpiffeId('spiffe://example.org', { requirePath: false });
    expect(td).toMatchObject({ trustDomain: 'example.org', path: '' });
    expect(td.toString()).toBe('spiffe://example.org');
  });
});

describe('parseSpiffeId: invalid IDs', () => {
  const rows: [string, string, string][] = [
    // [label, id, reason in the message]
    ['empty', '', 'it is empty'],
    ['upper-case scheme', 'SPIFFE://example.org/a', "the scheme must be 'spiffe://' (lower case)"],
    ['mixed-case scheme', 'Spiffe://example.org/a', "the scheme must be 'spiffe://' (lower case)"],
    ['other scheme', 'https://example.org/a', "the scheme must be 'spiffe://' (lower case)"],
    ['one slash', 'spiffe:/example.org/a', "the scheme must be 'spiffe://' (lower case)"],
    ['no scheme', 'example.org/a', "the scheme must be 'spiffe://' (lower case)"],
    ['leading space', ' spiffe://example.org/a', "the scheme must be 'spiffe://' (lower case)"],
    ['empty trust domain', 'spiffe:///a', 'the trust domain is empty'],
    ['nothing after the scheme', 'spiffe://', 'the trust domain is empty'],
    ['upper-case trust domain', 'spiffe://Example.org/a', "the trust domain may only contain lower-case letters, digits, '.', '-' and '_'"],
    ['trust domain with !', 'spiffe://ex!ample.org/a', "the trust domain may only contain lower-case letters, digits, '.', '-' and '_'"],
    ['trust domain with +', 'spiffe://ex+ample.org/a', "the trust domain may only contain lower-case letters, digits, '.', '-' and '_'"],
    ['trust domain with [ ]', 'spiffe://[v1]/a', "the trust domain may only contain lower-case letters, digits, '.', '-' and '_'"],
    ['trust domain with backslash', 'spiffe://example.org\\evil/a', "the trust domain may only contain lower-case letters, digits, '.', '-' and '_'"],
    ['userinfo', 'spiffe://user@example.org/a', 'userinfo is not allowed'],
    ['userinfo with password', 'spiffe://user:pw@example.org/a', 'userinfo is not allowed'],
    ['port', 'spiffe://example.org:8443/a', 'a port is not allowed'],
    ['empty port', 'spiffe://example.org:/a', 'a port is not allowed'],
    ['percent-encoding in the path', 'spiffe://example.org/a%2Fb', 'percent-encoding is not allowed'],
    ['percent-encoding in the trust domain', 'spiffe://example%2eorg/a', 'percent-encoding is not allowed'],
    ['query', 'spiffe://example.org/a?x=1', 'a query is not allowed'],
    ['empty query', 'spiffe://example.org/a?', 'a query is not allowed'],
    ['fragment', 'spiffe://example.org/a#frag', 'a fragment is not allowed'],
    ['fragment on the trust domain', 'spiffe://example.org#a', 'a fragment is not allowed'],
    ['no path', 'spiffe://example.org', 'a workload ID needs a path'],
    ['path of one slash', 'spiffe://example.org/', "a trailing '/' is not allowed"],
    ['trailing slash', 'spiffe://example.org/a/b/', "a trailing '/' is not allowed"],
    ['leading empty segment', 'spiffe://example.org//a', 'empty path segments are not allowed'],
    ['inner empty segment', 'spiffe://example.org/a//b', 'empty path segments are not allowed'],
    ['dot segment', 'spiffe://example.org/./a', "'.' and '..' path segments are not allowed"],
    ['dot-dot segment', 'spiffe://example.org/a/../b', "'.' and '..' path segments are not allowed"],
    ['final dot-dot segment', 'spiffe://example.org/a/..', "'.' and '..' path segments are not allowed"],
    ['path with !', 'spiffe://example.org/a!b', "path segments may only contain letters, digits, '.', '-' and '_'"],
    ['path with :', 'spiffe://example.org/a:b', "path segments may only contain letters, digits, '.', '-' and '_'"],
    ['path with @', 'spiffe://example.org/a@b', "path segments may only contain letters, digits, '.', '-' and '_'"],
    ['path with backslash', 'spiffe://example.org/a\\b', "path segments may only contain letters, digits, '.', '-' and '_'"],
    ['path with *', 'spiffe://example.org/a/*', "path segments may only contain letters, digits, '.', '-' and '_'"],
    ['space in the path', 'spiffe://example.org/a b', 'it contains a character outside printable ASCII'],
    ['tab in the path', 'spiffe://example.org/a\tb', 'it contains a character outside printable ASCII'],
    ['newline at the end', 'spiffe://example.org/a\n', 'it contains a character outside printable ASCII'],
    ['NUL in the path', 'spiffe://example.org/a\u0000', 'it contains a character outside printable ASCII'],
    ['DEL in the path', 'spiffe://example.org/a\u007f', 'it contains a character outside printable ASCII'],
    ['Cyrillic а (U+0430) in the trust domain', 'spiffe://ex\u0430mple.org/a', 'it contains a character outside printable ASCII'],
    ['Cyrillic а (U+0430) in the path', 'spiffe://example.org/\u0430gent', 'it contains a character outside printable ASCII'],
    ['fullwidth solidus (U+FF0F) in the path', 'spiffe://example.org/a\uff0fb', 'it contains a character outside printable ASCII'],
    ['fullwidth solidus after the trust domain', 'spiffe://example.org\uff0fa', 'it contains a character outside printable ASCII'],
    ['zero-width space (U+200B) in the path', 'spiffe://example.org/a\u200bb', 'it contains a character outside printable ASCII'],
    ['zero-width space (U+200B) in the trust domain', 'spiffe://example\u200b.org/a', 'it contains a character outside printable ASCII'],
    ['Latin-1 é in the path', 'spiffe://example.org/caf\u00e9', 'it contains a character outside printable ASCII'],
    ['one byte too long', idOfBytes(MAX_SPIFFE_ID_BYTES + 1), 'it is longer than 2048 bytes'],
    // 1014 × 'é' is 1014 characters but 2028 bytes: the limit counts UTF-8 bytes
    ['too long in bytes, not in characters', PREFIX + '\u00e9'.repeat(1014), 'it is longer than 2048 bytes'],
  ];

  it.each(rows)('%s', (_label, id, reason) => {
    const e = caughtSync(() => parseSpiffeId(id));
    const shown = JSON.stringify(id.length > 120 ? id.slice(0, 120) + '…' : id);
    expectAgentError(e, InvalidRequest, 'ERR_SPIFFE_ID_INVALID', `${shown} is not a valid SPIFFE ID: ${reason}`);
  });

  it('bounds the message of a huge ID', () => {
    const id = PREFIX + 'a'.repeat(100_000);
    const e = caughtSync(() => parseSpiffeId(id));
    expectAgentError(e, InvalidRequest, 'ERR_SPIFFE_ID_INVALID', /is not a valid SPIFFE ID: it is longer than 2048 bytes$/);
    expect(e.message.length).toBeLessThan(250);
  });

  it('refuses a value that is not a string', () => {
    const e = caughtSync(() => parseSpiffeId(undefined as unknown as string));
    expectAgentError(e, InvalidRequest, 'ERR_SPIFFE_ID_INVALID', '"" is not a valid SPIFFE ID: it is empty');
    const n = caughtSync(() => parseSpiffeId(42 as unknown as string));
    expectAgentError(n, InvalidRequest, 'ERR_SPIFFE_ID_INVALID', '"42" is not a valid SPIFFE ID: it is empty');
  });
});

describe('parseSpiffeIdIn', () => {
  it('returns the ID when it is in the trust domain', () => {
    expect(parseSpiffeIdIn('spiffe://example.org/agent/a', 'example.org').path).toBe('/agent/a');
  });

  it.each([
    'spiffe://other.org/agent/a',
    'spiffe://sub.example.org/agent/a',
    'spiffe://example.org.evil.com/agent/a',
    'spiffe://example.or/agent/a',
  ])('refuses %s outside example.org with PolicyDenied', (id) => {
    const e = caughtSync(() => parseSpiffeIdIn(id, 'example.org'));
    expectAgentError(e, PolicyDenied, 'ERR_SPIFFE_ID_TRUST_DOMAIN', `${id} is outside the trust domain example.org`);
  });

  it('reports a malformed ID as invalid before comparing trust domains', () => {
    const e = caughtSync(() => parseSpiffeIdIn('spiffe://other.org/a/', 'example.org'));
    expectAgentError(e, InvalidRequest, 'ERR_SPIFFE_ID_INVALID', `"spiffe://other.org/a/" is not a valid SPIFFE ID: a trailing '/' is not allowed`);
  });

  it('refuses the bare trust-domain ID (a workload needs a path)', () => {
    const e = caughtSync(() => parseSpiffeIdIn('spiffe://example.org', 'example.org'));
    expectAgentError(e, InvalidRequest, 'ERR_SPIFFE_ID_INVALID', '"spiffe://example.org" is not a valid SPIFFE ID: a workload ID needs a path');
  });
});

describe('parseTrustDomain', () => {
  it('accepts a valid trust domain', () => {
    expect(parseTrustDomain('example.org')).toBe('example.org');
    expect(parseTrustDomain('a'.repeat(255))).toBe('a'.repeat(255));
  });

  it.each([
    ['', 'the trust domain is empty'],
    ['a'.repeat(256), 'the trust domain is longer than 255 characters'],
    ['Example.org', `"Example.org" is not a valid trust domain: use lower-case letters, digits, '.', '-' and '_'`],
    ['ex\u0430mple.org', `"ex\u0430mple.org" is not a valid trust domain: use lower-case letters, digits, '.', '-' and '_'`],
    ['example.org/a', `"example.org/a" is not a valid trust domain: use lower-case letters, digits, '.', '-' and '_'`],
  ])('refuses %j', (td, message) => {
    expectAgentError(caughtSync(() => parseTrustDomain(td)), InvalidRequest, 'ERR_TRUST_DOMAIN_INVALID', message);
  });
});

describe('pathMatches', () => {
  it.each([
    // pattern, path, matches
    ['/agent/a', '/agent/a', true],
    ['/agent/a', '/agent/b', false],
    ['/agent/a', '/agent/a/b', false],
    ['/agent/a', '/agent', false],
    ['/agent/*', '/agent/a', true],
    ['/agent/*', '/agent', false],
    ['/agent/*', '/agent/a/b', false],
    ['/agent/*', '/other/a', false],
    ['/*/a', '/x/a', true],
    ['/*/a', '/x/b', false],
    ['/*', '/a', true],
    ['/*', '', false],
    ['/*/*', '/a/b', true],
    ['/*/*', '/a', false],
    ['/**', '/a', true],
    ['/**', '/a/b/c', true],
    ['/**', '', false],
    ['/agent/**', '/agent/a', true],
    ['/agent/**', '/agent/a/b/c', true],
    ['/agent/**', '/agent', false],
    ['/agent/**', '/agents/a', false],
    ['/admin/**', '/admin', false],
    ['/admin/**', '/administrator/x', false],
    ['/*/**', '/a/b', true],
    ['/*/**', '/a', false],
    // `**` only means "the rest" when it is the final segment
    ['/**/a', '/x/a', false],
    ['/**/a', '/x/y/a', false],
    // matching is case-sensitive and literal
    ['/Agent/a', '/agent/a', false],
    ['/agent/a.b', '/agent/aXb', false],
  ])('%s against %s → %s', (pattern, path, want) => {
    expect(pathMatches(pattern, path)).toBe(want);
  });
});
