/**
 * A start that fails part way (startServer): what it had started is closed again, so an embedding
 * process (or a test) is not left with a listener, a heartbeat timer or a database it cannot reach.
 */
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startTestServer } from '../../../test/support/registry-harness.js';
import { timersLeftBy } from '../../../test/support/timers-left.js';
import { OnionWatcher } from './onion-watcher.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  vi.restoreAllMocks();
});

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = await listening(0);
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function listening(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('a start that fails part way', () => {
  it('after it listened (the onion watcher fails to start), closes the listener: the port is free again', async () => {
    vi.spyOn(OnionWatcher.prototype, 'start').mockRejectedValueOnce(new Error('simulated watcher failure'));
    const port = await freePort();
    const left = await timersLeftBy(() =>
      expect(startTestServer({}, { port })).rejects.toThrow('simulated watcher failure'),
    );
    const again = await listening(port);
    cleanups.push(() => new Promise<void>((resolve) => again.close(() => resolve())));
    expect(left).toBe(0);
  });

  it('at listening (the port is taken), leaves no heartbeat timer running', async () => {
    const taken = await listening(0);
    cleanups.push(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const left = await timersLeftBy(() =>
      expect(startTestServer({}, { port: (taken.address() as { port: number }).port })).rejects.toThrow(/EADDRINUSE/),
    );
    expect(left).toBe(0);
  });
});
