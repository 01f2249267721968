/**
 * A CA inside your own process, on @agentca/core: CA keys made with WebCrypto (non-extractable:
 * the private keys cannot leave the key store), certificates, revocations and the audit chain in
 * a SQLite file, and the one issuance pipeline of `agentca serve`. Your service decides who a
 * caller is (its own attestation); the core turns that into a certificate.
 */
import {
  Authority,
  CrlPublisher,
  DEFAULT_PROFILE,
  INTERMEDIATE_KEY,
  RevocationService,
  createHierarchy,
  generateWebCryptoSigner,
  systemClock,
  toPem,
  webCryptoRandom,
  type KeyAlgorithm,
  type KeyStore,
  type Signer,
} from '@agentca/core';
import { openSqliteStore, type SqliteStore } from '@agentca/store-sqlite';

/** CA keys in memory, as WebCrypto keys that cannot be exported. A real service would use an HSM or KMS behind the same interface. */
class WebCryptoKeyStore implements KeyStore {
  readonly #keys = new Map<string, Signer>();
  async generate(name: string, algorithm: KeyAlgorithm): Promise<Signer> {
    const signer = await generateWebCryptoSigner(algorithm);
    this.#keys.set(name, signer);
    return signer;
  }
  async open(name: string): Promise<Signer> {
    const signer = this.#keys.get(name);
    if (!signer) throw new Error(`no key named ${name}`);
    return signer;
  }
}

export class EmbeddedCa {
  readonly trustDomain: string;
  /** The root certificate (trust anchor) and the issuing intermediate, PEM. */
  readonly rootPem: string;
  readonly intermediatePem: string;
  readonly authority: Authority;
  readonly #store: SqliteStore;
  readonly #revocations: RevocationService;
  readonly #crl: CrlPublisher;

  private constructor(trustDomain: string, root: Uint8Array, intermediate: Uint8Array, authority: Authority, store: SqliteStore, crl: CrlPublisher) {
    this.trustDomain = trustDomain;
    this.rootPem = toPem('CERTIFICATE', root);
    this.intermediatePem = toPem('CERTIFICATE', intermediate);
    this.authority = authority;
    this.#store = store;
    this.#revocations = new RevocationService({ revocations: store.revocations, clock: systemClock });
    this.#crl = crl;
  }

  /** A new CA (root + intermediate, ECDSA P-256) over the SQLite file `dbPath`. */
  static async create(trustDomain: string, dbPath: string): Promise<EmbeddedCa> {
    const keys = new WebCryptoKeyStore();
    const { root, intermediate } = await createHierarchy({ trustDomain, keyAlgorithm: 'ec-p256', keys, clock: systemClock, random: webCryptoRandom });
    const signer = await keys.open(INTERMEDIATE_KEY);
    const store = await openSqliteStore(dbPath);
    const authority = await Authority.open({
      trustDomain,
      issuer: { certificate: intermediate, signer },
      roots: [root],
      profiles: [DEFAULT_PROFILE],
      store: { certificates: store.certificates, audit: store.audit, revocations: store.revocations },
    });
    const crl = new CrlPublisher({ issuer: 'intermediate', certificate: intermediate, signer, revocations: store.revocations, crls: store.crls, clock: systemClock });
    return new EmbeddedCa(trustDomain, root, intermediate, authority, store, crl);
  }

  /**
   * Issues a certificate for `spiffeId` — which your service has established — from the
   * caller's CSR. The CSR gives the public key and proof of possession only; a CSR that asks
   * for another name is refused (`ERR_CSR_SAN_MISMATCH`).
   */
  async sign(csrPem: string, spiffeId: string, ttlSeconds = 900): Promise<{ serial: string; certificatePem: string; chainPem: string; notAfter: Date }> {
    const issued = await this.authority.issue({
      csr: csrPem,
      ttlSeconds,
      attestation: { spiffeId, profile: 'default', method: 'operator', actor: 'embed-core-example' },
    });
    return {
      serial: issued.serial,
      certificatePem: toPem('CERTIFICATE', issued.der),
      chainPem: issued.chain.map((c) => toPem('CERTIFICATE', c)).join(''),
      notAfter: issued.notAfter,
    };
  }

  /** Revokes one certificate (durable, audited) and signs a new CRL listing it. Returns the CRL, DER. */
  async revoke(serial: string): Promise<{ crlNumber: bigint; crlDer: Uint8Array }> {
    await this.#revocations.revoke({ serial }, 'keyCompromise', 'embed-core-example');
    const crl = await this.#crl.publish();
    return { crlNumber: crl.crlNumber, crlDer: crl.der };
  }

  close(): Promise<void> {
    this.#crl.stop();
    return this.#store.close();
  }
}
