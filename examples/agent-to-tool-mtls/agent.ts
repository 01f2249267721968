/**
 * The agent: boots with a one-time join token (its key is made here and never leaves this
 * process), then calls the tool over mTLS, checking that the server is the tool it expects
 * by SPIFFE ID rather than by host name.
 */
import https from 'node:https';
import { AgentIdentity } from '@agentca/client';

export interface Agent {
  identity: AgentIdentity;
  /** GET `url` over mTLS; resolves with the status and the body as text. */
  call(url: string): Promise<{ status: number; body: string }>;
  close(): void;
}

export async function bootAgent(o: { caServer: string; caBundle: string; token: string; toolId: string }): Promise<Agent> {
  const identity = await AgentIdentity.bootstrap({ server: o.caServer, caBundle: o.caBundle, token: o.token });
  const agent = identity.httpsAgent({ allow: [o.toolId] });
  return {
    identity,
    call: (url) =>
      new Promise((resolve, reject) => {
        const req = https.get(url, { agent, timeout: 5000 }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
        req.on('error', reject);
      }),
    close() {
      identity.close();
      agent.destroy();
    },
  };
}
