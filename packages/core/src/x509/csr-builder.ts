/** Building a PKCS#10 request for a key behind a Signer (the operator's admin key, tests, tools). */
import type { Signer } from '../ports/signer.ts';
import { concatBytes } from '../encoding.ts';
import { oid, seq, set, smallInteger, tlv } from './der.ts';
import { signTbs } from './certificate.ts';
import { encodeName, type DistinguishedName } from './name.ts';
import { subjectAltName, type AltNames } from './extensions.ts';

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

export async function buildCsr(signer: Signer, o: { subject?: DistinguishedName; altNames?: AltNames } = {}): Promise<Uint8Array> {
  const attrs: Uint8Array[] = [];
  if (o.altNames) attrs.push(seq(oid(OID_EXTENSION_REQUEST), set(seq(subjectAltName(o.altNames, false)))));
  const info = seq(smallInteger(0), encodeName(o.subject ?? {}), signer.publicKey, tlv(0xa0, concatBytes(attrs)));
  return signTbs(info, signer);
}

