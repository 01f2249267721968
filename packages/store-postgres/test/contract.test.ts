// The store contract (the same suite the SQLite store passes) against a real PostgreSQL server:
// one database for this file, a fresh schema for every store the contract opens.
import { FixedClock } from '@agentca/core';
import { describeStoreContract } from '@agentca/store-contract';
import { afterAll, beforeAll } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/postgres.ts';
import { openPostgresStore } from '../src/index.ts';

const clock = new FixedClock('2030-01-01T00:00:00.000Z');
let db: TestDatabase;
let schemas = 0;

beforeAll(async () => {
  db = await createTestDatabase('contract');
});
afterAll(async () => {
  await db?.drop();
});

describeStoreContract('postgresql', () => openPostgresStore(db.url, { clock, schema: `contract_${schemas++}`, max: 4 }));
