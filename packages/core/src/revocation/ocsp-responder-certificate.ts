/**
 * The delegated OCSP responder certificate (RFC 6960 §4.2.2.2): issued by the issuing CA to a
 * separate, short-lived key, so the CA key signs once a day instead of once per response.
 */
import { InternalError } from '../errors.ts';
import { bytesEqual } from '../encoding.ts';
import type { Random } from '../ports/random.ts';
import type { Signer } from '../ports/signer.ts';
import { keyIdentifier } from '../ca/hierarchy.ts';
import { newSerial } from '../issuance/serial.ts';
import { signatureSchemeFor } from '../x509/algorithms.ts';
import { encodeTbsCertificate, parseCertificate, signTbs, type ParsedCertificate } from '../x509/certificate.ts';
import { decodeBasicConstraints, decodeExtKeyUsage, decodeKeyUsage } from '../x509/extension-values.ts';
import { EXT, authorityKeyIdentifier, basicConstraints, extKeyUsage, extension, keyUsage, subjectKeyIdentifier } from '../x509/extensions.ts';
import { derNull } from '../x509/der.ts';
import { encodeName } from '../x509/name.ts';

/** id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): relying parties need not check the responder's own revocation. */
export const OCSP_NOCHECK_OID = '1.3.6.1.5.5.7.48.1.5';

export const OCSP_RESPONDER_COMMON_NAME = 'agentca OCSP responder';

export interface OcspResponderCertificateOptions {
  /** The issuing CA certificate (DER): the CA whose certificates the responder answers for. */
  issuerCertificate: Uint8Array;
  /** The issuing CA's signer. */
  issuerSigner: Signer;
  /** The responder key's SubjectPublicKeyInfo (DER). */
  responderPublicKey: Uint8Array;
  notBefore: Date;
  /** Clamped at the issuing CA's notAfter. Keep it short (a day) and rotate at half-life. */
  notAfter: Date;
  random: Random;
}

/**
 * Issues a delegated OCSP responder certificate: CN "agentca OCSP responder", CA:FALSE
 * (critical), keyUsage digitalSignature (critical), EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck,
 * SKI and AKI. Relying parties accept it because the CA that issued the certificate in question
 * issued it with OCSPSigning (RFC 6960 §4.2.2.2); nocheck spares them a revocation check of the
 * responder itself, which is why it must be short-lived.
 *
 * Throws InternalError `ERR_KEY_PAIR_MISMATCH` when `issuerSigner` is not the issuing CA's key,
 * and `ERR_ISSUED_CERTIFICATE_MISMATCH` when the signed certificate fails its re-check.
 *
 * @example
 * const der = await createOcspResponderCertificate({
 *   issuerCertificate: intermediate, issuerSigner, responderPublicKey: responderSigner.publicKey,
 *   notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000), random: webCryptoRandom });
 */
export async function createOcspResponderCertificate(o: OcspResponderCertificateOptions): Promise<Uint8Array> {
  const issuer = parseCertificate(o.issuerCertificate);
  if (!bytesEqual(issuer.spki, o.issuerSigner.publicKey)) {
    throw new InternalError('ERR_KEY_PAIR_MISMATCH', 'the issuer signer does not hold the key of the issuing CA certificate');
  }
  const notAfter = o.notAfter > issuer.notAfter ? issuer.notAfter : o.notAfter;
  const serial = newSerial(o.random, o.notBefore);
  const tbs = encodeTbsCertificate({
    serial,
    scheme: signatureSchemeFor(o.issuerSigner.algorithm),
    issuer: issuer.subject,
    notBefore: o.notBefore,
    notAfter,
    subject: encodeName({ commonName: OCSP_RESPONDER_COMMON_NAME }),
    spki: o.responderPublicKey,
    extensions: [
      basicConstraints(false),
      keyUsage({ digitalSignature: true }),
      extKeyUsage(['ocspSigning']),
      subjectKeyIdentifier(await keyIdentifier(o.responderPublicKey)),
      authorityKeyIdentifier(await keyIdentifier(issuer.spki)),
      extension(OCSP_NOCHECK_OID, false, derNull()),
    ],
  });
  const der = await signTbs(tbs, o.issuerSigner);
  recheck(der, { serial, issuer, notBefore: o.notBefore, notAfter, spki: o.responderPublicKey });
  return der;
}

function recheck(der: Uint8Array, want: { serial: Uint8Array; issuer: ParsedCertificate; notBefore: Date; notAfter: Date; spki: Uint8Array }): void {
  const fail = (what: string): never => {
    throw new InternalError('ERR_ISSUED_CERTIFICATE_MISMATCH', `the signed OCSP responder certificate failed its re-check: ${what}`);
  };
  let c: ParsedCertificate;
  try {
    c = parseCertificate(der);
  } catch (e) {
    return fail(`it does not parse (${(e as Error).message})`);
  }
  if (!bytesEqual(c.serial, want.serial)) fail('serial');
  if (!bytesEqual(c.issuer, want.issuer.subject)) fail('issuer name');
  if (c.notBefore.getTime() !== Math.floor(want.notBefore.getTime() / 1000) * 1000) fail('notBefore');
  if (c.notAfter.getTime() !== Math.floor(want.notAfter.getTime() / 1000) * 1000) fail('notAfter');
  if (!bytesEqual(c.spki, want.spki)) fail('public key');
  const ext = (id: string) => c.extensions.get(id) ?? fail(`extension ${id} missing`);
  const bc = ext(EXT.basicConstraints);
  if (!bc.critical || decodeBasicConstraints(bc.value).ca) fail('basicConstraints must be critical CA:FALSE');
  const ku = ext(EXT.keyUsage);
  const bits = decodeKeyUsage(ku.value);
  if (!ku.critical || bits.size !== 1 || !bits.has('digitalSignature')) fail('keyUsage must be critical digitalSignature');
  if (decodeExtKeyUsage(ext(EXT.extKeyUsage).value).join() !== 'ocspSigning') fail('extKeyUsage must be id-kp-OCSPSigning');
  if (!bytesEqual(ext(OCSP_NOCHECK_OID).value, derNull())) fail('id-pkix-ocsp-nocheck must be NULL');
}
