import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { seq, tlv } from './der.ts';

/** ecdsa-with-SHA256 (RFC 5758 §3.2): the AlgorithmIdentifier has no parameters. */
const ECDSA_WITH_SHA256 = seq(Buffer.from('06082a8648ce3d040302', 'hex'));

export interface WorkloadKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** A fresh ECDSA P-256 key pair, in memory only. */
export function generateWorkloadKey(): WorkloadKey {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

/**
 * A PKCS#10 request (RFC 2986), PEM: empty subject, no attributes, signed with ECDSA P-256 /
 * SHA-256. The CA takes only the public key and the proof of possession from it.
 */
export function createCsr(key: WorkloadKey): string {
  const info = seq(
    tlv(0x02, Buffer.from([0])),
    seq(),
    key.publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa0),
  );
  const signature = sign('sha256', info, { key: key.privateKey, dsaEncoding: 'der' });
  const der = seq(info, ECDSA_WITH_SHA256, tlv(0x03, Buffer.from([0]), signature));
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}-----END CERTIFICATE REQUEST-----\n`;
}
