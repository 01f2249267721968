import { GENESIS_HASH } from '@agentca/core';

/** One step of the schema. Versions are 1, 2, 3… and a released migration never changes. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The schema, in order. Certificate times are integer milliseconds since the epoch (range
 * queries on `not_after`); the audit `at` is the ISO text the chain hashes, so what a person
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
];
