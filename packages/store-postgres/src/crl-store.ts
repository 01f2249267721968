import { InvalidRequest, type CrlStore, type PublishedCrl } from '@agentca/core';
import type { Reader } from './reader.ts';
import { crlNumberParam, instant } from './values.ts';

/** Allocates an issuer's next CRL number; the row stays locked until the transaction ends. */
export function nextCrlNumberSql(S: string): string {
  return `INSERT INTO ${S}.crl_state AS s (issuer, last_number) VALUES ($1, 1)
             ON CONFLICT (issuer) DO UPDATE SET last_number = s.last_number + 1
             RETURNING last_number`;
}

type Issuer = PublishedCrl['issuer'];

interface CrlRow {
  issuer: Issuer;
  crl_number: string;
  this_update: Date;
  next_update: Date;
  der: Buffer;
}

const ISSUERS: readonly Issuer[] = ['intermediate', 'root'];

/**
 * CRL numbers in `crl_state` (the last number handed out per issuer) and the latest CRL per
 * issuer in `crls`. A number is allocated by one upsert that increments the row in place: the
 * row lock makes concurrent allocations on every replica take turns, and the statement commits
 * before the number is returned, so numbers strictly increase and are never handed out twice.
 *
 * `latest` is cheap to poll (replicas check it to adopt each other's newer CRLs): it reads
 * the number first and the bytes only when the number changed since the last call.
 */
export class PostgresCrlStore implements CrlStore {
  readonly #read: Reader;
  readonly #sql: Record<'next' | 'save' | 'latest' | 'latestNumber', string>;
  readonly #cache = new Map<Issuer, PublishedCrl>();

  constructor(read: Reader, S: string) {
    this.#read = read;
    this.#sql = {
      next: nextCrlNumberSql(S),
      // `>=`: saving the same CRL again is harmless; only a higher number already saved wins.
      save: `INSERT INTO ${S}.crls AS c (issuer, crl_number, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (issuer) DO UPDATE SET
               crl_number = excluded.crl_number, this_update = excluded.this_update,
               next_update = excluded.next_update, der = excluded.der
             WHERE excluded.crl_number >= c.crl_number`,
      latest: `SELECT issuer, crl_number, this_update, next_update, der FROM ${S}.crls WHERE issuer = $1`,
      latestNumber: `SELECT crl_number FROM ${S}.crls WHERE issuer = $1`,
    };
  }

  /** @throws InvalidRequest `ERR_CRL_ISSUER_INVALID` */
  async nextCrlNumber(issuer: Issuer): Promise<bigint> {
    assertIssuer(issuer);
    const r = await this.#read.query<{ last_number: string }>(this.#sql.next, [issuer]);
    return BigInt(r.rows[0]!.last_number);
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
    const thisUpdate = instant(crl.thisUpdate, 'thisUpdate');
    const nextUpdate = instant(crl.nextUpdate, 'nextUpdate');
    if (crl.nextUpdate.getTime() <= crl.thisUpdate.getTime()) throw new InvalidRequest('ERR_CRL_INVALID', 'a crl’s nextUpdate must be after its thisUpdate');
    if (!(crl.der instanceof Uint8Array) || crl.der.byteLength === 0) throw new InvalidRequest('ERR_CRL_INVALID', 'a crl needs its DER bytes');
    await this.#read.query(this.#sql.save, [crl.issuer, number, thisUpdate, nextUpdate, Buffer.from(crl.der)]);
  }

  /** @throws InvalidRequest `ERR_CRL_ISSUER_INVALID` */
  async latest(issuer: Issuer): Promise<PublishedCrl | null> {
    assertIssuer(issuer);
    const cached = this.#cache.get(issuer);
    if (cached) {
      const n = (await this.#read.query<{ crl_number: string }>(this.#sql.latestNumber, [issuer])).rows[0];
      if (n && BigInt(n.crl_number) === cached.crlNumber) return copy(cached);
    }
    const row = (await this.#read.query<CrlRow>(this.#sql.latest, [issuer])).rows[0];
    if (!row) return null;
    const crl: PublishedCrl = {
      issuer: row.issuer,
      crlNumber: BigInt(row.crl_number),
      thisUpdate: row.this_update,
      nextUpdate: row.next_update,
      der: new Uint8Array(row.der),
    };
    this.#cache.set(issuer, crl);
    return copy(crl);
  }
}

function copy(c: PublishedCrl): PublishedCrl {
  return { ...c, thisUpdate: new Date(c.thisUpdate.getTime()), nextUpdate: new Date(c.nextUpdate.getTime()), der: c.der.slice() };
}

export function assertIssuer(issuer: Issuer): void {
  if (!ISSUERS.includes(issuer)) {
    throw new InvalidRequest('ERR_CRL_ISSUER_INVALID', `unknown crl issuer ${JSON.stringify(issuer)}: use intermediate or root`);
  }
}
