export { openSqliteStore, SqliteStore, type SqliteStoreOptions } from './sqlite-store.ts';
