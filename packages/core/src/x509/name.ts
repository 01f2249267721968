import { oid, seq, set, utf8, TAG, children, expectTag, readOid, readString, readElement } from './der.ts';

/** The few attributes agentca writes in a distinguished name. */
export interface DistinguishedName {
  commonName?: string;
  organization?: string;
}

const CN = '2.5.4.3';
const O = '2.5.4.10';

/** Name DER; an empty name is an empty SEQUENCE (leaf default, with a critical SAN). */
export function encodeName(dn: DistinguishedName): Uint8Array {
  const rdns: Uint8Array[] = [];
  if (dn.organization) rdns.push(set(seq(oid(O), utf8(dn.organization))));
  if (dn.commonName) rdns.push(set(seq(oid(CN), utf8(dn.commonName))));
  return seq(...rdns);
}

/** Reads back the attributes agentca writes; other attributes are ignored. */
export function decodeName(der: Uint8Array): DistinguishedName {
  const out: DistinguishedName = {};
  const top = readElement(der, 0);
  for (const rdn of children(der, expectTag(top, TAG.SEQUENCE, 'name'))) {
    for (const atv of children(der, expectTag(rdn, TAG.SET, 'RDN'))) {
      const [t, v] = children(der, expectTag(atv, TAG.SEQUENCE, 'attribute'));
      const type = readOid(der, expectTag(t, TAG.OID, 'attribute type'));
      if (!v) continue;
      if (type === CN) out.commonName = readString(der, v);
      if (type === O) out.organization = readString(der, v);
    }
  }
  return out;
}
