import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup/blockHashes.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Real sockets and child processes: two forks match the two cores CI has.
    pool: 'forks',
    maxWorkers: 2,
    coverage: {
      provider: 'v8',
      // The sources, not the tests; code run only in child processes (the CLI tests spawn
      // bin/muxftp.js) is not seen by v8 coverage and counts as uncovered.
      include: ['cli/**/*.ts', 'client/**/*.ts', 'server/**/*.ts', 'shared/**/*.ts', 'storage/**/*.ts'],
      reporter: ['text-summary'],
    },
  },
});
