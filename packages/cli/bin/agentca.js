#!/usr/bin/env node
// The CLI runs from TypeScript source through tsx's loader: no build step between a clone and a run.
import { register } from 'tsx/esm/api';
register();
// `agentca list | head` closes the pipe early: that is not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});
const { main } = await import('../src/main.ts');
process.exitCode = await main(process.argv);
