/**
 * Vitest global setup of the unit and hardening projects: compiles server/dist once per vitest run,
 * before any test file starts. Tests that run the built server or CLI (cli.test.ts,
 * onion-watcher.test.ts, the hardening suite's built server) rely on it and never build themselves,
 * so nothing rewrites dist while another test executes it.
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const ROOT = resolve(import.meta.dirname, '../..');
const DIST = join(ROOT, 'server/dist');
const TSCONFIG = 'server/tsconfig.build.json';
const BUILD_TIMEOUT_MS = 180_000;

// Both projects list this file; a run of both shares the main process, so it builds only once.
const BUILT = Symbol.for('p2p-registry.test.dist-built');
type WithBuild = typeof globalThis & { [BUILT]?: Promise<void> };

async function buildDist(): Promise<void> {
  // A clean dist: a module deleted or renamed in src must not linger there for tests to import.
  rmSync(DIST, { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const started = Date.now();
  try {
    await promisify(execFile)(process.execPath, [tsc, '-p', TSCONFIG], {
      cwd: ROOT,
      timeout: BUILD_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const {
      stdout = '',
      stderr = '',
      code,
      signal,
    } = err as { stdout?: string; stderr?: string; code?: unknown; signal?: unknown };
    const how =
      signal === null || signal === undefined
        ? `exit code ${String(code)}`
        : `signal ${String(signal)} (timeout ${BUILD_TIMEOUT_MS} ms?)`;
    throw new Error(`tsc -p ${TSCONFIG} failed (${how}); no test ran:\n${stdout}${stderr}`.trimEnd(), { cause: err });
  }
  console.log(`built server/dist in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

export default async function setup(): Promise<void> {
  const state = globalThis as WithBuild;
  state[BUILT] ??= buildDist();
  await state[BUILT];
}
