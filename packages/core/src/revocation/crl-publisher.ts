/**
 * Keeps a CA's CRL current: a new one within a second of a revocation (bursts coalesced into
 * one build), and again at half its validity, so relying parties never hold an expired CRL.
 * CRL numbers come from the store, so they increase across restarts (and replicas).
 */
import { Unavailable } from '../errors.ts';
import type { Clock } from '../ports/clock.ts';
import type { CrlStore, PublishedCrl } from '../ports/crl-store.ts';
import type { RevocationStore } from '../ports/revocation-store.ts';
import type { Signer } from '../ports/signer.ts';
import { parseCertificate } from '../x509/certificate.ts';
import { decodeSubjectKeyIdentifier } from '../x509/extension-values.ts';
import { EXT } from '../x509/extensions.ts';
import { keyIdentifier } from '../ca/hierarchy.ts';
import { buildCrl } from './crl.ts';

export const DEFAULT_CRL_VALIDITY_SECONDS = 24 * 3600;

export interface CrlPublisherOptions {
  issuer: 'intermediate' | 'root';
  certificate: Uint8Array;
  /** Null when the key is offline (a root kept elsewhere): the saved CRL is served, never re-signed. */
  signer: Signer | null;
  /** The revocations this CA's CRL lists; absent for a root CRL (it lists no intermediates yet). */
  revocations?: RevocationStore;
  crls: CrlStore;
  clock: Clock;
  validitySeconds?: number;
  /** Called with every CRL published (write the proxy bundle file, notify, log). */
  onPublish?: (crl: PublishedCrl) => void | Promise<void>;
  /** How long a burst of changes is collected before one rebuild; default 20 ms. */
  coalesceMs?: number;
}

export class CrlPublisher {
  readonly #o: CrlPublisherOptions;
  readonly #issuerName: Uint8Array;
  #keyId: Uint8Array | null = null;
  #current: PublishedCrl | null = null;
  #building: Promise<PublishedCrl> | null = null;
  #again = false;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #refresh: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;

  constructor(o: CrlPublisherOptions) {
    this.#o = o;
    this.#issuerName = parseCertificate(o.certificate).subject;
  }

  get current(): PublishedCrl | null {
    return this.#current;
  }

  get validitySeconds(): number {
    return this.#o.validitySeconds ?? DEFAULT_CRL_VALIDITY_SECONDS;
  }

  /** Loads the latest saved CRL without publishing (for a CA whose key is offline). */
  async load(): Promise<PublishedCrl | null> {
    const latest = await this.#o.crls.latest(this.#o.issuer);
    if (latest) {
      this.#current = latest;
      await this.#o.onPublish?.(latest);
    }
    return latest;
  }

  /**
   * Loads the latest saved CRL, publishing a new one if there is none or it is past half its
   * validity (or always, with `fresh`: revocations may have landed while nobody published),
   * then keeps it fresh until `stop()`.
   */
  async start(o: { fresh?: boolean } = {}): Promise<PublishedCrl> {
    const latest = o.fresh ? null : await this.#o.crls.latest(this.#o.issuer);
    const now = this.#o.clock.now().getTime();
    if (latest && now < halfLife(latest)) {
      this.#current = latest;
      await this.#o.onPublish?.(latest);
    } else {
      await this.publish();
    }
    this.#scheduleRefresh();
    return this.#current!;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#refresh) clearTimeout(this.#refresh);
  }

  /** Asks for a new CRL soon; calls during a build coalesce into one more build. */
  requestRebuild(): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.publish().catch(() => {
        // A failed build leaves the last good CRL in place; the next change or refresh retries.
      });
    }, this.#o.coalesceMs ?? 20);
  }

  /** Builds, signs, saves and announces a new CRL now (one build at a time). */
  async publish(): Promise<PublishedCrl> {
    if (this.#building) {
      this.#again = true;
      return this.#building;
    }
    this.#building = this.#build();
    try {
      return await this.#building;
    } finally {
      this.#building = null;
      if (this.#again) {
        this.#again = false;
        void this.publish().catch(() => {});
      }
    }
  }

  async #build(): Promise<PublishedCrl> {
    const o = this.#o;
    if (!o.signer) throw new Unavailable('ERR_CA_KEY_OFFLINE', `the ${o.issuer} CA key is offline: its CRL cannot be re-signed here`);
    this.#keyId ??= await issuerKeyId(o.certificate);
    // The number first and the entries under it, in one transaction: a higher-numbered CRL
    // (from this process or another replica) never lacks an entry a lower-numbered one lists.
    const { crlNumber, entries } = o.revocations
      ? await o.revocations.numberedCrlEntries(o.issuer)
      : { crlNumber: await o.crls.nextCrlNumber(o.issuer), entries: [] };
    const thisUpdate = new Date(Math.floor(o.clock.now().getTime() / 1000) * 1000);
    const nextUpdate = new Date(thisUpdate.getTime() + this.validitySeconds * 1000);
    const der = await buildCrl(
      {
        issuerName: this.#issuerName,
        issuerKeyId: this.#keyId,
        thisUpdate,
        nextUpdate,
        crlNumber,
        entries,
      },
      o.signer,
    );
    const crl: PublishedCrl = { issuer: o.issuer, crlNumber, thisUpdate, nextUpdate, der };
    await o.crls.save(crl);
    if (o.revocations) await o.revocations.markListedAfterExpiry(crlNumber, thisUpdate);
    if (!this.#current || this.#current.crlNumber < crlNumber) this.#current = crl;
    await o.onPublish?.(crl);
    return crl;
  }

  #scheduleRefresh(): void {
    if (this.#stopped) return;
    const cur = this.#current;
    const wait = cur ? Math.max(1000, halfLife(cur) - this.#o.clock.now().getTime()) : 60_000;
    this.#refresh = setTimeout(() => {
      void this.publish()
        .catch(() => {})
        .finally(() => this.#scheduleRefresh());
    }, Math.min(wait, 2 ** 31 - 1));
    this.#refresh.unref?.();
  }
}

function halfLife(c: PublishedCrl): number {
  return c.thisUpdate.getTime() + (c.nextUpdate.getTime() - c.thisUpdate.getTime()) / 2;
}

async function issuerKeyId(certificate: Uint8Array): Promise<Uint8Array> {
  const c = parseCertificate(certificate);
  const ski = c.extensions.get(EXT.subjectKeyIdentifier);
  return ski ? decodeSubjectKeyIdentifier(ski.value) : keyIdentifier(c.spki);
}
