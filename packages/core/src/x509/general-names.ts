import { InvalidRequest } from '../errors.ts';
import { content, readElement, children, readString, type DerElement } from './der.ts';

/** The names of a subjectAltName, split by kind. `other` counts kinds agentca never issues. */
export interface GeneralNames {
  uris: string[];
  dnsNames: string[];
  ipAddresses: string[];
  other: number;
}

function ipToString(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length === 16) {
    const parts: string[] = [];
    for (let i = 0; i < 16; i += 2) parts.push(((b[i]! << 8) | b[i + 1]!).toString(16));
    return parts.join(':');
  }
  throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: an IP address SAN is neither 4 nor 16 bytes');
}

/** Parses a GeneralNames SEQUENCE (the value of a subjectAltName extension). */
export function parseGeneralNames(buf: Uint8Array, el: DerElement): GeneralNames {
  const out: GeneralNames = { uris: [], dnsNames: [], ipAddresses: [], other: 0 };
  for (const n of children(buf, el)) {
    switch (n.tag) {
      case 0x86:
        out.uris.push(ascii(buf, n));
        break;
      case 0x82:
        out.dnsNames.push(ascii(buf, n));
        break;
      case 0x87:
        out.ipAddresses.push(ipToString(content(buf, n)));
        break;
      default:
        out.other++;
    }
  }
  return out;
}

function ascii(buf: Uint8Array, el: DerElement): string {
  const s = readString(buf, el);
  if (!/^[\x20-\x7e]*$/.test(s)) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: a SAN is not printable ASCII (IA5String)');
  return s;
}

export function parseGeneralNamesDer(value: Uint8Array): GeneralNames {
  const el = readElement(value, 0);
  if (el.end !== value.length || el.tag !== 0x30) throw new InvalidRequest('ERR_DER_MALFORMED', 'malformed DER: subjectAltName is not one SEQUENCE');
  return parseGeneralNames(value, el);
}
