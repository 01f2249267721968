import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { Agent, type AgentOptions, type RequestOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { randomInt, X509Certificate, type KeyObject } from 'node:crypto';
import { connect, createSecureContext, type ConnectionOptions, type PeerCertificate, type SecureContext, type Server, type TLSSocket, type TlsOptions } from 'node:tls';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent as UndiciAgent, Dispatcher, buildConnector } from 'undici';
import { postJson, type IssuedCertificate, type RetireAnswer } from './api.ts';
import { createCsr, generateWorkloadKey, type WorkloadKey } from './csr.ts';
import { AgentCAClientError } from './errors.ts';
import { spiffeIdFromSubjectAltName, type PeerPolicy } from './peer.ts';
import { renewalDelayMs, retryDelayMs, type RetryPolicy } from './rotation.ts';

/** Options of {@link AgentIdentity.bootstrap}. */
export interface BootstrapOptions {
  /** The CA's HTTPS API, e.g. `https://127.0.0.1:8443`. */
  server: string;
  /** The trust bundle (root certificates, PEM) the CA's server certificate and peers chain to. */
  caBundle: string;
  /** A one-time join token (`agentca-jt.…`). Exactly one of `token` and `jwtFile`. */
  token?: string;
  /** A file holding a platform JWT (e.g. a projected Kubernetes service-account token), read at bootstrap. */
  jwtFile?: string;
  /** Requested lifetime of each certificate; the CA may shorten it. Default: the profile's. */
  ttlSeconds?: number;
  /** Fraction of the lifetime after which to renew. Default 2/3. */
  renewAt?: number;
  /** Spread of the renewal instant, as a fraction of `renewAt` either side. Default 0.1. */
  jitter?: number;
  /** Backoff after a failed renewal. Default `{ initialMs: 1000, maxMs: 30000 }`. */
  retry?: Partial<RetryPolicy>;
  /** Timeout of each call to the CA. Default 30 s. */
  timeoutMs?: number;
}

/** Events of an {@link AgentIdentity}. */
export interface AgentIdentityEvents {
  /** A renewal succeeded: new key, new certificate, same SPIFFE ID and instance. */
  rotated: [{ serial: string; notAfter: Date }];
  /** A renewal failed; the current certificate stays in use. `retryInMs` is `null` when renewal has stopped for good. */
  'renewal-failed': [{ error: AgentCAClientError; retryInMs: number | null }];
  /** The current certificate reached its notAfter without a successful renewal; renewal has stopped. */
  expired: [];
}

interface Material {
  key: WorkloadKey;
  /** PKCS#8 PEM of `key`, in memory only: `tls.createSecureContext` takes no KeyObject. */
  keyPem: string;
  issued: IssuedCertificate;
  receivedAt: number;
  context: SecureContext;
  /** 0 for the bootstrap certificate, +1 per rotation. */
  generation: number;
}

/** setTimeout's ceiling (2^31 - 1 ms); longer waits are re-armed when they fire. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * A workload's SPIFFE identity: a key made in this process (never written anywhere), the
 * certificate the CA issued for it, kept renewed over mTLS with a fresh key each time, and TLS
 * material that always reflects the current certificate.
 *
 * @example
 * ```ts
 * const identity = await AgentIdentity.bootstrap({
 *   server: 'https://127.0.0.1:8443',
 *   caBundle: readFileSync('bundle.pem', 'utf8'),
 *   token: process.env.AGENTCA_TOKEN,
 * });
 * identity.on('renewal-failed', ({ error, retryInMs }) => log.warn({ code: error.code, retryInMs }));
 * const agent = identity.httpsAgent({ allow: ['spiffe://example.org/svc/billing'] });
 * await fetchWith(agent, 'https://billing.internal/invoices');
 * process.on('SIGTERM', () => identity.retire());
 * ```
 */
export class AgentIdentity extends EventEmitter<AgentIdentityEvents> {
  readonly server: string;
  /** The trust bundle, PEM. */
  readonly caBundle: string;
  readonly #ttlSeconds: number | undefined;
  readonly #renewAt: number;
  readonly #jitter: number;
  readonly #retry: RetryPolicy;
  readonly #timeoutMs: number | undefined;
  #material: Material;
  #renewTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #closed = false;
  #expired = false;

  /**
   * Makes a P-256 key in memory, trades the join token or JWT for a certificate
   * (`POST /v1/sign`), and schedules renewal.
   *
   * @throws {@link AgentCAClientError} with the CA's code, e.g. `ERR_TOKEN_ALREADY_USED` (status 401…).
   * @example
   * ```ts
   * const identity = await AgentIdentity.bootstrap({
   *   server: 'https://ca.internal:8443',
   *   caBundle,
   *   jwtFile: '/var/run/secrets/tokens/agentca',
   * });
   * console.log(identity.spiffeId, identity.serial, identity.notAfter);
   * ```
   */
  static async bootstrap(options: BootstrapOptions): Promise<AgentIdentity> {
    const bearer = readBearer(options);
    const renewAt = options.renewAt ?? 2 / 3;
    const jitter = options.jitter ?? 0.1;
    if (!(renewAt > 0 && renewAt < 1)) throw new AgentCAClientError('ERR_OPTION_INVALID', 'renewAt must be between 0 and 1 (exclusive)');
    if (!(jitter >= 0 && jitter < 1)) throw new AgentCAClientError('ERR_OPTION_INVALID', 'jitter must be in [0, 1)');
    const key = generateWorkloadKey();
    const issued = await postJson<IssuedCertificate>(options.server, '/v1/sign', requestBody(createCsr(key), options.ttlSeconds), {
      caBundle: options.caBundle,
      bearer,
      timeoutMs: options.timeoutMs,
    });
    const material = buildMaterial(key, issued, options.caBundle, null, 0);
    return new AgentIdentity(options, material, renewAt, jitter);
  }

  private constructor(options: BootstrapOptions, material: Material, renewAt: number, jitter: number) {
    super();
    this.server = options.server;
    this.caBundle = options.caBundle;
    this.#ttlSeconds = options.ttlSeconds;
    this.#renewAt = renewAt;
    this.#jitter = jitter;
    this.#retry = { initialMs: options.retry?.initialMs ?? 1000, maxMs: options.retry?.maxMs ?? 30_000 };
    this.#timeoutMs = options.timeoutMs;
    this.#material = material;
    this.#armExpiry();
    this.#scheduleRenewal();
  }

  /** The current leaf certificate followed by the issuing CA certificate, PEM. */
  get certificate(): string {
    return this.#material.issued.certificate + this.#material.issued.chain;
  }
  get spiffeId(): string {
    return this.#material.issued.spiffeId;
  }
  /** Serial of the current certificate, lowercase hex. */
  get serial(): string {
    return this.#material.issued.serial;
  }
  get notAfter(): Date {
    return new Date(this.#material.issued.notAfter);
  }
  get instanceId(): string {
    return this.#material.issued.instanceId;
  }
  get taskId(): string | null {
    return this.#material.issued.taskId;
  }
  /** The current public key. */
  get publicKey(): KeyObject {
    return this.#material.key.publicKey;
  }
  /** The current private key, for libraries that sign with it; it exists only in this process. */
  get privateKey(): KeyObject {
    return this.#material.key.privateKey;
  }

  /**
   * A `tls.SecureContext` with the current key, certificate chain and trust bundle. A new one
   * after each rotation; do not cache it.
   *
   * @example
   * ```ts
   * const socket = tls.connect({ host, port, secureContext: identity.secureContext() });
   * ```
   */
  secureContext(): SecureContext {
    return this.#material.context;
  }

  /**
   * An `https.Agent` that presents the current certificate on every new connection (so a
   * rotation needs no restart) and verifies the server against the trust bundle and by SPIFFE
   * ID, not host name: the server's certificate must carry exactly one SPIFFE ID, one of
   * `allow` (default: any ID in this identity's trust domain). TLS sessions are not resumed,
   * so the peer always sees the certificate of the moment. With `keepAlive`, a connection made
   * before a rotation finishes the request it carries and is not reused: the next request opens
   * a connection with the new certificate.
   *
   * @example
   * ```ts
   * const agent = identity.httpsAgent({ allow: ['spiffe://example.org/svc/billing'] });
   * https.get('https://127.0.0.1:9443/invoices', { agent }, (res) => res.pipe(process.stdout));
   * ```
   */
  httpsAgent(options: AgentOptions & { allow?: PeerPolicy } = {}): Agent {
    const { allow, ...agentOptions } = options;
    const identity = this;
    const verify = this.#serverVerifier(allow);
    const generations = new WeakMap<object, number>();
    const names = new WeakMap<object, string>();
    class CurrentIdentityAgent extends Agent {
      override createConnection(connectOptions: RequestOptions): Duplex {
        const m = identity.#material;
        // Idle connections made with an earlier certificate will never be used again: close them.
        for (const list of Object.values(this.freeSockets)) for (const s of list ?? []) if (generations.get(s) !== m.generation) s.destroy();
        const socket = connect({ ...(connectOptions as ConnectionOptions), secureContext: m.context, rejectUnauthorized: true, checkServerIdentity: verify, session: undefined });
        generations.set(socket, m.generation);
        return socket;
      }
      // Pools are per name: a new generation gets a new pool, so no request after a rotation
      // rides an older connection. Node names a socket again (to free or remove it) from the
      // options object it was made with: that object keeps the name it got first.
      override getName(o?: Parameters<Agent['getName']>[0]): string {
        if (!o) return `${super.getName(o)}:agentca-${identity.#material.generation}`;
        let name = names.get(o);
        if (name === undefined) names.set(o, (name = `${super.getName(o)}:agentca-${identity.#material.generation}`));
        return name;
      }
      // Node's keepSocketAlive returns whether to keep the socket (typed void in @types/node).
      override keepSocketAlive(socket: Duplex): void {
        if (generations.get(socket) !== identity.#material.generation) return false as unknown as void;
        return super.keepSocketAlive(socket);
      }
    }
    return new CurrentIdentityAgent({ ...agentOptions, maxCachedSessions: 0 });
  }

  /**
   * An undici dispatcher for `fetch` (undici's, or Node's global one) and undici's `request`:
   * like {@link httpsAgent}, every connection presents the current certificate and checks the
   * server against the bundle and by SPIFFE ID (`allow`, default: this trust domain). Connections
   * are pooled per certificate: after a rotation, requests go to a new pool (new connections, the
   * new certificate) and the previous pool closes once its requests finish, so no request is cut
   * and none rides a connection made with a certificate no longer current. Other options are
   * undici `Agent` options (`connections`, `keepAliveTimeout`…). `close()` it when done.
   *
   * @example
   * ```ts
   * import { fetch } from 'undici';
   * const dispatcher = identity.dispatcher({ allow: ['spiffe://example.org/svc/billing'] });
   * const res = await fetch('https://billing.internal:9443/invoices', { dispatcher });
   * ```
   */
  dispatcher(options: Omit<UndiciAgent.Options, 'connect'> & { allow?: PeerPolicy; connectTimeoutMs?: number } = {}): Dispatcher {
    const { allow, connectTimeoutMs, ...agentOptions } = options;
    const identity = this;
    const verify = this.#serverVerifier(allow);
    const agentFor = (m: Material): UndiciAgent => {
      const connector = buildConnector({ secureContext: m.context, rejectUnauthorized: true, checkServerIdentity: verify, maxCachedSessions: 0, ...(connectTimeoutMs !== undefined ? { timeout: connectTimeoutMs } : {}) });
      const agent = new UndiciAgent({ ...agentOptions, connect: connector });
      // Callers that honour backpressure wait for the dispatcher's own events.
      for (const event of ['drain', 'connect', 'disconnect', 'connectionError']) (agent as EventEmitter).on(event, (...args: unknown[]) => (wrapper as EventEmitter).emit(event, ...args));
      return agent;
    };
    let generation = this.#material.generation;
    let current: UndiciAgent;
    let closed = false;
    const retiring = new Set<UndiciAgent>();
    const forNow = (): UndiciAgent => {
      const m = identity.#material;
      if (m.generation !== generation && !closed) {
        const old = current;
        generation = m.generation;
        current = agentFor(m);
        retiring.add(old);
        // close() lets queued and running requests finish, then closes the connections.
        void old.close().finally(() => retiring.delete(old));
      }
      return current;
    };
    class CurrentIdentityDispatcher extends Dispatcher {
      override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
        return forNow().dispatch(opts, handler);
      }
      override close(): Promise<void>;
      override close(callback: () => void): void;
      override close(callback?: () => void): Promise<void> | void {
        closed = true;
        const done = Promise.all([current.close(), ...[...retiring].map((a) => a.close())]).then(() => undefined);
        if (!callback) return done;
        void done.then(callback, callback);
      }
      override destroy(): Promise<void>;
      override destroy(err: Error | null): Promise<void>;
      override destroy(callback: () => void): void;
      override destroy(err: Error | null, callback: () => void): void;
      override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
        closed = true;
        const err = typeof a === 'function' ? null : (a ?? null);
        const callback = typeof a === 'function' ? a : b;
        const done = Promise.all([current.destroy(err), ...[...retiring].map((x) => x.destroy(err))]).then(() => undefined);
        if (!callback) return done;
        void done.then(callback, callback);
      }
    }
    const wrapper = new CurrentIdentityDispatcher();
    current = agentFor(this.#material);
    return wrapper;
  }

  /**
   * Options for `https.createServer` / `tls.createServer`: the current certificate, and client
   * certificates asked for and verified against the trust bundle (`requestCert`,
   * `rejectUnauthorized`). Clients that send SNI get the current certificate from
   * `SNICallback`; pass the server to {@link keepCurrent} so clients that connect by IP
   * address (no SNI) get it too after a rotation.
   *
   * @example
   * ```ts
   * const server = https.createServer(identity.serverOptions(), (req, res) => {
   *   const ok = authorizePeer(req.socket as tls.TLSSocket, ['spiffe://example.org/agent/x']);
   *   res.writeHead(ok ? 200 : 403).end();
   * });
   * identity.keepCurrent(server);
   * ```
   */
  serverOptions(): TlsOptions {
    return {
      ...this.#tlsMaterial(),
      requestCert: true,
      rejectUnauthorized: true,
      SNICallback: (_servername, cb) => cb(null, this.secureContext()),
    };
  }

  /**
   * Replaces `server`'s default certificate on every rotation (`server.setSecureContext`),
   * until the server closes. For an `https.Server`, a kept-alive connection made with an earlier
   * certificate is also closed after the response it carries (`Connection: close`), so clients
   * move to the current certificate within one request instead of riding the old one past its
   * expiry.
   *
   * @example
   * ```ts
   * identity.keepCurrent(https.createServer(identity.serverOptions(), app).listen(9443));
   * ```
   */
  keepCurrent(server: Server): void {
    const update = (): void => server.setSecureContext(this.#tlsMaterial());
    this.on('rotated', update);
    server.once('close', () => this.off('rotated', update));
    if (typeof (server as { closeIdleConnections?: unknown }).closeIdleConnections !== 'function') return; // not an HTTP server
    const servedWith = new WeakMap<object, string>();
    const drainOld = (req: IncomingMessage, res: ServerResponse): void => {
      const socket = req.socket as TLSSocket;
      let serial = servedWith.get(socket);
      if (serial === undefined) servedWith.set(socket, (serial = normalizeHex((socket.getCertificate?.() as PeerCertificate | null)?.serialNumber ?? '')));
      if (serial !== normalizeHex(this.serial)) res.setHeader('connection', 'close');
    };
    server.prependListener('request', drainOld);
    server.once('close', () => server.off('request', drainOld));
  }

  /**
   * Renews now (`POST /v1/renew` over mTLS, fresh key) and reschedules. Scheduled renewals
   * call this; call it yourself to rotate early.
   *
   * @throws {@link AgentCAClientError} when the CA refuses or cannot be reached; the current certificate stays.
   * @example
   * ```ts
   * await identity.renew();
   * ```
   */
  async renew(): Promise<void> {
    if (this.#closed) throw new AgentCAClientError('ERR_IDENTITY_CLOSED', 'this identity was closed or retired');
    const key = generateWorkloadKey();
    const current = this.#material;
    const issued = await postJson<IssuedCertificate>(this.server, '/v1/renew', requestBody(createCsr(key), this.#ttlSeconds), {
      caBundle: this.caBundle,
      cert: this.certificate,
      key: current.keyPem,
      timeoutMs: this.#timeoutMs,
    });
    if (this.#closed) return;
    this.#material = buildMaterial(key, issued, this.caBundle, current.issued.spiffeId, current.generation + 1);
    this.#failures = 0;
    this.#expired = false;
    this.#armExpiry();
    this.#scheduleRenewal();
    this.emit('rotated', { serial: issued.serial, notAfter: new Date(issued.notAfter) });
  }

  /**
   * Ends this instance: stops renewing, then asks the CA to revoke every certificate of it
   * (`POST /v1/retire` over mTLS, reason cessationOfOperation).
   *
   * @example
   * ```ts
   * process.on('SIGTERM', async () => {
   *   await identity.retire();
   *   process.exit(0);
   * });
   * ```
   */
  async retire(): Promise<RetireAnswer> {
    this.close();
    return postJson<RetireAnswer>(this.server, '/v1/retire', {}, {
      caBundle: this.caBundle,
      cert: this.certificate,
      key: this.#material.keyPem,
      timeoutMs: this.#timeoutMs,
    });
  }

  /** Stops the renewal and expiry timers. The certificate stays usable until it expires. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#expiryTimer);
  }

  /** `checkServerIdentity` for calls out: exactly one SPIFFE ID, allowed by `allow` (default: this trust domain). */
  #serverVerifier(allow: PeerPolicy | undefined): (host: string, cert: PeerCertificate) => Error | undefined {
    const trustDomain = trustDomainOf(this.spiffeId);
    const policy: PeerPolicy = allow ?? ((id) => trustDomainOf(id) === trustDomain);
    return (host, cert) => {
      const id = spiffeIdFromSubjectAltName(cert.subjectaltname ?? '');
      if (id === null) return new AgentCAClientError('ERR_PEER_NOT_SPIFFE', `the server at ${host} presented no single SPIFFE ID`);
      const ok = typeof policy === 'function' ? policy(id) === true : policy.includes(id);
      return ok ? undefined : new AgentCAClientError('ERR_PEER_NOT_ALLOWED', `the server at ${host} is ${id}, which is not allowed`);
    };
  }

  #tlsMaterial(): { key: string; cert: string; ca: string } {
    return { key: this.#material.keyPem, cert: this.certificate, ca: this.caBundle };
  }

  #scheduleRenewal(delayMs?: number): void {
    clearTimeout(this.#renewTimer);
    if (this.#closed || this.#expired) return;
    const m = this.#material;
    const delay = delayMs ?? renewalDelayMs(m.receivedAt, Date.parse(m.issued.notAfter), Date.now(), { renewAt: this.#renewAt, jitter: this.#jitter }, randomInt(1_000_000) / 1_000_000);
    const armed = Math.min(delay, MAX_TIMER_MS);
    this.#renewTimer = setTimeout(() => (armed < delay ? this.#scheduleRenewal(delay - armed) : void this.#renewScheduled()), armed);
    this.#renewTimer.unref();
  }

  async #renewScheduled(): Promise<void> {
    try {
      await this.renew();
    } catch (e) {
      if (this.#closed || this.#expired) return;
      const error = e instanceof AgentCAClientError ? e : new AgentCAClientError('ERR_RENEWAL', (e as Error).message, null, { cause: e });
      if (error.permanent) {
        clearTimeout(this.#renewTimer);
        this.emit('renewal-failed', { error, retryInMs: null });
        return;
      }
      const retryInMs = retryDelayMs(this.#failures++, this.#retry);
      this.#scheduleRenewal(retryInMs);
      this.emit('renewal-failed', { error, retryInMs });
    }
  }

  #armExpiry(): void {
    clearTimeout(this.#expiryTimer);
    if (this.#closed) return;
    const left = Date.parse(this.#material.issued.notAfter) - Date.now();
    this.#expiryTimer = setTimeout(
      () => {
        if (Date.parse(this.#material.issued.notAfter) > Date.now()) return this.#armExpiry();
        this.#expired = true;
        clearTimeout(this.#renewTimer);
        this.emit('expired');
      },
      Math.max(0, Math.min(left, MAX_TIMER_MS)),
    );
    this.#expiryTimer.unref();
  }
}

function readBearer(options: BootstrapOptions): string {
  if ((options.token === undefined) === (options.jwtFile === undefined))
    throw new AgentCAClientError('ERR_OPTION_INVALID', 'give exactly one of token and jwtFile');
  if (options.token !== undefined) return options.token;
  let jwt: string;
  try {
    jwt = readFileSync(options.jwtFile!, 'utf8').trim();
  } catch (e) {
    throw new AgentCAClientError('ERR_JWT_FILE', `cannot read jwtFile ${options.jwtFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, null, { cause: e });
  }
  if (!jwt) throw new AgentCAClientError('ERR_JWT_FILE', `jwtFile ${options.jwtFile} is empty`);
  return jwt;
}

function requestBody(csr: string, ttlSeconds: number | undefined): { csr: string; ttl?: number } {
  return ttlSeconds === undefined ? { csr } : { csr, ttl: ttlSeconds };
}

/**
 * Checks what the CA answered before using it (after SPIRE's credvalidator): the leaf holds
 * our new public key and, on renewal, the same SPIFFE ID.
 */
function buildMaterial(key: WorkloadKey, issued: IssuedCertificate, caBundle: string, expectedId: string | null, generation: number): Material {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(issued.certificate);
  } catch (e) {
    throw new AgentCAClientError('ERR_SERVER_RESPONSE', 'the CA answered a certificate that does not parse', null, { cause: e });
  }
  if (!leaf.publicKey.equals(key.publicKey)) throw new AgentCAClientError('ERR_SERVER_RESPONSE', 'the CA answered a certificate for another key');
  const id = spiffeIdFromSubjectAltName(leaf.subjectAltName ?? '');
  if (id === null || id !== issued.spiffeId || (expectedId !== null && id !== expectedId))
    throw new AgentCAClientError('ERR_SERVER_RESPONSE', `the CA answered a certificate for ${id ?? 'no SPIFFE ID'}, expected ${expectedId ?? issued.spiffeId}`);
  const keyPem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const context = createSecureContext({ key: keyPem, cert: issued.certificate + issued.chain, ca: caBundle });
  return { key, keyPem, issued, receivedAt: Date.now(), context, generation };
}

function normalizeHex(hex: string): string {
  return hex.toLowerCase().replace(/^0+/, '');
}

function trustDomainOf(spiffeId: string): string {
  return /^spiffe:\/\/([^/]+)/.exec(spiffeId)?.[1] ?? '';
}
