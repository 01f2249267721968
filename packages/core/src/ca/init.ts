/** Creating a CA: the root and intermediate keys and certificates, in one step. */
import type { Clock } from '../ports/clock.ts';
import type { KeyStore } from '../ports/signer.ts';
import type { Random } from '../ports/random.ts';
import type { KeyAlgorithm } from '../x509/algorithms.ts';
import { parseTrustDomain } from '../identity/spiffe-id.ts';
import {
  DEFAULT_INTERMEDIATE_TTL_SECONDS,
  DEFAULT_ROOT_TTL_SECONDS,
  createIntermediateCertificate,
  createRootCertificate,
} from './hierarchy.ts';

export const ROOT_KEY = 'root';
export const INTERMEDIATE_KEY = 'intermediate';

export interface CreateHierarchyOptions {
  trustDomain: string;
  keyAlgorithm: KeyAlgorithm;
  keys: KeyStore;
  clock: Clock;
  random: Random;
  rootTtlSeconds?: number;
  intermediateTtlSeconds?: number;
  nameConstraints?: boolean;
  rootCrlUrls?: string[];
  /** Backdating of notBefore, as for leaves. */
  clockSkewSeconds?: number;
}

export async function createHierarchy(o: CreateHierarchyOptions): Promise<{ root: Uint8Array; intermediate: Uint8Array }> {
  const td = parseTrustDomain(o.trustDomain);
  const now = Math.floor(o.clock.now().getTime() / 1000) * 1000;
  const notBefore = new Date(now - (o.clockSkewSeconds ?? 60) * 1000);
  const rootSigner = await o.keys.generate(ROOT_KEY, o.keyAlgorithm);
  const root = await createRootCertificate(rootSigner, {
    subject: { organization: td, commonName: `agentca root CA ${td}` },
    notBefore,
    notAfter: new Date(now + (o.rootTtlSeconds ?? DEFAULT_ROOT_TTL_SECONDS) * 1000),
    random: o.random,
  });
  const intSigner = await o.keys.generate(INTERMEDIATE_KEY, o.keyAlgorithm);
  const intermediate = await createIntermediateCertificate(rootSigner, root, intSigner.publicKey, {
    subject: { organization: td, commonName: `agentca intermediate CA ${td}` },
    notBefore,
    notAfter: new Date(now + (o.intermediateTtlSeconds ?? DEFAULT_INTERMEDIATE_TTL_SECONDS) * 1000),
    random: o.random,
    ...(o.nameConstraints ? { nameConstraintTrustDomain: td } : {}),
    ...(o.rootCrlUrls ? { rootCrlUrls: o.rootCrlUrls } : {}),
  });
  return { root, intermediate };
}
