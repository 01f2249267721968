/**
 * Property test for the OCSP responder, which takes raw network bytes: whatever they are,
 * `respond` resolves (never throws, never hangs) with a DER OCSPResponse whose status is one
 * RFC 6960 defines, and a successful response never says `good` for a serial that the lookup
 * does not call good, nor answers for another CertID than the one asked about.
 *
 * Replay: the seed is printed on failure (OCSP_FUZZ_SEED=<n> re-runs the same mutations); the
 * CA is fresh each run, so the failing input is also written to a file the message names.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Authority,
  DEFAULT_PROFILE,
  FixedClock,
  INTERMEDIATE_KEY,
  concatBytes,
  createHierarchy,
  generateWebCryptoSigner,
  toHex,
  toPem,
  webCryptoRandom,
  type Signer,
} from '../src/index.ts';
import { OcspResponder, type OcspCertStatus } from '../src/revocation/ocsp.ts';
import { createOcspResponderCertificate } from '../src/revocation/ocsp-responder-certificate.ts';
import { TAG, children, explicit, octetString, readElement, readTop, seq, tlv, type DerElement } from '../src/x509/der.ts';
import { MemoryKeyStore, memoryStore } from './fakes.ts';
import { genKey, makeCsr, openssl, tempDir } from './support/openssl.ts';
import { Prng, seedFrom } from './support/prng.ts';

const MUTATIONS = 10_000;
const SEED = seedFrom('OCSP_FUZZ_SEED');
const START = new Date(Math.floor(Date.now() / 1000) * 1000);
const STATUSES = new Set([0, 1, 2, 3, 5, 6]);

const dir = tempDir('ocsp-fuzz');
afterAll(() => dir.remove());

let ocsp: OcspResponder;
let signer: Signer & { calls: number };
/** What the lookup says; anything absent is unknown. */
const statuses = new Map<string, OcspCertStatus>();
/** Valid requests: SHA-1 and SHA-256 CertIDs, with and without a nonce, for good and revoked leaves. */
const corpus: Uint8Array[] = [];

beforeAll(async () => {
  const clock = new FixedClock(START);
  const keys = new MemoryKeyStore();
  const { root, intermediate } = await createHierarchy({ trustDomain: 'example.org', keyAlgorithm: 'ec-p256', keys, clock, random: webCryptoRandom });
  const intSigner = await keys.open(INTERMEDIATE_KEY);
  const authority = await Authority.open({
    trustDomain: 'example.org',
    issuer: { certificate: intermediate, signer: intSigner },
    roots: [root],
    profiles: [DEFAULT_PROFILE],
    store: memoryStore(),
    clock,
  });
  const intPem = join(dir.path, 'int.pem');
  writeFileSync(intPem, toPem('CERTIFICATE', intermediate));
  for (const name of ['good', 'revoked']) {
    const csr = makeCsr(dir.path, genKey(dir.path, 'ec-p256', name)).pem;
    const leaf = await authority.issue({ csr, attestation: { spiffeId: `spiffe://example.org/${name}`, profile: 'default', method: 'operator', actor: 'fuzz' } });
    statuses.set(leaf.serial, name === 'good' ? { status: 'good' } : { status: 'revoked', revokedAt: START, reason: 'keyCompromise' });
    const leafPem = join(dir.path, `${name}.pem`);
    writeFileSync(leafPem, toPem('CERTIFICATE', leaf.der));
    for (const extra of [['-no_nonce'], ['-nonce'], ['-no_nonce', '-sha256'], ['-nonce', '-sha256']]) {
      const out = join(dir.path, `req-${corpus.length}.der`);
      openssl(['ocsp', '-issuer', intPem, ...extra.filter((a) => a === '-sha256'), '-cert', leafPem, ...extra.filter((a) => a !== '-sha256'), '-reqout', out], dir.path);
      corpus.push(new Uint8Array(readFileSync(out)));
    }
  }
  const inner = await generateWebCryptoSigner('ec-p256');
  signer = { algorithm: inner.algorithm, publicKey: inner.publicKey, calls: 0, sign: (d) => (signer.calls++, inner.sign(d)) };
  const certificate = await createOcspResponderCertificate({
    issuerCertificate: intermediate,
    issuerSigner: intSigner,
    responderPublicKey: signer.publicKey,
    notBefore: START,
    notAfter: new Date(START.getTime() + 86_400_000),
    random: webCryptoRandom,
  });
  ocsp = new OcspResponder({ issuerCertificate: intermediate, responder: { certificate, signer }, lookup: (s) => statuses.get(s) ?? { status: 'unknown' }, clock, cacheSize: 500 });
  await ocsp.ready();
});

// ---------------------------------------------------------------- the property

interface Verdict {
  ok: boolean;
  why?: string;
  status?: number;
}

/** The CertID and serial (hex, sign byte kept) a request asks about, if it has exactly one. */
function askedCertId(req: Uint8Array): Uint8Array | null {
  try {
    const [tbs] = children(req, readTop(req, TAG.SEQUENCE));
    const list = children(req, tbs!).find((e) => e.tag === TAG.SEQUENCE)!;
    const [request, more] = children(req, list);
    if (more) return null;
    const [certId] = children(req, request!);
    return req.slice(certId!.start, certId!.end);
  } catch {
    return null;
  }
}

function serialOf(certId: Uint8Array): string {
  const parts = children(certId, readElement(certId, 0));
  const s = parts[3]!;
  let c = certId.subarray(s.contentStart, s.end);
  if (c.length > 1 && c[0] === 0) c = c.subarray(1);
  return toHex(c);
}

function judge(input: Uint8Array, resp: unknown): Verdict {
  if (!(resp instanceof Uint8Array)) return { ok: false, why: `respond resolved with ${String(resp)}` };
  let top: DerElement;
  try {
    top = readTop(resp, TAG.SEQUENCE);
  } catch (e) {
    return { ok: false, why: `the response is not DER: ${(e as Error).message}` };
  }
  const [st, rb, extra] = children(resp, top);
  if (!st || st.tag !== TAG.ENUMERATED || st.end - st.contentStart !== 1 || extra) return { ok: false, why: 'bad OCSPResponse shape' };
  const status = resp[st.contentStart]!;
  if (!STATUSES.has(status)) return { ok: false, why: `status ${status}` };
  if (status !== 0) return rb ? { ok: false, why: 'an error response with responseBytes' } : { ok: true, status };
  if (!rb) return { ok: false, why: 'a successful response without responseBytes' };
  const [responseBytes] = children(resp, rb);
  const [, octets] = children(resp, responseBytes!);
  const basic = resp.subarray(octets!.contentStart, octets!.end);
  const [tbs] = children(basic, readTop(basic, TAG.SEQUENCE));
  const single = children(basic, children(basic, tbs!)[2]!);
  if (single.length !== 1) return { ok: false, why: `${single.length} SingleResponses` };
  const [certIdEl, certStatus] = children(basic, single[0]!);
  const certId = basic.slice(certIdEl!.start, certIdEl!.end);
  const asked = askedCertId(input);
  if (!asked || toHex(asked) !== toHex(certId)) return { ok: false, why: 'the response answers for another CertID than the request asked about' };
  const serial = serialOf(certId);
  const known = statuses.get(serial)?.status ?? 'unknown';
  const said = certStatus!.tag === 0x80 ? 'good' : certStatus!.tag === 0xa1 ? 'revoked' : certStatus!.tag === 0x82 ? 'unknown' : `tag ${certStatus!.tag}`;
  if (said !== known) return { ok: false, why: `said ${said} for serial ${serial}, which the lookup calls ${known}` };
  return { ok: true, status };
}

async function check(input: Uint8Array, label: string, seen?: Map<number, number>): Promise<void> {
  const t0 = performance.now();
  let resp: unknown;
  try {
    resp = await ocsp.respond(input);
  } catch (e) {
    fail(input, label, `respond threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
  }
  const ms = performance.now() - t0;
  if (ms > 2000) fail(input, label, `respond took ${ms.toFixed(0)} ms`);
  const v = judge(input, resp);
  if (!v.ok) fail(input, label, v.why!);
  seen?.set(v.status!, (seen.get(v.status!) ?? 0) + 1);
}

function fail(input: Uint8Array, label: string, why: string): never {
  const file = join(tmpdir(), `agentca-ocsp-fuzz-failure-${SEED}-${label.replace(/[^a-z0-9-]/gi, '_')}.der`);
  writeFileSync(file, input);
  throw new Error(`OCSP fuzz failure (${label}), replay with OCSP_FUZZ_SEED=${SEED}: ${why}\ninput (${input.length} bytes) saved to ${file}; first bytes ${toHex(input.subarray(0, 128))}`);
}

// ---------------------------------------------------------------- mutations

function nested(depth: number, inner: Uint8Array = new Uint8Array(0)): Uint8Array {
  let b = inner;
  for (let i = 0; i < depth; i++) b = tlv(TAG.SEQUENCE, b);
  return b;
}

interface Node {
  tag: number;
  kids?: Node[];
  content?: Uint8Array;
  raw?: Uint8Array;
}

function toNode(buf: Uint8Array, el: DerElement): Node {
  if (el.tag & 0x20) return { tag: el.tag, kids: children(buf, el).map((k) => toNode(buf, k)) };
  const content = buf.slice(el.contentStart, el.end);
  if (el.tag === TAG.OCTET_STRING && content.length > 2 && (content[0] === TAG.OCTET_STRING || content[0] === TAG.SEQUENCE)) {
    try {
      const inner = readElement(content, 0);
      if (inner.end === content.length) return { tag: el.tag, kids: [toNode(content, inner)] };
    } catch {
      /* plain bytes */
    }
  }
  return { tag: el.tag, content };
}

function encode(n: Node): Uint8Array {
  if (n.raw) return n.raw;
  if (n.kids) return tlv(n.tag, concatBytes(n.kids.map(encode)));
  return tlv(n.tag, n.content ?? new Uint8Array(0));
}

function allNodes(root: Node): { node: Node; parent: Node | null; index: number }[] {
  const out: { node: Node; parent: Node | null; index: number }[] = [{ node: root, parent: null, index: 0 }];
  for (let i = 0; i < out.length; i++) out[i]!.node.kids?.forEach((k, index) => out.push({ node: k, parent: out[i]!.node, index }));
  return out;
}

const TAGS = [0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x0a, 0x18, 0x30, 0x31, 0x80, 0x82, 0xa0, 0xa1, 0xa2, 0xff];
const BYTES = [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0xff, 0x30, 0x04, 0x02];

function treeMutation(rng: Prng, der: Uint8Array): { name: string; out: Uint8Array } {
  const root = toNode(der, readElement(der, 0));
  const all = allNodes(root);
  const s = rng.pick(all);
  const op = rng.int(11);
  switch (op) {
    case 0:
      if (s.parent) s.parent.kids!.splice(s.index, 1);
      break;
    case 1:
      if (s.parent) s.parent.kids!.splice(s.index, 0, structuredClone(s.node));
      break;
    case 2:
      s.node.kids = undefined;
      s.node.content = rng.bytes(rng.int(40));
      break;
    case 3:
      s.node.tag = rng.pick(TAGS);
      break;
    case 4: {
      const donorDer = rng.pick(corpus);
      if (s.parent) s.parent.kids![s.index] = structuredClone(rng.pick(allNodes(toNode(donorDer, readElement(donorDer, 0)))).node);
      break;
    }
    case 5:
      if (s.parent) s.parent.kids![s.index] = { tag: TAG.SEQUENCE, kids: [s.node] };
      break;
    case 6:
      if (s.parent) s.parent.kids![s.index] = { tag: TAG.SEQUENCE, raw: nested(1 + rng.int(2000)) };
      break;
    case 7: // INTEGER edge cases (the serial, the version)
      s.node.kids = undefined;
      s.node.tag = TAG.INTEGER;
      s.node.content = rng.pick([Uint8Array.of(), Uint8Array.of(0x80), Uint8Array.of(0, 1), Uint8Array.of(0xff, 0xff), new Uint8Array(21).fill(0x4a), Uint8Array.of(0), Uint8Array.of(1)]);
      break;
    case 8: // nonce edge cases
      s.node.kids = undefined;
      s.node.tag = TAG.OCTET_STRING;
      s.node.content = rng.pick([Uint8Array.of(4, 0), octetString(new Uint8Array(128)), octetString(new Uint8Array(129)), Uint8Array.of(4, 0x81, 1, 1), Uint8Array.of(4, 5, 1)]);
      break;
    case 9: // a second Request, an extra field
      if (s.node.kids) s.node.kids.push(structuredClone(rng.pick(s.node.kids.length ? s.node.kids : [s.node])));
      break;
    default:
      if (s.node.kids) s.node.kids.splice(rng.int(s.node.kids.length + 1), 0, { tag: rng.pick(TAGS) & ~0x20, content: rng.bytes(rng.int(6)) });
  }
  return { name: `tree-${op}`, out: encode(root) };
}

function byteMutation(rng: Prng, der: Uint8Array): { name: string; out: Uint8Array } {
  const b = der.slice();
  const op = rng.int(6);
  const at = rng.int(b.length);
  switch (op) {
    case 0:
      b[at] = b[at]! ^ (1 << rng.int(8));
      return { name: 'bit-flip', out: b };
    case 1:
      b[at] = rng.pick(BYTES);
      return { name: 'byte-set', out: b };
    case 2:
      return { name: 'truncate', out: b.subarray(0, at) };
    case 3:
      return { name: 'insert', out: concatBytes([b.subarray(0, at), rng.bytes(1 + rng.int(4)), b.subarray(at)]) };
    case 4:
      return { name: 'delete', out: concatBytes([b.subarray(0, at), b.subarray(at + 1 + rng.int(4))]) };
    default:
      for (let i = 0; i < 1 + rng.int(6); i++) b[rng.int(b.length)] = rng.next() & 0xff;
      return { name: 'scramble', out: b };
  }
}

// ---------------------------------------------------------------- tests

describe('OCSP responder fuzz', () => {
  it('answers every fixed hostile input with an error response', async () => {
    const big = new Uint8Array(200 * 1024);
    const hostile: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['one byte', Uint8Array.of(0x30)],
      ['empty sequence', seq()],
      ['garbage', new Prng(SEED).bytes(700)],
      ['text', new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n')],
      ['10,000 nested SEQUENCEs', nested(10_000)],
      ['10,000 nested SEQUENCEs in the request list', seq(seq(nested(10_000)))],
      ['indefinite lengths', new Uint8Array(20_000).map((_, i) => (i % 2 ? 0x80 : 0x30))],
      ['200 KB of zeros', big],
      ['200 KB random', new Prng(SEED + 1).bytes(200 * 1024)],
      ['200 KB inside a SEQUENCE', tlv(TAG.SEQUENCE, big)],
      ['a length past the end', Uint8Array.of(0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30)],
      ['no requests', seq(seq(seq()))],
      ['40,000 requests', seq(seq(seq(...Array.from({ length: 40_000 }, () => seq()))))],
      ['extensions but no list', seq(seq(explicit(2, seq())))],
      ['a high tag number', Uint8Array.of(0x1f, 0x81, 0x01, 0x00)],
    ];
    for (const [label, input] of hostile) {
      await check(input, label);
      expect(await ocsp.respond(input), label).toEqual(Uint8Array.of(0x30, 0x03, 0x0a, 0x01, 1));
    }
  });

  it('answers every truncation of every valid request, and the valid requests themselves correctly', async () => {
    for (const [i, req] of corpus.entries()) {
      await check(req, `corpus-${i}`);
      for (let n = 0; n < req.length; n++) await check(req.subarray(0, n), `corpus-${i}-truncated-${n}`);
      await check(concatBytes([req, Uint8Array.of(0)]), `corpus-${i}-trailing`);
    }
  });

  it(`survives ${MUTATIONS} seeded mutations of valid requests (seed ${SEED})`, async () => {
    const rng = new Prng(SEED);
    const seen = new Map<number, number>();
    const t0 = performance.now();
    for (let i = 0; i < MUTATIONS; i++) {
      let input = rng.pick(corpus);
      const rounds = 1 + rng.int(3);
      const names: string[] = [];
      for (let r = 0; r < rounds; r++) {
        let m: { name: string; out: Uint8Array };
        try {
          m = rng.int(2) === 0 ? treeMutation(rng, input) : byteMutation(rng, input);
        } catch {
          m = byteMutation(rng, input); // the previous round broke the DER: stay with bytes
        }
        names.push(m.name);
        input = m.out;
      }
      await check(input, `mutation-${i}-${names.join('+')}`, seen);
    }
    const seconds = (performance.now() - t0) / 1000;
    // The mutations reach every outcome, or the test proves little.
    expect([...seen.keys()].sort(), `outcomes ${JSON.stringify([...seen])}`).toEqual(expect.arrayContaining([0, 1, 6]));
    expect(seconds).toBeLessThan(60);
  });
});
