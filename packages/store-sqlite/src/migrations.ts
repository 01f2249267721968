import { GENESIS_HASH } from '@agentca/core';

/** One step of the schema. Versions are 1, 2, 3… and a released migration never changes. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The schema, in order. Certificate, revocation, CRL, task and token times are integer milliseconds since
 * the epoch (range queries on `not_after`); the audit `at` is the ISO text the chain hashes, so what a person
 * reads in the table is what the hash covers.
 */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'serials, certificates, audit events',
    sql: `
      CREATE TABLE serials (
        serial      TEXT PRIMARY KEY,
        reserved_at INTEGER NOT NULL
      ) WITHOUT ROWID;

      CREATE TABLE certificates (
        serial          TEXT PRIMARY KEY REFERENCES serials (serial),
        spiffe_id       TEXT NOT NULL,
        instance_id     TEXT NOT NULL,
        task_id         TEXT,
        on_behalf_of    TEXT,
        profile         TEXT NOT NULL,
        not_before      INTEGER NOT NULL,
        not_after       INTEGER NOT NULL,
        issued_at       INTEGER NOT NULL,
        key_fingerprint TEXT NOT NULL,
        der             BLOB NOT NULL
      );
      CREATE INDEX certificates_by_issued_at ON certificates (issued_at);
      CREATE INDEX certificates_by_spiffe_id ON certificates (spiffe_id, issued_at);
      CREATE INDEX certificates_by_instance_id ON certificates (instance_id, issued_at);
      CREATE INDEX certificates_by_task_id ON certificates (task_id, issued_at) WHERE task_id IS NOT NULL;
      CREATE INDEX certificates_by_not_after ON certificates (not_after);

      CREATE TABLE audit_events (
        seq       INTEGER PRIMARY KEY,
        at        TEXT NOT NULL,
        type      TEXT NOT NULL,
        actor     TEXT NOT NULL,
        outcome   TEXT NOT NULL,
        spiffe_id TEXT,
        serial    TEXT,
        code      TEXT,
        detail    TEXT,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
      );

      CREATE TABLE audit_head (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  INTEGER NOT NULL,
        hash TEXT NOT NULL
      );
      INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '${GENESIS_HASH}');
    `,
  },
  {
    version: 2,
    name: 'revocations, blocked keys, crl numbers, latest crls',
    // A revocation copies the certificate's identity and notAfter, so CRL and OCSP read one
    // table. A row is never deleted (OCSP still answers "revoked" once the CRL has dropped it):
    // `final_crl` is the first CRL issued after the certificate expired (RFC 5280 §3.3: an
    // entry stays until it has appeared on a CRL issued beyond the validity period), and the
    // partial indexes keep what a CRL lists cheap to read however long the history grows.
    // The reasons are spelled out rather than read from core because a released migration
    // never changes (RFC 5280 §5.3.1's list is closed anyway).
    sql: `
      CREATE TABLE revocations (
        serial      TEXT PRIMARY KEY REFERENCES certificates (serial),
        revoked_at  INTEGER NOT NULL,
        reason      TEXT NOT NULL CHECK (reason IN (
                      'unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded',
                      'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn', 'aACompromise')),
        not_after   INTEGER NOT NULL,
        spiffe_id   TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        task_id     TEXT,
        change_seq  INTEGER NOT NULL UNIQUE,
        final_crl   INTEGER
      ) WITHOUT ROWID;
      CREATE INDEX revocations_listed ON revocations (serial) WHERE final_crl IS NULL;
      CREATE INDEX revocations_listed_by_not_after ON revocations (not_after) WHERE final_crl IS NULL;

      CREATE TABLE blocked_keys (
        key_fingerprint TEXT PRIMARY KEY,
        serial          TEXT NOT NULL REFERENCES certificates (serial),
        at              INTEGER NOT NULL
      ) WITHOUT ROWID;

      CREATE TABLE crl_state (
        issuer      TEXT PRIMARY KEY CHECK (issuer IN ('intermediate', 'root')),
        last_number INTEGER NOT NULL CHECK (last_number > 0)
      ) WITHOUT ROWID;

      CREATE TABLE crls (
        issuer      TEXT PRIMARY KEY CHECK (issuer IN ('intermediate', 'root')),
        crl_number  INTEGER NOT NULL CHECK (crl_number > 0),
        this_update INTEGER NOT NULL,
        next_update INTEGER NOT NULL,
        der         BLOB NOT NULL
      );
    `,
  },
  {
    version: 3,
    name: 'tasks, join tokens',
    // A token row keeps only the SHA-256 of its secret. `used_by_serial` points at the
    // reservation the token bought, which is why consumption inserts the serial first; the
    // CHECK keeps "used" and "used by" from ever disagreeing. A task outlives its tokens and
    // is never deleted: `ended_at` is the first time it was ended.
    sql: `
      CREATE TABLE tasks (
        id       TEXT PRIMARY KEY,
        deadline INTEGER NOT NULL,
        ended_at INTEGER
      ) WITHOUT ROWID;

      CREATE TABLE join_tokens (
        id             TEXT PRIMARY KEY,
        hash           TEXT NOT NULL,
        spiffe_id      TEXT NOT NULL,
        profile        TEXT NOT NULL,
        task_id        TEXT REFERENCES tasks (id),
        on_behalf_of   TEXT,
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL,
        used_at        INTEGER,
        used_by_serial TEXT UNIQUE REFERENCES serials (serial),
        CHECK ((used_at IS NULL) = (used_by_serial IS NULL))
      ) WITHOUT ROWID;
      CREATE INDEX join_tokens_by_task_id ON join_tokens (task_id) WHERE task_id IS NOT NULL;
    `,
  },
  {
    version: 4,
    name: 'join tokens: used_by_serial unique only where set',
    // Version 3's column UNIQUE indexed every token, the unused ones under NULL in token-id
    // order, so consuming a token moved its entry from one random leaf to another: a quarter of
    // the WAL frames of an HTTPS issuance run. A partial UNIQUE index keeps the guarantee (a
    // serial is bought by one token at most) and holds only used tokens, whose serials arrive
    // in time order. SQLite cannot drop a column constraint, so the table is rebuilt: create,
    // copy, drop, rename, indexes again (the short form of SQLite's documented procedure, as no
    // other table references join_tokens and no trigger or view names it).
    sql: `
      CREATE TABLE join_tokens_v4 (
        id             TEXT PRIMARY KEY,
        hash           TEXT NOT NULL,
        spiffe_id      TEXT NOT NULL,
        profile        TEXT NOT NULL,
        task_id        TEXT REFERENCES tasks (id),
        on_behalf_of   TEXT,
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL,
        used_at        INTEGER,
        used_by_serial TEXT REFERENCES serials (serial),
        CHECK ((used_at IS NULL) = (used_by_serial IS NULL))
      ) WITHOUT ROWID;
      INSERT INTO join_tokens_v4 (id, hash, spiffe_id, profile, task_id, on_behalf_of, created_at, expires_at, used_at, used_by_serial)
        SELECT id, hash, spiffe_id, profile, task_id, on_behalf_of, created_at, expires_at, used_at, used_by_serial FROM join_tokens;
      DROP TABLE join_tokens;
      ALTER TABLE join_tokens_v4 RENAME TO join_tokens;
      CREATE INDEX join_tokens_by_task_id ON join_tokens (task_id) WHERE task_id IS NOT NULL;
      CREATE UNIQUE INDEX join_tokens_by_used_by_serial ON join_tokens (used_by_serial) WHERE used_by_serial IS NOT NULL;
    `,
  },
];
