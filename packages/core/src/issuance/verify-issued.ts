/**
 * Every certificate is re-parsed and re-checked after signing, before it is stored or
 * returned (SPIRE's credvalidator does the same): a template or encoder bug must fail
 * closed, never reach a workload.
 */
import { InternalError } from '../errors.ts';
import { bytesEqual, toHex } from '../encoding.ts';
import { parseCertificate, type ParsedCertificate, type ParsedExtension } from '../x509/certificate.ts';
import {
  decodeAgentcaIdentity,
  decodeAuthorityKeyIdentifier,
  decodeBasicConstraints,
  decodeExtKeyUsage,
  decodeKeyUsage,
} from '../x509/extension-values.ts';
import { EXT, type ExtKeyUsage } from '../x509/extensions.ts';
import { parseGeneralNamesDer } from '../x509/general-names.ts';

export interface ExpectedLeaf {
  serial: Uint8Array;
  issuerName: Uint8Array;
  issuerKeyId: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  spki: Uint8Array;
  spiffeId: string;
  dnsNames: readonly string[];
  ipAddresses?: readonly string[];
  subjectEmpty: boolean;
  extKeyUsage: readonly ExtKeyUsage[];
  instanceId: string;
  taskId: string | null;
  onBehalfOf: string | null;
}

// Module-level, not closures: under tsx every named inner function is renamed with
// Object.defineProperty each time it is created, and this runs once per certificate.
function fail(what: string): never {
  throw new InternalError('ERR_ISSUED_CERTIFICATE_MISMATCH', `the signed certificate failed its re-check: ${what}`);
}

function extension(c: ParsedCertificate, oid: string): ParsedExtension {
  return c.extensions.get(oid) ?? fail(`extension ${oid} missing`);
}

export function verifyIssued(der: Uint8Array, want: ExpectedLeaf): ParsedCertificate {
  let c: ParsedCertificate;
  try {
    c = parseCertificate(der);
  } catch (e) {
    return fail(`it does not parse (${(e as Error).message})`);
  }
  if (c.version !== 3) fail('not v3');
  if (!bytesEqual(c.serial, want.serial)) fail(`serial ${toHex(c.serial)}`);
  if (!bytesEqual(c.issuer, want.issuerName)) fail('issuer name');
  if (c.notBefore.getTime() !== want.notBefore.getTime() || c.notAfter.getTime() !== want.notAfter.getTime()) fail('validity');
  if (!bytesEqual(c.spki, want.spki)) fail('public key');
  if (want.subjectEmpty !== (c.subject.length === 2)) fail('subject');
  if (c.signatureOid !== c.outerSignatureOid) fail('signature algorithm mismatch');

  const bc = extension(c, EXT.basicConstraints);
  if (!bc.critical || decodeBasicConstraints(bc.value).ca) fail('basicConstraints must be critical CA:FALSE');
  const ku = extension(c, EXT.keyUsage);
  const bits = decodeKeyUsage(ku.value);
  if (!ku.critical || !bits.has('digitalSignature') || bits.has('keyCertSign') || bits.has('cRLSign')) fail('keyUsage');
  const san = extension(c, EXT.subjectAltName);
  if (san.critical !== want.subjectEmpty) fail('SAN criticality');
  const names = parseGeneralNamesDer(san.value);
  if (names.uris.length !== 1 || names.uris[0] !== want.spiffeId) fail('SAN URI');
  if (names.other || names.ipAddresses.join(',') !== (want.ipAddresses ?? []).join(',') || names.dnsNames.join(',') !== want.dnsNames.join(','))
    fail('SAN names');
  if (decodeExtKeyUsage(extension(c, EXT.extKeyUsage).value).join(',') !== want.extKeyUsage.join(',')) fail('extKeyUsage');
  extension(c, EXT.subjectKeyIdentifier);
  const aki = decodeAuthorityKeyIdentifier(extension(c, EXT.authorityKeyIdentifier).value);
  if (!aki || !bytesEqual(aki, want.issuerKeyId)) fail('authorityKeyIdentifier');
  const ident = decodeAgentcaIdentity(extension(c, EXT.agentcaIdentity).value);
  if (ident.instanceId !== want.instanceId || ident.taskId !== want.taskId || ident.onBehalfOf !== want.onBehalfOf) fail('agentca identity');
  const allowed = new Set<string>([
    EXT.basicConstraints,
    EXT.keyUsage,
    EXT.subjectAltName,
    EXT.extKeyUsage,
    EXT.subjectKeyIdentifier,
    EXT.authorityKeyIdentifier,
    EXT.agentcaIdentity,
    EXT.crlDistributionPoints,
    EXT.authorityInfoAccess,
  ]);
  for (const oid of c.extensions.keys()) if (!allowed.has(oid)) fail(`unexpected extension ${oid}`);
  return c;
}
