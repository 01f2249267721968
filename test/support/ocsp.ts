import * as asn1js from 'asn1js';

/** The status in an OCSP response, with its thisUpdate (ms), read with asn1js. */
export function ocspStatus(der: Uint8Array): { status: 'good' | 'revoked' | 'unknown' | `error:${number}`; thisUpdate?: number } {
  const top = asn1js.fromBER(der).result as asn1js.Sequence;
  const status = (top.valueBlock.value[0] as asn1js.Enumerated).valueBlock.valueDec;
  if (status !== 0) return { status: `error:${status}` };
  const bytes = ((top.valueBlock.value[1] as asn1js.Constructed).valueBlock.value[0] as asn1js.Sequence).valueBlock.value[1] as asn1js.OctetString;
  const basic = asn1js.fromBER(bytes.valueBlock.valueHexView).result as asn1js.Sequence;
  const tbs = basic.valueBlock.value[0] as asn1js.Sequence;
  const responses = tbs.valueBlock.value.find((v) => v instanceof asn1js.Sequence && v.valueBlock.value[0] instanceof asn1js.Sequence) as asn1js.Sequence;
  const single = responses.valueBlock.value[0] as asn1js.Sequence;
  const tag = single.valueBlock.value[1]!.idBlock.tagNumber;
  const thisUpdate = (single.valueBlock.value[2] as asn1js.GeneralizedTime).toDate().getTime();
  return { status: tag === 0 ? 'good' : tag === 1 ? 'revoked' : 'unknown', thisUpdate };
}
