/**
 * JWT/OIDC bootstrap over real HTTPS: `agentca serve` configured with a trusted issuer (a
 * JWKS file), a Kubernetes-style token → a certificate for the templated SPIFFE ID; each
 * hostile token → 401 with its own code, and nothing issued.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey as JoseKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initCa, makeCsr, ok, removeTempDirs, tempDir } from './support/cli.ts';
import { postJson, startServe, type Served } from './support/serve.ts';

const TD = 'example.org';
const ISS = 'https://kubernetes.default.svc';
let work: string;
let dir: string;
let serve: Served;
let ca: string;
let csrPem: string;
let privateKey: JoseKey;
let publicPem: string;

const post = (path: string, body: unknown, bearer: string) => postJson(serve, ca, path, body, bearer);

const claims = { 'kubernetes.io': { namespace: 'payments', serviceaccount: { name: 'invoice-bot' } } };

function k8sToken(o: { iss?: string; aud?: string; exp?: number | string; key?: JoseKey } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'k8s-1' })
    .setIssuer(o.iss ?? ISS)
    .setAudience(o.aud ?? 'agentca')
    .setSubject('system:serviceaccount:payments:invoice-bot')
    .setIssuedAt()
    .setExpirationTime(o.exp ?? '10m')
    .sign(o.key ?? privateKey);
}

const b64url = (x: string | Buffer) => Buffer.from(x).toString('base64url');

beforeAll(async () => {
  work = tempDir('jwt');
  dir = join(work, 'ca');
  await initCa(dir);
  const pair = await generateKeyPair('ES256', { extractable: true });
  privateKey = pair.privateKey;
  publicPem = await exportSPKI(pair.publicKey);
  writeFileSync(join(work, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k8s-1', alg: 'ES256', use: 'sig' }] }));
  const cfgFile = join(dir, 'agentca.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  cfg.jwtIssuers = [
    {
      issuer: ISS,
      audience: 'agentca',
      jwksFile: join(work, 'jwks.json'),
      spiffeIdTemplate: `spiffe://${TD}/ns/{kubernetes.io.namespace}/sa/{kubernetes.io.serviceaccount.name}`,
    },
  ];
  writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  ca = readFileSync(join(dir, 'root.pem'), 'utf8');
  csrPem = readFileSync((await makeCsr(work, 'w', 'ec-p256')).csr, 'utf8');
  serve = await startServe(dir);
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  removeTempDirs();
});

async function certificateCount(): Promise<number> {
  return JSON.parse(await ok('agentca', ['list', '--dir', dir, '--json', '--limit', '100000'])).length;
}

describe('JWT bootstrap over HTTPS', () => {
  it('a Kubernetes service-account token → a certificate for spiffe://TD/ns/payments/sa/invoice-bot', async () => {
    const r = await post('/v1/sign', { csr: csrPem }, await k8sToken());
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.spiffeId).toBe(`spiffe://${TD}/ns/payments/sa/invoice-bot`);
    expect(serve.logs.join('')).not.toContain('eyJ'); // no JWT in any log line
  });

  it('refuses every hostile token with its code, and issues nothing', async () => {
    const before = await certificateCount();
    const good = await k8sToken();
    const [h, p] = good.split('.');
    const other = (await generateKeyPair('ES256')).privateKey;
    const cases: [string, string, string][] = [
      ['wrong issuer', await k8sToken({ iss: 'https://evil.example' }), 'ERR_JWT_ISSUER_UNKNOWN'],
      ['wrong audience', await k8sToken({ aud: 'someone-else' }), 'ERR_JWT_AUDIENCE'],
      ['expired beyond the skew', await k8sToken({ exp: Math.floor(Date.now() / 1000) - 120 }), 'ERR_JWT_EXPIRED'],
      ['alg none', `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${p}.`, 'ERR_JWT_ALGORITHM'],
      [
        'HS256 keyed with the public key',
        await new SignJWT(claims)
          .setProtectedHeader({ alg: 'HS256', kid: 'k8s-1' })
          .setIssuer(ISS)
          .setAudience('agentca')
          .setSubject('x')
          .setExpirationTime('10m')
          .sign(new TextEncoder().encode(publicPem)),
        'ERR_JWT_ALGORITHM',
      ],
      ['signed by another key', await k8sToken({ key: other }), 'ERR_JWT_SIGNATURE'],
      ['a flipped signature byte', `${h}.${p}.${good.split('.')[2]!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))}`, 'ERR_JWT_SIGNATURE'],
    ];
    for (const [name, token, code] of cases) {
      const r = await post('/v1/sign', { csr: csrPem }, token);
      expect(r.status, `${name}: ${JSON.stringify(r.body)}`).toBe(401);
      expect(r.body.error.code, name).toBe(code);
      expect(r.body.error.message).not.toContain(token.slice(0, 20));
    }
    expect(await certificateCount()).toBe(before);
  });
});
