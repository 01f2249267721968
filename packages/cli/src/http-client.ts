/** The workload side's HTTPS calls to `agentca serve`: server verified against the CA bundle, optional client certificate. */
import { request } from 'node:https';
import { AgentCAError, Conflict, InvalidRequest, NotFound, PolicyDenied, Unauthenticated, Unavailable } from '@agentca/core';

export interface CallOptions {
  ca: string;
  bearer?: string;
  cert?: string;
  key?: string;
  timeoutMs?: number;
}

const BY_STATUS: Record<number, new (code: string, message: string) => AgentCAError> = {
  400: InvalidRequest,
  401: Unauthenticated,
  403: PolicyDenied,
  404: NotFound,
  409: Conflict,
};

/** A refusal from the CA (`{error: {code, message}}` with an HTTP status) as the CLI's error class. */
export function errorForStatus(status: number, code: string, message: string): AgentCAError {
  const Cls = BY_STATUS[status] ?? Unavailable;
  return new Cls(code, message);
}

export function postJson<T>(url: string, path: string, body: unknown, o: CallOptions): Promise<T> {
  let target: URL;
  try {
    target = new URL(path, url);
  } catch {
    return Promise.reject(new InvalidRequest('ERR_URL_INVALID', `--server ${JSON.stringify(url)} is not a URL`));
  }
  if (target.protocol !== 'https:') return Promise.reject(new InvalidRequest('ERR_URL_INVALID', '--server must be an https:// URL'));
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise<T>((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'POST',
        ca: o.ca,
        ...(o.cert ? { cert: o.cert, key: o.key } : {}),
        headers: {
          'content-type': 'application/json',
          'content-length': payload.length,
          ...(o.bearer ? { authorization: `Bearer ${o.bearer}` } : {}),
        },
        timeout: o.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let doc: unknown;
          try {
            doc = JSON.parse(text);
          } catch {
            return reject(new Unavailable('ERR_SERVER_RESPONSE', `the server answered ${res.statusCode} with a body that is not JSON`));
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(doc as T);
          const err = (doc as { error?: { code?: string; message?: string } }).error;
          const code = typeof err?.code === 'string' ? err.code : 'ERR_SERVER_ERROR';
          const message = typeof err?.message === 'string' ? err.message : `the server answered ${status}`;
          reject(errorForStatus(status, code, message));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Unavailable('ERR_SERVER_TIMEOUT', `no answer from ${target.origin} in time`)));
    req.on('error', (e) => reject(e instanceof AgentCAError ? e : new Unavailable('ERR_SERVER_UNREACHABLE', `cannot reach ${target.origin}: ${(e as Error).message}`)));
    req.end(payload);
  });
}
