import { InvalidRequest, Unauthenticated, type AuditEventInput, type CertificateRecord, type PublishedCrl, type RevocationRecord, type RevocationSelector } from '@agentca/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOUR, T0, contractCertificate, contractIssueEvent, readAll, rejection, reserveAndRecord, verifyChain, type StoreUnderTest } from './fixtures.ts';

/** When the contract revokes: ten minutes after T0, before any fixture certificate expires. */
const AT = T0 + 600_000;
const MINUTE = 60_000;

function revokeEvent(detail: AuditEventInput['detail'] = { by: 'contract' }, at = AT): AuditEventInput {
  return { type: 'revoke', actor: 'operator', outcome: 'ok', at: new Date(at), detail };
}

/** The record a first revocation of `c` must produce. */
function revocationOf(c: CertificateRecord, reason: RevocationRecord['reason'], at = AT): RevocationRecord {
  return {
    serial: c.serial,
    revokedAt: new Date(at),
    reason,
    notAfter: c.notAfter,
    spiffeId: c.spiffeId,
    instanceId: c.instanceId,
    taskId: c.taskId,
    changeSeq: expect.any(Number) as unknown as number,
  };
}

const bySerial = (a: { serial: string }, b: { serial: string }) => (a.serial < b.serial ? -1 : a.serial > b.serial ? 1 : 0);

/**
 * The behaviour of `RevocationStore`: selection, first-date-wins, the keyCompromise upgrade
 * and key block, the audit event in the same transaction, change sequence and the CRL drop
 * rule. `open` must return a fresh, empty store each time. {@link describeStoreContract}
 * runs it; call it directly only for a store that runs no other part of the contract.
 */
export function describeRevocationContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`revocation store contract: ${name}`, () => {
    let store: StoreUnderTest;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    async function recordAll(certs: CertificateRecord[]): Promise<void> {
      for (const c of certs) await reserveAndRecord(store, c);
    }

    describe('revoking', () => {
      it('revokes one certificate by serial with its identity and notAfter, and nothing else', async () => {
        const [c, other] = [contractCertificate(1), contractCertificate(2)];
        await recordAll([c, other]);
        const outcome = await store.revocations.revoke({ serial: c.serial }, 'superseded', new Date(AT), revokeEvent());
        expect(outcome).toEqual({ revoked: [revocationOf(c, 'superseded')], changed: 1 });
        expect(await store.revocations.get(c.serial)).toEqual(outcome.revoked[0]);
        expect(await store.revocations.get(other.serial)).toBeNull();
      });

      it('allocates a CRL number from the same sequence as nextCrlNumber and reads the entries under it', async () => {
        const [c, other] = [contractCertificate(1), contractCertificate(2)];
        await recordAll([c, other]);
        await store.revocations.revoke({ serial: c.serial }, 'superseded', new Date(AT), revokeEvent());
        expect(await store.crls.nextCrlNumber('intermediate')).toBe(1n);
        const numbered = await store.revocations.numberedCrlEntries('intermediate');
        expect(numbered).toEqual({ crlNumber: 2n, entries: await store.revocations.crlEntries() });
        expect(numbered.entries.map((e) => e.serial)).toEqual([c.serial]);
        expect(await store.crls.nextCrlNumber('intermediate')).toBe(3n);
        expect((await store.revocations.numberedCrlEntries('root')).crlNumber).toBe(1n);
        const e = await rejection(store.revocations.numberedCrlEntries('leaf' as 'root'));
        expect(e).toMatchObject({ code: 'ERR_CRL_ISSUER_INVALID' });
      });

      it('refuses to record a renewal whose presented certificate was revoked while it was signed, and audits nothing', async () => {
        const old = contractCertificate(1, { taskId: null });
        await recordAll([old]);
        const renewed = contractCertificate(2, { spiffeId: old.spiffeId, instanceId: old.instanceId, taskId: null });
        await store.certificates.reserveSerial(renewed.serial, new Date(AT));
        await store.revocations.revoke({ instanceId: old.instanceId }, 'cessationOfOperation', new Date(AT), revokeEvent());
        const before = (await readAll(store.audit)).length;
        const e = await rejection(store.certificates.record(renewed, contractIssueEvent(renewed), { renewalOf: old.serial }));
        expect(e).toBeInstanceOf(Unauthenticated);
        expect(e).toMatchObject({ code: 'ERR_CLIENT_CERTIFICATE_REVOKED', message: `certificate ${old.serial} was revoked` });
        expect(await store.certificates.get(renewed.serial)).toBeNull();
        expect(await readAll(store.audit)).toHaveLength(before);
        // Renewing an unrevoked certificate records; a later revocation of the instance covers the renewal.
        const live = contractCertificate(3, { instanceId: 'instance-live', taskId: null });
        await recordAll([live]);
        const next = contractCertificate(4, { spiffeId: live.spiffeId, instanceId: live.instanceId, taskId: null });
        await store.certificates.reserveSerial(next.serial, new Date(AT));
        await store.certificates.record(next, contractIssueEvent(next), { renewalOf: live.serial });
        const outcome = await store.revocations.revoke({ instanceId: live.instanceId }, 'cessationOfOperation', new Date(AT), revokeEvent());
        expect(outcome.revoked.map((r) => r.serial).sort()).toEqual([live.serial, next.serial].sort());
      });

      // Nine certificates over three SPIFFE IDs, two instances and one shared task, plus two that
      // match every selector but are expired at the revocation time (one exactly at it).
      const certs = Array.from({ length: 9 }, (_, n) => contractCertificate(n, { taskId: n % 3 === 0 ? 'task-a' : `task-${n}` }));
      const expired = [9, 10].map((n, i) =>
        contractCertificate(n, { spiffeId: 'spiffe://example.org/agent/1', instanceId: 'instance-0', taskId: 'task-a', notAfter: new Date(AT - 1 + i) }),
      );
      const cases: { kind: string; selector: RevocationSelector; matches(c: CertificateRecord): boolean }[] = [
        { kind: 'SPIFFE ID', selector: { spiffeId: 'spiffe://example.org/agent/1' }, matches: (c) => c.spiffeId === 'spiffe://example.org/agent/1' },
        { kind: 'instance', selector: { instanceId: 'instance-0' }, matches: (c) => c.instanceId === 'instance-0' },
        { kind: 'task', selector: { taskId: 'task-a' }, matches: (c) => c.taskId === 'task-a' },
      ];
      for (const { kind, selector, matches } of cases) {
        it(`revokes by ${kind} every matching certificate not expired at the revocation time, and nothing else`, async () => {
          await recordAll([...certs, ...expired]);
          const want = certs.filter(matches).sort(bySerial);
          expect(want.length).toBeGreaterThan(1);
          const outcome = await store.revocations.revoke(selector, 'cessationOfOperation', new Date(AT), revokeEvent());
          expect(outcome.changed).toBe(want.length);
          expect([...outcome.revoked].sort(bySerial)).toEqual(want.map((c) => revocationOf(c, 'cessationOfOperation')));
          for (const c of [...certs, ...expired]) {
            const got = await store.revocations.get(c.serial);
            if (want.includes(c)) expect(got).toEqual(revocationOf(c, 'cessationOfOperation'));
            else expect(got).toBeNull();
          }
        });
      }

      it('matches nothing and audits nothing for an expired certificate, an unknown serial or an unused selector', async () => {
        const [c] = expired;
        await recordAll([c!]);
        const head = await store.audit.head();
        const none = { revoked: [], changed: 0 };
        expect(await store.revocations.revoke({ serial: c!.serial }, 'superseded', new Date(AT), revokeEvent())).toEqual(none);
        expect(await store.revocations.revoke({ serial: contractCertificate(77).serial }, 'superseded', new Date(AT), revokeEvent())).toEqual(none);
        expect(await store.revocations.revoke({ taskId: 'task-nobody' }, 'keyCompromise', new Date(AT), revokeEvent())).toEqual(none);
        expect(await store.revocations.get(c!.serial)).toBeNull();
        expect(await store.revocations.isKeyBlocked(c!.keyFingerprint)).toBe(false);
        expect(await store.audit.head()).toEqual(head);
      });

      it('keeps the first date and reason when revoked again, changing nothing', async () => {
        const c = contractCertificate(3);
        await recordAll([c]);
        const first = await store.revocations.revoke({ serial: c.serial }, 'superseded', new Date(AT), revokeEvent());
        const again = await store.revocations.revoke({ serial: c.serial }, 'cessationOfOperation', new Date(AT + MINUTE), revokeEvent());
        expect(again).toEqual({ revoked: first.revoked, changed: 0 });
        expect(await store.revocations.get(c.serial)).toEqual(first.revoked[0]);
        expect(await store.revocations.changesSince(0, 10)).toEqual(first.revoked);
      });

      it('upgrades an earlier revocation to keyCompromise, keeping its date, with a new changeSeq; no other reason replaces it', async () => {
        const c = contractCertificate(4);
        await recordAll([c]);
        const [first] = (await store.revocations.revoke({ serial: c.serial }, 'superseded', new Date(AT), revokeEvent())).revoked;
        const upgrade = await store.revocations.revoke({ serial: c.serial }, 'keyCompromise', new Date(AT + MINUTE), revokeEvent());
        expect(upgrade.changed).toBe(1);
        const [upgraded] = upgrade.revoked;
        expect(upgraded).toEqual({ ...first, reason: 'keyCompromise', changeSeq: expect.any(Number) });
        expect(upgraded!.changeSeq).toBeGreaterThan(first!.changeSeq);
        expect(await store.revocations.get(c.serial)).toEqual(upgraded);

        for (const reason of ['unspecified', 'superseded', 'keyCompromise'] as const) {
          expect(await store.revocations.revoke({ serial: c.serial }, reason, new Date(AT + 2 * MINUTE), revokeEvent())).toEqual({ revoked: [upgraded], changed: 0 });
        }
        expect(await store.revocations.changesSince(0, 10)).toEqual([upgraded]);
      });

      it('blocks the key of a certificate revoked for keyCompromise, and only then', async () => {
        const [a, b] = [contractCertificate(5), contractCertificate(6)];
        await recordAll([a, b]);
        await store.revocations.revoke({ serial: a.serial }, 'superseded', new Date(AT), revokeEvent());
        expect(await store.revocations.isKeyBlocked(a.keyFingerprint)).toBe(false);
        await store.revocations.revoke({ serial: b.serial }, 'keyCompromise', new Date(AT), revokeEvent());
        expect(await store.revocations.isKeyBlocked(b.keyFingerprint)).toBe(true);
        expect(await store.revocations.isKeyBlocked(a.keyFingerprint)).toBe(false);
        await store.revocations.revoke({ serial: a.serial }, 'keyCompromise', new Date(AT + MINUTE), revokeEvent());
        expect(await store.revocations.isKeyBlocked(a.keyFingerprint)).toBe(true);
        expect(await store.revocations.isKeyBlocked('ff'.repeat(32))).toBe(false);
      });

      it('blocks the keys of every certificate a keyCompromise selector matches', async () => {
        const certs = [10, 12, 14].map((n) => contractCertificate(n, { taskId: 'task-k' }));
        await recordAll(certs);
        const outcome = await store.revocations.revoke({ taskId: 'task-k' }, 'keyCompromise', new Date(AT), revokeEvent());
        expect(outcome.changed).toBe(3);
        for (const c of certs) expect(await store.revocations.isKeyBlocked(c.keyFingerprint)).toBe(true);
      });

      it('refuses a malformed selector, serial or reason with InvalidRequest, and audits nothing', async () => {
        const c = contractCertificate(7);
        await recordAll([c]);
        const head = await store.audit.head();
        const bad: [RevocationSelector, string, string][] = [
          [{ serial: c.serial, taskId: 'task-7' } as unknown as RevocationSelector, 'superseded', 'ERR_REVOCATION_SELECTOR'],
          [{} as RevocationSelector, 'superseded', 'ERR_REVOCATION_SELECTOR'],
          [{ spiffeId: '' }, 'superseded', 'ERR_REVOCATION_SELECTOR'],
          [{ serial: c.serial.toUpperCase() }, 'superseded', 'ERR_SERIAL_INVALID'],
          [{ serial: c.serial }, 'removeFromCRL', 'ERR_REVOCATION_REASON_INVALID'],
        ];
        for (const [selector, reason, code] of bad) {
          const e = await rejection(store.revocations.revoke(selector, reason as RevocationRecord['reason'], new Date(AT), revokeEvent()));
          expect(e).toBeInstanceOf(InvalidRequest);
          expect(e).toMatchObject({ code });
          if (code === 'ERR_REVOCATION_SELECTOR') expect(e).toMatchObject({ message: 'name exactly one of serial, SPIFFE ID, instance or task' });
        }
        expect(await rejection(store.revocations.revoke({ serial: c.serial }, 'superseded', new Date(Number.NaN), revokeEvent()))).toMatchObject({
          code: 'ERR_DATE_INVALID',
        });
        expect(await store.revocations.get(c.serial)).toBeNull();
        expect(await store.audit.head()).toEqual(head);
      });
    });

    describe('audit', () => {
      it('appends the event once, with detail.count set to the number changed', async () => {
        const certs = [20, 21, 22].map((n) => contractCertificate(n, { taskId: 'task-b' }));
        await recordAll(certs);
        await store.revocations.revoke({ serial: certs[0]!.serial }, 'superseded', new Date(AT), revokeEvent());
        const before = await store.audit.head();
        const event = revokeEvent({ task: 'task-b', reason: 'superseded', count: 'overwritten' });
        const outcome = await store.revocations.revoke({ taskId: 'task-b' }, 'superseded', new Date(AT + MINUTE), event);
        expect(outcome.changed).toBe(2);
        expect(outcome.revoked).toHaveLength(3);
        const events = await readAll(store.audit);
        expect(events).toHaveLength(before.seq + 1);
        expect(events.at(-1)).toEqual({
          ...event,
          spiffeId: null,
          serial: null,
          code: null,
          detail: { task: 'task-b', reason: 'superseded', count: 2 },
          seq: before.seq + 1,
          prevHash: before.hash,
          hash: expect.any(String),
        });
        expect(await verifyChain(store.audit)).toMatchObject({ ok: true, events: before.seq + 1 });

        await store.revocations.revoke({ taskId: 'task-b' }, 'superseded', new Date(AT + 2 * MINUTE), revokeEvent({ task: 'task-b' }));
        expect((await store.audit.read(before.seq + 2, 1))[0]?.detail).toEqual({ task: 'task-b', count: 0 });
      });

      it('revokes nothing and blocks no key when the audit event cannot be written', async () => {
        const certs = [30, 31].map((n) => contractCertificate(n, { taskId: 'task-c' }));
        await recordAll(certs);
        const head = await store.audit.head();
        const e = await rejection(store.revocations.revoke({ taskId: 'task-c' }, 'keyCompromise', new Date(AT), revokeEvent(null, Number.NaN)));
        expect(e).toBeInstanceOf(InvalidRequest);
        for (const c of certs) {
          expect(await store.revocations.get(c.serial)).toBeNull();
          expect(await store.revocations.isKeyBlocked(c.keyFingerprint)).toBe(false);
        }
        expect(await store.revocations.crlEntries()).toEqual([]);
        expect(await store.revocations.changesSince(0, 10)).toEqual([]);
        expect(await store.audit.head()).toEqual(head);

        expect((await store.revocations.revoke({ taskId: 'task-c' }, 'keyCompromise', new Date(AT), revokeEvent())).changed).toBe(2);
        expect(await verifyChain(store.audit)).toMatchObject({ ok: true, events: head.seq + 1 });
      });
    });

    describe('change sequence', () => {
      it('lands 100 concurrent revocations of different certificates with unique changeSeqs that changesSince reads in order', async () => {
        const certs = Array.from({ length: 100 }, (_, i) => contractCertificate(100 + i));
        await recordAll(certs);
        const outcomes = await Promise.all(
          certs.map((c, i) => store.revocations.revoke({ serial: c.serial }, i % 10 === 0 ? 'keyCompromise' : 'superseded', new Date(AT), revokeEvent({ i }))),
        );
        expect(outcomes.every((o) => o.changed === 1 && o.revoked.length === 1)).toBe(true);
        const seqs = outcomes.map((o) => o.revoked[0]!.changeSeq);
        expect(new Set(seqs).size).toBe(100);
        for (const c of certs) expect(await store.revocations.get(c.serial)).not.toBeNull();

        const changes = await store.revocations.changesSince(0, 1000);
        expect(changes).toHaveLength(100);
        expect(changes.map((r) => r.changeSeq)).toEqual([...seqs].sort((a, b) => a - b));
        expect(changes.map((r) => r.serial).sort()).toEqual(certs.map((c) => c.serial).sort());
        changes.slice(1).forEach((r, i) => expect(r.changeSeq).toBeGreaterThan(changes[i]!.changeSeq));

        // Paging by the last seen changeSeq reads each change once.
        expect(await store.revocations.changesSince(changes[49]!.changeSeq, 10)).toEqual(changes.slice(50, 60));
        expect(await store.revocations.changesSince(changes[99]!.changeSeq, 10)).toEqual([]);
        expect(await store.revocations.changesSince(0, 0)).toEqual([]);

        const events = await readAll(store.audit);
        expect(events.filter((e) => e.type === 'revoke')).toHaveLength(100);
        expect(await verifyChain(store.audit)).toMatchObject({ ok: true, events: 200 });
      });

      it('puts an upgrade after every earlier change', async () => {
        const certs = [40, 41, 42].map((n) => contractCertificate(n));
        await recordAll(certs);
        for (const c of certs) await store.revocations.revoke({ serial: c.serial }, 'superseded', new Date(AT), revokeEvent());
        const [upgraded] = (await store.revocations.revoke({ serial: certs[0]!.serial }, 'keyCompromise', new Date(AT), revokeEvent())).revoked;
        const changes = await store.revocations.changesSince(0, 10);
        expect(changes.map((r) => r.serial)).toEqual([certs[1]!.serial, certs[2]!.serial, certs[0]!.serial]);
        expect(changes.at(-1)).toEqual(upgraded);
      });

      it('refuses a fractional or negative range with ERR_REVOCATION_RANGE_INVALID', async () => {
        for (const [since, limit] of [
          [0.5, 10],
          [0, -1],
          [0, Number.NaN],
        ] as const) {
          const e = await rejection(store.revocations.changesSince(since, limit));
          expect(e).toBeInstanceOf(InvalidRequest);
          expect(e).toMatchObject({ code: 'ERR_REVOCATION_RANGE_INVALID', message: 'since and limit must be integers and limit must not be negative' });
        }
      });
    });

    describe('CRL entries', () => {
      it('lists every revocation not yet dropped, in serial order', async () => {
        const certs = [57, 50, 300, 52, 256].map((n) => contractCertificate(n));
        await recordAll(certs);
        for (const c of certs) await store.revocations.revoke({ serial: c.serial }, 'affiliationChanged', new Date(AT), revokeEvent());
        const entries = await store.revocations.crlEntries();
        expect(entries).toEqual([...certs].sort(bySerial).map((c) => revocationOf(c, 'affiliationChanged')));
        expect(entries.map((e) => e.serial)).toEqual([50, 52, 57, 256, 300].map((n) => contractCertificate(n).serial));
      });

      it('drops an entry once a CRL issued after its expiry has listed it, and keeps it for get', async () => {
        // Expires before CRL 7's thisUpdate; expires exactly at it; expires after it.
        const thisUpdate = T0 + 2 * HOUR;
        const early = contractCertificate(60, { notAfter: new Date(thisUpdate - 1) });
        const atEdge = contractCertificate(61, { notAfter: new Date(thisUpdate) });
        const late = contractCertificate(62, { notAfter: new Date(thisUpdate + HOUR) });
        await recordAll([early, atEdge, late]);
        for (const c of [early, atEdge, late]) await store.revocations.revoke({ serial: c.serial }, 'superseded', new Date(AT), revokeEvent());

        // CRL 7 is built from these entries: the expired one is still on it.
        expect((await store.revocations.crlEntries()).map((e) => e.serial)).toEqual([early.serial, atEdge.serial, late.serial]);
        expect(await store.revocations.markListedAfterExpiry(7n, new Date(thisUpdate))).toBe(1);
        expect((await store.revocations.crlEntries()).map((e) => e.serial)).toEqual([atEdge.serial, late.serial]);
        expect(await store.revocations.get(early.serial)).toEqual(revocationOf(early, 'superseded'));

        expect(await store.revocations.markListedAfterExpiry(8n, new Date(thisUpdate))).toBe(0);
        expect(await store.revocations.markListedAfterExpiry(9n, new Date(thisUpdate + 2 * HOUR))).toBe(2);
        expect(await store.revocations.crlEntries()).toEqual([]);
      });

      it('refuses a CRL number that is not a positive bigint with ERR_CRL_NUMBER_INVALID', async () => {
        for (const n of [0n, -1n, 7 as unknown as bigint]) {
          const e = await rejection(store.revocations.markListedAfterExpiry(n, new Date(T0)));
          expect(e).toBeInstanceOf(InvalidRequest);
          expect(e).toMatchObject({ code: 'ERR_CRL_NUMBER_INVALID' });
        }
      });
    });
  });
}

function contractCrl(issuer: PublishedCrl['issuer'], n: number): PublishedCrl {
  return {
    issuer,
    crlNumber: BigInt(n),
    thisUpdate: new Date(T0 + n * MINUTE),
    nextUpdate: new Date(T0 + n * MINUTE + HOUR),
    der: Uint8Array.from([0x30, 0x82, 0x00, n & 0xff, issuer === 'root' ? 0x01 : 0x02, 0x00, 0xff]),
  };
}

/**
 * The behaviour of `CrlStore`: strictly increasing numbers per issuer, also under concurrent
 * allocation, and the highest-numbered CRL as the latest. `open` must return a fresh, empty
 * store each time. {@link describeStoreContract} runs it.
 */
export function describeCrlContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`crl store contract: ${name}`, () => {
    let store: StoreUnderTest;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    it('allocates CRL numbers 1, 2, 3… per issuer, each issuer on its own', async () => {
      expect(await store.crls.nextCrlNumber('intermediate')).toBe(1n);
      expect(await store.crls.nextCrlNumber('intermediate')).toBe(2n);
      expect(await store.crls.nextCrlNumber('root')).toBe(1n);
      expect(await store.crls.nextCrlNumber('intermediate')).toBe(3n);
      expect(await store.crls.nextCrlNumber('root')).toBe(2n);
    });

    it('hands 200 concurrent allocations 200 different numbers, 1 to 200', async () => {
      const numbers = await Promise.all(Array.from({ length: 200 }, () => store.crls.nextCrlNumber('intermediate')));
      expect(numbers.every((n) => typeof n === 'bigint')).toBe(true);
      expect([...numbers].sort((a, b) => (a < b ? -1 : 1))).toEqual(Array.from({ length: 200 }, (_, i) => BigInt(i + 1)));
      expect(await store.crls.nextCrlNumber('intermediate')).toBe(201n);
    });

    it('starts with no CRL and keeps the highest-numbered one saved per issuer', async () => {
      expect(await store.crls.latest('intermediate')).toBeNull();
      const [one, two, three] = [1, 2, 3].map((n) => contractCrl('intermediate', n));
      await store.crls.save(two!);
      const got = await store.crls.latest('intermediate');
      expect(got).toEqual(two);
      expect(got!.der).toBeInstanceOf(Uint8Array);
      expect(typeof got!.crlNumber).toBe('bigint');
      await store.crls.save(one!);
      expect(await store.crls.latest('intermediate')).toEqual(two);
      await store.crls.save(three!);
      expect(await store.crls.latest('intermediate')).toEqual(three);

      expect(await store.crls.latest('root')).toBeNull();
      const root = contractCrl('root', 1);
      await store.crls.save(root);
      expect(await store.crls.latest('root')).toEqual(root);
      expect(await store.crls.latest('intermediate')).toEqual(three);
    });

    it('keeps the highest of concurrent saves whatever order they land in', async () => {
      await Promise.all([5, 2, 9, 1, 7].map((n) => store.crls.save(contractCrl('intermediate', n))));
      expect(await store.crls.latest('intermediate')).toEqual(contractCrl('intermediate', 9));
    });

    it('does not keep a reference to the caller’s DER buffer', async () => {
      const crl = contractCrl('root', 4);
      const der = Uint8Array.from(crl.der);
      const pending = store.crls.save({ ...crl, der });
      der.fill(0);
      await pending;
      expect((await store.crls.latest('root'))!.der).toEqual(crl.der);
    });

    it('refuses an unknown issuer, a non-positive number or an empty CRL with InvalidRequest', async () => {
      const leaf = 'leaf' as PublishedCrl['issuer'];
      const cases: [() => Promise<unknown>, string][] = [
        [() => store.crls.nextCrlNumber(leaf), 'ERR_CRL_ISSUER_INVALID'],
        [() => store.crls.latest(leaf), 'ERR_CRL_ISSUER_INVALID'],
        [() => store.crls.save({ ...contractCrl('root', 1), issuer: leaf }), 'ERR_CRL_ISSUER_INVALID'],
        [() => store.crls.save({ ...contractCrl('root', 1), crlNumber: 0n }), 'ERR_CRL_NUMBER_INVALID'],
        [() => store.crls.save({ ...contractCrl('root', 1), der: new Uint8Array() }), 'ERR_CRL_INVALID'],
      ];
      for (const [call, code] of cases) {
        const e = await rejection(call());
        expect(e).toBeInstanceOf(InvalidRequest);
        expect(e).toMatchObject({ code });
      }
      expect(await store.crls.latest('root')).toBeNull();
    });
  });
}
