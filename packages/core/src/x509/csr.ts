/**
 * PKCS#10 on the lean path: a strict parse (size cap, exact structure, no trailing bytes),
 * then proof of possession. A CSR contributes its public key and nothing else; what it asks
 * for in extensions is read only so that a request for another identity can be refused.
 */
import { InvalidRequest } from '../errors.ts';
import { CSR_SIGNATURE_SCHEMES, type SignatureScheme } from './algorithms.ts';
import {
  TAG,
  children,
  content,
  expectTag,
  readBoolean,
  readElement,
  readOid,
  readBitString,
  readSmallInteger,
  readTop,
  whole,
  type DerElement,
} from './der.ts';
import { parseGeneralNamesDer, type GeneralNames } from './general-names.ts';
import { derFromPemOrDer } from './pem.ts';
import type { CryptoBackend } from '../ports/crypto-backend.ts';
import { parseSpki, type PublicKeyInfo } from './spki.ts';

/** No legitimate CSR comes near this; RSA-8192 with a few SANs is under 2 KB. */
export const MAX_CSR_BYTES = 16 * 1024;

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SAN = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';

export interface ParsedCsr {
  der: Uint8Array;
  /** CertificationRequestInfo, the signed bytes. */
  info: Uint8Array;
  key: PublicKeyInfo;
  scheme: SignatureScheme;
  signature: Uint8Array;
  /** What the CSR's extensionRequest asks for in its subjectAltName (never copied). */
  requestedNames: GeneralNames;
  /** Whether the CSR asks for CA:TRUE (never granted; reported in the audit detail). */
  requestsCa: boolean;
}

function malformed(what: string): never {
  throw new InvalidRequest('ERR_CSR_MALFORMED', `malformed CSR: ${what}`);
}

function parseExtensionRequest(buf: Uint8Array, valuesEl: DerElement, out: { names: GeneralNames; ca: boolean }): void {
  const [extsEl, more] = children(buf, expectTag(valuesEl, TAG.SET, 'extensionRequest values'));
  if (more) malformed('extensionRequest has more than one value');
  const seen = new Set<string>();
  for (const ext of children(buf, expectTag(extsEl, TAG.SEQUENCE, 'requested extensions'))) {
    const parts = children(buf, expectTag(ext, TAG.SEQUENCE, 'requested extension'));
    const extOid = readOid(buf, expectTag(parts[0], TAG.OID, 'extension OID'));
    if (seen.has(extOid)) malformed(`extension ${extOid} is requested twice`);
    seen.add(extOid);
    let i = 1;
    if (parts[i]?.tag === TAG.BOOLEAN) readBoolean(buf, parts[i++]!);
    const value = content(buf, expectTag(parts[i++], TAG.OCTET_STRING, 'extension value'));
    if (parts[i]) malformed('extra field in a requested extension');
    if (extOid === OID_SAN) {
      const names = parseGeneralNamesDer(value);
      out.names.uris.push(...names.uris);
      out.names.dnsNames.push(...names.dnsNames);
      out.names.ipAddresses.push(...names.ipAddresses);
      out.names.other += names.other;
    } else if (extOid === OID_BASIC_CONSTRAINTS) {
      const bc = readElement(value, 0);
      const [first] = children(value, expectTag(bc, TAG.SEQUENCE, 'basicConstraints'));
      out.ca = first?.tag === TAG.BOOLEAN ? readBoolean(value, first) : false;
    }
  }
}

/** Parses a CSR from PEM or DER. Throws InvalidRequest/PolicyDenied with a stable code. */
export function parseCsr(input: Uint8Array | string): ParsedCsr {
  const size = typeof input === 'string' ? input.length : input.length;
  if (size > MAX_CSR_BYTES * 2) throw new InvalidRequest('ERR_CSR_TOO_LARGE', `the CSR is larger than ${MAX_CSR_BYTES} bytes`);
  let der: Uint8Array;
  try {
    der = derFromPemOrDer(input, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'], 'certificate request');
  } catch (e) {
    throw new InvalidRequest('ERR_CSR_MALFORMED', `malformed CSR: ${(e as Error).message}`);
  }
  if (der.length > MAX_CSR_BYTES) throw new InvalidRequest('ERR_CSR_TOO_LARGE', `the CSR is larger than ${MAX_CSR_BYTES} bytes`);
  try {
    return parseCsrDer(der);
  } catch (e) {
    if (e instanceof InvalidRequest && e.code === 'ERR_DER_MALFORMED') malformed(e.message.replace(/^malformed DER: /, ''));
    throw e;
  }
}

function parseCsrDer(der: Uint8Array): ParsedCsr {
  const top = readTop(der, TAG.SEQUENCE);
  const [infoEl, algEl, sigEl, extra] = children(der, top);
  if (extra) malformed('extra field after the signature');
  const infoParts = children(der, expectTag(infoEl, TAG.SEQUENCE, 'certificationRequestInfo'));
  const [verEl, subjectEl, spkiEl, attrsEl, more] = infoParts;
  if (more) malformed('extra field in certificationRequestInfo');
  if (readSmallInteger(der, expectTag(verEl, TAG.INTEGER, 'version')) !== 0) malformed('version must be 1 (0)');
  expectTag(subjectEl, TAG.SEQUENCE, 'subject');
  const key = parseSpki(der, expectTag(spkiEl, TAG.SEQUENCE, 'subjectPublicKeyInfo'));
  const requested = { names: { uris: [], dnsNames: [], ipAddresses: [], other: 0 } as GeneralNames, ca: false };
  if (attrsEl) {
    for (const attr of children(der, expectTag(attrsEl, 0xa0, 'attributes'))) {
      const [typeEl, valuesEl, extraAttr] = children(der, expectTag(attr, TAG.SEQUENCE, 'attribute'));
      if (extraAttr) malformed('extra field in an attribute');
      const type = readOid(der, expectTag(typeEl, TAG.OID, 'attribute type'));
      expectTag(valuesEl, TAG.SET, 'attribute values');
      if (type === OID_EXTENSION_REQUEST) parseExtensionRequest(der, valuesEl!, requested);
    }
  }
  const algParts = children(der, expectTag(algEl, TAG.SEQUENCE, 'signature algorithm'));
  const algOid = readOid(der, expectTag(algParts[0], TAG.OID, 'signature algorithm OID'));
  const scheme = CSR_SIGNATURE_SCHEMES[algOid];
  if (!scheme) throw new InvalidRequest('ERR_CSR_SIGNATURE_ALGORITHM', `CSR signature algorithm ${algOid} is not supported`);
  const params = algParts[1];
  if (algParts.length > 2 || (params && !(scheme.nullParams && params.tag === TAG.NULL && params.end === params.contentStart)))
    malformed('unexpected signature algorithm parameters');
  const signature = readBitString(der, expectTag(sigEl, TAG.BIT_STRING, 'signature')).bytes;
  return {
    der,
    info: whole(der, infoEl!),
    key,
    scheme,
    signature,
    requestedNames: requested.names,
    requestsCa: requested.ca,
  };
}

/** Proof of possession: the CSR is signed by the key it carries. */
export async function verifyCsr(backend: CryptoBackend, csr: ParsedCsr): Promise<void> {
  const ok = await backend.verify(csr.key, csr.scheme, csr.info, csr.signature);
  if (!ok) throw new InvalidRequest('ERR_CSR_SIGNATURE', 'the CSR signature does not verify with its public key (no proof of possession)');
}
