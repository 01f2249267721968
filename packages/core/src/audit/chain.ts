import { sha256, toHex } from '../encoding.ts';
import type { AuditEvent, AuditEventInput } from '../ports/audit-store.ts';

/** The `prevHash` of the first event. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * The bytes an event's hash covers: a JSON array in a fixed field order, so the
 * encoding never depends on object key order. `detail` keys are sorted.
 */
export function canonicalEvent(seq: number, e: AuditEventInput): string {
  const detail = e.detail ? sortedKeys(e.detail) : null;
  return JSON.stringify([
    1, // chain format version
    seq,
    e.at.toISOString(),
    e.type,
    e.actor,
    e.outcome,
    e.spiffeId ?? null,
    e.serial ?? null,
    e.code ?? null,
    detail,
  ]);
}

/** The object with its keys in code-unit order; the object itself when they already are (the pipeline writes them so). */
function sortedKeys(o: Record<string, unknown>): Record<string, unknown> {
  const keys = Object.keys(o);
  let sorted = true;
  for (let i = 1; i < keys.length && sorted; i++) sorted = keys[i - 1]! < keys[i]!;
  if (sorted) return o;
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The text hashed for a link: `prevHash ‖ "\n" ‖ canonical(event)`. Stores hash it with SHA-256 (hex). */
export function chainInput(prevHash: string, seq: number, e: AuditEventInput): string {
  return `${prevHash}\n${canonicalEvent(seq, e)}`;
}

export type AuditVerification =
  | { ok: true; events: number; head: string }
  | { ok: false; events: number; seq: number; reason: string };

async function sha256Hex(text: string): Promise<string> {
  return toHex(await sha256(text));
}

/**
 * Walks the chain from the first event and names the first event that breaks it: a gap or
 * reordering in `seq`, a `prevHash` that is not the previous hash, or a hash that does not
 * cover the event's content. `expectedHead`, when given, catches a truncated tail.
 */
export class AuditChainVerifier {
  #prev = GENESIS_HASH;
  #seq = 0;
  #failure: { seq: number; reason: string } | null = null;

  async add(e: AuditEvent): Promise<boolean> {
    if (this.#failure) return false;
    const fail = (reason: string) => {
      this.#failure = { seq: e.seq, reason };
      return false;
    };
    if (e.seq !== this.#seq + 1) {
      this.#failure = { seq: this.#seq + 1, reason: `event ${this.#seq + 1} is missing (next is ${e.seq})` };
      return false;
    }
    if (e.prevHash !== this.#prev) return fail(`event ${e.seq} does not link to event ${this.#seq}`);
    const want = await sha256Hex(chainInput(e.prevHash, e.seq, e));
    if (want !== e.hash) return fail(`event ${e.seq} was altered (its hash does not match its content)`);
    this.#prev = e.hash;
    this.#seq = e.seq;
    return true;
  }

  finish(expectedHead?: { seq: number; hash: string }): AuditVerification {
    if (this.#failure) return { ok: false, events: this.#seq, ...this.#failure };
    if (expectedHead && (expectedHead.seq !== this.#seq || expectedHead.hash !== this.#prev)) {
      const seq = Math.min(expectedHead.seq, this.#seq + 1);
      return { ok: false, events: this.#seq, seq, reason: `the log ends at event ${this.#seq} but its head record says ${expectedHead.seq}: events were removed` };
    }
    return { ok: true, events: this.#seq, head: this.#prev };
  }
}
