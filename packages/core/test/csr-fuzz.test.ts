/**
 * Property test for the CSR parser, the first thing network input reaches: whatever the bytes,
 * `parseCsr` (and `verifyCsr` after a successful parse) either succeeds or throws InvalidRequest
 * or PolicyDenied, never a TypeError, RangeError or any other error, and never hangs.
 *
 * Replay: the PRNG seed is printed on failure (CSR_FUZZ_SEED=<n> re-runs the same mutation
 * sequence); the corpus keys are fresh each run, so the failing input itself is written to a
 * file whose path the failure message names.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentCAError, InvalidRequest, PolicyDenied, concatBytes, parseCsr, toHex, toPem, verifyCsr, webCryptoBackend } from '../src/index.ts';
import { TAG, children, readElement, tlv, type DerElement } from '../src/x509/der.ts';
import { genKey, makeCsr, tempDir } from './support/openssl.ts';
import { Prng, seedFrom } from './support/prng.ts';

const TOTAL_MUTATIONS = 20_000;
const KEY_KINDS = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048', 'rsa-4096'] as const;
const SEED = seedFrom('CSR_FUZZ_SEED');
const backend = webCryptoBackend();

const dir = tempDir('csr-fuzz');
/** Valid CSRs (DER): one plain and one with a SAN and CA:TRUE per key type. */
const corpus: Uint8Array[] = [];

beforeAll(() => {
  for (const kind of KEY_KINDS) {
    const key = genKey(dir.path, kind);
    corpus.push(makeCsr(dir.path, key).der);
    corpus.push(
      makeCsr(dir.path, key, {
        subject: '/O=example/CN=fuzz',
        addext: ['subjectAltName=URI:spiffe://example.org/agent/a,DNS:a.example.org,IP:10.0.0.1,IP:fd00::1,email:x@example.org', 'basicConstraints=critical,CA:TRUE'],
      }).der,
    );
  }
});
afterAll(() => dir.remove());

// ------------------------------------------------------------------ outcome check

type Outcome = { ok: true } | { ok: false; error: unknown };

/** The property: success, or an AgentCAError of category InvalidRequest / PolicyDenied. */
function acceptable(o: Outcome): boolean {
  if (o.ok) return true;
  const e = o.error;
  return (
    e instanceof AgentCAError &&
    (e instanceof InvalidRequest || e instanceof PolicyDenied) &&
    /^ERR_[A-Z0-9_]+$/.test(e.code) &&
    typeof e.message === 'string' &&
    e.message.length > 0
  );
}

interface Failure {
  iteration: number;
  mutation: string;
  stage: 'parse' | 'verify';
  error: unknown;
  input: Uint8Array | string;
}

async function check(input: Uint8Array | string): Promise<{ stage: 'parse' | 'verify'; outcome: Outcome }> {
  let csr;
  try {
    csr = parseCsr(input);
  } catch (error) {
    return { stage: 'parse', outcome: { ok: false, error } };
  }
  try {
    await verifyCsr(backend, csr);
    return { stage: 'verify', outcome: { ok: true } };
  } catch (error) {
    return { stage: 'verify', outcome: { ok: false, error } };
  }
}

function report(f: Failure): string {
  const bytes = typeof f.input === 'string' ? new TextEncoder().encode(f.input) : f.input;
  const file = join(tmpdir(), `agentca-csr-fuzz-failure-${SEED}-${f.iteration}.${typeof f.input === 'string' ? 'pem' : 'der'}`);
  writeFileSync(file, bytes);
  const err = f.error as Error;
  return [
    `CSR fuzz failure, replay with CSR_FUZZ_SEED=${SEED} (iteration ${f.iteration}, mutation ${f.mutation}, stage ${f.stage})`,
    `error: ${err?.constructor?.name}: ${err?.message}`,
    `input (${bytes.length} bytes) saved to ${file}; first bytes ${toHex(bytes.subarray(0, 256))}`,
    err?.stack ?? '',
  ].join('\n');
}

// ------------------------------------------------------------------ DER tree (for structure-aware mutations)

interface Node {
  tag: number;
  /** Children of a constructed element, or of an OCTET/BIT STRING that wraps DER. */
  kids?: Node[];
  /** The BIT STRING's unused-bits byte, when it wraps DER. */
  prefix?: Uint8Array;
  content?: Uint8Array;
  /** A whole pre-encoded element (deep nesting is spliced in as bytes, never walked). */
  raw?: Uint8Array;
}

function parseList(buf: Uint8Array, start: number, end: number): Node[] {
  const out: Node[] = [];
  for (let p = start; p < end; ) {
    const el = readElement(buf, p, end);
    out.push(toNode(buf, el));
    p = el.end;
  }
  return out;
}

function toNode(buf: Uint8Array, el: DerElement): Node {
  if (el.tag & 0x20) return { tag: el.tag, kids: children(buf, el).map((k) => toNode(buf, k)) };
  const content = buf.slice(el.contentStart, el.end);
  // Extension values and RSA keys are DER inside OCTET/BIT STRINGs: descend when they parse.
  if ((el.tag === TAG.OCTET_STRING || el.tag === TAG.BIT_STRING) && content.length > 2) {
    const skip = el.tag === TAG.BIT_STRING ? 1 : 0;
    if (skip === 0 || content[0] === 0) {
      try {
        const kids = parseList(content, skip, content.length);
        if (kids.length > 0 && kids.every((k) => k.tag === TAG.SEQUENCE)) return { tag: el.tag, kids, prefix: content.slice(0, skip) };
      } catch {
        /* not DER inside: keep the bytes */
      }
    }
  }
  return { tag: el.tag, content };
}

function encode(n: Node): Uint8Array {
  if (n.raw) return n.raw;
  if (n.kids) return tlv(n.tag, concatBytes([n.prefix ?? new Uint8Array(0), ...n.kids.map(encode)]));
  return tlv(n.tag, n.content ?? new Uint8Array(0));
}

function clone(n: Node): Node {
  return {
    tag: n.tag,
    ...(n.kids ? { kids: n.kids.map(clone) } : {}),
    ...(n.prefix ? { prefix: n.prefix } : {}),
    ...(n.content ? { content: n.content.slice() } : {}),
    ...(n.raw ? { raw: n.raw } : {}),
  };
}

interface Slot {
  node: Node;
  parent: Node | null;
  index: number;
}

function slots(root: Node): Slot[] {
  const out: Slot[] = [{ node: root, parent: null, index: 0 }];
  for (let i = 0; i < out.length; i++) {
    const n = out[i]!.node;
    n.kids?.forEach((k, index) => out.push({ node: k, parent: n, index }));
  }
  return out;
}

/** `depth` nested SEQUENCEs around `inner`, built inside out with definite lengths. */
function nested(depth: number, inner: Uint8Array = new Uint8Array(0)): Uint8Array {
  let b = inner;
  for (let i = 0; i < depth; i++) b = tlv(TAG.SEQUENCE, b);
  return b;
}

/** `depth` indefinite-length SEQUENCEs (BER, never DER). */
function nestedIndefinite(depth: number): Uint8Array {
  const out = new Uint8Array(depth * 4);
  for (let i = 0; i < depth; i++) out.set([0x30, 0x80], i * 2);
  return out; // the end-of-contents octets are the zeros already there
}

const INTERESTING_TAGS = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x1f, 0x30, 0x31, 0x80, 0x82, 0x86, 0x87, 0xa0, 0xa3, 0xbf, 0xff];
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0xff, 0x30, 0x06, 0x02];

function treeMutation(rng: Prng, der: Uint8Array): { name: string; out: Uint8Array } {
  const root = toNode(der, readElement(der, 0));
  const all = slots(root);
  const pick = () => rng.pick(all);
  const donorDer = rng.pick(corpus);
  const donorRoot = toNode(donorDer, readElement(donorDer, 0));
  const donor = () => clone(rng.pick(slots(donorRoot)).node);
  const op = rng.int(12);
  const s = pick();
  switch (op) {
    case 0: // delete a child
      if (s.parent) s.parent.kids!.splice(s.index, 1);
      break;
    case 1: // duplicate a child
      if (s.parent) s.parent.kids!.splice(s.index, 0, clone(s.node));
      break;
    case 2: {
      // swap two siblings
      if (s.parent && s.parent.kids!.length > 1) {
        const j = rng.int(s.parent.kids!.length);
        const k = s.parent.kids!;
        [k[s.index], k[j]] = [k[j]!, k[s.index]!];
      }
      break;
    }
    case 3: // random content
      s.node.kids = undefined;
      s.node.prefix = undefined;
      s.node.content = rng.bytes(rng.int(48));
      break;
    case 4: // another tag
      s.node.tag = rng.pick(INTERESTING_TAGS);
      break;
    case 5: // graft a subtree from another CSR
      if (s.parent) s.parent.kids![s.index] = donor();
      break;
    case 6: // wrap in a SEQUENCE
      if (s.parent) s.parent.kids![s.index] = { tag: TAG.SEQUENCE, kids: [s.node] };
      break;
    case 7: // deep nesting in place of an element
      if (s.parent) s.parent.kids![s.index] = { tag: TAG.SEQUENCE, raw: nested(1 + rng.int(1500)) };
      break;
    case 8: // INTEGER edge cases
      s.node.kids = undefined;
      s.node.tag = TAG.INTEGER;
      s.node.content = rng.pick([Uint8Array.of(), Uint8Array.of(0x80), Uint8Array.of(0, 1), Uint8Array.of(0xff, 0xff), new Uint8Array(40).fill(0x7f), Uint8Array.of(1)]);
      break;
    case 9: // BOOLEAN edge cases
      s.node.kids = undefined;
      s.node.tag = TAG.BOOLEAN;
      s.node.content = rng.pick([Uint8Array.of(), Uint8Array.of(1), Uint8Array.of(0xfe), Uint8Array.of(0, 0), Uint8Array.of(0xff)]);
      break;
    case 10: // OID edge cases
      s.node.kids = undefined;
      s.node.tag = TAG.OID;
      s.node.content = rng.pick([
        Uint8Array.of(),
        Uint8Array.of(0x80, 0x01),
        Uint8Array.of(0x2a, 0x86),
        new Uint8Array(65).fill(0x2a),
        Uint8Array.of(0x69, 0x87, 0xc2, 0xe5, 0xf6, 0xda, 0xcd, 0xec, 0x6b),
        concatBytes([new Uint8Array(40).fill(0xff), Uint8Array.of(0x7f)]),
        Uint8Array.of(0x55, 0x1d, 0x11),
        Uint8Array.of(0x55, 0x1d, 0x13),
      ]);
      break;
    default: // insert a random small element
      if (s.node.kids) s.node.kids.splice(rng.int(s.node.kids.length + 1), 0, { tag: rng.pick(INTERESTING_TAGS) & ~0x20, content: rng.bytes(rng.int(6)) });
  }
  return { name: `tree-${op}`, out: encode(root) };
}

/** Offsets of tag and first length bytes of every element, for header-aware byte mutations. */
function headerOffsets(der: Uint8Array): number[] {
  const out: number[] = [];
  const walk = (buf: Uint8Array, base: number, start: number, end: number) => {
    for (let p = start; p < end; ) {
      let el: DerElement;
      try {
        el = readElement(buf, p, end);
      } catch {
        return;
      }
      out.push(base + el.start, base + el.start + 1);
      if (el.tag & 0x20) walk(buf, base, el.contentStart, el.end);
      p = el.end;
    }
  };
  walk(der, 0, 0, der.length);
  return out;
}

function byteMutation(rng: Prng, input: Uint8Array): { name: string; out: Uint8Array } {
  const b = input.slice();
  const op = rng.int(9);
  const at = rng.int(Math.max(1, b.length));
  switch (op) {
    case 0: {
      const flips = 1 + rng.int(4);
      for (let i = 0; i < flips; i++) b[rng.int(b.length)]! ^= 1 << rng.int(8);
      return { name: 'bit-flip', out: b };
    }
    case 1:
      b[at] = rng.int(2) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
      return { name: 'byte-set', out: b };
    case 2:
      return { name: 'insert', out: concatBytes([b.subarray(0, at), rng.bytes(1 + rng.int(16)), b.subarray(at)]) };
    case 3:
      return { name: 'delete', out: concatBytes([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(32)))]) };
    case 4:
      return { name: 'truncate', out: b.subarray(0, rng.int(b.length)) };
    case 5: {
      // length byte tweaks at a real header
      const heads = headerOffsets(b);
      if (heads.length === 0) return { name: 'length-none', out: b };
      const h = rng.pick(heads);
      const v = b[h]!;
      const tweak = rng.int(7);
      if (tweak === 0) b[h] = (v + 1) & 0xff;
      else if (tweak === 1) b[h] = (v - 1) & 0xff;
      else if (tweak === 2) b[h] = 0x80;
      else if (tweak === 3) b[h] = v ^ 0x80;
      else if (tweak === 4) return { name: 'length-long-form', out: concatBytes([b.subarray(0, h), Uint8Array.of(0x81), b.subarray(h)]) };
      else if (tweak === 5) return { name: 'length-huge', out: concatBytes([b.subarray(0, h), Uint8Array.of(0x84, 0xff, 0xff, 0xff, 0xff), b.subarray(h + 1)]) };
      else b[h] = v | 0x20;
      return { name: `length-${tweak}`, out: b };
    }
    case 6: {
      // splice a slice of another CSR over or into this one
      const other = rng.pick(corpus);
      const from = rng.int(other.length);
      const piece = other.subarray(from, from + 1 + rng.int(200));
      return rng.int(2)
        ? { name: 'splice-insert', out: concatBytes([b.subarray(0, at), piece, b.subarray(at)]) }
        : { name: 'splice-overwrite', out: concatBytes([b.subarray(0, at), piece, b.subarray(Math.min(b.length, at + piece.length))]) };
    }
    case 7:
      return { name: 'append', out: concatBytes([b, rng.bytes(1 + rng.int(8))]) };
    default: {
      // repeat a chunk
      const len = 1 + rng.int(64);
      const chunk = b.subarray(at, at + len);
      return { name: 'repeat', out: concatBytes([b.subarray(0, at), chunk, chunk, b.subarray(at)]) };
    }
  }
}

function pemMutation(rng: Prng, der: Uint8Array): { name: string; out: string } {
  const pem = toPem('CERTIFICATE REQUEST', der);
  const op = rng.int(7);
  const at = rng.int(pem.length);
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-\n\r \t%';
  switch (op) {
    case 0:
      return { name: 'pem-char', out: pem.slice(0, at) + rng.pick([...B64]) + pem.slice(at + 1) };
    case 1:
      return { name: 'pem-cut', out: pem.slice(0, at) };
    case 2:
      return { name: 'pem-crlf', out: pem.replace(/\n/g, '\r\n') };
    case 3: {
      const lines = pem.split('\n');
      lines.splice(1 + rng.int(Math.max(1, lines.length - 3)), 1);
      return { name: 'pem-drop-line', out: lines.join('\n') };
    }
    case 4:
      return { name: 'pem-label', out: pem.replace(/CERTIFICATE REQUEST/, rng.pick(['CERTIFICATE', 'NEW CERTIFICATE REQUEST', 'X509 CRL', 'CERTIFICATE  REQUEST', ''])) };
    case 5:
      return { name: 'pem-twice', out: pem + pem.slice(0, at) };
    default:
      return { name: 'pem-unicode', out: pem.slice(0, at) + rng.pick(['\u0430', '\uff0f', '\u200b', '\ud800', '\u0000']) + pem.slice(at) };
  }
}

// ------------------------------------------------------------------ tests

describe('parseCsr under mutation', () => {
  it(`survives ${TOTAL_MUTATIONS} random mutations of valid CSRs (seed printed on failure)`, { timeout: 30_000 }, async () => {
    const rng = new Prng(SEED);
    const failures: Failure[] = [];
    const stats = { parsed: 0, verified: 0, refused: new Map<string, number>() };
    let slowest = { ms: 0, mutation: '' };

    for (let i = 0; i < TOTAL_MUTATIONS && failures.length === 0; i++) {
      const base = corpus[i % corpus.length]!;
      let input: Uint8Array | string;
      const names: string[] = [];
      const kind = rng.int(10);
      if (kind < 3) {
        const m = treeMutation(rng, base);
        names.push(m.name);
        input = m.out;
        if (rng.int(3) === 0) {
          const b = byteMutation(rng, input);
          names.push(b.name);
          input = b.out;
        }
      } else if (kind < 9) {
        input = base;
        const rounds = 1 + (rng.int(4) === 0 ? rng.int(3) : 0);
        for (let r = 0; r < rounds; r++) {
          const b = byteMutation(rng, input);
          names.push(b.name);
          input = b.out;
        }
      } else {
        const p = pemMutation(rng, rng.int(2) ? base : byteMutation(rng, base).out);
        names.push(p.name);
        input = p.out;
      }

      const t0 = performance.now();
      const { stage, outcome } = await check(input);
      const ms = performance.now() - t0;
      if (ms > slowest.ms) slowest = { ms, mutation: names.join('+') };
      if (!acceptable(outcome)) failures.push({ iteration: i, mutation: names.join('+'), stage, error: outcome.ok ? null : outcome.error, input });
      else if (outcome.ok) stats.verified++;
      else {
        if (stage === 'verify') stats.parsed++;
        const code = (outcome.error as AgentCAError).code;
        stats.refused.set(code, (stats.refused.get(code) ?? 0) + 1);
      }
    }

    if (failures.length) throw new Error(report(failures[0]!));
    // The mutations must reach past the outer layers: every kind of refusal shows up.
    expect([...stats.refused.keys()]).toEqual(expect.arrayContaining(['ERR_CSR_MALFORMED', 'ERR_CSR_SIGNATURE']));
    expect(slowest.ms, `slowest input (${slowest.mutation})`).toBeLessThan(2_000);
  });

  it('handles a SEQUENCE nested 10,000 deep, as DER and as PEM', async () => {
    const deep = nested(10_000);
    const indefinite = nestedIndefinite(10_000);
    for (const input of [deep, toPem('CERTIFICATE REQUEST', deep), indefinite, toPem('CERTIFICATE REQUEST', indefinite)]) {
      const { outcome } = await check(input);
      expect(outcome.ok).toBe(false);
      expect(acceptable(outcome), String((outcome as { error: unknown }).error)).toBe(true);
      expect((outcome as { error: AgentCAError }).error.code).toBe('ERR_CSR_TOO_LARGE');
    }
  });

  it('handles deep nesting that fits under the size cap, at the top and inside a valid CSR', async () => {
    const inputs: Uint8Array[] = [nested(3_500), nestedIndefinite(4_000).subarray(0, 16_000)];
    for (const base of corpus.slice(0, 4)) {
      // in place of the subject, of the attributes' contents, and of the signature algorithm
      const root = toNode(base, readElement(base, 0));
      const info = root.kids![0]!;
      for (const [parent, index] of [[info, 1], [info, 3], [root, 1]] as const) {
        const copy = clone(root);
        const target = parent === root ? copy : copy.kids![0]!;
        target.kids![index] = { tag: TAG.SEQUENCE, raw: nested(3_000) };
        inputs.push(encode(copy));
      }
    }
    for (const input of inputs) {
      expect(input.length).toBeLessThanOrEqual(16 * 1024);
      const t0 = performance.now();
      const { outcome } = await check(input);
      expect(performance.now() - t0).toBeLessThan(1_000);
      expect(outcome.ok).toBe(false);
      expect(acceptable(outcome), String((outcome as { error: unknown }).error)).toBe(true);
    }
  });

  it('handles 200 KB inputs quickly', async () => {
    const rng = new Prng(SEED ^ 0x5eed);
    const big = 200 * 1024;
    const beginLines = '-----BEGIN CERTIFICATE REQUEST-----\n'.repeat(Math.ceil(big / 36));
    const inputs: (Uint8Array | string)[] = [
      rng.bytes(big),
      concatBytes([Uint8Array.of(0x30, 0x83, 0x03, 0x20, 0x00), rng.bytes(big)]),
      new Uint8Array(big).fill(0x30),
      'A'.repeat(big),
      beginLines,
      new TextEncoder().encode(beginLines),
      toPem('CERTIFICATE REQUEST', rng.bytes(big)),
    ];
    for (const input of inputs) {
      const t0 = performance.now();
      const { outcome } = await check(input);
      expect(performance.now() - t0).toBeLessThan(1_000);
      expect(acceptable(outcome), String((outcome as { error: unknown }).error)).toBe(true);
      expect((outcome as { error: AgentCAError }).error.code).toBe('ERR_CSR_TOO_LARGE');
    }
  });

  it('handles hostile PEM text just under the size cap quickly', async () => {
    const cap = 2 * 16 * 1024;
    const inputs = [
      '-----BEGIN CERTIFICATE REQUEST-----\n'.repeat(Math.floor(cap / 36)),
      '-----BEGIN CERTIFICATE REQUEST-----\n' + '\n'.repeat(cap - 80),
      '-----BEGIN ' + 'A'.repeat(cap - 40),
      ('-----BEGIN A-----\n' + 'QUFB\n'.repeat(3) + '-----END B-----\n').repeat(Math.floor(cap / 50)),
    ];
    for (const input of inputs) {
      expect(input.length).toBeLessThanOrEqual(cap);
      const t0 = performance.now();
      const { outcome } = await check(input);
      expect(performance.now() - t0).toBeLessThan(1_000);
      expect(outcome.ok).toBe(false);
      expect(acceptable(outcome), String((outcome as { error: unknown }).error)).toBe(true);
    }
  });
});
