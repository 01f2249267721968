import { InvalidRequest, type CrlStore, type PublishedCrl } from '@agentca/core';
import type Database from 'better-sqlite3';
import { millis } from './certificate-store.ts';
import { readNow } from './sqlite-errors.ts';
import type { WriteQueue } from './write-queue.ts';

type Issuer = PublishedCrl['issuer'];

interface CrlRow {
  issuer: Issuer;
  crl_number: bigint;
  this_update: bigint;
  next_update: bigint;
  der: Buffer;
}

const ISSUERS: readonly Issuer[] = ['intermediate', 'root'];
// SQLite integers are signed 64-bit; RFC 5280 §5.2.3 allows 20 octets, far beyond any real count.
const MAX_CRL_NUMBER = 2n ** 63n - 1n;

/**
 * CRL numbers in `crl_state` (the last number handed out per issuer) and the latest CRL per
 * issuer in `crls`; older CRLs are not kept. A number is allocated by one upsert in the write
 * queue, so it is durable before it is returned and never handed out twice.
 */
/** Allocates an issuer's next CRL number (shared with the revocation store's numberedCrlEntries). */
export const NEXT_CRL_NUMBER_SQL = `INSERT INTO crl_state (issuer, last_number) VALUES (?, 1)
  ON CONFLICT (issuer) DO UPDATE SET last_number = last_number + 1
  RETURNING last_number`;

export class SqliteCrlStore implements CrlStore {
  readonly #queue: WriteQueue;
  readonly #next: Database.Statement<[Issuer], bigint>;
  readonly #save: Database.Statement<[Issuer, bigint, number, number, Buffer]>;
  readonly #latest: Database.Statement<[Issuer], CrlRow>;

  constructor(db: Database.Database, queue: WriteQueue) {
    this.#queue = queue;
    this.#next = db
      .prepare(NEXT_CRL_NUMBER_SQL)
      .pluck()
      .safeIntegers() as Database.Statement<[Issuer], bigint>;
    // `>=`: saving the same CRL again is harmless; only a higher number already saved wins.
    this.#save = db.prepare(
      `INSERT INTO crls (issuer, crl_number, this_update, next_update, der) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (issuer) DO UPDATE SET
         crl_number = excluded.crl_number, this_update = excluded.this_update,
         next_update = excluded.next_update, der = excluded.der
       WHERE excluded.crl_number >= crls.crl_number`,
    );
    this.#latest = db
      .prepare('SELECT issuer, crl_number, this_update, next_update, der FROM crls WHERE issuer = ?')
      .safeIntegers() as Database.Statement<[Issuer], CrlRow>;
  }

  /** @throws InvalidRequest `ERR_CRL_ISSUER_INVALID` */
  async nextCrlNumber(issuer: Issuer): Promise<bigint> {
    assertIssuer(issuer);
    return this.#queue.enqueue(() => this.#next.get(issuer) as bigint);
  }

  /**
   * Keeps `crl` as its issuer's latest unless a higher number is saved already (then it is
   * dropped silently). The bytes are copied before the call returns.
   *
   * @throws InvalidRequest `ERR_CRL_ISSUER_INVALID`, `ERR_CRL_NUMBER_INVALID`, `ERR_DATE_INVALID`,
   * `ERR_CRL_INVALID` for empty bytes or a nextUpdate not after thisUpdate.
   */
  async save(crl: PublishedCrl): Promise<void> {
    assertIssuer(crl.issuer);
    const number = crlNumberParam(crl.crlNumber);
    const thisUpdate = millis(crl.thisUpdate, 'thisUpdate');
    const nextUpdate = millis(crl.nextUpdate, 'nextUpdate');
    if (nextUpdate <= thisUpdate) throw new InvalidRequest('ERR_CRL_INVALID', 'a crl’s nextUpdate must be after its thisUpdate');
    if (!(crl.der instanceof Uint8Array) || crl.der.byteLength === 0) throw new InvalidRequest('ERR_CRL_INVALID', 'a crl needs its DER bytes');
    const der = Buffer.from(crl.der);
    return this.#queue.enqueue(() => {
      this.#save.run(crl.issuer, number, thisUpdate, nextUpdate, der);
    });
  }

  /** @throws InvalidRequest `ERR_CRL_ISSUER_INVALID` */
  async latest(issuer: Issuer): Promise<PublishedCrl | null> {
    assertIssuer(issuer);
    return readNow(() => {
      const row = this.#latest.get(issuer);
      if (!row) return null;
      return {
        issuer: row.issuer,
        crlNumber: row.crl_number,
        thisUpdate: new Date(Number(row.this_update)),
        nextUpdate: new Date(Number(row.next_update)),
        der: new Uint8Array(row.der),
      };
    });
  }
}

/**
 * A CRL number as SQLite binds it.
 *
 * @throws InvalidRequest `ERR_CRL_NUMBER_INVALID` unless it is a bigint from 1 to 2^63 − 1.
 */
export function crlNumberParam(n: bigint): bigint {
  if (typeof n !== 'bigint' || n < 1n || n > MAX_CRL_NUMBER) {
    throw new InvalidRequest('ERR_CRL_NUMBER_INVALID', 'a crl number must be a positive 64-bit integer');
  }
  return n;
}

export function assertIssuer(issuer: Issuer): void {
  if (!ISSUERS.includes(issuer)) {
    throw new InvalidRequest('ERR_CRL_ISSUER_INVALID', `unknown crl issuer ${JSON.stringify(issuer)}: use intermediate or root`);
  }
}
