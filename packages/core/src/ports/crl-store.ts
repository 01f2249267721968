/** A CRL as published: its number, window and bytes. */
export interface PublishedCrl {
  issuer: 'intermediate' | 'root';
  crlNumber: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  der: Uint8Array;
}

/**
 * CRL numbers and the latest CRL per issuer. Numbers are allocated in the store, so they
 * increase strictly across restarts (and, with a shared database, across replicas).
 */
export interface CrlStore {
  /** Allocates the next CRL number for `issuer` (1, 2, 3, … never reused), durably. */
  nextCrlNumber(issuer: PublishedCrl['issuer']): Promise<bigint>;
  /** Saves a signed CRL as the latest for its issuer unless a higher number is already saved. */
  save(crl: PublishedCrl): Promise<void>;
  latest(issuer: PublishedCrl['issuer']): Promise<PublishedCrl | null>;
}
