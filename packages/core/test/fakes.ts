/** In-memory fakes of the store ports, for core unit tests (the real stores run the contract suite). */
import { createHash } from 'node:crypto';
import {
  Conflict,
  GENESIS_HASH,
  chainInput,
  type AuditEvent,
  type AuditEventInput,
  type AuditStore,
  type CertificateFilter,
  type CertificateRecord,
  type CertificateStore,
  type KeyStore,
  type Signer,
  type KeyAlgorithm,
  generateWebCryptoSigner,
} from '../src/index.ts';

export class MemoryAuditStore implements AuditStore {
  events: AuditEvent[] = [];
  async append(e: AuditEventInput): Promise<AuditEvent> {
    const prev = this.events.at(-1);
    const seq = (prev?.seq ?? 0) + 1;
    const prevHash = prev?.hash ?? GENESIS_HASH;
    const hash = createHash('sha256').update(chainInput(prevHash, seq, e)).digest('hex');
    const ev = { ...e, seq, prevHash, hash };
    this.events.push(ev);
    return ev;
  }
  async read(from: number, limit: number) {
    return this.events.filter((e) => e.seq >= from).slice(0, limit);
  }
  async head() {
    const last = this.events.at(-1);
    return { seq: last?.seq ?? 0, hash: last?.hash ?? GENESIS_HASH };
  }
}

export class MemoryCertificateStore implements CertificateStore {
  reserved = new Set<string>();
  certs = new Map<string, CertificateRecord>();
  constructor(private audit: MemoryAuditStore) {}
  async reserveSerial(serial: string) {
    if (this.reserved.has(serial)) throw new Conflict('ERR_SERIAL_EXISTS', `serial ${serial} was already used`);
    this.reserved.add(serial);
  }
  async record(c: CertificateRecord, e: AuditEventInput) {
    if (!this.reserved.has(c.serial) || this.certs.has(c.serial)) throw new Conflict('ERR_SERIAL_NOT_RESERVED', 'not reserved');
    this.certs.set(c.serial, c);
    return this.audit.append(e);
  }
  async get(s: string) {
    return this.certs.get(s) ?? null;
  }
  async list(f: CertificateFilter) {
    return [...this.certs.values()].filter((c) => (!f.spiffeId || c.spiffeId === f.spiffeId) && (!f.instanceId || c.instanceId === f.instanceId));
  }
  async count() {
    return this.certs.size;
  }
}

export function memoryStore() {
  const audit = new MemoryAuditStore();
  return { audit, certificates: new MemoryCertificateStore(audit) };
}

export class MemoryKeyStore implements KeyStore {
  keys = new Map<string, Signer>();
  async generate(name: string, alg: KeyAlgorithm) {
    const s = await generateWebCryptoSigner(alg);
    this.keys.set(name, s);
    return s;
  }
  async open(name: string) {
    const s = this.keys.get(name);
    if (!s) throw new Error(`no key ${name}`);
    return s;
  }
}
