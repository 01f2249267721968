/**
 * The tool: an HTTPS service that agents call over mTLS. It has an agentca identity of its
 * own (its server certificate, kept renewed by the SDK), lets in only the SPIFFE IDs on its
 * allow-list, and refuses a caller whose certificate is revoked — checked on every request
 * against the CA's CRL, fetched and signature-checked by the SDK's CrlChecker.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { AgentIdentity, CrlChecker, authorizePeer, normalizeSerial, peerSpiffeId } from '@agentca/client';

export interface ToolOptions {
  /** The CA's HTTPS API and trust bundle, and a join token for the tool's own identity. */
  caServer: string;
  caBundle: string;
  token: string;
  /** The CA's CRL (`agentca serve`: `http://…/crl`) and the issuing CA certificate that signs it. */
  crlUrl: string;
  issuerCertificatePem: string;
  /** Who may call. */
  allow: readonly string[];
}

export interface Tool {
  url: string;
  spiffeId: string;
  crl: CrlChecker;
  close(): Promise<void>;
}

export async function startTool(o: ToolOptions): Promise<Tool> {
  const identity = await AgentIdentity.bootstrap({ server: o.caServer, caBundle: o.caBundle, token: o.token });

  // The default refresh is 1 s; a tool that must cut a caller off within a second of the
  // revocation (the CA publishes within ~100 ms) polls faster. The CRL is a small static file.
  const crl = new CrlChecker({ url: o.crlUrl, issuerCertificatePem: o.issuerCertificatePem, refreshMs: 200 });
  crl.on('error', (e) => console.error(`[tool]     crl fetch failed: ${e.message}`));
  crl.start();
  await crl.refresh();
  if (!crl.crl) throw new Error(`the tool could not load the CRL from ${o.crlUrl}`);

  const server = https.createServer(identity.serverOptions(), (req, res) => {
    const socket = req.socket as TLSSocket;
    const caller = peerSpiffeId(socket);
    const deny = (reason: string): void => {
      res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ error: reason }));
    };
    if (!authorizePeer(socket, o.allow)) return deny(`${caller ?? 'a caller without a SPIFFE ID'} is not on the allow-list`);
    const serial = normalizeSerial(socket.getPeerCertificate().serialNumber);
    if (!crl.isAllowed(socket)) {
      return deny(crl.status(serial) === 'revoked' ? `certificate ${serial} is revoked` : 'revocation status unknown (no current CRL): refused');
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ caller, tool: identity.spiffeId, invoices: ['inv-1001', 'inv-1002'] }));
  });
  identity.keepCurrent(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `https://127.0.0.1:${port}`,
    spiffeId: identity.spiffeId,
    crl,
    async close() {
      crl.stop();
      identity.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
