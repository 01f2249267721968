/**
 * The CA directory: everything `agentca` keeps for one CA.
 *
 *   agentca.json          configuration (trust domain, store, URLs, admins, profiles)
 *   root.pem              root certificate (the trust bundle)
 *   intermediate.pem      issuing CA certificate
 *   keys/*.key.pem        CA keys, encrypted PKCS#8, 0600
 *   agentca.db            SQLite store (WAL) — certificates, serials, audit log; absent when
 *                         the state is in PostgreSQL (`store` in agentca.json), shared by replicas
 *   admin/operator.pem    the operator's admin client certificate (+ intermediate)
 *   admin/operator.key.pem  its key, 0600 (a client key, not a CA key: unencrypted for TLS clients)
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { randomBytes, generateKeyPairSync } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import {
  ADMIN_PROFILE,
  Authority,
  CrlPublisher,
  ROOT_KEY,
  Conflict,
  INTERMEDIATE_KEY,
  InvalidRequest,
  Unavailable,
  buildCsr,
  createHierarchy,
  parsePem,
  systemClock,
  toPem,
  webCryptoRandom,
  webCryptoBackend,
  JoinTokens,
  serverProfile,
  type AuditStore,
  type CertificateStore,
  type StoreCounters,
  type Clock,
  type CrlStore,
  type CryptoBackend,
  type KeyAlgorithm,
  type RevocationStore,
  type Signer,
  type TokenStore,
} from '@agentca/core';
import { openSqliteStore } from '@agentca/store-sqlite';
import { writeFileAtomic } from './atomic-file.ts';
import { CONFIG_FILE, defaultConfig, profilesFromConfig, readConfig, type CaConfig } from './config.ts';
import { FileKeyStore } from './keystore/index.ts';
import { KeyObjectSigner } from './keystore/file-signer.ts';

export const DEFAULT_CA_DIR = '.agentca';

export function caDirFrom(opt: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(opt ?? env.AGENTCA_DIR ?? DEFAULT_CA_DIR);
}

export const ROOT_CRL_VALIDITY_SECONDS = 365 * 86400;

export const paths = (dir: string) => ({
  config: join(dir, CONFIG_FILE),
  crlBundle: join(dir, 'crl.pem'),
  root: join(dir, 'root.pem'),
  intermediate: join(dir, 'intermediate.pem'),
  keys: join(dir, 'keys'),
  adminCert: join(dir, 'admin', 'operator.pem'),
  adminKey: join(dir, 'admin', 'operator.key.pem'),
});

/** The store ports of a CA, whichever database holds them, and the counters it keeps for /metrics. */
export interface CaStore extends StoreCounters {
  certificates: CertificateStore;
  audit: AuditStore;
  revocations: RevocationStore;
  crls: CrlStore;
  tokens: TokenStore;
  close(): Promise<void>;
}

const POSTGRES_URL = /^postgres(?:ql)?:\/\//i;

/** True when `store` (agentca.json's `store`, or `--store`) names a PostgreSQL database. */
export function isPostgresStore(store: string): boolean {
  return POSTGRES_URL.test(store);
}

/**
 * Where the state lives, as it may be printed or logged: `sqlite:<file>`, or the PostgreSQL URL
 * with its password masked.
 */
export async function describeStore(store: string): Promise<string> {
  if (!isPostgresStore(store)) return store;
  const { redactPostgresUrl } = await import('@agentca/store-postgres');
  return redactPostgresUrl(store);
}

/**
 * Opens the store named by `store`: `sqlite:<file>` (relative to the CA directory) or a
 * `postgresql://` URL, whose driver is loaded only then.
 *
 * @throws InvalidRequest `ERR_STORE_URL_INVALID`; Unavailable `ERR_STORE_UNAVAILABLE`.
 */
export async function openStore(dir: string, store: string, o: { clock?: Clock } = {}): Promise<CaStore> {
  await checkStore(store);
  if (isPostgresStore(store)) {
    const { openPostgresStore } = await import('@agentca/store-postgres');
    return openPostgresStore(store, o.clock ? { clock: o.clock } : {});
  }
  return openSqliteStore(resolve(dir, store.slice('sqlite:'.length)), o.clock ? { clock: o.clock } : {});
}

/** @throws InvalidRequest `ERR_STORE_URL_INVALID` unless `store` is `sqlite:<file>` or a usable `postgresql://` URL. */
export async function checkStore(store: string): Promise<void> {
  if (isPostgresStore(store)) return (await import('@agentca/store-postgres')).checkPostgresUrl(store);
  if (typeof store !== 'string' || !/^sqlite:.+$/.test(store)) {
    // Never echo what might be a mistyped URL with a password in it.
    throw new InvalidRequest('ERR_STORE_URL_INVALID', 'unsupported store: use sqlite:<file> or postgresql://user@host:5432/database');
  }
}

export function readCertificatePem(file: string, what: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Unavailable('ERR_CA_FILE_MISSING', `cannot read the ${what} certificate ${file}`);
  }
  const block = parsePem(text).find((b) => b.label === 'CERTIFICATE');
  if (!block) throw new Unavailable('ERR_CA_FILE_CORRUPT', `${file} holds no certificate`);
  return block.der;
}

export interface InitOptions {
  dir: string;
  trustDomain: string;
  keyAlgorithm: KeyAlgorithm;
  passphrase: string;
  nameConstraints?: boolean;
  /**
   * Base URL at which relying parties reach `agentca serve`'s plain-HTTP listener
   * (e.g. http://ca.internal:8080). When set, leaves carry a CRL distribution point
   * (`<url>/crl`) and an OCSP URL (`<url>/ocsp`), and the intermediate points at the root's
   * CRL (`<url>/root.crl`).
   */
  publicUrl?: string;
  /**
   * Where the state goes: `sqlite:<file>` (default `sqlite:agentca.db`, in the CA directory) or a
   * `postgresql://` URL of an empty database that every replica will share. Recorded in
   * agentca.json, so later commands need not repeat it.
   */
  store?: string;
  clock?: Clock;
}

export interface InitResult {
  dir: string;
  config: CaConfig;
  root: Uint8Array;
  intermediate: Uint8Array;
  admin: { spiffeId: string; serial: string; certificate: string; key: string; notAfter: Date };
}

/**
 * Creates a CA directory. The whole directory is built beside the target and renamed into
 * place at the end, so a failure leaves nothing half-written; an existing CA is never touched.
 */
export async function initCaDir(o: InitOptions): Promise<InitResult> {
  const dir = resolve(o.dir);
  if (existsSync(join(dir, CONFIG_FILE))) throw new Conflict('ERR_CA_EXISTS', `a CA already exists in ${dir}`);
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new Conflict('ERR_CA_DIR_NOT_EMPTY', `${dir} exists and is not empty`);
  mkdirSync(dirname(dir), { recursive: true });
  const work = join(dirname(dir), `.${basename(dir)}.init-${randomBytes(4).toString('hex')}`);
  mkdirSync(work, { mode: 0o700 });
  try {
    const clock = o.clock ?? systemClock;
    const p = paths(work);
    const config = defaultConfig(o.trustDomain, o.keyAlgorithm);
    if (o.store !== undefined) {
      await checkStore(o.store);
      config.store = o.store;
    }
    const base = o.publicUrl?.replace(/\/+$/, '');
    if (base !== undefined) {
      if (!/^https?:\/\/[\x21-\x7e]+$/.test(base)) throw new InvalidRequest('ERR_URL_INVALID', `--public-url ${JSON.stringify(o.publicUrl)} is not an http(s) URL`);
      config.urls = { crl: [`${base}/crl`], ocsp: [`${base}/ocsp`], caIssuers: [] };
    }
    const keys = new FileKeyStore({ dir: p.keys, passphrase: o.passphrase });
    const { root, intermediate } = await createHierarchy({
      trustDomain: o.trustDomain,
      keyAlgorithm: o.keyAlgorithm,
      keys,
      clock,
      random: webCryptoRandom,
      nameConstraints: o.nameConstraints ?? false,
      ...(base !== undefined ? { rootCrlUrls: [`${base}/root.crl`] } : {}),
    });
    writeFileAtomic(p.root, toPem('CERTIFICATE', root));
    writeFileAtomic(p.intermediate, toPem('CERTIFICATE', intermediate));
    // A database password in the store URL makes the config a secret.
    writeFileAtomic(p.config, JSON.stringify(config, null, 2) + '\n', hasPassword(config.store) ? 0o600 : 0o644);
    const store = await openStore(work, config.store, { clock });
    let admin: InitResult['admin'];
    try {
      await assertEmpty(store, config.store);
      await store.audit.append({
        type: 'init',
        actor: 'operator',
        outcome: 'ok',
        at: clock.now(),
        detail: { trustDomain: o.trustDomain, keyAlgorithm: o.keyAlgorithm },
      });
      const intSigner = await keys.open(INTERMEDIATE_KEY);
      const authority = await openAuthority(work, config, intSigner, store, clock);
      admin = await issueAdminCertificate(authority, config, p);
      await publishFirstCrls(work, store, clock, { root, rootSigner: await keys.open(ROOT_KEY), intermediate, intSigner });
    } catch (e) {
      // A database this init prepared is emptied again, so that init can simply be rerun.
      if ((store as { createdSchema?: boolean }).createdSchema) {
        await store.close();
        await (await import('@agentca/store-postgres')).dropPostgresSchema(config.store).catch(() => {});
      }
      throw e;
    } finally {
      await store.close();
    }
    renameSync(work, dir);
    return { dir, config, root, intermediate, admin: { ...admin, certificate: join(dir, 'admin', 'operator.pem'), key: join(dir, 'admin', 'operator.key.pem') } };
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

function hasPassword(store: string): boolean {
  if (!isPostgresStore(store)) return false;
  try {
    const u = new URL(store);
    return u.password !== '' || [...u.searchParams.keys()].some((k) => /pass/i.test(k));
  } catch {
    return true;
  }
}

/** A shared database may already hold another CA's state: init never writes into it. */
async function assertEmpty(store: CaStore, name: string): Promise<void> {
  const head = await store.audit.head();
  if (head.seq > 0 || (await store.certificates.count()) > 0 || (await store.crls.latest('root')) !== null) {
    throw new Conflict('ERR_STORE_NOT_EMPTY', `the store at ${await describeStore(name)} already holds a CA (${head.seq} audit events): give init an empty database`);
  }
}

/** The root's CRL is signed here, while the root key is at hand; the issuing CA's first CRL too. */
async function publishFirstCrls(
  dir: string,
  store: CaStore,
  clock: Clock,
  k: { root: Uint8Array; rootSigner: Signer; intermediate: Uint8Array; intSigner: Signer },
): Promise<void> {
  const root = await new CrlPublisher({ issuer: 'root', certificate: k.root, signer: k.rootSigner, crls: store.crls, clock, validitySeconds: ROOT_CRL_VALIDITY_SECONDS }).publish();
  const int = await new CrlPublisher({ issuer: 'intermediate', certificate: k.intermediate, signer: k.intSigner, revocations: store.revocations, crls: store.crls, clock }).publish();
  writeFileAtomic(join(dir, 'crl.pem'), toPem('X509 CRL', int.der) + toPem('X509 CRL', root.der));
}

async function issueAdminCertificate(authority: Authority, config: CaConfig, p: ReturnType<typeof paths>) {
  const spiffeId = config.admins[0]!;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csr = await buildCsr(new KeyObjectSigner('ec-p256', privateKey, publicKey));
  const issued = await authority.issue({ csr, attestation: { spiffeId, profile: ADMIN_PROFILE.name, method: 'init', actor: 'operator' } });
  mkdirSync(dirname(p.adminCert), { mode: 0o700 });
  writeFileAtomic(p.adminKey, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  writeFileAtomic(p.adminCert, toPem('CERTIFICATE', issued.der) + issued.chain.map((c) => toPem('CERTIFICATE', c)).join(''));
  return { spiffeId, serial: issued.serial, certificate: p.adminCert, key: p.adminKey, notAfter: issued.notAfter };
}

/** The names the API's own server certificate may carry besides localhost and 127.0.0.1 (`serve --listen`, `--server-name`). */
export interface ServerNames {
  dnsNames?: string[];
  ipAddresses?: string[];
}

async function openAuthority(dir: string, config: CaConfig, signer: Signer, store: CaStore, clock: Clock, crypto?: CryptoBackend, serverNames?: ServerNames): Promise<Authority> {
  const p = paths(dir);
  const profiles = profilesFromConfig(config);
  // The CA's own HTTPS server certificate comes from a built-in profile that workloads cannot use.
  if (!profiles.some((x) => x.name === 'agentca-server')) profiles.push(serverProfile(serverNames));
  return Authority.open({
    trustDomain: config.trustDomain,
    issuer: { certificate: readCertificatePem(p.intermediate, 'intermediate'), signer },
    roots: [readCertificatePem(p.root, 'root')],
    profiles,
    store,
    urls: config.urls,
    clock,
    clockSkewSeconds: config.clockSkewSeconds,
    ...(crypto ? { crypto } : {}),
  });
}

/** An opened CA directory. `authority` is present when the CA key was unlocked. */
export interface OpenCa {
  dir: string;
  config: CaConfig;
  store: CaStore;
  /** Where the state lives, safe to print (a PostgreSQL password is masked). */
  storeLocation: string;
  root: Uint8Array;
  intermediate: Uint8Array;
  close(): Promise<void>;
}

/**
 * Opens the CA's configuration and store (no key needed: list, audit, bundle). `store`, when
 * given, overrides agentca.json's (`--store`, `$AGENTCA_STORE`).
 */
export async function openCaDir(dirOpt: string, o: { clock?: Clock; store?: string } = {}): Promise<OpenCa> {
  const dir = resolve(dirOpt);
  const config = readConfig(paths(dir).config);
  const root = readCertificatePem(paths(dir).root, 'root');
  const intermediate = readCertificatePem(paths(dir).intermediate, 'intermediate');
  const name = o.store ?? config.store;
  const store = await openStore(dir, name, o.clock ? { clock: o.clock } : {});
  return { dir, config, store, storeLocation: await describeStore(name), root, intermediate, close: () => store.close() };
}

/**
 * The join-token provisioner of an opened CA, for minting tokens without the CA key (`agentca
 * token create`, tests and benches): the profiles of its config, its store, the system clock.
 */
export function joinTokensOf(ca: OpenCa): JoinTokens {
  const profiles = new Map(profilesFromConfig(ca.config).map((p) => [p.name, p]));
  return new JoinTokens({
    trustDomain: ca.config.trustDomain,
    profile: (name) => {
      const p = profiles.get(name);
      if (!p) throw new InvalidRequest('ERR_PROFILE_UNKNOWN', `there is no profile named ${JSON.stringify(name)}`);
      return p;
    },
    tokens: ca.store.tokens,
    clock: systemClock,
    random: webCryptoRandom,
    crypto: webCryptoBackend(),
  });
}

/** Opens the CA with its issuing key unlocked, ready to issue. */
export async function openCaForIssuance(
  dirOpt: string,
  passphrase: string,
  o: { clock?: Clock; crypto?: CryptoBackend; store?: string; serverNames?: ServerNames } = {},
): Promise<OpenCa & { authority: Authority; signer: Signer }> {
  const ca = await openCaDir(dirOpt, o);
  try {
    const keys = new FileKeyStore({ dir: paths(ca.dir).keys, passphrase });
    const signer = await keys.open(INTERMEDIATE_KEY);
    const authority = await openAuthority(ca.dir, ca.config, signer, ca.store, o.clock ?? systemClock, o.crypto, o.serverNames);
    return { ...ca, authority, signer };
  } catch (e) {
    await ca.close();
    throw e;
  }
}

