/**
 * Things a test file starts and must stop after each test, also when the test fails: `defer`
 * takes a stop function, run after the test in reverse order.
 */
import { afterEach } from 'vitest';

export function cleanupsAfterEach(): (cleanup: () => Promise<void> | void) => void {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return (cleanup) => {
    cleanups.push(cleanup);
  };
}
