/**
 * Driving several `agentca serve` replicas of one CA over their real listeners: join tokens
 * minted in-process through the CA's own store, workload sign requests and admin revocations
 * over HTTPS, OCSP requests built from one openssl-made template, OCSP and CRL answers read
 * with asn1js (independent of agentca's encoder).
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import { buildCsr, toPem } from '@agentca/core';
import { joinTokensOf, KeyObjectSigner, openCaDir } from '@agentca/node';
import { ok } from './cli.ts';
import { ocspStatus } from './ocsp.ts';

/** A P-256 CSR (PEM) made in-process; the CA ignores its subject. */
export async function csrPem(): Promise<string> {
  const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return toPem('CERTIFICATE REQUEST', await buildCsr(new KeyObjectSigner('ec-p256', k.privateKey, k.publicKey), { subject: { commonName: 'ignored' } }));
}

/** `n` join tokens for `spiffe://TD/agent/<prefix><i>`, minted through the CA's store (whatever database agentca.json names). */
export async function mintTokens(dir: string, n: number, prefix = 'w'): Promise<string[]> {
  const ca = await openCaDir(dir);
  try {
    const jt = joinTokensOf(ca);
    const out: string[] = [];
    for (let i = 0; i < n; i += 500) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(500, n - i) }, (_, k) =>
          jt.create({ spiffeId: `spiffe://${ca.config.trustDomain}/agent/${prefix}${i + k}`, profile: 'default', ttlSeconds: 3600, actor: 'operator' }),
        ),
      );
      out.push(...batch.map((t) => t.token));
    }
    return out;
  } finally {
    await ca.close();
  }
}

export interface Answer {
  status: number;
  body: any;
}

/** HTTPS to the replicas' APIs: keep-alive connections that trust the CA's root; `admin` adds the operator's client certificate. */
export class ApiClient {
  readonly #agent: https.Agent;

  constructor(dir: string, o: { admin?: boolean; maxSockets?: number } = {}) {
    this.#agent = new https.Agent({
      keepAlive: true,
      maxSockets: o.maxSockets ?? 64,
      ca: readFileSync(join(dir, 'root.pem'), 'utf8'),
      ...(o.admin ? { cert: readFileSync(join(dir, 'admin', 'operator.pem')), key: readFileSync(join(dir, 'admin', 'operator.key.pem')) } : {}),
    });
  }

  post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    const text = JSON.stringify(body);
    return this.#request('POST', url, text, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  }

  get(url: string): Promise<Answer> {
    return this.#request('GET', url, '', {});
  }

  #request(method: 'GET' | 'POST', url: string, text: string, headers: Record<string, string>): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        { method, agent: this.#agent, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const raw = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = raw;
            try {
              parsed = JSON.parse(raw);
            } catch {
              /* not JSON */
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        },
      );
      req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end(text);
    });
  }

  sign(apiUrl: string, token: string, csr: string): Promise<Answer> {
    return this.post(`${apiUrl}/v1/sign`, { csr }, { authorization: `Bearer ${token}` });
  }

  revoke(apiUrl: string, serial: string, reason = 'superseded'): Promise<Answer> {
    return this.post(`${apiUrl}/v1/revoke`, { serial, reason });
  }

  close(): void {
    this.#agent.destroy();
  }
}

/**
 * OCSP requests (SHA-1 CertID, no nonce) for serials of the CA in `dir`: openssl builds one for a
 * fixed 20-byte serial, and every agentca serial (20 bytes, 0x4a first) is put in its place.
 */
export async function ocspRequests(dir: string, scratch: string): Promise<(serial: string) => Uint8Array> {
  const template = '4a' + '00'.repeat(18) + 'ab';
  const out = join(scratch, 'ocsp-template.der');
  await ok('openssl', ['ocsp', '-issuer', join(dir, 'intermediate.pem'), '-serial', `0x${template}`, '-no_nonce', '-reqout', out]);
  const der = readFileSync(out);
  const at = der.indexOf(Buffer.from(`0214${template}`, 'hex'));
  if (at < 0 || der.indexOf(Buffer.from(template, 'hex'), at + 3) >= 0) throw new Error('unexpected OCSP request template');
  return (serial: string) => {
    if (!/^4a[0-9a-f]{38}$/.test(serial)) throw new Error(`not an agentca serial: ${serial}`);
    const copy = Buffer.from(der);
    Buffer.from(serial, 'hex').copy(copy, at + 2);
    return new Uint8Array(copy);
  };
}

/** An OCSP request with a nonce (as `openssl ocsp` sends by default), made by openssl. */
export async function ocspRequestWithNonce(dir: string, scratch: string, serial: string): Promise<Uint8Array> {
  const out = join(scratch, `ocsp-nonce-${serial}.der`);
  await ok('openssl', ['ocsp', '-issuer', join(dir, 'intermediate.pem'), '-serial', `0x${serial}`, '-reqout', out]);
  return new Uint8Array(readFileSync(out));
}

/** POSTs an OCSP request; the response's status for its one serial, or `error:N` for an OCSPResponseStatus. */
export async function ocsp(httpUrl: string, request: Uint8Array): Promise<ReturnType<typeof ocspStatus>> {
  const r = await fetch(`${httpUrl}/ocsp`, { method: 'POST', body: Buffer.from(request), headers: { 'content-type': 'application/ocsp-request' } });
  if (r.status !== 200) throw new Error(`OCSP answered HTTP ${r.status}`);
  return ocspStatus(new Uint8Array(await r.arrayBuffer()));
}


/** The CRL a replica serves now: its number and whether it lists each serial (read with asn1js). */
export async function servedCrl(httpUrl: string): Promise<{ der: Uint8Array; number: bigint; serials: Set<string> }> {
  const r = await fetch(`${httpUrl}/crl`);
  if (r.status !== 200) throw new Error(`GET /crl answered HTTP ${r.status}`);
  const der = new Uint8Array(await r.arrayBuffer());
  const tbs = (asn1js.fromBER(der).result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
  const serials = new Set<string>();
  let number = -1n;
  for (const part of tbs.valueBlock.value) {
    if (part instanceof asn1js.Sequence && part.valueBlock.value[0] instanceof asn1js.Sequence) {
      for (const entry of part.valueBlock.value as asn1js.Sequence[]) {
        serials.add(Buffer.from((entry.valueBlock.value[0] as asn1js.Integer).valueBlock.valueHexView).toString('hex').replace(/^00/, ''));
      }
    }
    if (part.idBlock.tagClass === 3 && part.idBlock.tagNumber === 0) {
      for (const ext of ((part as asn1js.Constructed).valueBlock.value[0] as asn1js.Sequence).valueBlock.value as asn1js.Sequence[]) {
        if ((ext.valueBlock.value[0] as asn1js.ObjectIdentifier).valueBlock.toString() !== '2.5.29.20') continue;
        const octets = ext.valueBlock.value[ext.valueBlock.value.length - 1] as asn1js.OctetString;
        const n = asn1js.fromBER(octets.valueBlock.valueHexView).result as asn1js.Integer;
        number = BigInt(`0x${Buffer.from(n.valueBlock.valueHexView).toString('hex')}`);
      }
    }
  }
  return { der, number, serials };
}

/** Events of one kind from a replica's structured log. */
export function logEvents(logs: readonly string[], event: string): Record<string, any>[] {
  const out: Record<string, any>[] = [];
  for (const line of logs) {
    try {
      const j = JSON.parse(line) as Record<string, any>;
      if (j.event === event) out.push(j);
    } catch {
      /* not JSON */
    }
  }
  return out;
}
