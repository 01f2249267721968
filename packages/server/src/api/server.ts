/** The API on a TLS listener: what `agentca serve` runs. */
import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { buildApiServer } from './app.ts';
import type { ApiServerOptions } from './context.ts';
import { secureContextOptions, type ApiTlsMaterial } from './mtls.ts';

export interface StartApiServerOptions extends Omit<ApiServerOptions, 'https'> {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** `cert`: the server certificate chain (leaf then intermediate), PEM; `ca`: root and intermediate, PEM. */
  https: ApiTlsMaterial;
}

export interface ApiServerHandle {
  readonly port: number;
  readonly app: FastifyInstance;
  close(): Promise<void>;
  /**
   * Swaps the server certificate (renewal) for new connections; open connections keep theirs.
   * `ca` replaces the client-certificate trust anchors too when given (CA rotation).
   */
  setCertificate(cert: string, key: string, ca?: string): void;
}

/**
 * Builds the API and listens with TLS.
 *
 * @example
 * const api = await startApiServer({ ...parts, port: 8443, https: { key, cert: leafThenIntermediate, ca: rootThenIntermediate } });
 * // on renewal of the server certificate:
 * api.setCertificate(newCertChainPem, newKeyPem);
 * await api.close();
 */
export async function startApiServer(o: StartApiServerOptions): Promise<ApiServerHandle> {
  const { host = '127.0.0.1', port = 0, ...rest } = o;
  const app = buildApiServer(rest);
  await app.listen({ host, port });
  const server = app.server as unknown as TlsServer;
  let ca = o.https.ca;
  return {
    port: (server.address() as AddressInfo).port,
    app,
    close: () => app.close(),
    setCertificate(cert, key, newCa) {
      if (newCa !== undefined) ca = newCa;
      server.setSecureContext(secureContextOptions({ key, cert, ca }));
    },
  };
}
