import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['server/src/**/*.test.ts', 'test/unit/**/*.test.ts', 'test/hardening/**/*.test.ts'],
          testTimeout: 15_000,
          hookTimeout: 15_000,
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
