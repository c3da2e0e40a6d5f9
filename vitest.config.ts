import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configDefaults, defineConfig } from 'vitest/config';

// Every temp folder a test, a child process or a container mount makes goes under one root per
// run (os.tmpdir() reads TMPDIR, and children inherit it), removed when the run ends, also when
// tests failed: a run leaves /tmp as it found it. The name is short: unix socket paths are
// limited to 107 bytes.
const runTemp = mkdtempSync(join(tmpdir(), 'p2pt-'));
// Like /tmp itself: tests run some commands as another account (nobody), which must reach its files.
chmodSync(runTemp, 0o1777);
process.env['TMPDIR'] = runTemp;
process.on('exit', () => rmSync(runTemp, { recursive: true, force: true }));

// server/dist, built once per run for the tests that run the built server or CLI.
const buildDist = 'test/support/global-setup.ts';
// The tests that need a real PostgreSQL server: their own project, which starts one.
// The cluster's tests (several registries sharing one) need it too, and so do the built server's
// runs on PostgreSQL (test/postgres).
const postgresTests = [
  'server/src/store/postgres/postgres-store.test.ts',
  'test/cluster/**/*.test.ts',
  'test/postgres/**/*.test.ts',
];

export default defineConfig({
  test: {
    projects: [
      {
        // Behaviour over real sockets and files; no load, no timing budgets.
        test: {
          name: 'unit',
          include: ['server/src/**/*.test.ts', 'test/unit/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...postgresTests],
          globalSetup: [buildDist],
          testTimeout: 15_000,
          hookTimeout: 15_000,
        },
      },
      {
        // The claim store on a real PostgreSQL (Debian's postgresql package), started once per run.
        test: {
          name: 'postgres',
          include: postgresTests,
          globalSetup: [buildDist, 'test/support/postgres-global-setup.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
          // The tests stop and start the one server.
          fileParallelism: false,
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
