import { request } from 'node:https';
import { AgentCAClientError } from './errors.ts';

/** What `/v1/sign` and `/v1/renew` answer (docs/api.md). */
export interface IssuedCertificate {
  certificate: string;
  chain: string;
  serial: string;
  spiffeId: string;
  instanceId: string;
  taskId: string | null;
  notBefore: string;
  notAfter: string;
}

export interface RetireAnswer {
  instanceId: string;
  revoked: number;
  changed: number;
}

export interface CallCredentials {
  caBundle: string;
  bearer?: string;
  /** Client certificate (leaf then chain) and key, PEM, for the mTLS routes. */
  cert?: string;
  key?: string;
  timeoutMs?: number;
}

/** POSTs JSON to the CA's HTTPS API; a refusal becomes an {@link AgentCAClientError}. */
export function postJson<T>(server: string, path: string, body: unknown, creds: CallCredentials): Promise<T> {
  let target: URL;
  try {
    target = new URL(path, server);
  } catch {
    return Promise.reject(new AgentCAClientError('ERR_URL_INVALID', `server ${JSON.stringify(server)} is not a URL`));
  }
  if (target.protocol !== 'https:') return Promise.reject(new AgentCAClientError('ERR_URL_INVALID', 'server must be an https:// URL'));
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise<T>((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'POST',
        // A pooled connection could carry the previous client certificate; the CA identifies
        // the caller by the certificate of the connection.
        agent: false,
        ca: creds.caBundle,
        ...(creds.cert ? { cert: creds.cert, key: creds.key } : {}),
        headers: {
          'content-type': 'application/json',
          'content-length': payload.length,
          ...(creds.bearer ? { authorization: `Bearer ${creds.bearer}` } : {}),
        },
        timeout: creds.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(unreachable(target, e)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let doc: unknown;
          try {
            doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            return reject(new AgentCAClientError('ERR_SERVER_RESPONSE', `the server answered ${status} with a body that is not JSON`, status));
          }
          if (status >= 200 && status < 300) return resolve(doc as T);
          const err = (doc as { error?: { code?: unknown; message?: unknown } } | null)?.error;
          const code = typeof err?.code === 'string' ? err.code : 'ERR_SERVER_ERROR';
          const message = typeof err?.message === 'string' ? err.message : `the server answered ${status}`;
          reject(new AgentCAClientError(code, message, status));
        });
      },
    );
    req.on('timeout', () => req.destroy(new AgentCAClientError('ERR_SERVER_TIMEOUT', `no answer from ${target.origin} in time`)));
    req.on('error', (e) => reject(e instanceof AgentCAClientError ? e : unreachable(target, e)));
    req.end(payload);
  });
}

function unreachable(target: URL, cause: Error): AgentCAClientError {
  return new AgentCAClientError('ERR_SERVER_UNREACHABLE', `cannot reach ${target.origin}: ${cause.message}`, null, { cause });
}
