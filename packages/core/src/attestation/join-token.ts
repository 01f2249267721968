/**
 * One-time join tokens: `agentca-jt.<id>.<secret>`. The id (64 bits, hex) names the token in
 * logs and the audit log, and keys its row; the secret (256 bits, base64url) is shown once and
 * stored only as its SHA-256. The id is not a secret: three octets of the time it was minted
 * (as serials have, see {@link newTokenId}), then 40 bits from the CSPRNG. A token is bound to
 * one SPIFFE ID and profile (and optionally a task and an on-behalf-of principal); it is
 * consumed in the transaction that reserves the serial of the certificate it buys.
 */
import { Conflict, InvalidRequest, PolicyDenied, Unauthenticated } from '../errors.ts';
import { toBase64, toHex } from '../encoding.ts';
import type { Clock } from '../ports/clock.ts';
import type { CryptoBackend } from '../ports/crypto-backend.ts';
import type { Random } from '../ports/random.ts';
import type { TaskRecord, TokenStore } from '../ports/token-store.ts';
import { parseSpiffeIdIn } from '../identity/spiffe-id.ts';
import { checkIdentity, type Profile } from '../profile/profile.ts';
import { INSTANCE_ID_PATTERN, type Attestation } from '../issuance/attestation.ts';
import { SERIAL_TIME_BYTES, writeTimeOctets } from '../issuance/serial.ts';

export const JOIN_TOKEN_PREFIX = 'agentca-jt';
export const DEFAULT_TOKEN_TTL_SECONDS = 600;
export const MAX_TOKEN_TTL_SECONDS = 7 * 86400;
const TOKEN = /^agentca-jt\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;

const b64url = (b: Uint8Array) => toBase64(b).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

/** Compares two equal-length hex digests without an early exit. */
export function digestsEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export function parseJoinToken(text: string): { id: string; secret: string } {
  const m = typeof text === 'string' ? TOKEN.exec(text.trim()) : null;
  if (!m) throw new Unauthenticated('ERR_TOKEN_INVALID', 'the join token is not valid');
  return { id: m[1]!, secret: m[2]! };
}

export interface CreateTokenRequest {
  spiffeId: string;
  profile: string;
  ttlSeconds?: number;
  taskId?: string;
  taskTtlSeconds?: number;
  onBehalfOf?: string;
  actor: string;
}

export interface CreatedToken {
  /** The whole token, to hand to the workload once. Never logged, never stored. */
  token: string;
  id: string;
  spiffeId: string;
  profile: string;
  expiresAt: Date;
  task: TaskRecord | null;
  onBehalfOf: string | null;
}

export interface JoinTokensOptions {
  trustDomain: string;
  profile(name: string): Profile;
  tokens: TokenStore;
  clock: Clock;
  random: Random;
  crypto: CryptoBackend;
}

export class JoinTokens {
  readonly #o: JoinTokensOptions;
  constructor(o: JoinTokensOptions) {
    this.#o = o;
  }

  /** Mints a token for an identity the profile allows. */
  async create(r: CreateTokenRequest): Promise<CreatedToken> {
    const o = this.#o;
    const profile = o.profile(r.profile);
    const id = parseSpiffeIdIn(r.spiffeId, o.trustDomain);
    checkIdentity(profile, id);
    const ttl = r.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    if (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL_SECONDS)
      throw new InvalidRequest('ERR_TOKEN_TTL_INVALID', `a token TTL must be 1 s to ${MAX_TOKEN_TTL_SECONDS / 86400} days`);
    if (r.taskId !== undefined && !INSTANCE_ID_PATTERN.test(r.taskId)) throw new InvalidRequest('ERR_TASK_ID_INVALID', 'the task ID must be 1-128 of [A-Za-z0-9._-]');
    if (r.taskTtlSeconds !== undefined && r.taskId === undefined) throw new InvalidRequest('ERR_TASK_TTL_WITHOUT_TASK', 'a task TTL needs a task');
    if (r.onBehalfOf !== undefined && !/^[\x20-\x7e]{1,256}$/.test(r.onBehalfOf))
      throw new InvalidRequest('ERR_ON_BEHALF_OF_INVALID', 'on-behalf-of must be 1-256 printable ASCII characters');
    const taskTtl = r.taskTtlSeconds ?? 3600;
    if (!Number.isSafeInteger(taskTtl) || taskTtl < 60 || taskTtl > 30 * 86400) throw new InvalidRequest('ERR_TASK_TTL_INVALID', 'a task TTL must be 1 minute to 30 days');
    const now = o.clock.now();
    const secret = b64url(o.random.bytes(32));
    const hash = toHex(await o.crypto.digest('SHA-256', new TextEncoder().encode(secret)));
    const expiresAt = new Date(now.getTime() + ttl * 1000);
    const spiffeId = id.toString();
    const task = r.taskId !== undefined ? { id: r.taskId, deadline: new Date(now.getTime() + taskTtl * 1000) } : null;
    // 40 random bits per 1/64 s: two tokens minted in the same unit (or one wrap of the time
    // octets apart) share an id about once in 2^40; the store refuses the second, writing
    // nothing, and a fresh id is drawn.
    for (let attempt = 1; ; attempt++) {
      const tokenId = newTokenId(o.random, now);
      const record = { id: tokenId, hash, spiffeId, profile: profile.name, taskId: r.taskId ?? null, onBehalfOf: r.onBehalfOf ?? null, createdAt: now, expiresAt, usedAt: null, usedBySerial: null };
      const detail = { tokenId, profile: profile.name, expiresAt: expiresAt.toISOString(), taskId: r.taskId ?? null, onBehalfOf: r.onBehalfOf ?? null };
      try {
        const stored = await o.tokens.create(record, task, { type: 'token.create', actor: r.actor, outcome: 'ok', at: now, spiffeId, detail });
        return { token: `${JOIN_TOKEN_PREFIX}.${tokenId}.${secret}`, id: tokenId, spiffeId, profile: profile.name, expiresAt, task: stored, onBehalfOf: r.onBehalfOf ?? null };
      } catch (e) {
        if (attempt === 3 || !(e instanceof Conflict) || e.code !== 'ERR_TOKEN_EXISTS') throw e;
      }
    }
  }

  /**
   * The join-token provisioner: checks the token (known, secret matches in constant time, not
   * used, not expired, its task not ended) and returns the attestation it proves. The token is
   * consumed later, atomically with the serial reservation — this check only gives early,
   * specific errors.
   */
  async authorize(tokenText: string): Promise<Attestation> {
    const o = this.#o;
    const { id, secret } = parseJoinToken(tokenText);
    const hash = toHex(await o.crypto.digest('SHA-256', new TextEncoder().encode(secret)));
    const t = await o.tokens.get(id);
    if (!t || !digestsEqual(t.hash, hash)) throw new Unauthenticated('ERR_TOKEN_INVALID', 'the join token is not valid');
    const now = o.clock.now();
    if (t.usedAt) throw new Unauthenticated('ERR_TOKEN_ALREADY_USED', `join token ${id} was already used`);
    if (t.expiresAt.getTime() <= now.getTime()) throw new Unauthenticated('ERR_TOKEN_EXPIRED', `join token ${id} expired at ${t.expiresAt.toISOString()}`);
    let deadline: Date | null = null;
    if (t.taskId) {
      const task = await o.tokens.getTask(t.taskId);
      if (!task || task.endedAt) throw new PolicyDenied('ERR_TASK_ENDED', `task ${t.taskId} has ended`);
      deadline = task.deadline;
    }
    return {
      spiffeId: t.spiffeId,
      profile: t.profile,
      taskId: t.taskId,
      taskDeadline: deadline,
      onBehalfOf: t.onBehalfOf,
      method: 'join-token',
      actor: `token:${id}`,
      consumeToken: { tokenId: id, tokenHash: hash },
    };
  }
}

/**
 * A join token's id, as hex: three octets of `at` in 1/64 s (as serials have, so the store's
 * token index grows at its right end, where the tokens minted lately — the ones about to be
 * used — sit together), then 5 octets from `random`.
 */
export function newTokenId(random: Random, at: Date): string {
  const id = new Uint8Array(8);
  writeTimeOctets(id, 0, at);
  id.set(random.bytes(8 - SERIAL_TIME_BYTES), SERIAL_TIME_BYTES);
  return toHex(id);
}
