/**
 * In-memory fakes of the store ports for the API tests: certificates (with the atomic
 * token consumption of `reserveSerial`), tokens and tasks, revocations, audit. Each check-and-
 * write runs without an `await` in between, so on one event loop it is atomic — the property
 * the SQL stores get from a transaction.
 */
import { createHash } from 'node:crypto';
import {
  Conflict,
  GENESIS_HASH,
  PolicyDenied,
  Unauthenticated,
  chainInput,
  type AuditEvent,
  type AuditEventInput,
  type AuditStore,
  type CertificateFilter,
  type CertificateRecord,
  type CertificateStore,
  type JoinTokenRecord,
  type RevocationReason,
  type RevocationRecord,
  type RevocationSelector,
  type RevocationStore,
  type RevokeOutcome,
  type TaskRecord,
  type TokenConsumption,
  type TokenStore,
} from '@agentca/core';

export class MemoryAuditStore implements AuditStore {
  events: AuditEvent[] = [];
  async append(e: AuditEventInput): Promise<AuditEvent> {
    return this.appendNow(e);
  }
  appendNow(e: AuditEventInput): AuditEvent {
    const prev = this.events.at(-1);
    const seq = (prev?.seq ?? 0) + 1;
    const prevHash = prev?.hash ?? GENESIS_HASH;
    const hash = createHash('sha256').update(chainInput(prevHash, seq, e)).digest('hex');
    const ev = { ...e, seq, prevHash, hash };
    this.events.push(ev);
    return ev;
  }
  async read(from: number, limit: number): Promise<AuditEvent[]> {
    return this.events.filter((e) => e.seq >= from).slice(0, limit);
  }
  async head(): Promise<{ seq: number; hash: string }> {
    const last = this.events.at(-1);
    return { seq: last?.seq ?? 0, hash: last?.hash ?? GENESIS_HASH };
  }
}

export class MemoryTokenStore implements TokenStore {
  tokens = new Map<string, JoinTokenRecord>();
  tasks = new Map<string, TaskRecord>();
  constructor(private audit: MemoryAuditStore) {}

  async create(token: JoinTokenRecord, task: { id: string; deadline: Date } | null, event: AuditEventInput): Promise<TaskRecord | null> {
    if (this.tokens.has(token.id)) throw new Conflict('ERR_TOKEN_EXISTS', `token ${token.id} exists`);
    let t: TaskRecord | null = null;
    if (task) {
      t = this.tasks.get(task.id) ?? { id: task.id, deadline: task.deadline, endedAt: null };
      this.tasks.set(task.id, t);
    }
    this.tokens.set(token.id, { ...token });
    this.audit.appendNow(event);
    return t ? { ...t } : null;
  }
  async get(id: string): Promise<JoinTokenRecord | null> {
    const t = this.tokens.get(id);
    return t ? { ...t } : null;
  }
  async getTask(id: string): Promise<TaskRecord | null> {
    const t = this.tasks.get(id);
    return t ? { ...t } : null;
  }
  async endTask(id: string, at: Date): Promise<TaskRecord | null> {
    const t = this.tasks.get(id);
    if (!t) return null;
    t.endedAt ??= at;
    return { ...t };
  }

  /** The check-and-consume of `CertificateStore.reserveSerial`; synchronous, hence atomic. */
  consumeNow(c: TokenConsumption, serial: string, at: Date): void {
    const t = this.tokens.get(c.tokenId);
    if (!t || t.hash !== c.tokenHash) throw new Unauthenticated('ERR_TOKEN_INVALID', 'the join token is not valid');
    if (t.usedAt) throw new Unauthenticated('ERR_TOKEN_ALREADY_USED', `join token ${t.id} was already used`);
    if (t.expiresAt.getTime() <= at.getTime()) throw new Unauthenticated('ERR_TOKEN_EXPIRED', `join token ${t.id} expired`);
    if (t.taskId) {
      const task = this.tasks.get(t.taskId);
      if (!task || task.endedAt) throw new PolicyDenied('ERR_TASK_ENDED', `task ${t.taskId} has ended`);
    }
    t.usedAt = at;
    t.usedBySerial = serial;
  }
}

export class MemoryCertificateStore implements CertificateStore {
  reserved = new Set<string>();
  certs = new Map<string, CertificateRecord>();
  constructor(
    private audit: MemoryAuditStore,
    private tokens: MemoryTokenStore,
  ) {}

  async reserveSerial(serial: string, at: Date, options?: { consumeToken?: TokenConsumption }): Promise<void> {
    if (this.reserved.has(serial)) throw new Conflict('ERR_SERIAL_EXISTS', `serial ${serial} was already reserved`);
    if (options?.consumeToken) this.tokens.consumeNow(options.consumeToken, serial, at);
    this.reserved.add(serial);
  }
  async record(c: CertificateRecord, e: AuditEventInput): Promise<AuditEvent> {
    if (!this.reserved.has(c.serial)) throw new Conflict('ERR_SERIAL_NOT_RESERVED', `serial ${c.serial} was not reserved`);
    if (this.certs.has(c.serial)) throw new Conflict('ERR_SERIAL_ALREADY_RECORDED', `serial ${c.serial} already has a certificate`);
    this.certs.set(c.serial, c);
    return this.audit.appendNow(e);
  }
  async get(serial: string): Promise<CertificateRecord | null> {
    return this.certs.get(serial) ?? null;
  }
  async list(f: CertificateFilter): Promise<CertificateRecord[]> {
    const out = [...this.certs.values()].filter(
      (c) =>
        (!f.spiffeId || c.spiffeId === f.spiffeId) &&
        (!f.instanceId || c.instanceId === f.instanceId) &&
        (!f.taskId || c.taskId === f.taskId) &&
        (!f.expiredAt || (c.notAfter.getTime() <= f.expiredAt.now.getTime()) === f.expiredAt.expired),
    );
    return f.limit !== undefined ? out.slice(0, f.limit) : out;
  }
  async count(): Promise<number> {
    return this.certs.size;
  }
}

export class MemoryRevocationStore implements RevocationStore {
  revocations = new Map<string, RevocationRecord>();
  blockedKeys = new Set<string>();
  #seq = 0;
  constructor(
    private audit: MemoryAuditStore,
    private certificates: MemoryCertificateStore,
  ) {}

  async revoke(selector: RevocationSelector, reason: RevocationReason, at: Date, event: AuditEventInput): Promise<RevokeOutcome> {
    const [kind, value] = Object.entries(selector)[0] as [keyof CertificateRecord, string];
    const matched = [...this.certificates.certs.values()].filter((c) => c[kind] === value && c.notAfter.getTime() > at.getTime());
    if (matched.length === 0) return { revoked: [], changed: 0 };
    let changed = 0;
    const revoked = matched.map((c) => {
      let r = this.revocations.get(c.serial);
      if (!r) {
        r = { serial: c.serial, revokedAt: at, reason, notAfter: c.notAfter, spiffeId: c.spiffeId, instanceId: c.instanceId, taskId: c.taskId, changeSeq: ++this.#seq };
        this.revocations.set(c.serial, r);
        changed++;
      } else if (reason === 'keyCompromise' && r.reason !== 'keyCompromise') {
        r = { ...r, reason, changeSeq: ++this.#seq };
        this.revocations.set(c.serial, r);
        changed++;
      }
      if (reason === 'keyCompromise') this.blockedKeys.add(c.keyFingerprint);
      return { ...r };
    });
    this.audit.appendNow({ ...event, detail: { ...event.detail, count: changed } });
    return { revoked, changed };
  }
  async get(serial: string): Promise<RevocationRecord | null> {
    const r = this.revocations.get(serial);
    return r ? { ...r } : null;
  }
  async crlEntries(): Promise<RevocationRecord[]> {
    return [...this.revocations.values()].sort((a, b) => (a.serial < b.serial ? -1 : 1));
  }
  #crlNumbers = { intermediate: 0n, root: 0n };
  async numberedCrlEntries(issuer: 'intermediate' | 'root'): Promise<{ crlNumber: bigint; entries: RevocationRecord[] }> {
    return { crlNumber: ++this.#crlNumbers[issuer], entries: await this.crlEntries() };
  }
  async markListedAfterExpiry(): Promise<number> {
    return 0;
  }
  async changesSince(since: number, limit: number): Promise<RevocationRecord[]> {
    return [...this.revocations.values()].filter((r) => r.changeSeq > since).sort((a, b) => a.changeSeq - b.changeSeq).slice(0, limit);
  }
  async isKeyBlocked(keyFingerprint: string): Promise<boolean> {
    return this.blockedKeys.has(keyFingerprint);
  }
}

export function memoryStores() {
  const audit = new MemoryAuditStore();
  const tokens = new MemoryTokenStore(audit);
  const certificates = new MemoryCertificateStore(audit, tokens);
  const revocations = new MemoryRevocationStore(audit, certificates);
  return { audit, tokens, certificates, revocations };
}
