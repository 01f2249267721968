/**
 * Revoking: by serial, SPIFFE ID, instance or task, with an RFC 5280 reason. The store makes
 * each revocation durable (with its audit event) before this resolves; publishing it (CRL,
 * OCSP) is the job of whoever watches `RevocationStore.changesSince`.
 */
import { InvalidRequest, NotFound } from '../errors.ts';
import type { Clock } from '../ports/clock.ts';
import type { RevocationSelector, RevocationStore, RevokeOutcome } from '../ports/revocation-store.ts';
import { parseSpiffeId } from '../identity/spiffe-id.ts';
import { INSTANCE_ID_PATTERN } from '../issuance/attestation.ts';
import { normaliseSerial } from '../issuance/serial.ts';
import type { RevocationReason } from './reasons.ts';

export interface RevocationServiceOptions {
  revocations: RevocationStore;
  clock: Clock;
}

function describeSelector(s: RevocationSelector): string {
  if ('serial' in s) return `serial ${s.serial}`;
  if ('spiffeId' in s) return `SPIFFE ID ${s.spiffeId}`;
  if ('instanceId' in s) return `instance ${s.instanceId}`;
  return `task ${s.taskId}`;
}

/** Checks and normalises a selector from user input (a CLI flag, an API body). */
export function parseRevocationSelector(s: Partial<Record<'serial' | 'spiffeId' | 'instanceId' | 'taskId', unknown>>): RevocationSelector {
  const given = (['serial', 'spiffeId', 'instanceId', 'taskId'] as const).filter((k) => s[k] !== undefined);
  if (given.length !== 1) throw new InvalidRequest('ERR_REVOCATION_SELECTOR', 'name exactly one of serial, SPIFFE ID, instance or task');
  const k = given[0]!;
  const v = s[k];
  if (typeof v !== 'string') throw new InvalidRequest('ERR_REVOCATION_SELECTOR', `${k} must be a string`);
  switch (k) {
    case 'serial': {
      const serial = normaliseSerial(v);
      if (!serial) throw new InvalidRequest('ERR_SERIAL_INVALID', `${JSON.stringify(v.slice(0, 80))} is not a serial number (hex)`);
      return { serial };
    }
    case 'spiffeId':
      return { spiffeId: parseSpiffeId(v).toString() };
    case 'instanceId':
    case 'taskId':
      if (!INSTANCE_ID_PATTERN.test(v)) throw new InvalidRequest('ERR_REVOCATION_SELECTOR', `${k === 'taskId' ? 'task' : 'instance'} IDs are 1-128 of [A-Za-z0-9._-]`);
      return k === 'taskId' ? { taskId: v } : { instanceId: v };
  }
}

export class RevocationService {
  readonly #o: RevocationServiceOptions;
  constructor(o: RevocationServiceOptions) {
    this.#o = o;
  }

  /**
   * Revokes what `selector` names. Rejects with NotFound `ERR_NOTHING_TO_REVOKE` when no
   * unexpired certificate matches (nothing is written then).
   */
  async revoke(selector: RevocationSelector, reason: RevocationReason, actor: string): Promise<RevokeOutcome> {
    const at = this.#o.clock.now();
    const out = await this.#o.revocations.revoke(selector, reason, at, {
      type: 'revoke',
      actor,
      outcome: 'ok',
      at,
      ...('serial' in selector ? { serial: selector.serial } : {}),
      ...('spiffeId' in selector ? { spiffeId: selector.spiffeId } : {}),
      detail: {
        reason,
        ...('instanceId' in selector ? { instanceId: selector.instanceId } : {}),
        ...('taskId' in selector ? { taskId: selector.taskId } : {}),
      },
    });
    if (out.revoked.length === 0) throw new NotFound('ERR_NOTHING_TO_REVOKE', `no unexpired certificate matches ${describeSelector(selector)}`);
    return out;
  }

  /** Ends a task: every certificate of it is revoked (cessationOfOperation). */
  endTask(taskId: string, actor: string): Promise<RevokeOutcome> {
    return this.revoke(parseRevocationSelector({ taskId }), 'cessationOfOperation', actor);
  }
}
