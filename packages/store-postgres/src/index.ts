export { openPostgresStore, dropPostgresSchema, PostgresStore, type PostgresStoreOptions } from './postgres-store.ts';
export { isPostgresUrl, redactPostgresUrl, checkPostgresUrl } from './connection.ts';
