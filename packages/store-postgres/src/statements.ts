import { createHash } from 'node:crypto';
import type pg from 'pg';

const names = new Map<string, string>();

/**
 * A statement with parameters as a named prepared statement: each pooled connection parses and
 * plans it once, not on every call (the store's statements are a fixed set; list filters make a
 * few dozen shapes more). A statement without parameters goes as plain text.
 */
export function statement(text: string, values?: unknown[]): string | pg.QueryConfig {
  if (values === undefined) return text;
  let name = names.get(text);
  if (name === undefined) {
    name = `agentca_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
    names.set(text, name);
  }
  return { name, text, values };
}
