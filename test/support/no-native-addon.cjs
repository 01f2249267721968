// Preloaded into `agentca serve` (NODE_OPTIONS=--require) by test/native-fallback.test.ts: the
// native ECDSA addon fails to load, as it does on a machine where `pnpm install` could not
// compile it. Every other module loads as usual.
const Module = require('node:module');

const load = Module._load;
Module._load = function (request, ...rest) {
  if (String(request).endsWith('ecdsa_verify.node')) throw new Error('simulated by the test: the addon was not built');
  return load.call(this, request, ...rest);
};
