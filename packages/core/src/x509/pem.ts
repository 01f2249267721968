import { InvalidRequest } from '../errors.ts';
import { fromBase64, toBase64 } from '../encoding.ts';

export function toPem(label: string, der: Uint8Array): string {
  const b64 = toBase64(der);
  let body = b64.length === 0 ? '\n' : '';
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

export interface PemBlock {
  label: string;
  der: Uint8Array;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)\r?\n?-----END ([A-Z0-9 ]+)-----/g;

/** Every PEM block in `text`, in order. Throws InvalidRequest for a block that is not sound base64. */
export function parsePem(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const [, begin, body, end] = m as unknown as [string, string, string, string];
    if (begin !== end) throw new InvalidRequest('ERR_PEM_MALFORMED', `PEM block BEGIN ${begin} ends with END ${end}`);
    const b64 = body.replace(/[\r\n\t ]/g, '');
    let der: Uint8Array;
    try {
      der = fromBase64(b64);
    } catch {
      throw new InvalidRequest('ERR_PEM_MALFORMED', `PEM block ${begin} is not valid base64`);
    }
    if (der.length === 0) throw new InvalidRequest('ERR_PEM_MALFORMED', `PEM block ${begin} is empty`);
    out.push({ label: begin, der });
  }
  return out;
}

/**
 * The DER of the single block labelled one of `labels` in `input`, which may already be DER.
 * Anything else (no block, several, another label, garbage) is an InvalidRequest.
 */
export function derFromPemOrDer(input: Uint8Array | string, labels: readonly string[], what: string): Uint8Array {
  if (typeof input !== 'string') {
    if (input.length > 0 && input[0] === 0x30) return input;
    input = new TextDecoder('utf-8', { fatal: false }).decode(input);
  }
  const blocks = parsePem(input);
  if (blocks.length === 0) throw new InvalidRequest('ERR_PEM_MALFORMED', `no PEM ${what} found`);
  if (blocks.length > 1) throw new InvalidRequest('ERR_PEM_MALFORMED', `expected one PEM ${what}, found ${blocks.length} blocks`);
  const b = blocks[0]!;
  if (!labels.includes(b.label)) throw new InvalidRequest('ERR_PEM_MALFORMED', `expected a PEM ${what}, found ${b.label}`);
  return b.der;
}
