import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface BoundedRequest {
  method: 'GET' | 'POST';
  headers: OutgoingHttpHeaders;
  body?: Buffer;
  timeoutMs: number;
  /** Larger answers are cut off with `${what}: ${tooLarge}`. */
  maxBytes: number;
  /** The prefix of every error message (`crl`, `ocsp`). */
  what: string;
  tooLarge: string;
}

/** One HTTP(S) request whose answer must be 200 and at most `maxBytes`, within `timeoutMs`: the CRL and OCSP checkers' fetch. */
export function boundedFetch(url: string, r: BoundedRequest): Promise<Buffer> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: r.method, headers: r.headers, timeout: r.timeoutMs }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`${r.what}: ${r.method} ${url} answered ${res.statusCode}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > r.maxBytes) req.destroy(new Error(`${r.what}: ${r.tooLarge}`));
        else chunks.push(c);
      });
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${r.what}: ${r.method} ${url} timed out after ${r.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(r.body);
  });
}
