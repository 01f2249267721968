/**
 * The service behind nginx: plain HTTP on loopback, reachable only through nginx. nginx has
 * verified the client certificate (chain and CRL); the service reads who is calling — the
 * SPIFFE ID, the certificate's one URI SAN — from the certificate nginx forwards.
 */
import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function startUpstream(): Promise<{ port: number; server: Server }> {
  const server = createServer((req, res) => {
    const forwarded = req.headers['x-client-cert'];
    if (typeof forwarded !== 'string' || forwarded === '') {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('no client certificate\n');
      return;
    }
    const cert = new X509Certificate(decodeURIComponent(forwarded));
    const spiffeId = /(?:^|, )URI:(spiffe:\/\/[^,]+)/.exec(cert.subjectAltName ?? '')?.[1] ?? 'unknown';
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello ${spiffeId} (certificate ${cert.serialNumber.toLowerCase()})\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { port: (server.address() as AddressInfo).port, server };
}
