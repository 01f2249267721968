import { GENESIS_HASH, Unavailable, type Clock } from '@agentca/core';
import type pg from 'pg';

/** One step of the schema. Versions are 1, 2, 3… and a released migration never changes. */
export interface Migration {
  version: number;
  name: string;
  /** The SQL, with `S.` standing for the store's schema. */
  sql: string;
}

/**
 * The schema. Serials are hex text in the "C" collation, so their order is byte order whatever
 * the database's locale (CRL entries are listed in serial order). Instants are `timestamptz` (milliseconds survive: it keeps microseconds), so an
 * operator reading the tables with psql sees times, not numbers. The audit chain hashes the
 * ISO text of `at`, which the column gives back to the millisecond.
 *
 * Cross-replica invariants live in the schema, not in luck:
 * - `serials.serial` is the PRIMARY KEY and a reservation is never deleted;
 * - a certificate, a token's `used_by_serial` and a revocation point at what they need;
 * - `audit_head` is one row: appends lock it (`FOR UPDATE`), so writers on any replica extend
 *   one chain, one batch at a time;
 * - `revocation_feed` is one counter row: a transaction that changes a revocation locks it to
 *   take its `change_seq`, so change sequence numbers become visible in the order they were
 *   taken, and a poller of `change_seq > last` never skips one (a SEQUENCE would not do: a
 *   transaction that took 5 may commit after another reader saw 6);
 * - `crl_state` is one row per issuer, incremented in place: CRL numbers strictly increase
 *   across every replica.
 */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'serials, certificates, audit chain, revocations, crls, tasks, join tokens',
    sql: `
      CREATE TABLE S.serials (
        serial      text COLLATE "C" PRIMARY KEY,
        reserved_at timestamptz NOT NULL
      );

      CREATE TABLE S.certificates (
        serial          text COLLATE "C" PRIMARY KEY REFERENCES S.serials (serial),
        recorded        bigint GENERATED ALWAYS AS IDENTITY,
        spiffe_id       text NOT NULL,
        instance_id     text NOT NULL,
        task_id         text,
        on_behalf_of    text,
        profile         text NOT NULL,
        not_before      timestamptz NOT NULL,
        not_after       timestamptz NOT NULL,
        issued_at       timestamptz NOT NULL,
        key_fingerprint text NOT NULL,
        der             bytea NOT NULL
      );
      CREATE INDEX certificates_by_issued_at ON S.certificates (issued_at, recorded);
      CREATE INDEX certificates_by_spiffe_id ON S.certificates (spiffe_id, issued_at);
      CREATE INDEX certificates_by_instance_id ON S.certificates (instance_id, issued_at);
      CREATE INDEX certificates_by_task_id ON S.certificates (task_id, issued_at) WHERE task_id IS NOT NULL;
      CREATE INDEX certificates_by_not_after ON S.certificates (not_after);

      CREATE TABLE S.audit_events (
        seq       bigint PRIMARY KEY,
        at        timestamptz NOT NULL,
        type      text NOT NULL,
        actor     text NOT NULL,
        outcome   text NOT NULL,
        spiffe_id text,
        serial    text,
        code      text,
        detail    text,
        prev_hash text NOT NULL,
        hash      text NOT NULL
      );

      CREATE TABLE S.audit_head (
        id   integer PRIMARY KEY CHECK (id = 1),
        seq  bigint NOT NULL,
        hash text NOT NULL
      );
      INSERT INTO S.audit_head (id, seq, hash) VALUES (1, 0, '${GENESIS_HASH}');

      CREATE TABLE S.revocations (
        serial      text COLLATE "C" PRIMARY KEY REFERENCES S.certificates (serial),
        revoked_at  timestamptz NOT NULL,
        reason      text NOT NULL CHECK (reason IN (
                      'unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded',
                      'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn', 'aACompromise')),
        not_after   timestamptz NOT NULL,
        spiffe_id   text NOT NULL,
        instance_id text NOT NULL,
        task_id     text,
        change_seq  bigint NOT NULL UNIQUE,
        final_crl   bigint
      );
      CREATE INDEX revocations_listed ON S.revocations (serial) WHERE final_crl IS NULL;
      CREATE INDEX revocations_listed_by_not_after ON S.revocations (not_after) WHERE final_crl IS NULL;

      CREATE TABLE S.revocation_feed (
        id       integer PRIMARY KEY CHECK (id = 1),
        last_seq bigint NOT NULL
      );
      INSERT INTO S.revocation_feed (id, last_seq) VALUES (1, 0);

      CREATE TABLE S.blocked_keys (
        key_fingerprint text PRIMARY KEY,
        serial          text NOT NULL REFERENCES S.certificates (serial),
        at              timestamptz NOT NULL
      );

      CREATE TABLE S.crl_state (
        issuer      text PRIMARY KEY CHECK (issuer IN ('intermediate', 'root')),
        last_number bigint NOT NULL CHECK (last_number > 0)
      );

      CREATE TABLE S.crls (
        issuer      text PRIMARY KEY CHECK (issuer IN ('intermediate', 'root')),
        crl_number  bigint NOT NULL CHECK (crl_number > 0),
        this_update timestamptz NOT NULL,
        next_update timestamptz NOT NULL,
        der         bytea NOT NULL
      );

      CREATE TABLE S.tasks (
        id       text PRIMARY KEY,
        deadline timestamptz NOT NULL,
        ended_at timestamptz
      );

      -- The task reference is checked at commit, so a token can be inserted before the task it
      -- names: a refused token (its ID taken) then leaves no task behind.
      CREATE TABLE S.join_tokens (
        id             text PRIMARY KEY,
        hash           text NOT NULL,
        spiffe_id      text NOT NULL,
        profile        text NOT NULL,
        task_id        text REFERENCES S.tasks (id) DEFERRABLE INITIALLY DEFERRED,
        on_behalf_of   text,
        created_at     timestamptz NOT NULL,
        expires_at     timestamptz NOT NULL,
        used_at        timestamptz,
        used_by_serial text UNIQUE REFERENCES S.serials (serial),
        CHECK ((used_at IS NULL) = (used_by_serial IS NULL))
      );
      CREATE INDEX join_tokens_by_task_id ON S.join_tokens (task_id) WHERE task_id IS NOT NULL;
    `,
  },
];

/** A SQL identifier for the schema name (checked: lower-case letters, digits, underscores). */
export function schemaIdent(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new TypeError(`invalid schema name ${JSON.stringify(schema)}`);
  return `"${schema}"`;
}

/**
 * Creates the schema and applies, in one transaction, the migrations it has not seen yet.
 * Replicas starting together serialise on a transaction-scoped advisory lock, so each
 * migration is applied once. Returns whether the schema was created by this call.
 *
 * @throws Unavailable `ERR_STORE_SCHEMA_TOO_NEW` if a newer agentca migrated it.
 */
export async function migrate(client: pg.PoolClient, schema: string, clock: Clock, list: readonly Migration[] = migrations): Promise<{ created: boolean }> {
  const S = schemaIdent(schema);
  const latest = list.reduce((max, m) => Math.max(max, m.version), 0);
  await client.query('BEGIN');
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext('agentca migrations'))");
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    const created = exists.rowCount === 0;
    if (created) await client.query(`CREATE SCHEMA ${S}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${S}.schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL
    )`);
    const applied = new Set((await client.query<{ version: number }>(`SELECT version FROM ${S}.schema_migrations`)).rows.map((r) => r.version));
    const newer = [...applied].filter((v) => v > latest);
    if (newer.length > 0) {
      throw new Unavailable('ERR_STORE_SCHEMA_TOO_NEW', `the store has schema version ${Math.max(...newer)}, this agentca knows up to ${latest}`);
    }
    for (const m of [...list].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql.replace(/\bS\./g, `${S}.`));
      await client.query(`INSERT INTO ${S}.schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, [m.version, m.name, clock.now().toISOString()]);
    }
    await client.query('COMMIT');
    return { created };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}
