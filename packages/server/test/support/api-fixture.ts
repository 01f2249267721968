/**
 * A real CA for the API tests: hierarchy, Authority, JoinTokens and RevocationService over the
 * in-memory stores, on a FixedClock set to the real time (TLS checks certificate validity on
 * the system clock, the API on the CA's clock). Workload keys are WebCrypto keys exported as
 * PEM so that node:https can present the certificates the Authority issues.
 */
import { request as httpsRequest } from 'node:https';
import {
  ADMIN_PROFILE,
  Authority,
  DEFAULT_PROFILE,
  FixedClock,
  INTERMEDIATE_KEY,
  JoinTokens,
  RevocationService,
  buildCsr,
  createHierarchy,
  generateWebCryptoSigner,
  toBase64,
  toPem,
  webCryptoBackend,
  webCryptoRandom,
  webCryptoSigner,
  type AltNames,
  type Attestation,
  type IssuedCertificate,
  type KeyAlgorithm,
  type KeyStore,
  type Profile,
  type Signer,
} from '@agentca/core';
import { buildApiServer, startApiServer, type ApiLog, type ApiServerHandle, type ApiServerOptions } from '../../src/api/index.ts';
import { memoryStores } from './memory-stores.ts';

export const TD = 'example.org';
export const ADMIN_ID = `spiffe://${TD}/admin/operator`;
export const SERVER_ID = `spiffe://${TD}/agentca/server`;

/** The API listener's own certificate: a SPIFFE ID plus the DNS name clients dial. */
const SERVER_PROFILE: Profile = {
  ...DEFAULT_PROFILE,
  name: 'server',
  allow: ['/agentca/server'],
  deny: [],
  dnsNames: ['localhost'],
};

class MemoryKeyStore implements KeyStore {
  keys = new Map<string, Signer>();
  async generate(name: string, alg: KeyAlgorithm): Promise<Signer> {
    const s = await generateWebCryptoSigner(alg);
    this.keys.set(name, s);
    return s;
  }
  async open(name: string): Promise<Signer> {
    const s = this.keys.get(name);
    if (!s) throw new Error(`no key ${name}`);
    return s;
  }
}

/** A P-256 key whose private half can be written as PEM (for node:https). */
export async function newKey(): Promise<{ signer: Signer; keyPem: string }> {
  const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
  return { signer: await webCryptoSigner('ec-p256', pair), keyPem: toPem('PRIVATE KEY', pkcs8) };
}

export async function csrPem(signer: Signer, altNames?: AltNames): Promise<string> {
  return toPem('CERTIFICATE REQUEST', await buildCsr(signer, altNames ? { altNames } : {}));
}

/** A certificate with its key and chain, as PEM, ready for node:https. */
export interface Credential {
  issued: IssuedCertificate;
  keyPem: string;
  /** Leaf then intermediate. */
  certPem: string;
}

export interface Ca {
  clock: FixedClock;
  root: Uint8Array;
  intermediate: Uint8Array;
  rootPem: string;
  intermediatePem: string;
  authority: Authority;
  stores: ReturnType<typeof memoryStores>;
  joinTokens: JoinTokens;
  revocations: RevocationService;
  /** Issues directly (operator), bypassing the API. */
  credential(spiffeId: string, o?: Partial<Attestation> & { ttlSeconds?: number }): Promise<Credential>;
  token(spiffeId: string, o?: { ttlSeconds?: number; taskId?: string; taskTtlSeconds?: number; onBehalfOf?: string }): Promise<string>;
}

export async function makeCa(o: { clock?: FixedClock } = {}): Promise<Ca> {
  const clock = o.clock ?? new FixedClock(Math.floor(Date.now() / 1000) * 1000);
  const keys = new MemoryKeyStore();
  const { root, intermediate } = await createHierarchy({ trustDomain: TD, keyAlgorithm: 'ec-p256', keys, clock, random: webCryptoRandom });
  const stores = memoryStores();
  const authority = await Authority.open({
    trustDomain: TD,
    issuer: { certificate: intermediate, signer: await keys.open(INTERMEDIATE_KEY) },
    roots: [root],
    profiles: [DEFAULT_PROFILE, ADMIN_PROFILE, SERVER_PROFILE],
    store: { certificates: stores.certificates, audit: stores.audit, revocations: stores.revocations },
    clock,
  });
  const joinTokens = new JoinTokens({
    trustDomain: TD,
    profile: (n) => authority.profile(n),
    tokens: stores.tokens,
    clock,
    random: webCryptoRandom,
    crypto: webCryptoBackend(),
  });
  const revocations = new RevocationService({ revocations: stores.revocations, clock });
  const intermediatePem = toPem('CERTIFICATE', intermediate);
  return {
    clock,
    root,
    intermediate,
    rootPem: toPem('CERTIFICATE', root),
    intermediatePem,
    authority,
    stores,
    joinTokens,
    revocations,
    async credential(spiffeId, a = {}) {
      const { signer, keyPem } = await newKey();
      const { ttlSeconds, ...rest } = a;
      const issued = await authority.issue({
        csr: await csrPem(signer),
        attestation: { spiffeId, profile: 'default', method: 'operator', actor: 'test', ...rest },
        ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
      });
      return { issued, keyPem, certPem: toPem('CERTIFICATE', issued.der) + intermediatePem };
    },
    async token(spiffeId, t = {}) {
      const created = await joinTokens.create({ spiffeId, profile: 'default', actor: 'test', ...t });
      return created.token;
    },
  };
}

/** Captures log entries (as JSON lines, the way a JSON logger would write them). */
export class CapturingLog implements ApiLog {
  lines: string[] = [];
  info(o: object): void {
    this.lines.push(JSON.stringify({ level: 'info', ...o }));
  }
  warn(o: object): void {
    this.lines.push(JSON.stringify({ level: 'warn', ...o }));
  }
  error(o: object): void {
    this.lines.push(JSON.stringify({ level: 'error', ...o }));
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

export function apiOptions(ca: Ca, extra: Partial<ApiServerOptions> = {}): ApiServerOptions {
  return {
    authority: ca.authority,
    joinTokens: ca.joinTokens,
    revocations: ca.revocations,
    store: { certificates: ca.stores.certificates, revocations: ca.stores.revocations, tokens: ca.stores.tokens },
    admins: [ADMIN_ID],
    bundlePem: ca.rootPem,
    clock: ca.clock,
    ...extra,
  };
}

export function buildApp(ca: Ca, extra: Partial<ApiServerOptions> = {}) {
  return buildApiServer(apiOptions(ca, extra));
}

/** The API on TLS at 127.0.0.1:0, with a server certificate the CA issued for `localhost`. */
export async function startTls(ca: Ca, extra: Partial<ApiServerOptions> = {}): Promise<ApiServerHandle & { server: Credential }> {
  const server = await ca.credential(SERVER_ID, { profile: 'server', dnsNames: ['localhost'] });
  const handle = await startApiServer({
    ...apiOptions(ca, extra),
    https: { key: server.keyPem, cert: server.certPem, ca: ca.rootPem + ca.intermediatePem },
  });
  return Object.assign(handle, { server });
}

export interface HttpsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** The server certificate the connection saw (DER, base64). */
  serverCert: string;
}

/** One request over a fresh TLS connection (no agent: client identities never share a socket). */
export function httpsCall(
  port: number,
  o: { method?: string; path: string; ca: string; key?: string; cert?: string; body?: unknown; headers?: Record<string, string> },
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        method: o.method ?? 'POST',
        path: o.path,
        ca: o.ca,
        ...(o.key ? { key: o.key, cert: o.cert } : {}),
        agent: false,
        headers: { ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}), ...o.headers },
      },
      (res) => {
        const peer = (res.socket as import('node:tls').TLSSocket).getPeerCertificate?.();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let json: unknown = undefined;
          try {
            json = JSON.parse(body);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json, serverCert: peer?.raw ? toBase64(new Uint8Array(peer.raw)) : '' });
        });
      },
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}
