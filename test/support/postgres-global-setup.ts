/**
 * Vitest global setup of the `postgres` project: one PostgreSQL server for the whole run (see
 * postgres.ts), handed to the test files with `inject('postgres')`, stopped and removed at the
 * end. An exit handler stops it too when the run ends without teardown; a run that was killed
 * outright leaves a dir the next run's start removes.
 */
import type { TestProject } from 'vitest/node';
import { removePostgresSync, startPostgres, type PostgresServer } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    postgres: PostgresServer;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  const started = Date.now();
  const server = await startPostgres();
  console.log(
    `started PostgreSQL (${server.binDir}) on ${server.socketDir} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  let removed = false;
  const remove = (): void => {
    if (removed) return;
    removed = true;
    removePostgresSync(server);
  };
  process.once('exit', remove);
  project.provide('postgres', server);
  return () => {
    process.off('exit', remove);
    remove();
  };
}
