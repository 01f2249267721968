/**
 * The whole story in one process: a CA, a tool that authorises agents by SPIFFE ID, an agent
 * booted for one task, a successful mTLS call, the task ended, and the agent's next call
 * refused — within a second of the revocation. Exits 0 when all of that happened.
 *
 *   pnpm --filter agent-to-tool-mtls start
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCa } from './ca.ts';
import { startTool, type Tool } from './tool.ts';
import { bootAgent, type Agent } from './agent.ts';

const TRUST_DOMAIN = 'example.org';
const AGENT_ID = `spiffe://${TRUST_DOMAIN}/agent/invoice-bot`;
const STRANGER_ID = `spiffe://${TRUST_DOMAIN}/agent/stranger`;
const TOOL_ID = `spiffe://${TRUST_DOMAIN}/tool/invoices`;
const TASK = 'invoice-run-42';
const REFUSAL_BUDGET_MS = 1000;

const work = mkdtempSync(join(tmpdir(), 'agentca-example-mtls-'));
let ca: LocalCa | undefined;
let tool: Tool | undefined;
const agents: Agent[] = [];

function say(who: string, text: string): void {
  console.log(`${`[${who}]`.padEnd(11)}${text}`);
}

async function cleanUp(): Promise<void> {
  for (const a of agents) a.close();
  await tool?.close().catch(() => {});
  await ca?.stop().catch(() => {});
  rmSync(work, { recursive: true, force: true });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanUp().finally(() => process.exit(130)));
}

async function main(): Promise<void> {
  ca = new LocalCa(join(work, 'ca'));
  await ca.init(TRUST_DOMAIN);
  say('ca', `agentca init: a CA for ${TRUST_DOMAIN} in ${ca.dir}`);
  await ca.serve();
  say('ca', `agentca serve: issuance API ${ca.apiUrl}, CRL and OCSP on ${ca.httpUrl}`);

  const [toolToken, agentToken, strangerToken] = await Promise.all([
    ca.createToken(TOOL_ID),
    ca.createToken(AGENT_ID, { task: TASK, taskTtl: '10m' }),
    ca.createToken(STRANGER_ID),
  ]);
  say('ca', `agentca token create: one-time join tokens for the tool, for ${AGENT_ID} (task ${TASK}) and for ${STRANGER_ID}`);

  const caBundle = ca.bundle;
  tool = await startTool({
    caServer: ca.apiUrl,
    caBundle,
    token: toolToken,
    crlUrl: `${ca.httpUrl}/crl`,
    issuerCertificatePem: ca.intermediate,
    allow: [AGENT_ID],
  });
  say('tool', `${tool.spiffeId} listening on ${tool.url}; allow-list: ${AGENT_ID}; CRL #${tool.crl.crl!.crlNumber} loaded`);

  const agent = await bootAgent({ caServer: ca.apiUrl, caBundle, token: agentToken, toolId: TOOL_ID });
  agents.push(agent);
  const id = agent.identity;
  say('agent', `booted as ${id.spiffeId}: serial ${id.serial}, instance ${id.instanceId}, task ${id.taskId}, valid until ${id.notAfter.toISOString()}`);

  const first = await agent.call(`${tool.url}/invoices`);
  say('agent', `GET /invoices → ${first.status} ${first.body}`);
  if (first.status !== 200) throw new Error(`expected the agent's first call to succeed, got ${first.status}`);

  const stranger = await bootAgent({ caServer: ca.apiUrl, caBundle, token: strangerToken, toolId: TOOL_ID });
  agents.push(stranger);
  const refusedStranger = await stranger.call(`${tool.url}/invoices`);
  say('stranger', `GET /invoices → ${refusedStranger.status} ${refusedStranger.body}`);
  if (refusedStranger.status !== 403) throw new Error(`expected a caller off the allow-list to get 403, got ${refusedStranger.status}`);

  const ended = await ca.endTask(TASK);
  const returnedAt = Date.now();
  if (!ended.revokedAt || !ended.serials.includes(id.serial)) throw new Error(`expected task end to revoke the agent's certificate ${id.serial}`);
  // Timed from the revocation time the CA recorded (before its write), not from when the command returned.
  const revokedAt = ended.revokedAt.getTime();
  say('ca', `agentca task end ${TASK}: revoked ${ended.serials.join(', ')} at ${ended.revokedAt.toISOString()} (durable; the command returned ${returnedAt - revokedAt} ms later)`);

  // The agent keeps calling, as a running agent would; the first refusal ends the wait.
  let calls = 0;
  for (;;) {
    const r = await agent.call(`${tool.url}/invoices`);
    calls++;
    const elapsed = Date.now() - revokedAt;
    if (r.status === 200) {
      if (elapsed > 5000) throw new Error(`the agent was still let in ${elapsed} ms after the revocation`);
      await new Promise((resolve) => setTimeout(resolve, 20));
      continue;
    }
    say('agent', `GET /invoices → ${r.status} ${r.body}`);
    if (r.status !== 403 || !r.body.includes('revoked')) throw new Error(`expected 403 for a revoked certificate, got ${r.status} ${r.body}`);
    say('tool', `refused ${elapsed} ms after the revocation (CRL #${tool.crl.crl!.crlNumber}; ${calls - 1} call(s) got in meanwhile)`);
    if (elapsed >= REFUSAL_BUDGET_MS) throw new Error(`the refusal took ${elapsed} ms, over the ${REFUSAL_BUDGET_MS} ms budget`);
    console.log(`ok: the agent was cut off ${elapsed} ms after its task ended (budget ${REFUSAL_BUDGET_MS} ms)`);
    return;
  }
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(`FAILED: ${(e as Error).message}`);
  if (ca?.serveLog.length) console.error(`agentca serve's last log lines:\n${ca.serveLog.slice(-10).join('\n')}`);
} finally {
  await cleanUp();
}
process.exit(failed ? 1 : 0);
