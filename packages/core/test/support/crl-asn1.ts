/**
 * A CRL read back with asn1js 4 into plain values: an oracle independent of the lean DER code,
 * that keeps what a DER check needs (which optional fields are present, the tag of each time,
 * the raw ENUMERATED and INTEGER contents).
 */
import * as asn1js from 'asn1js';

const UNLIMITED = { maxDepth: Infinity, maxNodes: Infinity, maxContentLength: Infinity };

export interface DecodedExtension {
  oid: string;
  critical: boolean;
  /** extnValue contents. */
  value: Uint8Array;
}

export interface DecodedTime {
  tag: 'UTCTime' | 'GeneralizedTime';
  date: Date;
  /** The whole TLV as it was in the DER. */
  der: Uint8Array;
}

export interface DecodedEntry {
  /** INTEGER content octets as hex (sign pad included). */
  serialContentHex: string;
  revocationDate: DecodedTime;
  /** null when the entry has no crlEntryExtensions field at all. */
  extensions: DecodedExtension[] | null;
}

export interface DecodedCrl {
  /** The TBSCertList fields in order, by universal/context name, to check presence and order. */
  fieldKinds: string[];
  version: number | null;
  signatureOid: string;
  issuer: Uint8Array;
  thisUpdate: DecodedTime;
  nextUpdate: DecodedTime | null;
  /** null when revokedCertificates is absent. */
  entries: DecodedEntry[] | null;
  crlExtensions: DecodedExtension[] | null;
  outerSignatureOid: string;
  signature: Uint8Array;
  tbs: Uint8Array;
}

const hex = (b: ArrayBuffer | Uint8Array) => Buffer.from(b instanceof Uint8Array ? b : new Uint8Array(b)).toString('hex');

function kind(b: asn1js.AsnType): string {
  const id = (b as asn1js.BaseBlock).idBlock;
  if (id.tagClass === 3) return `[${id.tagNumber}]`;
  return (b as asn1js.BaseBlock).constructor.name;
}

function decodeTime(b: asn1js.AsnType): DecodedTime {
  const der = new Uint8Array((b as asn1js.BaseBlock).valueBeforeDecodeView);
  if (b instanceof asn1js.GeneralizedTime) return { tag: 'GeneralizedTime', date: b.toDate(), der };
  if (b instanceof asn1js.UTCTime) return { tag: 'UTCTime', date: b.toDate(), der };
  throw new Error(`not a Time: ${kind(b)}`);
}

function decodeExtensions(list: asn1js.AsnType): DecodedExtension[] {
  if (!(list instanceof asn1js.Sequence)) throw new Error(`Extensions is a ${kind(list)}`);
  return list.valueBlock.value.map((e) => {
    const parts = (e as asn1js.Sequence).valueBlock.value;
    const critical = parts[1] instanceof asn1js.Boolean ? parts[1].getValue() : false;
    const value = parts[parts.length - 1] as asn1js.OctetString;
    return { oid: (parts[0] as asn1js.ObjectIdentifier).getValue(), critical, value: new Uint8Array(value.valueBlock.valueHexView) };
  });
}

function algOid(b: asn1js.AsnType): string {
  return ((b as asn1js.Sequence).valueBlock.value[0] as asn1js.ObjectIdentifier).getValue();
}

export function decodeCrl(der: Uint8Array): DecodedCrl {
  const parsed = asn1js.fromBER(der, UNLIMITED);
  if (parsed.offset === -1 || parsed.result.error) throw new Error(`asn1js cannot read the CRL: ${parsed.result.error}`);
  if (parsed.offset !== der.length) throw new Error('trailing bytes after the CRL');
  const [tbsBlock, sigAlg, sig] = (parsed.result as asn1js.Sequence).valueBlock.value as [asn1js.Sequence, asn1js.Sequence, asn1js.BitString];
  const f = tbsBlock.valueBlock.value;
  let i = 0;
  const version = f[0] instanceof asn1js.Integer ? (f[i++] as asn1js.Integer).valueBlock.valueDec : null;
  const signatureOid = algOid(f[i++]!);
  const issuer = new Uint8Array(f[i++]!.toBER(false));
  const thisUpdate = decodeTime(f[i++]!);
  const nextUpdate = f[i] instanceof asn1js.UTCTime || f[i] instanceof asn1js.GeneralizedTime ? decodeTime(f[i++]!) : null;
  let entries: DecodedEntry[] | null = null;
  if (f[i] instanceof asn1js.Sequence) {
    entries = (f[i++] as asn1js.Sequence).valueBlock.value.map((e) => {
      const p = (e as asn1js.Sequence).valueBlock.value;
      if (p.length < 2 || p.length > 3) throw new Error(`a revoked entry has ${p.length} fields`);
      return {
        serialContentHex: hex((p[0] as asn1js.Integer).valueBlock.valueHexView),
        revocationDate: decodeTime(p[1]!),
        extensions: p[2] ? decodeExtensions(p[2]) : null,
      };
    });
  }
  let crlExtensions: DecodedExtension[] | null = null;
  if (f[i] && kind(f[i]!) === '[0]') crlExtensions = decodeExtensions((f[i++] as asn1js.Constructed).valueBlock.value[0]!);
  if (i !== f.length) throw new Error(`unexpected TBSCertList field ${kind(f[i]!)}`);
  return {
    fieldKinds: f.map(kind),
    version,
    signatureOid,
    issuer,
    thisUpdate,
    nextUpdate,
    entries,
    crlExtensions,
    outerSignatureOid: algOid(sigAlg),
    signature: new Uint8Array(sig.valueBlock.valueHexView),
    tbs: new Uint8Array(tbsBlock.toBER(false)),
  };
}

/** The value of an ENUMERATED (reasonCode extnValue) or INTEGER (cRLNumber extnValue), as asn1js reads it. */
export function decodeEnumerated(value: Uint8Array): number {
  const r = asn1js.fromBER(value);
  if (!(r.result instanceof asn1js.Enumerated) || r.offset !== value.length) throw new Error('not an ENUMERATED');
  return r.result.valueBlock.valueDec;
}

export function decodeInteger(value: Uint8Array): bigint {
  const r = asn1js.fromBER(value);
  if (!(r.result instanceof asn1js.Integer) || r.offset !== value.length) throw new Error('not an INTEGER');
  return r.result.toBigInt();
}

/** AuthorityKeyIdentifier extnValue → the keyIdentifier [0] as hex; anything else in it is an error. */
export function decodeAuthorityKeyId(value: Uint8Array): string {
  const r = asn1js.fromBER(value);
  const parts = (r.result as asn1js.Sequence).valueBlock.value;
  if (parts.length !== 1 || kind(parts[0]!) !== '[0]') throw new Error('AKI must hold only keyIdentifier');
  return hex((parts[0] as asn1js.Primitive).valueBlock.valueHexView);
}
