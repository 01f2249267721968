/** The `agentca` command: the composition root. One file per command under commands/. */
import { Command, CommanderError } from 'commander';
import { AgentCAError } from '@agentca/core';
import { processIo, type CliIo } from './io.ts';
import * as init from './commands/init.ts';
import * as issue from './commands/issue.ts';
import * as list from './commands/list.ts';
import * as inspect from './commands/inspect.ts';
import * as bundle from './commands/bundle.ts';
import * as audit from './commands/audit.ts';
import * as serve from './commands/serve.ts';
import * as revoke from './commands/revoke.ts';
import * as task from './commands/task.ts';
import * as crl from './commands/crl.ts';
import * as token from './commands/token.ts';
import * as request from './commands/request.ts';
import * as renew from './commands/renew.ts';
import * as agent from './commands/agent.ts';

export function buildProgram(io: CliIo): Command {
  const program = new Command('agentca')
    .description('a private CA that gives every AI agent and workload instance its own short-lived X.509 identity')
    .version('0.1.0')
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      // Usage errors keep the one-line contract: `error: <message> (ERR_USAGE)`.
      outputError: (s, write) => write(`${s.trim().split('\n')[0]} (ERR_USAGE)\n`),
    })
    .exitOverride();
  for (const c of [init, issue, list, inspect, bundle, serve, token, request, renew, agent, revoke, task, crl, audit]) c.register(program, io);
  for (const c of program.commands) propagate(c);
  return program;
}

function propagate(c: Command): void {
  c.exitOverride();
  for (const s of c.commands) propagate(s);
}

/** Runs the CLI; resolves to the process exit code. Errors become one line: `error: <message> (<code>)`. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof AgentCAError) {
      io.err(`error: ${e.message} (${e.code})\n`);
      return 1;
    }
    io.err(`error: ${(e as Error)?.message ?? String(e)} (ERR_INTERNAL)\n`);
    return 1;
  }
}
