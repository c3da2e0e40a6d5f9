import { defineConfig } from 'vitest/config';

// server/dist, built once per run for the tests that run the built server or CLI.
const buildDist = 'test/support/global-setup.ts';

export default defineConfig({
  test: {
    projects: [
      {
        // Behaviour over real sockets and files; no load, no timing budgets.
        test: {
          name: 'unit',
          include: ['server/src/**/*.test.ts', 'test/unit/**/*.test.ts'],
          globalSetup: [buildDist],
          testTimeout: 15_000,
          hookTimeout: 15_000,
        },
      },
      {
        // Fuzzing, abuse limits and load on the built server: they measure time and memory.
        test: {
          name: 'hardening',
          include: ['test/hardening/**/*.test.ts'],
          globalSetup: [buildDist],
          testTimeout: 15_000,
          hookTimeout: 15_000,
          // One file at a time: the load test's budgets assume the server gets a core of its own.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 900_000,
          // One stack at a time: the suites share Docker and the machine has 2 cores.
          fileParallelism: false,
        },
      },
    ],
  },
});
