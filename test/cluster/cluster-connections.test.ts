/**
 * A cluster instance's connections to PostgreSQL (docs/CLUSTER.md "Connection budget"): at most
 * 10 however busy it is (claims 4, presence 4, the listener, the lease), each named in
 * pg_stat_activity by its instance and what it is for, so that an operator can size max_connections
 * for N backends and tell whose connections are whose.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { clusterTestScope, freshDatabase, sql, startInstance } from '../support/cluster.js';
import { ed25519Identity } from '../support/registry-harness.js';
import { delay, waitUntil } from '../support/wait.js';

const { instances, lockers, connect } = clusterTestScope();

/** The registry's connections to `database`, by application_name. */
async function registryConnections(database: string): Promise<string[]> {
  const result = await sql(
    database,
    'SELECT application_name FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE ' +
      "'p2p-registry%' ORDER BY 1",
  );
  return (result.rows as Array<{ application_name: string }>).map((row) => row.application_name);
}

describe("a cluster instance's connections to its database", () => {
  it(
    'are at most 10 however busy it is (claims 4, presence 4, listener 1, lease 1), each named by its ' +
      'instance and use',
    async () => {
      const database = await freshDatabase('budget');
      const a = await startInstance(database);
      instances.push(a);
      const instance = ((await a.health()).body as { cluster: { instance: string } }).cluster.instance;
      const leaver = await connect(a.url);
      expect((await leaver.register(ed25519Identity(), 'leaver')).type).toBe('registered');

      // From here on, everything the instance asks of these tables waits: each pool fills up.
      const locker = new pg.Client({ connectionString: database });
      locker.on('error', () => undefined);
      lockers.push(locker);
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE claims, presence, presence_events, registry_backends IN ACCESS EXCLUSIVE MODE');
      leaver.close(); // a leave batch
      const storm = await Promise.all(Array.from({ length: 12 }, () => connect(a.url)));
      const replies = storm.map((client, i) =>
        client.register(ed25519Identity(), `storm${i}`, 5050, undefined, {}).catch(() => null),
      );
      // The tail polls every second and the sweep starts a lease (2 s) after the start.
      await waitUntil('the pools to fill up', async () => (await registryConnections(database)).length >= 10, {
        timeoutMs: 8_000,
        intervalMs: 100,
      });
      await delay(1_000);
      const names = await registryConnections(database);
      expect(names).toHaveLength(10);
      const uses = new Map<string, number>();
      for (const name of names) {
        expect(name.startsWith(`p2p-registry ${instance} `)).toBe(true);
        const use = name.slice(`p2p-registry ${instance} `.length);
        uses.set(use, (uses.get(use) ?? 0) + 1);
      }
      expect(Object.fromEntries(uses)).toEqual({ claims: 4, presence: 4, listener: 1, lease: 1 });

      await locker.query('ROLLBACK');
      await Promise.all(replies);
      const after = await connect(a.url);
      expect((await after.register(ed25519Identity(), 'after')).type).toBe('registered');
    },
  );
});
