/**
 * The scope of a test that kills built servers (kill -9) and starts them again on the same files:
 * after each test, every client it opened is dropped, every server it started is killed, its
 * folder is removed, and no process error may have been left behind.
 */
import { rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import type { RawClient } from '../support/registry-harness.js';
import { requireBuiltServer, stopBuiltServer, type BuiltServer } from './built-server.js';
import { guardProcessErrors, type ProcessErrorGuard } from './hardening-support.js';

export interface CrashTestScope {
  /** Servers the test started and has not killed itself. */
  readonly running: BuiltServer[];
  readonly clients: RawClient[];
  /** The test's folder (a tempDir), removed after it; empty until the test sets it. */
  dir: string;
}

export function crashTestScope(): CrashTestScope {
  const scope: CrashTestScope = { running: [], clients: [], dir: '' };
  let guard: ProcessErrorGuard;
  beforeAll(() => {
    requireBuiltServer();
    guard = guardProcessErrors();
  });
  afterEach(async () => {
    for (const client of scope.clients.splice(0)) client.ws.terminate();
    for (const server of scope.running.splice(0)) await stopBuiltServer(server, 'SIGKILL');
    if (scope.dir !== '') rmSync(scope.dir, { recursive: true, force: true });
    scope.dir = '';
    expect(guard.errors).toEqual([]);
  });
  afterAll(() => guard.dispose());
  return scope;
}
