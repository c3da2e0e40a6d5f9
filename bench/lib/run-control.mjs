/**
 * What every bench run does around its phases: a temp dir, a log line prefix with the time since
 * the start, and a cleanup that kills every child (and runs `extraCleanup`) on exit, error,
 * SIGINT, SIGTERM and SIGHUP, and when the run exceeds its budget.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killAllChildren } from './procs.mjs';

/**
 * `options`: { budgetMs, keepTemp, tempPrefix, name }. Returns { log, elapsed, tempRoot, lifetimeSeconds, cleanup,
 * onCleanup }.
 */
export function startRun({ budgetMs, keepTemp, tempPrefix, name = 'bench' }) {
  const runStarted = performance.now();
  const elapsed = () => ((performance.now() - runStarted) / 1000).toFixed(1);
  const log = (message) => process.stderr.write(`[${name} ${elapsed()}s] ${message}\n`);
  const tempRoot = mkdtempSync(join(tmpdir(), tempPrefix));
  const extra = [];
  let cleaning = false;
  const cleanup = () => {
    if (cleaning) return;
    cleaning = true;
    killAllChildren();
    for (const fn of extra) {
      try {
        fn();
      } catch (err) {
        log(`cleanup: ${err?.message ?? err}`);
      }
    }
    if (!keepTemp) rmSync(tempRoot, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      log(`${signal}: stopping every child process`);
      cleanup();
      process.exit(130);
    });
  }
  const budget = setTimeout(() => {
    log(`run exceeded its ${budgetMs / 1000} s budget: aborting (every child process is killed)`);
    cleanup();
    process.exit(1);
  }, budgetMs);
  budget.unref();
  return {
    log,
    elapsed,
    tempRoot,
    lifetimeSeconds: Math.ceil(budgetMs / 1000) + 30,
    cleanup,
    onCleanup: (fn) => extra.push(fn),
  };
}
