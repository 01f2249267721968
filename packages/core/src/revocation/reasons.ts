import { InvalidRequest } from '../errors.ts';

/** RFC 5280 §5.3.1 CRLReason. 7 is unused; removeFromCRL (8) only has meaning in delta CRLs. */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;

export type RevocationReason = keyof typeof REVOCATION_REASONS;

export function reasonCode(r: RevocationReason): number {
  return REVOCATION_REASONS[r];
}

export function reasonFromCode(code: number): RevocationReason | null {
  return (Object.keys(REVOCATION_REASONS) as RevocationReason[]).find((k) => REVOCATION_REASONS[k] === code) ?? null;
}

/** Accepts the RFC names (`keyCompromise`) and the kebab-case a CLI user types (`key-compromise`). */
export function parseReason(text: string): RevocationReason {
  const t = text.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const hit = (Object.keys(REVOCATION_REASONS) as RevocationReason[]).find((k) => k.toLowerCase() === t.toLowerCase());
  if (!hit || hit === 'certificateHold')
    throw new InvalidRequest(
      'ERR_REVOCATION_REASON_INVALID',
      `unknown revocation reason ${JSON.stringify(text)}: use one of ${Object.keys(REVOCATION_REASONS).filter((k) => k !== 'certificateHold').join(', ')}`,
    );
  return hit;
}
