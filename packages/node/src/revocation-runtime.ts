/**
 * What `agentca serve` runs for revocation: the issuing CA's CRL (rebuilt within a second of a
 * revocation), the root's CRL (re-signed when the root key is at hand), the proxy bundle file
 * (`crl.pem`: issuing CA CRL then root CRL, replaced atomically), and the OCSP responder with
 * a delegated, in-memory, short-lived responder key that rotates at half-life.
 *
 * Revocations may come from any process (`agentca revoke`, another replica): the runtime polls
 * the store's change feed, so what it serves follows the database, not its own memory.
 */
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
  type OcspCertStatus,
  type PublishedCrl,
  type Signer,
} from '@agentca/core';
import type { SqliteStore } from '@agentca/store-sqlite';
import { writeFileAtomic } from './atomic-file.ts';
import { ROOT_CRL_VALIDITY_SECONDS } from './ca-dir.ts';
import { KeyObjectSigner } from './keystore/file-signer.ts';
import type { Logger } from './logger.ts';

export const OCSP_RESPONDER_LIFETIME_SECONDS = 86400;

export interface RevocationRuntimeOptions {
  dir: string;
  store: SqliteStore;
  clock: Clock;
  intermediate: { certificate: Uint8Array; signer: Signer };
  root: { certificate: Uint8Array; signer: Signer | null };
  crlValiditySeconds?: number;
  ocspValiditySeconds?: number;
  /** How often the change feed is polled; default 100 ms. */
  pollMs?: number;
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
      lookup: (serial) => this.#lookup(serial),
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
      if (changes.length === 0) return;
      this.#changeSeq = changes[changes.length - 1]!.changeSeq;
      for (const c of changes) this.#ocsp?.invalidate(c.serial);
      this.intermediateCrl.requestRebuild();
      this.#o.log.info({ event: 'revocations.seen', count: changes.length, changeSeq: this.#changeSeq });
    } catch (e) {
      this.#o.log.warn({ event: 'revocations.poll_failed', error: (e as Error).message });
    } finally {
      this.#polling = false;
    }
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
    o.log.info({ event: 'crl.published', issuer: crl.issuer, crlNumber: Number(crl.crlNumber), nextUpdate: crl.nextUpdate.toISOString() });
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

function bundlePem(int: PublishedCrl, root: PublishedCrl | null): string {
  return toPem('X509 CRL', int.der) + (root ? toPem('X509 CRL', root.der) : '');
}
