/**
 * A cluster instance's lease under a slow or partly failing database: the lease is renewed on a
 * connection of its own, so that nothing else this instance does with the database (stuck
 * queries, a full pool, a failing housekeeping step) can let it lapse and have the other
 * instances sweep its peers.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { clusterTestScope, freshDatabase, sql, startInstance, View } from '../support/cluster.js';
import { logSink } from '../support/log-sink.js';
import { ed25519Identity, type TestServer } from '../support/registry-harness.js';
import { delay, waitUntil } from '../support/wait.js';

const { instances, clients, lockers, connect } = clusterTestScope();

/** An outside connection holding `statement`'s locks in an open transaction, until the test ends. */
async function holdLocks(database: string, statement: string, params: unknown[] = []): Promise<pg.Client> {
  const locker = new pg.Client({ connectionString: database });
  locker.on('error', () => undefined);
  lockers.push(locker);
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query(statement, params);
  return locker;
}

/** An instance's /healthz body (its operator listener). */
async function health(instance: TestServer): Promise<{ cluster: { database: string; housekeeping: string } }> {
  return (await instance.health()).body as { cluster: { database: string; housekeeping: string } };
}

describe("a cluster instance's lease", () => {
  it(
    'holds while every pooled connection of its instance is stuck: the other instances do not sweep ' + 'its peers',
    async () => {
      const database = await freshDatabase('lease');
      const [a, b] = [await startInstance(database), await startInstance(database)];
      instances.push(a, b);
      const watcher = await View.of(b.url);
      clients.push(watcher.client);
      const peer = await connect(a.url);
      expect((await peer.register(ed25519Identity(), 'steady')).type).toBe('registered');
      await watcher.client.waitFor((f) => f.type === 'peer_joined');
      await waitUntil(
        'a to announce its backend',
        async () => (await sql(database, 'SELECT 1 FROM registry_backends WHERE onion = $1', [a.onion])).rowCount === 1,
      );
      // A's announcement to the frontend now waits for this lock at every renewal (a slow database, for a).
      await holdLocks(database, 'SELECT 1 FROM registry_backends WHERE onion = $1 FOR UPDATE', [a.onion]);
      // Three leases: a lease that lapsed is swept within one more lease by b.
      await delay(6_000);
      expect(watcher.events().filter((e) => e.type === 'peer_left')).toEqual([]);
      expect(peer.ws.readyState).toBe(peer.ws.OPEN);
      const asker = await connect(b.url);
      expect(await asker.request({ type: 'lookup', nickname: 'steady' })).toMatchObject({ type: 'peer' });
    },
  );

  it(
    'reports a failing housekeeping step as that step: the lease holds and /healthz says the database is ' +
      'reachable',
    async () => {
      const database = await freshDatabase('housekeeping');
      const { sink, lines } = logSink();
      const a = await startInstance(database, { logLevel: 'info', logDestination: sink });
      instances.push(a);
      await waitUntil(
        'a to announce its backend',
        async () => (await sql(database, 'SELECT 1 FROM registry_backends WHERE onion = $1', [a.onion])).rowCount === 1,
      );
      // Every announcement of a backend fails from now on; renewing the lease does not.
      await sql(database, "ALTER TABLE registry_backends ADD CONSTRAINT refuse_all CHECK (onion = 'none') NOT VALID");
      await delay(2_500);
      expect(await health(a)).toMatchObject({ cluster: { database: 'reachable', housekeeping: 'failing' } });
      const messages = lines.map((line) => String(line['msg']));
      expect(messages.filter((m) => m.includes('cannot renew'))).toEqual([]);
      const warnings = lines.filter((line) => line['step'] === 'announce');
      // Said once, not at every renewal.
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.['msg']).toMatch(/announcing this backend to the frontend .*failed/);
      const peer = await connect(a.url);
      expect((await peer.register(ed25519Identity(), 'fine')).type).toBe('registered');
      await sql(database, 'ALTER TABLE registry_backends DROP CONSTRAINT refuse_all');
      await waitUntil('housekeeping to recover', async () => (await health(a)).cluster.housekeeping === 'ok', {
        timeoutMs: 5_000,
        intervalMs: 100,
      });
    },
  );
});
