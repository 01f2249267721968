/**
 * The CA hierarchy: a long-lived root (kept offline if wished) and an online intermediate
 * (pathLen 0) that signs every leaf. Both are built on the same lean encoder as leaves and
 * checked with independent validators in the tests.
 */
import type { Random } from '../ports/random.ts';
import type { Signer } from '../ports/signer.ts';
import { sha1 } from '../encoding.ts';
import { signatureSchemeFor } from '../x509/algorithms.ts';
import { encodeTbsCertificate, parseCertificate, signTbs } from '../x509/certificate.ts';
import {
  authorityKeyIdentifier,
  basicConstraints,
  crlDistributionPoints,
  keyUsage,
  nameConstraintsForTrustDomain,
  subjectKeyIdentifier,
} from '../x509/extensions.ts';
import { encodeName, type DistinguishedName } from '../x509/name.ts';
import { parseSpkiDer } from '../x509/spki.ts';
import { newSerial } from '../issuance/serial.ts';

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export async function keyIdentifier(spki: Uint8Array): Promise<Uint8Array> {
  return sha1(parseSpkiDer(spki).keyBytes);
}

export const DEFAULT_ROOT_TTL_SECONDS = 10 * 365 * 86400;
export const DEFAULT_INTERMEDIATE_TTL_SECONDS = 365 * 86400;

export interface RootOptions {
  subject: DistinguishedName;
  notBefore: Date;
  notAfter: Date;
  random: Random;
}

export async function createRootCertificate(signer: Signer, o: RootOptions): Promise<Uint8Array> {
  const ski = await keyIdentifier(signer.publicKey);
  const name = encodeName(o.subject);
  const tbs = encodeTbsCertificate({
    serial: newSerial(o.random, o.notBefore),
    scheme: signatureSchemeFor(signer.algorithm),
    issuer: name,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    subject: name,
    spki: signer.publicKey,
    extensions: [basicConstraints(true), keyUsage({ keyCertSign: true, cRLSign: true }), subjectKeyIdentifier(ski)],
  });
  return signTbs(tbs, signer);
}

export interface IntermediateOptions {
  subject: DistinguishedName;
  notBefore: Date;
  notAfter: Date;
  random: Random;
  /** Limit the intermediate to SPIFFE IDs (URI SANs) of this trust domain. */
  nameConstraintTrustDomain?: string;
  /** Where the root's CRL is published (relying parties that check every level need it). */
  rootCrlUrls?: string[];
}

export async function createIntermediateCertificate(
  rootSigner: Signer,
  rootCertificate: Uint8Array,
  intermediatePublicKey: Uint8Array,
  o: IntermediateOptions,
): Promise<Uint8Array> {
  const root = parseCertificate(rootCertificate);
  const notAfter = o.notAfter > root.notAfter ? root.notAfter : o.notAfter;
  const extensions = [
    basicConstraints(true, 0),
    keyUsage({ digitalSignature: true, keyCertSign: true, cRLSign: true }),
    subjectKeyIdentifier(await keyIdentifier(intermediatePublicKey)),
    authorityKeyIdentifier(await keyIdentifier(root.spki)),
  ];
  if (o.nameConstraintTrustDomain) extensions.push(nameConstraintsForTrustDomain(o.nameConstraintTrustDomain));
  if (o.rootCrlUrls?.length) extensions.push(crlDistributionPoints(o.rootCrlUrls));
  const tbs = encodeTbsCertificate({
    serial: newSerial(o.random, o.notBefore),
    scheme: signatureSchemeFor(rootSigner.algorithm),
    issuer: root.subject,
    notBefore: o.notBefore,
    notAfter,
    subject: encodeName(o.subject),
    spki: intermediatePublicKey,
    extensions,
  });
  return signTbs(tbs, rootSigner);
}
