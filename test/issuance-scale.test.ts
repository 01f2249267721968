/**
 * 10,000 issuances in-process on the real stack (SQLite file, encrypted file key store,
 * Node crypto backend): no serial repeats, every serial positive and at most 20 octets,
 * every row stored once and audited once, and the audit chain verifies.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authority, DEFAULT_PROFILE, INTERMEDIATE_KEY, buildCsr, createHierarchy, parseCertificate, systemClock, verifyAuditLog, webCryptoRandom, toHex } from '@agentca/core';
import { FileKeyStore, KeyObjectSigner, NodeCryptoBackend } from '@agentca/node';
import { openSqliteStore, type SqliteStore } from '@agentca/store-sqlite';

const N = 10_000;

describe('10,000 issuances', () => {
  let dir: string;
  let store: SqliteStore;
  let backend: NodeCryptoBackend;
  let authority: Authority;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agentca-scale-'));
    const keys = new FileKeyStore({ dir: join(dir, 'keys'), passphrase: 'scale-test-passphrase' });
    const { root, intermediate } = await createHierarchy({ trustDomain: 'scale.example', keyAlgorithm: 'ec-p256', keys, clock: systemClock, random: webCryptoRandom });
    store = await openSqliteStore(join(dir, 'agentca.db'));
    backend = new NodeCryptoBackend();
    authority = await Authority.open({
      trustDomain: 'scale.example',
      issuer: { certificate: intermediate, signer: await keys.open(INTERMEDIATE_KEY) },
      roots: [root],
      profiles: [DEFAULT_PROFILE],
      store,
      crypto: backend,
    });
  });

  afterAll(async () => {
    await store?.close();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('never repeats a serial; serials are positive and at most 20 octets; all stored and audited', async () => {
    // A few hundred keys are enough: serials must not depend on the subject key.
    const csrs = await Promise.all(
      Array.from({ length: 200 }, () => {
        const kp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        return buildCsr(new KeyObjectSigner('ec-p256', kp.privateKey, kp.publicKey));
      }),
    );
    const serials = new Set<string>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < N) {
          const i = next++;
          const c = await authority.issue({
            csr: csrs[i % csrs.length]!,
            attestation: { spiffeId: `spiffe://scale.example/agent/a${i % 50}`, profile: 'default', method: 'operator', actor: 'test' },
          });
          const der = parseCertificate(c.der).serial;
          // parseCertificate refuses negative serials; a clear high bit means no 00 pad, so the DER content is these octets.
          expect(der[0]! & 0x80).toBe(0);
          expect(der.length).toBeGreaterThan(0);
          expect(der.length).toBeLessThanOrEqual(20);
          expect(toHex(der)).toBe(c.serial);
          serials.add(c.serial);
        }
      }),
    );
    expect(serials.size).toBe(N);
    expect(await store.certificates.count()).toBe(N);
    const audit = await verifyAuditLog(store.audit);
    expect(audit).toMatchObject({ ok: true, events: N });
  });
});
