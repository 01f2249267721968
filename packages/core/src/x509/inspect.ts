/**
 * Human-readable descriptions of certificates, CSRs and CRLs, decoded by @peculiar/x509 —
 * an implementation independent of the lean encoder, so `agentca inspect` shows what another
 * parser reads in agentca's output.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { InvalidRequest } from '../errors.ts';
import { toHex } from '../encoding.ts';
import { decodeAgentcaIdentity } from './extension-values.ts';
import { EXT, EKU } from './extensions.ts';
import { parsePem } from './pem.ts';

export interface Description {
  kind: 'certificate' | 'certificate request' | 'crl';
  fields: [string, string][];
}

const EKU_NAMES: Record<string, string> = Object.fromEntries(Object.entries(EKU).map(([k, v]) => [v, k]));

function keyDescription(alg: { name: string; namedCurve?: string; modulusLength?: number }): string {
  if (alg.name === 'ECDSA') return `ECDSA ${alg.namedCurve}`;
  if (alg.name.startsWith('RSA')) return `RSA ${alg.modulusLength ?? ''}`.trim();
  return alg.name;
}

function extensionFields(exts: readonly x509.Extension[]): [string, string][] {
  const out: [string, string][] = [];
  for (const e of exts) {
    const crit = e.critical ? ' (critical)' : '';
    if (e instanceof x509.SubjectAlternativeNameExtension) {
      for (const n of e.names.items) out.push([n.type === 'url' ? 'SAN URI' : `SAN ${n.type}`, n.value + crit]);
    } else if (e instanceof x509.BasicConstraintsExtension) {
      out.push(['basic constraints', `CA:${e.ca ? 'TRUE' : 'FALSE'}${e.pathLength !== undefined ? `, pathLen ${e.pathLength}` : ''}${crit}`]);
    } else if (e instanceof x509.KeyUsagesExtension) {
      const names = Object.entries(x509.KeyUsageFlags).filter(([, v]) => typeof v === 'number' && (e.usages & (v as number)) !== 0).map(([k]) => k);
      out.push(['key usage', names.join(', ') + crit]);
    } else if (e instanceof x509.ExtendedKeyUsageExtension) {
      out.push(['extended key usage', e.usages.map((u) => EKU_NAMES[String(u)] ?? String(u)).join(', ') + crit]);
    } else if (e instanceof x509.SubjectKeyIdentifierExtension) {
      out.push(['subject key id', e.keyId]);
    } else if (e instanceof x509.AuthorityKeyIdentifierExtension) {
      out.push(['authority key id', e.keyId ?? '']);
    } else if (e instanceof x509.CRLDistributionPointsExtension) {
      for (const dp of e.distributionPoints) for (const n of dp.distributionPoint?.fullName ?? []) out.push(['CRL distribution point', n.uniformResourceIdentifier ?? '']);
    } else if (e instanceof x509.AuthorityInfoAccessExtension) {
      for (const n of e.ocsp) out.push(['OCSP', n.value]);
      for (const n of e.caIssuers) out.push(['CA issuers', n.value]);
    } else if (e.type === EXT.agentcaIdentity) {
      const id = decodeAgentcaIdentity(new Uint8Array(e.value));
      out.push(['instance', id.instanceId ?? '']);
      if (id.taskId) out.push(['task', id.taskId]);
      if (id.onBehalfOf) out.push(['on behalf of', id.onBehalfOf]);
    } else {
      out.push([`extension ${e.type}`, `${toHex(new Uint8Array(e.value)).slice(0, 64)}${crit}`]);
    }
  }
  return out;
}

function describeCertificate(der: Uint8Array): Description {
  const c = new x509.X509Certificate(der as BufferSource);
  return {
    kind: 'certificate',
    fields: [
      ['serial', c.serialNumber.toLowerCase()],
      ['subject', c.subject || '(empty)'],
      ['issuer', c.issuer || '(empty)'],
      ['not before', c.notBefore.toISOString()],
      ['not after', c.notAfter.toISOString()],
      ['key', keyDescription(c.publicKey.algorithm as never)],
      ['signature', String((c.signatureAlgorithm as { name: string; hash?: { name: string } }).name) + ((c.signatureAlgorithm as { hash?: { name: string } }).hash ? ` ${(c.signatureAlgorithm as { hash: { name: string } }).hash.name}` : '')],
      ...extensionFields(c.extensions),
    ],
  };
}

function describeCsr(der: Uint8Array): Description {
  const r = new x509.Pkcs10CertificateRequest(der as BufferSource);
  return {
    kind: 'certificate request',
    fields: [['subject', r.subject || '(empty)'], ['key', keyDescription(r.publicKey.algorithm as never)], ...extensionFields(r.extensions)],
  };
}

function describeCrl(der: Uint8Array): Description {
  const l = new x509.X509Crl(der as BufferSource);
  const fields: [string, string][] = [
    ['issuer', l.issuer],
    ['this update', l.thisUpdate.toISOString()],
    ['next update', l.nextUpdate?.toISOString() ?? '(none)'],
    ['revoked', String(l.entries.length)],
  ];
  for (const e of l.entries.slice(0, 50)) fields.push(['revoked serial', `${e.serialNumber.toLowerCase()} at ${e.revocationDate.toISOString()}${e.reason !== undefined ? ` reason ${e.reason}` : ''}`]);
  return { kind: 'crl', fields };
}

/** Describes every certificate, CSR or CRL in `input` (PEM, possibly several blocks, or one DER). */
export function describe(input: Uint8Array): Description[] {
  const text = new TextDecoder().decode(input);
  const blocks = text.includes('-----BEGIN ') ? parsePem(text) : [{ label: '', der: input }];
  if (blocks.length === 0) throw new InvalidRequest('ERR_INSPECT_UNRECOGNISED', 'no certificate, CSR or CRL found');
  return blocks.map(({ label, der }) => {
    const tries: [string, (d: Uint8Array) => Description][] =
      label === 'CERTIFICATE'
        ? [['certificate', describeCertificate]]
        : label === 'CERTIFICATE REQUEST' || label === 'NEW CERTIFICATE REQUEST'
          ? [['csr', describeCsr]]
          : label === 'X509 CRL'
            ? [['crl', describeCrl]]
            : [['certificate', describeCertificate], ['csr', describeCsr], ['crl', describeCrl]];
    for (const [, fn] of tries) {
      try {
        return fn(der);
      } catch {
        /* try the next kind */
      }
    }
    throw new InvalidRequest('ERR_INSPECT_UNRECOGNISED', label ? `the ${label} block does not parse` : 'the input is not a certificate, CSR or CRL');
  });
}
