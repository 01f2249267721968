/**
 * Who is on the other end of the TLS connection. The listener asks every client for a
 * certificate but lets the handshake finish without one (`requestCert`, no
 * `rejectUnauthorized`) so that /v1/sign, /v1/bundle and /healthz work for anyone; the routes
 * that need a client identity check it here: chained to our CA (OpenSSL's verdict,
 * `socket.authorized`), then — against our own records, on our own clock — issued by us,
 * unrevoked and unexpired.
 */
import type { TLSSocket } from 'node:tls';
import {
  EXT,
  PolicyDenied,
  Unauthenticated,
  bytesEqual,
  parseCertificate,
  parseGeneralNamesDer,
  toHex,
  type CertificateRecord,
  type CertificateStore,
  type Clock,
  type RevocationStore,
} from '@agentca/core';
import type { FastifyRequest } from 'fastify';

/** A client certificate that passed every check, with its record from the store. */
export interface ClientCertificate {
  serial: string;
  spiffeId: string;
  /** DNS SANs of the presented certificate (attested when it was issued). */
  dnsNames: string[];
  record: CertificateRecord;
}

export interface ClientCheckDeps {
  certificates: CertificateStore;
  revocations: RevocationStore;
  clock: Clock;
}

interface PeerCertificate {
  der: Uint8Array;
  authorized: boolean;
  authorizationError: string | null;
}

/** The certificate the client sent on this connection, or null (plain HTTP, `inject()`, no certificate). */
export function peerCertificate(request: FastifyRequest): PeerCertificate | null {
  const socket = request.raw.socket as Partial<TLSSocket> | undefined;
  if (!socket || typeof socket.getPeerCertificate !== 'function') return null;
  const peer = socket.getPeerCertificate(false) as { raw?: Buffer } | null;
  if (!peer || !peer.raw || peer.raw.length === 0) return null;
  const err = socket.authorizationError;
  return {
    der: new Uint8Array(peer.raw.buffer, peer.raw.byteOffset, peer.raw.byteLength),
    authorized: socket.authorized === true,
    authorizationError: err ? String(err) : null,
  };
}

/**
 * The caller's certificate, checked: sent, chained to our CA, stored by us byte for byte,
 * not revoked, within its validity on the CA's clock.
 */
export async function authenticateClient(request: FastifyRequest, deps: ClientCheckDeps): Promise<ClientCertificate> {
  const peer = peerCertificate(request);
  if (!peer) throw new Unauthenticated('ERR_CLIENT_CERTIFICATE_REQUIRED', 'this route needs a client certificate issued by this CA (mTLS)');
  if (!peer.authorized)
    throw new Unauthenticated(
      'ERR_CLIENT_CERTIFICATE_UNTRUSTED',
      `the client certificate does not chain to this CA${peer.authorizationError ? ` (${peer.authorizationError.slice(0, 80)})` : ''}`,
    );
  let serial: string;
  let spiffeId: string | undefined;
  let dnsNames: string[] = [];
  try {
    const cert = parseCertificate(peer.der);
    serial = toHex(cert.serial);
    const san = cert.extensions.get(EXT.subjectAltName);
    if (san) {
      const names = parseGeneralNamesDer(san.value);
      spiffeId = names.uris.length === 1 ? names.uris[0] : undefined;
      dnsNames = names.dnsNames;
    }
  } catch (e) {
    throw new Unauthenticated('ERR_CLIENT_CERTIFICATE_UNKNOWN', 'the client certificate was not issued by this CA', { cause: e });
  }
  const record = await deps.certificates.get(serial);
  // The store's copy decides: a certificate is ours only if we stored exactly these bytes.
  if (!record || !bytesEqual(record.der, peer.der) || spiffeId !== record.spiffeId)
    throw new Unauthenticated('ERR_CLIENT_CERTIFICATE_UNKNOWN', 'the client certificate was not issued by this CA');
  const revocation = await deps.revocations.get(serial);
  if (revocation)
    throw new Unauthenticated('ERR_CLIENT_CERTIFICATE_REVOKED', `the client certificate ${serial} was revoked (${revocation.reason}) at ${revocation.revokedAt.toISOString()}`);
  const now = deps.clock.now().getTime();
  if (now >= record.notAfter.getTime())
    throw new Unauthenticated('ERR_CLIENT_CERTIFICATE_EXPIRED', `the client certificate ${serial} expired at ${record.notAfter.toISOString()}`);
  if (now < record.notBefore.getTime())
    throw new Unauthenticated('ERR_CLIENT_CERTIFICATE_EXPIRED', `the client certificate ${serial} is not valid before ${record.notBefore.toISOString()}`);
  return { serial, spiffeId: record.spiffeId, dnsNames, record };
}

/** An authenticated client whose SPIFFE ID is one of the admins; a workload certificate is refused. */
export async function authenticateAdmin(request: FastifyRequest, deps: ClientCheckDeps, admins: ReadonlySet<string>): Promise<ClientCertificate> {
  const client = await authenticateClient(request, deps);
  if (!admins.has(client.spiffeId)) throw new PolicyDenied('ERR_NOT_ADMIN', `${client.spiffeId} is not an administrator of this CA`);
  return client;
}

/** TLS material of the API listener: the server certificate chain (PEM), its key, and the CA certificates client certificates must chain to. */
export interface ApiTlsMaterial {
  key: string;
  cert: string;
  ca: string;
}

/** The secure-context part of the listener's options (what `setSecureContext` replaces). */
export function secureContextOptions(t: ApiTlsMaterial): { key: string; cert: string; ca: string; minVersion: 'TLSv1.2' } {
  return { key: t.key, cert: t.cert, ca: t.ca, minVersion: 'TLSv1.2' };
}

/**
 * Ask every client for a certificate, but let the handshake finish without one or with a bad
 * one: unauthenticated routes must work, and the routes that need a client identity refuse
 * with a JSON error (authenticateClient) instead of a TLS alert.
 */
export function tlsServerOptions(t: ApiTlsMaterial): ReturnType<typeof secureContextOptions> & { requestCert: true; rejectUnauthorized: false } {
  return { ...secureContextOptions(t), requestCert: true, rejectUnauthorized: false };
}
