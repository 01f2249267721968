/** Key, CSR and certificate files on the workload side (`agentca request`, `agentca renew`). */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { InvalidRequest, buildCsr, isKeyAlgorithm, toPem, type KeyAlgorithm } from '@agentca/core';
import { KeyObjectSigner } from '@agentca/node';

/** A fresh key made here; it never leaves this process except into the 0600 key file. */
export async function newKeyAndCsr(alg: string): Promise<{ keyPem: string; csrPem: string }> {
  if (!isKeyAlgorithm(alg)) throw new InvalidRequest('ERR_KEY_ALGORITHM_UNSUPPORTED', `unknown key algorithm ${alg}`);
  const pair = generate(alg);
  const csr = await buildCsr(new KeyObjectSigner(alg, pair.privateKey, pair.publicKey));
  return { keyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, csrPem: toPem('CERTIFICATE REQUEST', csr) };
}

function generate(alg: KeyAlgorithm): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (alg) {
    case 'ec-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ec-p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'ed25519':
      return generateKeyPairSync('ed25519');
    default:
      return generateKeyPairSync('rsa', { modulusLength: Number(alg.slice(4)) });
  }
}

export interface SignResponse {
  certificate: string;
  chain: string;
  serial: string;
  spiffeId: string;
  notAfter: string;
  instanceId?: string;
}
