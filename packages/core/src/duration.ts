import { InvalidRequest } from './errors.ts';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parses `90s`, `10m`, `1h`, `30d` or `1h30m` into seconds; a bare number is seconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const t = String(text).trim();
  if (/^\d+$/.test(t)) return Number(t);
  const parts = [...t.matchAll(/(\d+)([smhd])/g)];
  if (parts.length === 0 || parts.map((m) => m[0]).join('') !== t)
    throw new InvalidRequest('ERR_DURATION_INVALID', `${what} ${JSON.stringify(t)} is not a duration (use e.g. 90s, 10m, 1h, 30d)`);
  const secs = parts.reduce((acc, m) => acc + Number(m[1]) * UNITS[m[2]!]!, 0);
  if (!Number.isSafeInteger(secs)) throw new InvalidRequest('ERR_DURATION_INVALID', `${what} ${JSON.stringify(t)} is out of range`);
  return secs;
}

export function formatDuration(secs: number): string {
  if (secs % 86400 === 0) return `${secs / 86400}d`;
  if (secs % 3600 === 0) return `${secs / 3600}h`;
  if (secs % 60 === 0) return `${secs / 60}m`;
  return `${secs}s`;
}
