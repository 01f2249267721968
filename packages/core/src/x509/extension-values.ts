/**
 * Decoders for the extension values agentca writes, used to re-check a signed certificate
 * against what was meant (not against the encoder's own template).
 */
import { EKU, type ExtKeyUsage } from './extensions.ts';
import { TAG, children, content, expectTag, readBitString, readBoolean, readElement, readOid, readSmallInteger, readString } from './der.ts';

export function decodeBasicConstraints(v: Uint8Array): { ca: boolean; pathLen: number | null } {
  const top = readElement(v, 0);
  const parts = children(v, expectTag(top, TAG.SEQUENCE, 'basicConstraints'));
  let i = 0;
  const ca = parts[i]?.tag === TAG.BOOLEAN ? readBoolean(v, parts[i++]!) : false;
  const pathLen = parts[i]?.tag === TAG.INTEGER ? readSmallInteger(v, parts[i]!) : null;
  return { ca, pathLen };
}

const KU_NAMES = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'];

export function decodeKeyUsage(v: Uint8Array): Set<string> {
  const { bytes } = readBitString(v, readElement(v, 0), true);
  const out = new Set<string>();
  KU_NAMES.forEach((name, bit) => {
    const byte = bytes[bit >> 3] ?? 0;
    if (byte & (0x80 >> (bit & 7))) out.add(name);
  });
  return out;
}

export function decodeExtKeyUsage(v: Uint8Array): string[] {
  const top = readElement(v, 0);
  return children(v, expectTag(top, TAG.SEQUENCE, 'extKeyUsage')).map((e) => {
    const o = readOid(v, e);
    const name = (Object.keys(EKU) as ExtKeyUsage[]).find((k) => EKU[k] === o);
    return name ?? o;
  });
}

export function decodeSubjectKeyIdentifier(v: Uint8Array): Uint8Array {
  return content(v, expectTag(readElement(v, 0), TAG.OCTET_STRING, 'subjectKeyIdentifier'));
}

export function decodeAuthorityKeyIdentifier(v: Uint8Array): Uint8Array | null {
  const parts = children(v, expectTag(readElement(v, 0), TAG.SEQUENCE, 'authorityKeyIdentifier'));
  const kid = parts.find((p) => p.tag === 0x80);
  return kid ? content(v, kid) : null;
}

export function decodeAgentcaIdentity(v: Uint8Array): { instanceId: string | null; taskId: string | null; onBehalfOf: string | null } {
  const out = { instanceId: null as string | null, taskId: null as string | null, onBehalfOf: null as string | null };
  for (const p of children(v, expectTag(readElement(v, 0), TAG.SEQUENCE, 'agentca identity'))) {
    const s = readString(v, p);
    if (p.tag === 0x80) out.instanceId = s;
    if (p.tag === 0x81) out.taskId = s;
    if (p.tag === 0x82) out.onBehalfOf = s;
  }
  return out;
}
