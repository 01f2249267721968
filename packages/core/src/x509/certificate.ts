/**
 * X.509 certificates on the lean path: TBSCertificate encoding, signing through a Signer,
 * and a strict parse that the issuance pipeline uses to re-check what it signed.
 */
import { InvalidRequest } from '../errors.ts';
import type { Signer } from '../ports/signer.ts';
import { concatBytes } from '../encoding.ts';
import { signatureSchemeFor, type SignatureScheme } from './algorithms.ts';
import {
  TAG,
  algorithmIdentifier,
  bitString,
  children,
  content,
  explicit,
  expectTag,
  readBitString,
  readBoolean,
  readOid,
  readSmallInteger,
  readTime,
  readTop,
  readUnsignedInteger,
  seq,
  smallInteger,
  time,
  unsignedInteger,
  whole,
  type DerElement,
} from './der.ts';

export interface TbsFields {
  /** Serial magnitude, big-endian, first byte non-zero. */
  serial: Uint8Array;
  scheme: SignatureScheme;
  /** Issuer Name DER (the issuing CA's subject, byte for byte). */
  issuer: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** Subject Name DER. */
  subject: Uint8Array;
  spki: Uint8Array;
  /** Whole Extension TLVs, in the order they are written. */
  extensions: readonly Uint8Array[];
}

export function signatureAlgorithm(scheme: SignatureScheme): Uint8Array {
  return algorithmIdentifier(scheme.oid, scheme.nullParams ? 'null' : 'absent');
}

export function encodeTbsCertificate(f: TbsFields): Uint8Array {
  return seq(
    explicit(0, smallInteger(2)), // v3
    unsignedInteger(f.serial),
    signatureAlgorithm(f.scheme),
    f.issuer,
    seq(time(f.notBefore), time(f.notAfter)),
    f.subject,
    f.spki,
    explicit(3, seq(concatBytes(f.extensions))),
  );
}

/** Signs a TBS (certificate or CRL) and wraps it: `SEQUENCE { tbs, algorithm, BIT STRING signature }`. */
export async function signTbs(tbs: Uint8Array, signer: Signer): Promise<Uint8Array> {
  const signature = await signer.sign(tbs);
  return seq(tbs, signatureAlgorithm(signatureSchemeFor(signer.algorithm)), bitString(signature));
}

export interface ParsedExtension {
  critical: boolean;
  value: Uint8Array;
}

export interface ParsedCertificate {
  der: Uint8Array;
  tbs: Uint8Array;
  version: number;
  serial: Uint8Array;
  signatureOid: string;
  issuer: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  subject: Uint8Array;
  spki: Uint8Array;
  extensions: Map<string, ParsedExtension>;
  outerSignatureOid: string;
  signature: Uint8Array;
}

function algOid(buf: Uint8Array, el: DerElement | undefined, what: string): string {
  const parts = children(buf, expectTag(el, TAG.SEQUENCE, what));
  return readOid(buf, expectTag(parts[0], TAG.OID, `${what} OID`));
}

/** Strict parse of one DER certificate; duplicate extensions are an error (RFC 5280 §4.2). */
export function parseCertificate(der: Uint8Array): ParsedCertificate {
  const top = readTop(der, TAG.SEQUENCE);
  const [tbsEl, sigAlgEl, sigEl, extra] = children(der, top);
  if (extra) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: extra field after the certificate signature');
  const parts = children(der, expectTag(tbsEl, TAG.SEQUENCE, 'tbsCertificate'));
  let i = 0;
  let version = 1;
  if (parts[0]?.tag === 0xa0) {
    const [v] = children(der, parts[0]);
    version = readSmallInteger(der, expectTag(v, TAG.INTEGER, 'version')) + 1;
    i = 1;
  }
  const serial = readUnsignedInteger(der, expectTag(parts[i++], TAG.INTEGER, 'serial'));
  const signatureOid = algOid(der, parts[i++], 'signature');
  const issuer = whole(der, expectTag(parts[i++], TAG.SEQUENCE, 'issuer'));
  const [nbEl, naEl] = children(der, expectTag(parts[i++], TAG.SEQUENCE, 'validity'));
  if (!nbEl || !naEl) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: validity needs notBefore and notAfter');
  const notBefore = readTime(der, nbEl!);
  const notAfter = readTime(der, naEl!);
  const subject = whole(der, expectTag(parts[i++], TAG.SEQUENCE, 'subject'));
  const spki = whole(der, expectTag(parts[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo'));
  const extensions = new Map<string, ParsedExtension>();
  for (; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.tag !== 0xa3) continue; // issuer/subject unique IDs: never written by agentca
    const [list] = children(der, p);
    for (const ext of children(der, expectTag(list, TAG.SEQUENCE, 'extensions'))) {
      const f = children(der, expectTag(ext, TAG.SEQUENCE, 'extension'));
      const id = readOid(der, expectTag(f[0], TAG.OID, 'extension OID'));
      let k = 1;
      const critical = f[k]?.tag === TAG.BOOLEAN ? readBoolean(der, f[k++]!) : false;
      const value = content(der, expectTag(f[k], TAG.OCTET_STRING, 'extension value'));
      if (extensions.has(id)) throw new InvalidRequest('ERR_DER_MALFORMED', `malformed DER: extension ${id} appears twice`);
      extensions.set(id, { critical, value });
    }
  }
  return {
    der,
    tbs: whole(der, tbsEl!),
    version,
    serial,
    signatureOid,
    issuer,
    notBefore,
    notAfter,
    subject,
    spki,
    extensions,
    outerSignatureOid: algOid(der, sigAlgEl, 'signatureAlgorithm'),
    signature: readBitString(der, expectTag(sigEl, TAG.BIT_STRING, 'signature')).bytes,
  };
}
