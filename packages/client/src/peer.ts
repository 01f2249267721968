import type { TLSSocket } from 'node:tls';
import { CrlChecker } from './crl-checker.ts';
import type { OcspChecker } from './ocsp-checker.ts';

/**
 * The SPIFFE ID of the peer: the single URI SAN of its certificate, or `null` when there is
 * no certificate, no URI SAN, more than one (X.509-SVID allows exactly one), or it is not a
 * `spiffe://` URI. It does not say whether the chain was verified: see {@link authorizePeer}.
 *
 * @example
 * ```ts
 * https.createServer(identity.serverOptions(), (req, res) => {
 *   const caller = peerSpiffeId(req.socket as tls.TLSSocket);
 * });
 * ```
 */
export function peerSpiffeId(socket: TLSSocket): string | null {
  const cert = socket.getPeerCertificate?.();
  if (!cert || typeof cert.subjectaltname !== 'string') return null;
  return spiffeIdFromSubjectAltName(cert.subjectaltname);
}

/** Reads Node's `subjectaltname` string (`DNS:a, URI:spiffe://…`); Node quotes entries holding `, `. */
export function spiffeIdFromSubjectAltName(san: string): string | null {
  const uris: string[] = [];
  for (const m of san.matchAll(/(?:^|, )(?:URI:([^,"]*)|URI:"((?:[^"\\]|\\.)*)")/g)) {
    uris.push(m[1] ?? JSON.parse(`"${m[2]}"`));
  }
  if (uris.length !== 1) return null;
  const id = uris[0]!;
  return /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/.test(id) ? id : null;
}

/** Who may call: a list of SPIFFE IDs, or a predicate over one. */
export type PeerPolicy = readonly string[] | ((spiffeId: string) => boolean);

/**
 * True when the peer's chain verified against the trust bundle and its SPIFFE ID is allowed.
 *
 * @example
 * ```ts
 * https.createServer(identity.serverOptions(), (req, res) => {
 *   if (!authorizePeer(req.socket as tls.TLSSocket, ['spiffe://example.org/agent/billing'])) {
 *     res.writeHead(403).end();
 *     return;
 *   }
 *   res.end('ok');
 * });
 * ```
 */
export function authorizePeer(socket: TLSSocket, allow: PeerPolicy): boolean {
  if (!socket.authorized) return false;
  const id = peerSpiffeId(socket);
  if (id === null) return false;
  return typeof allow === 'function' ? allow(id) === true : allow.includes(id);
}

/**
 * {@link authorizePeer} and then the revocation check: true when the peer's chain verified, its
 * SPIFFE ID is allowed, and its serial is `good` — on a current CRL (a {@link CrlChecker}: answers
 * at once) or in a verified OCSP answer (an {@link OcspChecker}: answers a promise). It fails
 * closed: a revocation status that cannot be established is a refusal.
 *
 * @example
 * ```ts
 * if (!authorizePeerWithRevocation(req.socket as tls.TLSSocket, ['spiffe://example.org/agent/billing'], crl)) res.writeHead(403).end();
 * if (!(await authorizePeerWithRevocation(req.socket as tls.TLSSocket, ['spiffe://example.org/agent/billing'], ocsp))) res.writeHead(403).end();
 * ```
 */
export function authorizePeerWithRevocation(socket: TLSSocket, allow: PeerPolicy, checker: CrlChecker): boolean;
export function authorizePeerWithRevocation(socket: TLSSocket, allow: PeerPolicy, checker: OcspChecker): Promise<boolean>;
export function authorizePeerWithRevocation(socket: TLSSocket, allow: PeerPolicy, checker: CrlChecker | OcspChecker): boolean | Promise<boolean> {
  if (checker instanceof CrlChecker) return authorizePeer(socket, allow) && checker.isAllowed(socket);
  return authorizePeer(socket, allow) ? checker.isAllowed(socket) : Promise.resolve(false);
}
