/**
 * `agentca serve` where the native ECDSA verifier did not build (the addon's load made to fail
 * in the real process): serve says so once at start, with the reason, and still checks every
 * CSR's signature, through WebCrypto — a good CSR gets its certificate, a broken signature is
 * refused with its code and does not burn the token.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initCa, makeCsr, ok, pemBlocks, removeTempDirs, repoRoot, tempDir } from './support/cli.ts';
import { postJson, startServe, type Served } from './support/serve.ts';

const TD = 'example.org';
let work: string;
let dir: string;
let serve: Served;
let ca: string;

beforeAll(async () => {
  work = tempDir('no-native');
  dir = join(work, 'ca');
  await initCa(dir, { trustDomain: TD });
  ca = readFileSync(join(dir, 'root.pem'), 'utf8');
  const preload = join(repoRoot, 'test/support/no-native-addon.cjs');
  serve = await startServe(dir, [], { env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${preload}`.trim() } });
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  removeTempDirs();
});

const events = () => serve.logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
const token = async (name: string) => (await ok('agentca', ['token', 'create', '--dir', dir, '--id', `spiffe://${TD}/agent/${name}`])).trim();

describe('serve without the native ECDSA verifier', () => {
  it('warns once at start, with the reason, and names WebCrypto as the CSR verifier', () => {
    const warned = events().filter((e) => e.event === 'serve.native_verifier_unavailable');
    expect(warned).toHaveLength(1);
    expect(warned[0]!.level).toBe('warn');
    expect(String(warned[0]!.reason)).toContain('simulated by the test: the addon was not built');
    expect(events().find((e) => e.event === 'serve.listening')?.csrVerify).toBe('webcrypto');
  });

  it('still verifies CSRs: a good one is signed, a broken signature refused without burning the token', async () => {
    const good = await makeCsr(work, 'good', 'ec-p256');
    const goodPem = readFileSync(good.csr, 'utf8');
    const der = Buffer.from(pemBlocks(goodPem, 'CERTIFICATE REQUEST')[0]!.replace(/-----[^-]+-----|\s+/g, ''), 'base64');
    der[der.length - 1]! ^= 0x01; // inside the signature's s: well-formed DER, no proof of possession
    const broken = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`;

    const t = await token('fallback');
    const refused = await postJson(serve, ca, '/v1/sign', { csr: broken }, t);
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('ERR_CSR_SIGNATURE');

    const signed = await postJson(serve, ca, '/v1/sign', { csr: goodPem }, t);
    expect(signed.status).toBe(200);
    expect(signed.body.spiffeId).toBe(`spiffe://${TD}/agent/fallback`);
  });
});
