import { Conflict, GENESIS_HASH, InvalidRequest, type AuditEventInput, type CertificateRecord } from '@agentca/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOUR, T0, contractCertificate, contractIssueEvent, contractSerial, readAll, rejection, reserveAndRecord, verifyChain, type StoreUnderTest } from './fixtures.ts';
import { describeCrlContract, describeRevocationContract } from './revocation-contract.ts';
import { describeTokenContract } from './token-contract.ts';

export { contractCertificate, contractIssueEvent, contractSerial, contractToken, contractTokenEvent, type StoreUnderTest } from './fixtures.ts';
export { describeCrlContract, describeRevocationContract } from './revocation-contract.ts';
export { describeTokenContract } from './token-contract.ts';

function auditEvent(n: number): AuditEventInput {
  return { type: 'token.create', actor: 'operator', outcome: n % 7 === 0 ? 'denied' : 'ok', at: new Date(T0 + n), detail: { n } };
}

/**
 * The behaviour every implementation of the store ports must show: certificates and audit
 * here, revocations and CRLs through {@link describeRevocationContract} and
 * {@link describeCrlContract}, join tokens and tasks through {@link describeTokenContract}.
 * `open` must return a fresh, empty store each time; every test opens its own and closes it.
 *
 * @example
 * ```ts
 * describeStoreContract('sqlite', () => openSqliteStore(join(mkdtempSync(join(tmpdir(), 'agentca-')), 'ca.db')));
 * ```
 */
export function describeStoreContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`store contract: ${name}`, () => {
    let store: StoreUnderTest;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('serial reservation', () => {
      it('reserves a serial once and rejects it ever after with ERR_SERIAL_EXISTS', async () => {
        const serial = contractSerial(1);
        await store.certificates.reserveSerial(serial, new Date(T0));
        const e = await rejection(store.certificates.reserveSerial(serial, new Date(T0 + 1)));
        expect(e).toBeInstanceOf(Conflict);
        expect(e).toMatchObject({ code: 'ERR_SERIAL_EXISTS', message: `serial ${serial} was already reserved` });
      });

      it('keeps a serial reserved when no certificate was ever recorded under it', async () => {
        const serial = contractSerial(2);
        await store.certificates.reserveSerial(serial, new Date(T0));
        expect(await store.certificates.get(serial)).toBeNull();
        expect(await store.certificates.count()).toBe(0);
        await expect(store.certificates.reserveSerial(serial, new Date(T0 + HOUR))).rejects.toMatchObject({ code: 'ERR_SERIAL_EXISTS' });
      });

      it('lets exactly one of 200 concurrent reservations win per serial', async () => {
        // 150 distinct serials; 50 of them asked for twice, interleaved.
        const serials = Array.from({ length: 150 }, (_, i) => contractSerial(i));
        const asked = [...serials, ...serials.slice(0, 50)].map((s, i) => ({ s, k: (i * 7919) % 200 })).sort((a, b) => a.k - b.k).map((x) => x.s);
        const results = await Promise.allSettled(asked.map((s) => store.certificates.reserveSerial(s, new Date(T0))));
        const wins = new Map<string, number>();
        results.forEach((r, i) => {
          if (r.status === 'fulfilled') wins.set(asked[i]!, (wins.get(asked[i]!) ?? 0) + 1);
          else expect(r.reason).toMatchObject({ code: 'ERR_SERIAL_EXISTS' });
        });
        expect(wins.size).toBe(150);
        expect([...wins.values()].every((n) => n === 1)).toBe(true);
        expect(results.filter((r) => r.status === 'rejected')).toHaveLength(50);
      });

      it('rejects a serial that is not canonical lower-case hex, so no two spellings of one serial exist', async () => {
        for (const bad of ['4A01', '4a0', '004a01', '', 'xyz1', '4a'.repeat(21)]) {
          const e = await rejection(store.certificates.reserveSerial(bad, new Date(T0)));
          expect(e).toBeInstanceOf(InvalidRequest);
          expect(e).toMatchObject({ code: 'ERR_SERIAL_INVALID' });
        }
      });
    });

    describe('recording certificates', () => {
      it('stores a certificate with its audit event and returns the event as the log holds it', async () => {
        const c = contractCertificate(4);
        const event = await reserveAndRecord(store, c);
        expect(event).toMatchObject({ seq: 1, prevHash: GENESIS_HASH, type: 'issue', serial: c.serial, spiffeId: c.spiffeId });
        expect(event.hash).toMatch(/^[0-9a-f]{64}$/);
        expect(await store.audit.read(1, 10)).toEqual([event]);
        expect(await store.audit.head()).toEqual({ seq: 1, hash: event.hash });
      });

      it('refuses a serial that was never reserved with ERR_SERIAL_NOT_RESERVED, and audits nothing', async () => {
        const c = contractCertificate(5);
        const e = await rejection(store.certificates.record(c, contractIssueEvent(c)));
        expect(e).toBeInstanceOf(Conflict);
        expect(e).toMatchObject({ code: 'ERR_SERIAL_NOT_RESERVED', message: `serial ${c.serial} was not reserved` });
        expect(await store.certificates.get(c.serial)).toBeNull();
        expect(await store.audit.head()).toEqual({ seq: 0, hash: GENESIS_HASH });
        expect(await store.audit.read(1, 10)).toEqual([]);
      });

      it('refuses a second certificate under one serial with ERR_SERIAL_ALREADY_RECORDED, and audits nothing more', async () => {
        const c = contractCertificate(6);
        const first = await reserveAndRecord(store, c);
        const e = await rejection(store.certificates.record({ ...c, spiffeId: 'spiffe://example.org/other' }, contractIssueEvent(c)));
        expect(e).toBeInstanceOf(Conflict);
        expect(e).toMatchObject({ code: 'ERR_SERIAL_ALREADY_RECORDED', message: `serial ${c.serial} already has a certificate` });
        expect((await store.certificates.get(c.serial))?.spiffeId).toBe(c.spiffeId);
        expect(await store.audit.head()).toEqual({ seq: 1, hash: first.hash });
      });

      it('stores neither the certificate nor the event when the event cannot be written, and the serial stays usable', async () => {
        const c = contractCertificate(7);
        await store.certificates.reserveSerial(c.serial, new Date(T0));
        await expect(store.certificates.record(c, { ...contractIssueEvent(c), at: new Date(Number.NaN) })).rejects.toBeInstanceOf(Error);
        expect(await store.certificates.get(c.serial)).toBeNull();
        expect(await store.certificates.count()).toBe(0);
        expect(await store.audit.head()).toEqual({ seq: 0, hash: GENESIS_HASH });
        const event = await store.certificates.record(c, contractIssueEvent(c));
        expect(event.seq).toBe(1);
      });

      it('refuses an audit event about another serial', async () => {
        const c = contractCertificate(8);
        await store.certificates.reserveSerial(c.serial, new Date(T0));
        const e = await rejection(store.certificates.record(c, { ...contractIssueEvent(c), serial: contractSerial(9) }));
        expect(e).toBeInstanceOf(InvalidRequest);
        expect(await store.certificates.get(c.serial)).toBeNull();
      });

      it('settles each of many concurrent records on its own: failures store and audit nothing, successes chain', async () => {
        const certs = Array.from({ length: 40 }, (_, i) => contractCertificate(100 + i));
        await Promise.all(certs.filter((_, i) => i % 4 !== 0).map((c) => store.certificates.reserveSerial(c.serial, new Date(T0))));
        const results = await Promise.allSettled(certs.map((c) => store.certificates.record(c, contractIssueEvent(c))));
        results.forEach((r, i) => {
          if (i % 4 === 0) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'ERR_SERIAL_NOT_RESERVED' } });
          else expect(r.status).toBe('fulfilled');
        });
        expect(await store.certificates.count()).toBe(30);
        expect(await verifyChain(store.audit)).toMatchObject({ ok: true, events: 30 });
        const audited = (await store.audit.read(1, 100)).map((e) => e.serial).sort();
        const stored = (await store.certificates.list({})).map((c) => c.serial).sort();
        expect(audited).toEqual(stored);
      });
    });

    describe('reading certificates', () => {
      it('round-trips every field: nulls, dates to the millisecond, DER bytes', async () => {
        for (const c of [contractCertificate(10), contractCertificate(11)]) {
          await reserveAndRecord(store, c);
          const got = await store.certificates.get(c.serial);
          expect(got).toEqual(c);
          expect(got!.der).toBeInstanceOf(Uint8Array);
          expect(Array.from(got!.der)).toEqual(Array.from(c.der));
          expect(got!.notAfter.getTime()).toBe(c.notAfter.getTime());
        }
        expect(await store.certificates.get(contractSerial(12))).toBeNull();
      });

      it('does not keep a reference to the caller’s DER buffer', async () => {
        const c = contractCertificate(13);
        const der = Uint8Array.from(c.der);
        await store.certificates.reserveSerial(c.serial, new Date(T0));
        const pending = store.certificates.record({ ...c, der }, contractIssueEvent(c));
        der.fill(0);
        await pending;
        expect((await store.certificates.get(c.serial))!.der).toEqual(c.der);
      });

      it('counts recorded certificates, not reservations', async () => {
        expect(await store.certificates.count()).toBe(0);
        await reserveAndRecord(store, contractCertificate(20));
        await reserveAndRecord(store, contractCertificate(21));
        await store.certificates.reserveSerial(contractSerial(22), new Date(T0));
        expect(await store.certificates.count()).toBe(2);
      });

      it('lists by SPIFFE ID, instance, task and expiry, oldest issued first, up to a limit', async () => {
        // Recorded out of issuance order, so ordering is the store's work.
        const certs = [5, 3, 0, 4, 1, 2].map((n) => contractCertificate(30 + n, { issuedAt: new Date(T0 + n * 1000) }));
        for (const c of certs) await reserveAndRecord(store, c);
        const byIssued = [...certs].sort((a, b) => a.issuedAt.getTime() - b.issuedAt.getTime());
        const serials = (list: CertificateRecord[]) => list.map((c) => c.serial);

        expect(await store.certificates.list({})).toEqual(byIssued);
        expect(serials(await store.certificates.list({ limit: 2 }))).toEqual(serials(byIssued.slice(0, 2)));
        expect(await store.certificates.list({ limit: 0 })).toEqual([]);

        const spiffeId = certs[0]!.spiffeId;
        expect(serials(await store.certificates.list({ spiffeId }))).toEqual(serials(byIssued.filter((c) => c.spiffeId === spiffeId)));
        expect(serials(await store.certificates.list({ instanceId: 'instance-1' }))).toEqual(serials(byIssued.filter((c) => c.instanceId === 'instance-1')));
        const taskId = byIssued.find((c) => c.taskId !== null)!.taskId!;
        expect(serials(await store.certificates.list({ taskId }))).toEqual(serials(byIssued.filter((c) => c.taskId === taskId)));
        expect(await store.certificates.list({ spiffeId: 'spiffe://example.org/nobody' })).toEqual([]);
        expect(serials(await store.certificates.list({ spiffeId, instanceId: 'instance-0' }))).toEqual(
          serials(byIssued.filter((c) => c.spiffeId === spiffeId && c.instanceId === 'instance-0')),
        );

        // notAfter of contractCertificate(n) is T0 + n s + 1 h + 999 ms; cut between 32 and 33.
        const cut = contractCertificate(32).notAfter;
        const expired = await store.certificates.list({ expiredAt: { now: cut, expired: true } });
        const valid = await store.certificates.list({ expiredAt: { now: cut, expired: false } });
        expect(serials(expired).sort()).toEqual([30, 31, 32].map(contractSerial).sort());
        expect(serials(valid).sort()).toEqual([33, 34, 35].map(contractSerial).sort());
        expect(serials(await store.certificates.list({ expiredAt: { now: cut, expired: false }, limit: 1 }))).toEqual(serials(valid.slice(0, 1)));
      });
    });

    describe('audit log', () => {
      it('starts empty at the genesis hash', async () => {
        expect(await store.audit.head()).toEqual({ seq: 0, hash: GENESIS_HASH });
        expect(await store.audit.read(1, 10)).toEqual([]);
        expect(await verifyChain(store.audit)).toEqual({ ok: true, events: 0, head: GENESIS_HASH });
      });

      it('round-trips an event, turning absent optional fields into null', async () => {
        const full: AuditEventInput = {
          type: 'deny',
          actor: 'spiffe://example.org/agent/1',
          outcome: 'denied',
          at: new Date(T0 + 123),
          spiffeId: 'spiffe://example.org/agent/1',
          serial: contractSerial(1),
          code: 'ERR_SPIFFE_ID_NOT_ALLOWED',
          detail: { z: 'last', a: 1, flag: true, none: null },
        };
        const bare: AuditEventInput = { type: 'init', actor: 'operator', outcome: 'ok', at: new Date(T0) };
        const a = await store.audit.append(full);
        const b = await store.audit.append(bare);
        expect(a).toEqual({ ...full, seq: 1, prevHash: GENESIS_HASH, hash: a.hash });
        expect(b).toEqual({ ...bare, spiffeId: null, serial: null, code: null, detail: null, seq: 2, prevHash: a.hash, hash: b.hash });
        expect(await store.audit.read(1, 10)).toEqual([a, b]);
        expect(await store.audit.read(2, 10)).toEqual([b]);
        expect(await store.audit.read(1, 1)).toEqual([a]);
        expect(await store.audit.read(3, 10)).toEqual([]);
      });

      it('gives 500 concurrent appends the seqs 1..500, in one chain that verifies', async () => {
        const returned = await Promise.all(Array.from({ length: 500 }, (_, i) => store.audit.append(auditEvent(i))));
        expect(returned.map((e) => e.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
        const events = await readAll(store.audit);
        expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
        expect(events).toEqual([...returned].sort((x, y) => x.seq - y.seq));
        const last = events[events.length - 1]!;
        expect(await store.audit.head()).toEqual({ seq: 500, hash: last.hash });
        expect(await verifyChain(store.audit)).toEqual({ ok: true, events: 500, head: last.hash });
      });

      it('keeps one chain when appends and records interleave', async () => {
        const certs = Array.from({ length: 50 }, (_, i) => contractCertificate(200 + i));
        await Promise.all(certs.map((c) => store.certificates.reserveSerial(c.serial, new Date(T0))));
        await Promise.all([
          ...certs.map((c) => store.certificates.record(c, contractIssueEvent(c))),
          ...Array.from({ length: 50 }, (_, i) => store.audit.append(auditEvent(i))),
        ]);
        expect(await verifyChain(store.audit)).toMatchObject({ ok: true, events: 100 });
      });
    });
  });
  describeRevocationContract(name, open);
  describeCrlContract(name, open);
  describeTokenContract(name, open);
}
