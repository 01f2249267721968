import { Conflict, GENESIS_HASH, PolicyDenied, Unauthenticated, type JoinTokenRecord, type TokenConsumption } from '@agentca/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOUR, T0, contractCertificate, contractIssueEvent, contractSerial, contractToken, contractTokenEvent, contractTokenHash, contractTokenId, readAll, rejection, verifyChain, type StoreUnderTest } from './fixtures.ts';

/** When the contract consumes: a minute after T0, before any fixture token expires. */
const AT = T0 + 60_000;

const consumption = (t: JoinTokenRecord, tokenHash = t.hash): { consumeToken: TokenConsumption } => ({ consumeToken: { tokenId: t.id, tokenHash } });

/**
 * The behaviour of `TokenStore` and of token consumption by `CertificateStore.reserveSerial`:
 * a token is stored with its task and audit event atomically, and is consumed at most once,
 * only with the right secret, before its expiry and while its task runs, in the transaction
 * that reserves the serial — a refused consumption reserves nothing. `open` must return a
 * fresh, empty store each time. {@link describeStoreContract} runs it.
 */
export function describeTokenContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`token store contract: ${name}`, () => {
    let store: StoreUnderTest;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    async function create(t: JoinTokenRecord, deadline = new Date(T0 + HOUR)) {
      return store.tokens.create(t, t.taskId === null ? null : { id: t.taskId, deadline }, contractTokenEvent(t));
    }

    /** The serial was not reserved: a plain reservation of it succeeds now. */
    async function expectUnreserved(serial: string): Promise<void> {
      await expect(store.certificates.reserveSerial(serial, new Date(AT))).resolves.toBeUndefined();
    }

    describe('creating tokens and tasks', () => {
      it('stores a token with its audit event and reads every field back', async () => {
        const bare = contractToken(1);
        const full = contractToken(2, { taskId: 'task-a', onBehalfOf: 'spiffe://example.org/user/alice' });
        expect(await create(bare)).toBeNull();
        expect(await create(full)).toEqual({ id: 'task-a', deadline: new Date(T0 + HOUR), endedAt: null });
        expect(await store.tokens.get(bare.id)).toEqual(bare);
        expect(await store.tokens.get(full.id)).toEqual(full);
        expect(await store.tokens.get(contractTokenId(3))).toBeNull();
        const events = await readAll(store.audit);
        expect(events).toMatchObject([
          { seq: 1, type: 'token.create', spiffeId: bare.spiffeId, detail: { tokenId: bare.id } },
          { seq: 2, type: 'token.create', spiffeId: full.spiffeId, detail: { tokenId: full.id, taskId: 'task-a' } },
        ]);
        expect(await verifyChain(store.audit)).toMatchObject({ ok: true, events: 2 });
      });

      it('creates a task only if absent: an existing task keeps its first deadline', async () => {
        const first = await create(contractToken(1, { taskId: 'task-a' }), new Date(T0 + HOUR));
        const second = await create(contractToken(2, { taskId: 'task-a' }), new Date(T0 + 5 * HOUR));
        expect(second).toEqual(first);
        expect(await store.tokens.getTask('task-a')).toEqual({ id: 'task-a', deadline: new Date(T0 + HOUR), endedAt: null });
        expect(await store.tokens.getTask('task-b')).toBeNull();
      });

      it('refuses a token ID already stored with ERR_TOKEN_EXISTS, keeping the first and auditing nothing more', async () => {
        const t = contractToken(1);
        await create(t);
        const head = await store.audit.head();
        const e = await rejection(create({ ...contractToken(2, { taskId: 'task-new' }), id: t.id }));
        expect(e).toBeInstanceOf(Conflict);
        expect(e).toMatchObject({ code: 'ERR_TOKEN_EXISTS', message: `join token ${t.id} already exists` });
        expect(await store.tokens.get(t.id)).toEqual(t);
        expect(await store.tokens.getTask('task-new')).toBeNull();
        expect(await store.audit.head()).toEqual(head);
      });

      it('stores neither the token nor its new task when the audit event cannot be written', async () => {
        const t = contractToken(1, { taskId: 'task-a' });
        await expect(store.tokens.create(t, { id: 'task-a', deadline: new Date(T0 + HOUR) }, { ...contractTokenEvent(t), at: new Date(Number.NaN) })).rejects.toBeInstanceOf(Error);
        expect(await store.tokens.get(t.id)).toBeNull();
        expect(await store.tokens.getTask('task-a')).toBeNull();
        expect(await store.audit.head()).toEqual({ seq: 0, hash: GENESIS_HASH });
        await create(t);
        expect(await store.tokens.get(t.id)).toEqual(t);
      });

      it('ends a task once: ending it again keeps the first time; an unknown task gives null', async () => {
        await create(contractToken(1, { taskId: 'task-a' }));
        const ended = { id: 'task-a', deadline: new Date(T0 + HOUR), endedAt: new Date(AT) };
        expect(await store.tokens.endTask('task-a', new Date(AT))).toEqual(ended);
        expect(await store.tokens.endTask('task-a', new Date(AT + 1000))).toEqual(ended);
        expect(await store.tokens.getTask('task-a')).toEqual(ended);
        expect(await store.tokens.endTask('task-b', new Date(AT))).toBeNull();
        expect(await store.tokens.getTask('task-b')).toBeNull();
      });
    });

    describe('consuming a token with a serial reservation', () => {
      it('reserves the serial and marks the token used by it', async () => {
        const t = contractToken(1);
        await create(t);
        await store.certificates.reserveSerial(contractSerial(1), new Date(AT), consumption(t));
        expect(await store.tokens.get(t.id)).toEqual({ ...t, usedAt: new Date(AT), usedBySerial: contractSerial(1) });
        await expect(store.certificates.reserveSerial(contractSerial(1), new Date(AT))).rejects.toMatchObject({ code: 'ERR_SERIAL_EXISTS' });
      });

      it('refuses a second use with ERR_TOKEN_ALREADY_USED and reserves nothing', async () => {
        const t = contractToken(1);
        await create(t);
        await store.certificates.reserveSerial(contractSerial(1), new Date(AT), consumption(t));
        const e = await rejection(store.certificates.reserveSerial(contractSerial(2), new Date(AT + 1), consumption(t)));
        expect(e).toBeInstanceOf(Unauthenticated);
        expect(e).toMatchObject({ code: 'ERR_TOKEN_ALREADY_USED', message: `join token ${t.id} was already used` });
        expect(await store.tokens.get(t.id)).toMatchObject({ usedAt: new Date(AT), usedBySerial: contractSerial(1) });
        await expectUnreserved(contractSerial(2));
      });

      it('refuses an unknown token or a wrong secret with ERR_TOKEN_INVALID, reserves nothing, and the token stays usable', async () => {
        const t = contractToken(1);
        await create(t);
        const wrong: TokenConsumption[] = [
          { tokenId: t.id, tokenHash: contractTokenHash(2) },
          { tokenId: t.id, tokenHash: t.hash.slice(0, 63) },
          { tokenId: t.id, tokenHash: `${t.hash.slice(0, 63)}f` },
          { tokenId: t.id, tokenHash: '' },
          { tokenId: contractTokenId(2), tokenHash: t.hash },
        ];
        for (const [i, consumeToken] of wrong.entries()) {
          const e = await rejection(store.certificates.reserveSerial(contractSerial(10 + i), new Date(AT), { consumeToken }));
          expect(e).toBeInstanceOf(Unauthenticated);
          expect(e).toMatchObject({ code: 'ERR_TOKEN_INVALID', message: 'the join token is not valid' });
        }
        expect(await store.tokens.get(t.id)).toEqual(t);
        for (const i of wrong.keys()) await expectUnreserved(contractSerial(10 + i));
        await store.certificates.reserveSerial(contractSerial(1), new Date(AT), consumption(t));
        expect(await store.tokens.get(t.id)).toMatchObject({ usedBySerial: contractSerial(1) });
      });

      it('refuses a token at or after its expiry with ERR_TOKEN_EXPIRED, and accepts it a millisecond before', async () => {
        const t = contractToken(1);
        await create(t);
        const expiry = t.expiresAt.getTime();
        for (const [i, at] of [expiry, expiry + 1].entries()) {
          const e = await rejection(store.certificates.reserveSerial(contractSerial(10 + i), new Date(at), consumption(t)));
          expect(e).toBeInstanceOf(Unauthenticated);
          expect(e).toMatchObject({ code: 'ERR_TOKEN_EXPIRED', message: `join token ${t.id} expired at ${t.expiresAt.toISOString()}` });
        }
        expect(await store.tokens.get(t.id)).toEqual(t);
        await expectUnreserved(contractSerial(10));
        await expectUnreserved(contractSerial(11));
        await store.certificates.reserveSerial(contractSerial(1), new Date(expiry - 1), consumption(t));
        expect(await store.tokens.get(t.id)).toMatchObject({ usedAt: new Date(expiry - 1), usedBySerial: contractSerial(1) });
      });

      it('refuses a token of an ended task with ERR_TASK_ENDED, and reserves nothing', async () => {
        const t = contractToken(1, { taskId: 'task-a' });
        const other = contractToken(2, { taskId: 'task-b' });
        await create(t);
        await create(other);
        await store.tokens.endTask('task-a', new Date(AT - 1));
        const e = await rejection(store.certificates.reserveSerial(contractSerial(1), new Date(AT), consumption(t)));
        expect(e).toBeInstanceOf(PolicyDenied);
        expect(e).toMatchObject({ code: 'ERR_TASK_ENDED', message: 'task task-a has ended' });
        expect(await store.tokens.get(t.id)).toEqual(t);
        await expectUnreserved(contractSerial(1));
        await store.certificates.reserveSerial(contractSerial(2), new Date(AT), consumption(other));
      });

      it('refuses to record a certificate of a task that ended after its serial was reserved, and audits nothing', async () => {
        const t = contractToken(1, { taskId: 'task-a' });
        await create(t);
        const c = contractCertificate(1, { taskId: 'task-a' });
        await store.certificates.reserveSerial(c.serial, new Date(AT), consumption(t));
        // The task ends while the certificate is being signed.
        await store.tokens.endTask('task-a', new Date(AT + 1));
        const before = (await readAll(store.audit)).length;
        const e = await rejection(store.certificates.record(c, contractIssueEvent(c)));
        expect(e).toBeInstanceOf(PolicyDenied);
        expect(e).toMatchObject({ code: 'ERR_TASK_ENDED', message: 'task task-a has ended' });
        expect(await store.certificates.get(c.serial)).toBeNull();
        expect(await readAll(store.audit)).toHaveLength(before);
        // A certificate of a running task, or of none, records as usual.
        const other = contractCertificate(2, { taskId: null });
        await store.certificates.reserveSerial(other.serial, new Date(AT));
        await store.certificates.record(other, contractIssueEvent(other));
        expect(await store.certificates.get(other.serial)).toEqual(other);
      });

      it('checks in order: the secret, then use, then expiry, then the task', async () => {
        const t = contractToken(1, { taskId: 'task-a' });
        await create(t);
        await store.certificates.reserveSerial(contractSerial(1), new Date(AT), consumption(t));
        await store.tokens.endTask('task-a', new Date(AT));
        const late = new Date(t.expiresAt.getTime() + 1);
        await expect(store.certificates.reserveSerial(contractSerial(2), late, consumption(t, contractTokenHash(9)))).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' });
        await expect(store.certificates.reserveSerial(contractSerial(2), late, consumption(t))).rejects.toMatchObject({ code: 'ERR_TOKEN_ALREADY_USED' });

        const u = contractToken(2, { taskId: 'task-a' });
        await create(u);
        await expect(store.certificates.reserveSerial(contractSerial(3), new Date(u.expiresAt.getTime()), consumption(u))).rejects.toMatchObject({ code: 'ERR_TOKEN_EXPIRED' });
        await expect(store.certificates.reserveSerial(contractSerial(3), new Date(AT), consumption(u))).rejects.toMatchObject({ code: 'ERR_TASK_ENDED' });
      });

      it('leaves the token unused when the serial was already reserved, so a retry with a new serial can use it', async () => {
        const t = contractToken(1);
        await create(t);
        await store.certificates.reserveSerial(contractSerial(1), new Date(AT));
        const e = await rejection(store.certificates.reserveSerial(contractSerial(1), new Date(AT), consumption(t)));
        expect(e).toMatchObject({ code: 'ERR_SERIAL_EXISTS', message: `serial ${contractSerial(1)} was already reserved` });
        expect(await store.tokens.get(t.id)).toEqual(t);
        await store.certificates.reserveSerial(contractSerial(2), new Date(AT), consumption(t));
        expect(await store.tokens.get(t.id)).toMatchObject({ usedBySerial: contractSerial(2) });
      });

      it('lets exactly one of 50 concurrent reservations consume a token; the others reserve nothing', async () => {
        const t = contractToken(1);
        await create(t);
        const serials = Array.from({ length: 50 }, (_, i) => contractSerial(100 + i));
        const results = await Promise.allSettled(serials.map((s) => store.certificates.reserveSerial(s, new Date(AT), consumption(t))));
        const won = serials.filter((_, i) => results[i]!.status === 'fulfilled');
        expect(won).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'ERR_TOKEN_ALREADY_USED', message: `join token ${t.id} was already used` });
        }
        expect(await store.tokens.get(t.id)).toEqual({ ...t, usedAt: new Date(AT), usedBySerial: won[0] });
        for (const s of serials) {
          if (s === won[0]) await expect(store.certificates.reserveSerial(s, new Date(AT))).rejects.toMatchObject({ code: 'ERR_SERIAL_EXISTS' });
          else await expectUnreserved(s);
        }
      });
    });
  });
}
