/**
 * PKCS#10 on the lean path (x509/csr.ts, spki.ts, signature.ts) over CSRs made by `openssl req`:
 * every accepted key type parses and proves possession, in PEM and DER; everything else is
 * refused with a stable code.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  InvalidRequest,
  MAX_CSR_BYTES,
  OID,
  PolicyDenied,
  agentcaIdentity,
  concatBytes,
  generateWebCryptoSigner,
  parseCsr,
  signTbs,
  subjectAltName,
  toPem,
  verifyCsr,
  webCryptoBackend,
  type ParsedCsr,
} from '../src/index.ts';
import { children, explicit, oid, readElement, seq, set, smallInteger, tlv, unsignedInteger } from '../src/x509/der.ts';
import { caught, caughtSync, expectAgentError } from './support/errors.ts';
import { genKey, makeCsr, openssl, publicKeyDer, tempDir, type OpensslKeyKind } from './support/openssl.ts';

const ACCEPTED = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
type Accepted = (typeof ACCEPTED)[number];
const FAMILY: Record<Accepted, { family: string; bits: number; sigOid: string }> = {
  'ec-p256': { family: 'ec-p256', bits: 256, sigOid: OID.ecdsaWithSHA256 },
  'ec-p384': { family: 'ec-p384', bits: 384, sigOid: OID.ecdsaWithSHA256 },
  ed25519: { family: 'ed25519', bits: 256, sigOid: OID.ed25519 },
  'rsa-2048': { family: 'rsa', bits: 2048, sigOid: OID.sha256WithRSA },
  'rsa-3072': { family: 'rsa', bits: 3072, sigOid: OID.sha256WithRSA },
  'rsa-4096': { family: 'rsa', bits: 4096, sigOid: OID.sha256WithRSA },
};

const SUBJECT = 'agentca-test-subject';
const backend = webCryptoBackend();
const dir = tempDir('csr-test');
const keys = {} as Record<OpensslKeyKind, string>;
const csrs = {} as Record<Accepted, { pem: string; der: Uint8Array }>;

beforeAll(() => {
  for (const kind of [...ACCEPTED, 'rsa-1024', 'ec-p192', 'ec-secp256k1', 'ed448'] as const) keys[kind] = genKey(dir.path, kind);
  for (const kind of ACCEPTED) csrs[kind] = makeCsr(dir.path, keys[kind], { subject: `/CN=${SUBJECT}` });
});
afterAll(() => dir.remove());

function expectMalformed(input: Uint8Array | string, what: string): void {
  expectAgentError(caughtSync(() => parseCsr(input)), InvalidRequest, 'ERR_CSR_MALFORMED', `malformed CSR: ${what}`);
}

/** Index of `needle` inside `hay`, or -1. */
function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** The three parts of a signed structure: `SEQUENCE { info, algorithm, signature }`. */
function splitSigned(der: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const [a, b, c] = children(der, readElement(der, 0));
  return [der.slice(a!.start, a!.end), der.slice(b!.start, b!.end), der.slice(c!.start, c!.end)];
}

describe('CSRs from openssl req', () => {
  describe.each(ACCEPTED)('%s', (kind) => {
    it('parses and verifies from PEM', async () => {
      const csr = parseCsr(csrs[kind].pem);
      expect(csr.key.family).toBe(FAMILY[kind].family);
      expect(csr.key.bits).toBe(FAMILY[kind].bits);
      expect(csr.scheme.oid).toBe(FAMILY[kind].sigOid);
      expect(csr.der).toEqual(csrs[kind].der);
      expect(csr.key.spki).toEqual(publicKeyDer(dir.path, keys[kind]));
      expect(csr.requestedNames).toEqual({ uris: [], dnsNames: [], ipAddresses: [], other: 0 });
      expect(csr.requestsCa).toBe(false);
      await expect(verifyCsr(backend, csr)).resolves.toBeUndefined();
    });

    it('parses and verifies from DER, with the same result as PEM', async () => {
      const fromDer = parseCsr(csrs[kind].der);
      const fromPem = parseCsr(csrs[kind].pem);
      expect(fromDer.info).toEqual(fromPem.info);
      expect(fromDer.signature).toEqual(fromPem.signature);
      expect(fromDer.key).toEqual(fromPem.key);
      await expect(verifyCsr(backend, fromDer)).resolves.toBeUndefined();
    });

    it('parses PEM handed over as bytes', async () => {
      const csr = parseCsr(new TextEncoder().encode(csrs[kind].pem));
      await expect(verifyCsr(backend, csr)).resolves.toBeUndefined();
    });

    it('refuses a flipped signature byte with ERR_CSR_SIGNATURE', async () => {
      const der = csrs[kind].der.slice();
      der[der.length - 1]! ^= 0x01;
      const csr = parseCsr(der);
      const e = await caught(() => verifyCsr(backend, csr));
      expectAgentError(e, InvalidRequest, 'ERR_CSR_SIGNATURE', 'the CSR signature does not verify with its public key (no proof of possession)');
    });

    it('refuses a subject altered after signing with ERR_CSR_SIGNATURE', async () => {
      const der = csrs[kind].der.slice();
      const at = indexOf(der, new TextEncoder().encode(SUBJECT));
      expect(at).toBeGreaterThan(0);
      der[at] = 'b'.charCodeAt(0);
      const csr = parseCsr(der);
      const e = await caught(() => verifyCsr(backend, csr));
      expectAgentError(e, InvalidRequest, 'ERR_CSR_SIGNATURE', 'the CSR signature does not verify with its public key (no proof of possession)');
    });
  });

  it.each([
    ['ec-p256', '-sha384', OID.ecdsaWithSHA384],
    ['ec-p256', '-sha512', OID.ecdsaWithSHA512],
    ['ec-p384', '-sha384', OID.ecdsaWithSHA384],
    ['rsa-2048', '-sha384', OID.sha384WithRSA],
    ['rsa-2048', '-sha512', OID.sha512WithRSA],
  ] as const)('verifies %s signed with %s', async (kind, digest, sigOid) => {
    const csr = parseCsr(makeCsr(dir.path, keys[kind], { extra: [digest] }).pem);
    expect(csr.scheme.oid).toBe(sigOid);
    await expect(verifyCsr(backend, csr)).resolves.toBeUndefined();
  });

  it('refuses a signature taken from another CSR of the same key type', async () => {
    const other = makeCsr(dir.path, genKey(dir.path, 'ec-p256', 'other-p256')).der;
    const [info] = splitSigned(csrs['ec-p256'].der);
    const [, alg, sig] = splitSigned(other);
    const csr = parseCsr(seq(info, alg, sig));
    const e = await caught(() => verifyCsr(backend, csr));
    expectAgentError(e, InvalidRequest, 'ERR_CSR_SIGNATURE', 'the CSR signature does not verify with its public key (no proof of possession)');
  });

  it('refuses a signature algorithm of another key family (ECDSA key, Ed25519 signature)', async () => {
    const [info] = splitSigned(csrs['ec-p256'].der);
    const [, alg, sig] = splitSigned(csrs.ed25519.der);
    const csr = parseCsr(seq(info, alg, sig));
    const e = await caught(() => verifyCsr(backend, csr));
    expectAgentError(e, InvalidRequest, 'ERR_CSR_SIGNATURE', 'the CSR signature does not verify with its public key (no proof of possession)');
  });
});

describe('what the CSR asks for', () => {
  it('reports the requested subjectAltName names', () => {
    const { pem } = makeCsr(dir.path, keys['ec-p256'], {
      addext: ['subjectAltName=URI:spiffe://example.org/agent/a,URI:spiffe://example.org/admin/x,DNS:a.example.org,IP:10.1.2.3,IP:fd00::1,email:a@example.org'],
    });
    const csr = parseCsr(pem);
    expect(csr.requestedNames).toEqual({
      uris: ['spiffe://example.org/agent/a', 'spiffe://example.org/admin/x'],
      dnsNames: ['a.example.org'],
      ipAddresses: ['10.1.2.3', 'fd00:0:0:0:0:0:0:1'],
      other: 1,
    });
    expect(csr.requestsCa).toBe(false);
  });

  it.each([
    ['basicConstraints=critical,CA:TRUE', true],
    ['basicConstraints=CA:TRUE,pathlen:0', true],
    ['basicConstraints=critical,CA:FALSE', false],
  ])('%s → requestsCa %s', async (ext, want) => {
    const csr = parseCsr(makeCsr(dir.path, keys.ed25519, { addext: [ext, 'subjectAltName=URI:spiffe://example.org/a'] }).der);
    expect(csr.requestsCa).toBe(want);
    expect(csr.requestedNames.uris).toEqual(['spiffe://example.org/a']);
    await expect(verifyCsr(backend, csr)).resolves.toBeUndefined();
  });

  it('ignores extensions it does not read (keyUsage, EKU, the agentca extension)', () => {
    const csr = parseCsr(
      makeCsr(dir.path, keys['ec-p384'], {
        addext: ['keyUsage=critical,keyCertSign', 'extendedKeyUsage=codeSigning', '2.25.4234422942660203=DER:30058003616263'],
      }).pem,
    );
    expect(csr.requestsCa).toBe(false);
    expect(csr.requestedNames).toEqual({ uris: [], dnsNames: [], ipAddresses: [], other: 0 });
  });
});

describe('refusals', () => {
  it.each([
    ['garbage text', 'hello, this is not a CSR'],
    ['an empty string', ''],
    ['whitespace', '\n\n  \n'],
    ['an empty byte array', new Uint8Array(0)],
    ['random bytes that are not DER', Uint8Array.of(0x13, 0x37, 0xca, 0xfe, 0xba, 0xbe)],
  ])('%s → ERR_CSR_MALFORMED', (_label, input) => {
    expectMalformed(input, 'no PEM certificate request found');
  });

  it('refuses a PEM cut in the middle of its base64 (no END line)', () => {
    const pem = csrs['rsa-2048'].pem;
    expectMalformed(pem.slice(0, Math.floor(pem.length / 2)), 'no PEM certificate request found');
  });

  it('refuses a PEM whose base64 is cut short (END line kept)', () => {
    const lines = csrs['rsa-2048'].pem.trim().split('\n');
    // Two whole 64-character lines are valid base64 of a truncated DER …
    const twoLines = [lines[0], lines[1], lines[2], lines.at(-1)].join('\n');
    expectMalformed(twoLines, 'truncated content');
    // … one more character makes the base64 itself invalid.
    const ragged = [lines[0], lines[1], lines[2], lines[3]!.slice(0, 1), lines.at(-1)].join('\n');
    expectMalformed(ragged, 'PEM block CERTIFICATE REQUEST is not valid base64');
  });

  it('refuses every truncation of a DER CSR', () => {
    const der = csrs['ec-p256'].der;
    for (let n = 1; n < der.length; n++) {
      const e = caughtSync(() => parseCsr(der.subarray(0, n)));
      expect(e, `truncated to ${n} bytes`).toBeInstanceOf(InvalidRequest);
      expect(e.code, `truncated to ${n} bytes`).toBe('ERR_CSR_MALFORMED');
      expect(e.message).toMatch(n === 1 ? /^malformed CSR: truncated element$/ : /^malformed CSR: truncated (content|length)$/);
    }
  });

  it.each([
    ['one zero byte', Uint8Array.of(0)],
    ['an empty SEQUENCE', Uint8Array.of(0x30, 0x00)],
    ['a copy of itself', null],
  ])('refuses trailing bytes after the DER (%s)', (_label, tail) => {
    const der = csrs.ed25519.der;
    expectMalformed(concatBytes([der, tail ?? der]), 'trailing bytes after the top-level element');
  });

  it('refuses two PEM blocks', () => {
    const pem = csrs['ec-p256'].pem + csrs['ec-p384'].pem;
    expectMalformed(pem, 'expected one PEM certificate request, found 2 blocks');
  });

  it('refuses a certificate PEM passed as a CSR', () => {
    openssl(['req', '-x509', '-new', '-key', keys['ec-p256'], '-subj', '/CN=cert', '-days', '1', '-out', 'cert.pem'], dir.path);
    const pem = readFileSync(join(dir.path, 'cert.pem'), 'utf8');
    expectMalformed(pem, 'expected a PEM certificate request, found CERTIFICATE');
  });

  it('refuses a certificate DER passed as a CSR', () => {
    openssl(['req', '-x509', '-new', '-key', keys.ed25519, '-subj', '/CN=cert', '-days', '1', '-outform', 'DER', '-out', 'cert.der'], dir.path);
    const der = new Uint8Array(readFileSync(join(dir.path, 'cert.der')));
    expectMalformed(der, 'extra field in certificationRequestInfo');
  });

  it('refuses an RSA-1024 key with PolicyDenied ERR_KEY_TOO_SMALL', () => {
    for (const input of Object.values(makeCsr(dir.path, keys['rsa-1024']))) {
      const e = caughtSync(() => parseCsr(input));
      expectAgentError(e, PolicyDenied, 'ERR_KEY_TOO_SMALL', 'RSA keys need at least 2048 bits, this one has 1024');
    }
  });

  it.each([
    ['ec-p192', '1.2.840.10045.3.1.1'],
    ['ec-secp256k1', '1.3.132.0.10'],
  ] as const)('refuses an %s key with PolicyDenied ERR_KEY_ALGORITHM_NOT_ALLOWED', (kind, curve) => {
    const e = caughtSync(() => parseCsr(makeCsr(dir.path, keys[kind]).pem));
    expectAgentError(e, PolicyDenied, 'ERR_KEY_ALGORITHM_NOT_ALLOWED', `EC curve ${curve} is not allowed (use P-256 or P-384)`);
  });

  it('refuses an Ed448 key with PolicyDenied ERR_KEY_ALGORITHM_NOT_ALLOWED', () => {
    const e = caughtSync(() => parseCsr(makeCsr(dir.path, keys.ed448).pem));
    expectAgentError(e, PolicyDenied, 'ERR_KEY_ALGORITHM_NOT_ALLOWED', 'key algorithm 1.3.101.113 is not allowed (use ECDSA P-256/P-384, Ed25519 or RSA)');
  });

  it('refuses an RSA-PSS signature with ERR_CSR_SIGNATURE_ALGORITHM', () => {
    const { pem } = makeCsr(dir.path, keys['rsa-2048'], { extra: ['-sigopt', 'rsa_padding_mode:pss'] });
    const e = caughtSync(() => parseCsr(pem));
    expectAgentError(e, InvalidRequest, 'ERR_CSR_SIGNATURE_ALGORITHM', 'CSR signature algorithm 1.2.840.113549.1.1.10 is not supported');
  });

  describe('oversized input → ERR_CSR_TOO_LARGE', () => {
    const tooLarge = (input: Uint8Array | string) => {
      const e = caughtSync(() => parseCsr(input));
      expectAgentError(e, InvalidRequest, 'ERR_CSR_TOO_LARGE', `the CSR is larger than ${MAX_CSR_BYTES} bytes`);
    };
    it('a 200 KB string', () => tooLarge(csrs['ec-p256'].pem + ' '.repeat(200 * 1024)));
    it('200 KB of bytes', () => tooLarge(new Uint8Array(200 * 1024).fill(0x30)));
    it('a DER just over the cap', () => tooLarge(tlv(0x30, new Uint8Array(MAX_CSR_BYTES))));
    it('a PEM whose DER is just over the cap', () => tooLarge(toPem('CERTIFICATE REQUEST', tlv(0x30, new Uint8Array(MAX_CSR_BYTES)))));
  });

  describe('hand-built requests', () => {
    /** A CSR signed by a fresh P-256 key with the given attributes and version. */
    async function build(o: { version?: number; attributes?: Uint8Array[] } = {}): Promise<Uint8Array> {
      const signer = await generateWebCryptoSigner('ec-p256');
      const info = seq(smallInteger(o.version ?? 0), seq(), signer.publicKey, tlv(0xa0, concatBytes(o.attributes ?? [])));
      return signTbs(info, signer);
    }
    const extReq = (...values: Uint8Array[]) => seq(oid('1.2.840.113549.1.9.14'), set(...values));

    it('accepts a request built by the lean writer', async () => {
      const csr: ParsedCsr = parseCsr(await build({ attributes: [extReq(seq(subjectAltName({ uris: ['spiffe://example.org/a'] }, false)))] }));
      expect(csr.requestedNames.uris).toEqual(['spiffe://example.org/a']);
      await expect(verifyCsr(backend, csr)).resolves.toBeUndefined();
    });

    it.each([
      ['version 2', { version: 1 }, 'version must be 1 (0)'],
      [
        'an extension requested twice',
        { attributes: [extReq(seq(subjectAltName({ uris: ['spiffe://example.org/a'] }, false), subjectAltName({ uris: ['spiffe://example.org/b'] }, false)))] },
        'extension 2.5.29.17 is requested twice',
      ],
      ['two extensionRequest values', { attributes: [extReq(seq(), seq())] }, 'extensionRequest has more than one value'],
      ['an empty extensionRequest', { attributes: [extReq()] }, 'requested extensions is missing'],
      [
        'an IP SAN of 5 bytes',
        { attributes: [extReq(seq(seq(oid('2.5.29.17'), tlv(0x04, seq(tlv(0x87, Uint8Array.of(1, 2, 3, 4, 5)))))))] },
        'an IP address SAN is neither 4 nor 16 bytes',
      ],
      [
        'a non-ASCII URI SAN',
        { attributes: [extReq(seq(seq(oid('2.5.29.17'), tlv(0x04, seq(tlv(0x86, new TextEncoder().encode('spiffe://exаmple.org/a')))))))] },
        'a SAN is not printable ASCII (IA5String)',
      ],
      ['an attribute without values', { attributes: [seq(oid('1.2.840.113549.1.9.7'))] }, 'attribute values is missing'],
      [
        'an extra field in a requested extension',
        { attributes: [extReq(seq(seq(oid('2.5.29.19'), tlv(0x04, seq()), tlv(0x04, seq()))))] },
        'extra field in a requested extension',
      ],
      ['a BOOLEAN that is not DER', { attributes: [extReq(seq(seq(oid('2.5.29.19'), Uint8Array.of(1, 1, 1), tlv(0x04, seq()))))] }, 'BOOLEAN must be 00 or ff in DER'],
    ])('refuses %s', async (_label, o, what) => {
      expectMalformed(await build(o), what);
    });

    it('still reads the agentca extension OID in a request without choking', async () => {
      const csr = parseCsr(await build({ attributes: [extReq(seq(agentcaIdentity({ instanceId: 'i-1' })))] }));
      await expect(verifyCsr(backend, csr)).resolves.toBeUndefined();
    });

    it('refuses an EC key that is not an uncompressed point', async () => {
      const signer = await generateWebCryptoSigner('ec-p256');
      const spki = signer.publicKey.slice();
      spki[spki.length - 65] = 0x05; // the point's 04 prefix
      const info = seq(smallInteger(0), seq(), spki, tlv(0xa0, new Uint8Array(0)));
      const e = caughtSync(() => parseCsr(seq(info, seq(oid(OID.ecdsaWithSHA256)), tlv(0x03, Uint8Array.of(0, 0x30, 0)))));
      expectAgentError(e, InvalidRequest, 'ERR_CSR_KEY_INVALID', 'the P-256 public key is not an uncompressed point');
    });

    it('refuses an EC point that is not on the curve when verifying', async () => {
      const signer = await generateWebCryptoSigner('ec-p256');
      const spki = signer.publicKey.slice();
      spki[spki.length - 1]! ^= 0x01;
      const info = seq(smallInteger(0), seq(), spki, tlv(0xa0, new Uint8Array(0)));
      const csr = parseCsr(seq(info, seq(oid(OID.ecdsaWithSHA256)), tlv(0x03, concatBytes([Uint8Array.of(0), await signer.sign(info)]))));
      const e = await caught(() => verifyCsr(backend, csr));
      expectAgentError(e, InvalidRequest, 'ERR_CSR_KEY_INVALID', 'the ec-p256 public key is not valid');
    });

    it.each([
      ['an even RSA exponent', Uint8Array.of(1, 0, 0)],
      ['RSA exponent 1', Uint8Array.of(1)],
    ])('refuses %s', (_label, exponent) => {
      const modulus = Uint8Array.from({ length: 256 }, (_, i) => (i === 0 ? 0xc1 : 0x35));
      const spki = seq(seq(oid(OID.rsaEncryption), Uint8Array.of(5, 0)), tlv(0x03, concatBytes([Uint8Array.of(0), seq(unsignedInteger(modulus), unsignedInteger(exponent))])));
      const info = seq(smallInteger(0), seq(), spki);
      const e = caughtSync(() => parseCsr(seq(info, seq(oid(OID.sha256WithRSA), Uint8Array.of(5, 0)), tlv(0x03, Uint8Array.of(0, 1)))));
      expectAgentError(e, InvalidRequest, 'ERR_CSR_KEY_INVALID', 'the RSA public exponent is not acceptable');
    });

    it('refuses an RSA key above 8192 bits with PolicyDenied ERR_KEY_TOO_LARGE', () => {
      const modulus = new Uint8Array(1025).fill(0xff);
      const spki = seq(seq(oid(OID.rsaEncryption), Uint8Array.of(5, 0)), tlv(0x03, concatBytes([Uint8Array.of(0), seq(unsignedInteger(modulus), unsignedInteger(Uint8Array.of(1, 0, 1)))])));
      const e = caughtSync(() => parseCsr(seq(seq(smallInteger(0), seq(), spki), seq(oid(OID.sha256WithRSA)), tlv(0x03, Uint8Array.of(0)))));
      expectAgentError(e, PolicyDenied, 'ERR_KEY_TOO_LARGE', 'RSA keys may have at most 8192 bits, this one has 8200');
    });

    it('refuses ECDSA signature algorithm parameters', async () => {
      const [info, , sig] = splitSigned(await build());
      expectMalformed(seq(info, seq(oid(OID.ecdsaWithSHA256), Uint8Array.of(5, 0)), sig), 'unexpected signature algorithm parameters');
    });

    it('refuses a field after the signature', async () => {
      const [info, alg, sig] = splitSigned(await build());
      expectMalformed(seq(info, alg, sig, Uint8Array.of(5, 0)), 'extra field after the signature');
    });

    it('refuses a context tag in place of the attributes', async () => {
      const [info, alg, sig] = splitSigned(await build());
      const parts = children(info, readElement(info, 0)).map((p) => info.slice(p.start, p.end));
      expectMalformed(seq(seq(parts[0]!, parts[1]!, parts[2]!, explicit(1, seq())), alg, sig), 'attributes: expected tag 0xa0, found 0xa1');
    });
  });
});
