/**
 * Structured logs: one JSON object a line on stderr. Callers pass fields, never a formatted
 * string, so a token, key or CSR cannot slip into a message by interpolation.
 */
export interface Logger {
  info(fields: Record<string, unknown>): void;
  warn(fields: Record<string, unknown>): void;
  error(fields: Record<string, unknown>): void;
}

export function jsonLogger(write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const at = (level: string) => (fields: Record<string, unknown>) => write(JSON.stringify({ time: new Date().toISOString(), level, ...fields }) + '\n');
  return { info: at('info'), warn: at('warn'), error: at('error') };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
