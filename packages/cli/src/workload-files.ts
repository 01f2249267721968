/** Key, CSR and certificate files on the workload side (`agentca request`, `agentca renew`). */
import { InvalidRequest, buildCsr, isKeyAlgorithm, toPem } from '@agentca/core';
import { KeyObjectSigner, generateKeyObjects } from '@agentca/node';

/** A fresh key made here; it never leaves this process except into the 0600 key file. */
export async function newKeyAndCsr(alg: string): Promise<{ keyPem: string; csrPem: string }> {
  if (!isKeyAlgorithm(alg)) throw new InvalidRequest('ERR_KEY_ALGORITHM_UNSUPPORTED', `unknown key algorithm ${alg}`);
  const pair = await generateKeyObjects(alg);
  const csr = await buildCsr(new KeyObjectSigner(alg, pair.privateKey, pair.publicKey));
  return { keyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, csrPem: toPem('CERTIFICATE REQUEST', csr) };
}

export interface SignResponse {
  certificate: string;
  chain: string;
  serial: string;
  spiffeId: string;
  notAfter: string;
  instanceId?: string;
}
