import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // vitest's default in run mode is one worker per core but one: a single worker on this
    // 2-core CI machine, where several files mostly wait (certificates rotating on a 1-minute
    // TTL, a sidecar's renewals, backoff). Three overlap those waits: ~6 min instead of ~12.
    maxWorkers: 3,
  },
});
