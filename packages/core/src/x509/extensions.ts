/**
 * Encoders for the certificate extensions agentca writes (RFC 5280 §4.2), and the agentca
 * identity extension. Each returns a whole `Extension` TLV.
 */
import { InvalidRequest } from '../errors.ts';
import { boolean, explicit, ia5, implicitPrimitive, octetString, oid, seq, smallInteger, tlv, TAG } from './der.ts';

export const EXT = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  crlDistributionPoints: '2.5.29.31',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  /**
   * agentca workload identity: instance, task and on-behalf-of principal. Non-critical.
   * OID 2.25.87769753182713: the ITU-T X.667 UUID arc, with UUID
   * 00000000-0000-0000-0000-4fd37cf5e1f9 (46 random bits). A full 128-bit UUID arc would be
   * the textbook choice, but GnuTLS's libtasn1 rejects the whole certificate when an OID arc
   * exceeds 64 bits, asn1js 4 misreads arcs above 2^53 and asn1js 3 (inside @peculiar/x509)
   * cannot write arcs above 2^49, so the UUID was drawn small enough for all of them.
   *   AgentCAIdentity ::= SEQUENCE {
   *     instanceId  [0] IMPLICIT UTF8String,
   *     taskId      [1] IMPLICIT UTF8String OPTIONAL,
   *     onBehalfOf  [2] IMPLICIT UTF8String OPTIONAL }
   */
  agentcaIdentity: '2.25.87769753182713',
} as const;

export const EKU = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ocspSigning: '1.3.6.1.5.5.7.3.9',
} as const;
export type ExtKeyUsage = keyof typeof EKU;

const AIA_OCSP = '1.3.6.1.5.5.7.48.1';
const AIA_CA_ISSUERS = '1.3.6.1.5.5.7.48.2';

export function extension(extOid: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? seq(oid(extOid), boolean(true), octetString(value)) : seq(oid(extOid), octetString(value));
}

export function basicConstraints(ca: boolean, pathLen?: number): Uint8Array {
  const parts: Uint8Array[] = [];
  if (ca) parts.push(boolean(true));
  if (ca && pathLen !== undefined) parts.push(smallInteger(pathLen));
  return extension(EXT.basicConstraints, true, seq(...parts));
}

export interface KeyUsageBits {
  digitalSignature?: boolean;
  keyEncipherment?: boolean;
  keyCertSign?: boolean;
  cRLSign?: boolean;
}

const KU_BIT = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

/** keyUsage as a DER named-bit BIT STRING (trailing zero bits removed). */
export function keyUsage(bits: KeyUsageBits): Uint8Array {
  let v = 0;
  for (const [name, bit] of Object.entries(KU_BIT)) if (bits[name as keyof KeyUsageBits]) v |= 0x80 >> bit;
  if (v === 0) throw new InvalidRequest('ERR_KEY_USAGE_EMPTY', 'keyUsage needs at least one bit');
  let unused = 0;
  while (((v >> unused) & 1) === 0) unused++;
  return extension(EXT.keyUsage, true, tlv(TAG.BIT_STRING, Uint8Array.of(unused, v)));
}

export function extKeyUsage(usages: readonly ExtKeyUsage[]): Uint8Array {
  return extension(EXT.extKeyUsage, false, seq(...usages.map((u) => oid(EKU[u]))));
}

export function subjectKeyIdentifier(keyId: Uint8Array): Uint8Array {
  return extension(EXT.subjectKeyIdentifier, false, octetString(keyId));
}

export function authorityKeyIdentifier(keyId: Uint8Array): Uint8Array {
  return extension(EXT.authorityKeyIdentifier, false, seq(implicitPrimitive(0, keyId)));
}

function ipBytes(ip: string): Uint8Array {
  const v4 = ip.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  if (v4) {
    const b = v4.slice(1).map(Number);
    if (b.every((x) => x <= 255)) return Uint8Array.from(b);
  }
  throw new InvalidRequest('ERR_IP_SAN_INVALID', `${ip} is not an IPv4 address`);
}

export interface AltNames {
  uris?: readonly string[];
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}

export function subjectAltName(names: AltNames, critical: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const u of names.uris ?? []) parts.push(retag(ia5(u), 0x86));
  for (const d of names.dnsNames ?? []) parts.push(retag(ia5(d), 0x82));
  for (const ip of names.ipAddresses ?? []) parts.push(implicitPrimitive(7, ipBytes(ip)));
  return extension(EXT.subjectAltName, critical, seq(...parts));
}

/** Replaces the tag byte of a primitive TLV (for IMPLICIT string choices). */
function retag(el: Uint8Array, tag: number): Uint8Array {
  const out = el.slice();
  out[0] = tag;
  return out;
}

export function crlDistributionPoints(urls: readonly string[]): Uint8Array {
  // DistributionPoint { distributionPoint [0] { fullName [0] GeneralNames } }
  const points = urls.map((u) => seq(explicit(0, tlv(0xa0, retag(ia5(u), 0x86)))));
  return extension(EXT.crlDistributionPoints, false, seq(...points));
}

export function authorityInfoAccess(ocsp: readonly string[], caIssuers: readonly string[]): Uint8Array {
  const ads = [
    ...ocsp.map((u) => seq(oid(AIA_OCSP), retag(ia5(u), 0x86))),
    ...caIssuers.map((u) => seq(oid(AIA_CA_ISSUERS), retag(ia5(u), 0x86))),
  ];
  return extension(EXT.authorityInfoAccess, false, seq(...ads));
}

/** Permitted URI subtree for the trust domain: SPIFFE IDs under it, and nothing else. */
export function nameConstraintsForTrustDomain(trustDomain: string): Uint8Array {
  // GeneralSubtree { base GeneralName } with base uniformResourceIdentifier = host
  const subtree = seq(retag(ia5(trustDomain), 0x86));
  return extension(EXT.nameConstraints, true, seq(tlv(0xa0, subtree)));
}

export interface AgentIdentity {
  instanceId: string;
  taskId?: string | null;
  onBehalfOf?: string | null;
}

export function agentcaIdentity(id: AgentIdentity): Uint8Array {
  const enc = new TextEncoder();
  const parts = [implicitPrimitive(0, enc.encode(id.instanceId))];
  if (id.taskId) parts.push(implicitPrimitive(1, enc.encode(id.taskId)));
  if (id.onBehalfOf) parts.push(implicitPrimitive(2, enc.encode(id.onBehalfOf)));
  return extension(EXT.agentcaIdentity, false, seq(...parts));
}
