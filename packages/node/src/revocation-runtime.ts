/**
 * What `agentca serve` runs for revocation: the issuing CA's CRL (rebuilt within a second of a
 * revocation), the root's CRL (re-signed when the root key is at hand), the proxy bundle file
 * (`crl.pem`: issuing CA CRL then root CRL, replaced atomically), and the OCSP responder with
 * a delegated, in-memory, short-lived responder key that rotates at half-life.
 *
 * Revocations may come from any process (`agentca revoke`, another replica): the runtime polls
 * the store's change feed, so what it serves follows the database, not its own memory. With
 * several replicas on one database, each also adopts a CRL another replica saved with a higher
 * number, so that behind a load balancer the CRL number a relying party sees never goes down.
 *
 * When the store cannot be reached, what was last good keeps being served: the CRL until its
 * nextUpdate (re-signing resumes when the store is back), and for OCSP the last good answer to
 * the same request until its nextUpdate (a request never answered before gets `tryLater`).
 * Polling goes on, so recovery needs no restart.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { exec } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import {
  CrlPublisher,
  OcspResponder,
  createOcspResponderCertificate,
  toPem,
  webCryptoRandom,
  type Clock,
  type OcspAnswer,
  type OcspCertStatus,
  type PublishedCrl,
  type Signer,
} from '@agentca/core';
import { writeFileAtomic } from './atomic-file.ts';
import { ROOT_CRL_VALIDITY_SECONDS, type CaStore } from './ca-dir.ts';
import { KeyObjectSigner } from './keystore/file-signer.ts';
import type { Logger } from './logger.ts';

export const OCSP_RESPONDER_LIFETIME_SECONDS = 86400;

/** The serial the responder looked up while answering one request (none for a cached answer). */
const lookedUp = new AsyncLocalStorage<{ serial?: string }>();

export interface RevocationRuntimeOptions {
  dir: string;
  store: CaStore;
  clock: Clock;
  intermediate: { certificate: Uint8Array; signer: Signer };
  root: { certificate: Uint8Array; signer: Signer | null };
  crlValiditySeconds?: number;
  ocspValiditySeconds?: number;
  /** How often the change feed is polled; default 100 ms. */
  pollMs?: number;
  /** How often the store's latest CRLs are checked for a higher number saved by another process; default 1000 ms. */
  adoptMs?: number;
  /** How often the change feed is checked for having gone backwards (a database restored from a backup); default 30 s. */
  resyncMs?: number;
  /** A shell command run after each new proxy bundle file (e.g. `nginx -s reload`). */
  onCrlUpdate?: string;
  log: Logger;
}

export interface ServedCrl {
  der: Uint8Array;
  pem: string;
  thisUpdate: Date;
  nextUpdate: Date;
  crlNumber: bigint;
}

export class RevocationRuntime {
  readonly #o: RevocationRuntimeOptions;
  readonly intermediateCrl: CrlPublisher;
  readonly rootCrl: CrlPublisher;
  #ocsp: OcspResponder | null = null;
  #changeSeq = 0;
  #poll: ReturnType<typeof setInterval> | null = null;
  #rotate: ReturnType<typeof setTimeout> | null = null;
  #polling = false;
  #adopting = false;
  #lastAdoptCheck = 0;
  #lastResync = 0;
  /** Since when the store has been failing (0: it answers). */
  #downSince = 0;
  readonly #lastGood = new LastGoodOcspAnswers(10_000);

  constructor(o: RevocationRuntimeOptions) {
    this.#o = o;
    const onPublish = (crl: PublishedCrl) => this.#published(crl);
    this.intermediateCrl = new CrlPublisher({
      issuer: 'intermediate',
      certificate: o.intermediate.certificate,
      signer: o.intermediate.signer,
      revocations: o.store.revocations,
      crls: o.store.crls,
      clock: o.clock,
      ...(o.crlValiditySeconds ? { validitySeconds: o.crlValiditySeconds } : {}),
      onPublish,
    });
    this.rootCrl = new CrlPublisher({
      issuer: 'root',
      certificate: o.root.certificate,
      signer: o.root.signer,
      crls: o.store.crls,
      clock: o.clock,
      validitySeconds: ROOT_CRL_VALIDITY_SECONDS,
      onPublish,
    });
  }

  get ocsp(): OcspResponder {
    if (!this.#ocsp) throw new Error('revocation runtime not started');
    return this.#ocsp;
  }

  /**
   * What the HTTP listener answers OCSP with: the responder, and when it answers `tryLater`
   * because the store is unreachable, the last good answer to the same request, or about the
   * same serial (never one from before a revocation the runtime has since seen), until that
   * answer's nextUpdate.
   */
  readonly ocspAnswerer = {
    answer: async (request: Uint8Array): Promise<OcspAnswer> => {
      const generation = this.#lastGood.generation;
      const looked: { serial?: string } = {};
      const a = await lookedUp.run(looked, () => this.ocsp.answer(request));
      if (a.status === 'successful') {
        // A cached answer is the same object each time: its serial is known from when it was signed.
        if (looked.serial !== undefined) this.#serialOf.set(a, looked.serial);
        const serial = this.#serialOf.get(a);
        if (!a.nonce && a.certStatus !== 'unknown' && serial !== undefined) this.#lastGood.remember(request, a, serial, generation);
        return a;
      }
      if (a.status === 'tryLater') {
        const now = this.#o.clock.now();
        // The same request answered before, or else (a request with a nonce) an answer about the
        // same serial without one, which RFC 6960 §4.4.1 allows and clients accept.
        return this.#lastGood.find(request, now) ?? (looked.serial !== undefined ? this.#lastGood.findBySerial(looked.serial, now) : undefined) ?? a;
      }
      return a;
    },
  };
  readonly #serialOf = new WeakMap<OcspAnswer, string>();

  /** False while the store cannot be reached (polling fails); for /healthz. */
  get storeReachable(): boolean {
    return this.#downSince === 0;
  }

  /** The CRL served at /crl and the proxy bundle served at /crl.pem. */
  crl(): ServedCrl | null {
    const int = this.intermediateCrl.current;
    const root = this.rootCrl.current;
    if (!int) return null;
    return { der: int.der, pem: bundlePem(int, root), thisUpdate: int.thisUpdate, nextUpdate: int.nextUpdate, crlNumber: int.crlNumber };
  }

  async start(): Promise<void> {
    const o = this.#o;
    this.#changeSeq = await this.#latestChangeSeq();
    if (o.root.signer) await this.rootCrl.start();
    else if (!(await this.rootCrl.load())) o.log.warn({ event: 'crl.root_missing', hint: 'the root key is offline and no root CRL was saved' });
    // Revocations may have landed while no serve was running (agentca revoke writes the store
    // only), so the issuing CA's CRL is always rebuilt at start.
    await this.intermediateCrl.start({ fresh: true });
    const responder = await this.#newResponder();
    this.#ocsp = new OcspResponder({
      issuerCertificate: o.intermediate.certificate,
      responder,
      lookup: (serial) => {
        const looked = lookedUp.getStore();
        if (looked) looked.serial = serial;
        return this.#lookup(serial);
      },
      clock: o.clock,
      ...(o.ocspValiditySeconds ? { validitySeconds: o.ocspValiditySeconds } : {}),
    });
    this.#scheduleRotation();
    this.#poll = setInterval(() => void this.#pollChanges(), o.pollMs ?? 100);
    this.#poll.unref();
  }

  stop(): void {
    if (this.#poll) clearInterval(this.#poll);
    if (this.#rotate) clearTimeout(this.#rotate);
    this.intermediateCrl.stop();
    this.rootCrl.stop();
  }

  async #lookup(serial: string): Promise<OcspCertStatus> {
    const s = this.#o.store;
    const cert = await s.certificates.get(serial);
    if (!cert) return { status: 'unknown' };
    const r = await s.revocations.get(serial);
    return r ? { status: 'revoked', revokedAt: r.revokedAt, reason: r.reason } : { status: 'good' };
  }

  async #latestChangeSeq(): Promise<number> {
    let seq = 0;
    for (;;) {
      const page = await this.#o.store.revocations.changesSince(seq, 10_000);
      if (page.length === 0) return seq;
      seq = page[page.length - 1]!.changeSeq;
    }
  }

  async #pollChanges(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const changes = await this.#o.store.revocations.changesSince(this.#changeSeq, 10_000);
      this.#reachable();
      if (changes.length > 0) {
        this.#changeSeq = changes[changes.length - 1]!.changeSeq;
        this.#lastGood.forget(changes.map((c) => c.serial));
        for (const c of changes) this.#ocsp?.invalidate(c.serial);
        this.intermediateCrl.requestRebuild();
        this.#o.log.info({ event: 'revocations.seen', count: changes.length, changeSeq: this.#changeSeq });
      }
      const now = Date.now();
      if (now - this.#lastAdoptCheck >= (this.#o.adoptMs ?? 1000)) {
        this.#lastAdoptCheck = now;
        await this.#adoptNewerCrls();
      }
      if (now - this.#lastResync >= (this.#o.resyncMs ?? 30_000)) {
        this.#lastResync = now;
        await this.#checkFeedNotRewound();
      }
    } catch (e) {
      this.#unreachable(e);
    } finally {
      this.#polling = false;
    }
  }

  /** Logged once per outage, not on every poll; the cause never carries a password (driver messages only). */
  #unreachable(e: unknown): void {
    if (this.#downSince !== 0) return;
    this.#downSince = Date.now();
    const cause = (e as Error)?.cause instanceof Error ? ((e as Error).cause as Error).message : undefined;
    this.#o.log.warn({ event: 'store.unreachable', error: (e as Error)?.message, ...(cause ? { cause } : {}), hint: 'serving the last good CRL and OCSP answers until their nextUpdate' });
  }

  #reachable(): void {
    if (this.#downSince === 0) return;
    this.#o.log.info({ event: 'store.reachable', downMs: Date.now() - this.#downSince });
    this.#downSince = 0;
    // A refresh that failed meanwhile is retried by the publisher; rebuild now rather than wait.
    this.intermediateCrl.requestRebuild();
  }

  /** Serves a CRL another replica (or `agentca crl`) saved with a higher number than the one served here. */
  async #adoptNewerCrls(): Promise<void> {
    for (const publisher of [this.intermediateCrl, this.rootCrl]) {
      const current = publisher.current;
      if (!current) continue;
      const latest = await this.#o.store.crls.latest(current.issuer);
      if (!latest || latest.crlNumber <= current.crlNumber) continue;
      this.#adopting = true;
      try {
        await publisher.load();
      } finally {
        this.#adopting = false;
      }
    }
  }

  /**
   * The safety net under the change feed: if the store no longer has any change at or after the
   * last one seen (the database was restored from an older backup, or replaced), the feed starts
   * over, every cached OCSP answer is dropped and the CRL is rebuilt from the store.
   */
  async #checkFeedNotRewound(): Promise<void> {
    if (this.#changeSeq === 0) return;
    if ((await this.#o.store.revocations.changesSince(this.#changeSeq - 1, 1)).length > 0) return;
    this.#o.log.warn({ event: 'revocations.feed_rewound', lastSeen: this.#changeSeq });
    this.#changeSeq = await this.#latestChangeSeq();
    this.#lastGood.forget(null);
    const r = await this.#newResponder();
    await this.#ocsp?.setResponder(r.certificate, r.signer);
    this.intermediateCrl.requestRebuild();
  }

  async #newResponder(): Promise<{ certificate: Uint8Array; signer: Signer }> {
    const o = this.#o;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signer = new KeyObjectSigner('ec-p256', privateKey, publicKey);
    const now = o.clock.now().getTime();
    const certificate = await createOcspResponderCertificate({
      issuerCertificate: o.intermediate.certificate,
      issuerSigner: o.intermediate.signer,
      responderPublicKey: signer.publicKey,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + OCSP_RESPONDER_LIFETIME_SECONDS * 1000),
      random: webCryptoRandom,
    });
    o.log.info({ event: 'ocsp.responder_rotated', notAfter: new Date(now + OCSP_RESPONDER_LIFETIME_SECONDS * 1000).toISOString() });
    return { certificate, signer };
  }

  #scheduleRotation(): void {
    this.#rotate = setTimeout(async () => {
      try {
        const r = await this.#newResponder();
        await this.#ocsp?.setResponder(r.certificate, r.signer);
      } catch (e) {
        this.#o.log.error({ event: 'ocsp.rotation_failed', error: (e as Error).message });
      }
      this.#scheduleRotation();
    }, (OCSP_RESPONDER_LIFETIME_SECONDS * 1000) / 2);
    this.#rotate.unref();
  }

  #published(crl: PublishedCrl): void {
    const o = this.#o;
    o.log.info({ event: this.#adopting ? 'crl.adopted' : 'crl.published', issuer: crl.issuer, crlNumber: Number(crl.crlNumber), nextUpdate: crl.nextUpdate.toISOString() });
    const int = crl.issuer === 'intermediate' ? crl : this.intermediateCrl.current;
    const root = crl.issuer === 'root' ? crl : this.rootCrl.current;
    if (!int) return;
    writeFileAtomic(join(o.dir, 'crl.pem'), bundlePem(int, root));
    if (o.onCrlUpdate) {
      exec(o.onCrlUpdate, { timeout: 30_000 }, (err) => {
        if (err) o.log.warn({ event: 'crl.hook_failed', error: err.message });
      });
    }
  }
}

/**
 * The last successful OCSP answer per request (nonce-less, for a known serial), kept to answer
 * with while the store is unreachable. A change to a serial drops its answers (`generation`
 * keeps an answer signed before a change from being remembered after it); bounded, oldest first out.
 */
class LastGoodOcspAnswers {
  readonly #max: number;
  readonly #answers = new Map<string, { answer: OcspAnswer; serial: string }>();
  readonly #bySerial = new Map<string, Set<string>>();
  /** The serials each recent `forget` was about (null: all), newest last. */
  readonly #recent: { generation: number; serials: ReadonlySet<string> | null }[] = [];
  generation = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** Keeps `answer`, unless a change to its serial was seen since `generation` (when it was asked for). */
  remember(request: Uint8Array, answer: OcspAnswer, serial: string, generation: number): void {
    if (request.byteLength > 512 || this.#changedSince(serial, generation)) return;
    const key = keyOf(request);
    if (this.#answers.get(key)?.answer === answer) return;
    this.#drop(key);
    if (this.#answers.size >= this.#max) this.#drop(this.#answers.keys().next().value!);
    this.#answers.set(key, { answer, serial });
    let keys = this.#bySerial.get(serial);
    if (!keys) this.#bySerial.set(serial, (keys = new Set()));
    keys.add(key);
  }

  find(request: Uint8Array, now: Date): OcspAnswer | undefined {
    const a = this.#answers.get(keyOf(request))?.answer;
    return a?.nextUpdate && a.nextUpdate.getTime() > now.getTime() ? a : undefined;
  }

  /** The newest answer kept about `serial` that is still valid at `now`. */
  findBySerial(serial: string, now: Date): OcspAnswer | undefined {
    let best: OcspAnswer | undefined;
    for (const key of this.#bySerial.get(serial) ?? []) {
      const a = this.#answers.get(key)?.answer;
      if (a?.nextUpdate && a.nextUpdate.getTime() > now.getTime() && (!best || a.thisUpdate!.getTime() > best.thisUpdate!.getTime())) best = a;
    }
    return best;
  }

  /** Drops the answers about `serials` (all of them for null). */
  forget(serials: readonly string[] | null): void {
    this.generation++;
    this.#recent.push({ generation: this.generation, serials: serials && new Set(serials) });
    if (this.#recent.length > 64) this.#recent.shift();
    if (serials === null) {
      this.#answers.clear();
      this.#bySerial.clear();
      return;
    }
    for (const serial of serials) for (const key of this.#bySerial.get(serial) ?? []) this.#drop(key);
  }

  #changedSince(serial: string, generation: number): boolean {
    if (generation === this.generation) return false;
    // Older than what is remembered of the changes: assume it changed.
    if (this.#recent.length === 0 || this.#recent[0]!.generation > generation + 1) return true;
    return this.#recent.some((r) => r.generation > generation && (r.serials === null || r.serials.has(serial)));
  }

  #drop(key: string): void {
    const entry = this.#answers.get(key);
    if (!entry) return;
    this.#answers.delete(key);
    const keys = this.#bySerial.get(entry.serial);
    keys?.delete(key);
    if (keys?.size === 0) this.#bySerial.delete(entry.serial);
  }
}

function keyOf(request: Uint8Array): string {
  return Buffer.from(request.buffer, request.byteOffset, request.byteLength).toString('latin1');
}

function bundlePem(int: PublishedCrl, root: PublishedCrl | null): string {
  return toPem('X509 CRL', int.der) + (root ? toPem('X509 CRL', root.der) : '');
}
