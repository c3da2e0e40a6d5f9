/**
 * The lock order of the cluster's presence writes (docs/CLUSTER.md "Lock order"): an instance's
 * registry_instances row, then presence rows, then the log's head, last. A sweep or a clean
 * shutdown that ends an instance while one of its registration batches is in flight waits for that
 * batch (or passes it by) instead of deadlocking with it: a deadlock costs every cluster write a
 * stall of deadlock_timeout (1 s), and one of the two transactions.
 */
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PostgresPresence } from '../../server/src/server/cluster/postgres-presence.js';
import { openPostgresClaimStore, poolConfig } from '../../server/src/store/postgres/postgres-open.js';
import type { EnterOutcome, PresenceRow } from '../../server/src/server/cluster/presence.js';
import { closeAdmin, freshDatabase, sql } from '../support/cluster.js';
import { randomOnion } from '../support/registry-harness.js';
import { delay, waitUntil } from '../support/wait.js';

const opened: PostgresPresence[] = [];
const lockers: pg.Client[] = [];

afterEach(async () => {
  for (const locker of lockers.splice(0)) await locker.end().catch(() => undefined);
  await Promise.all(opened.splice(0).map((presence) => presence.close()));
});
afterAll(closeAdmin);

/** A migrated database and one presence store on it. */
async function presenceOn(prefix: string): Promise<{ database: string; presence: PostgresPresence }> {
  const database = await freshDatabase(prefix);
  await (await openPostgresClaimStore({ connectionString: database, claimDays: 1 })).close();
  const presence = new PostgresPresence(
    poolConfig({
      connectionString: database,
      maxConnections: 4,
      connectTimeoutMs: 5_000,
      statementTimeoutMs: 10_000,
      applicationName: 'p2p-registry test',
    }),
    'test',
    1_000,
  );
  opened.push(presence);
  return { database, presence };
}

let refs = 0;
function row(nickname: string, instanceId: string): PresenceRow {
  refs += 1;
  const address = randomOnion();
  return {
    keyId: `${nickname}-key`,
    nickname,
    address,
    addressVerified: false,
    instanceId,
    localRef: refs,
    publicKeyDer: new Uint8Array([1, 2, 3]),
    peerJson: JSON.stringify({ nickname, address, addressVerified: false }),
  };
}

/**
 * An outside transaction that inserts `nickname` and stays open: a batch registering the same
 * nickname waits at the unique index, holding its instance's row, until `release`.
 */
async function holdNickname(database: string, nickname: string): Promise<{ release: () => Promise<void> }> {
  const locker = new pg.Client({ connectionString: database });
  locker.on('error', () => undefined);
  lockers.push(locker);
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query(
    'INSERT INTO presence (key_id, nickname, nickname_key, address, address_verified, instance_id, local_ref, ' +
      "public_key, peer) VALUES ('outside', $1, lower($1), 'outside', false, 'outside', 0, '\\x00', '{}')",
    [nickname],
  );
  return { release: async () => void (await locker.query('ROLLBACK')) };
}

async function waitingOnLocks(database: string): Promise<number> {
  const result = await sql(
    database,
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
  );
  return (result.rows[0] as { n: number }).n;
}

/** Deadlocks PostgreSQL detected in this database (its statistics reach pg_stat_database within a second or so). */
async function deadlocks(database: string): Promise<number> {
  await delay(1_500);
  const result = await sql(
    database,
    'SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = current_database()',
  );
  return (result.rows[0] as { n: number }).n;
}

/** A's registration of `contested`, waiting at the unique index while it holds A's instance row. */
async function batchInFlight(
  database: string,
  presence: PostgresPresence,
  instance: string,
): Promise<{ entered: Promise<{ outcome: EnterOutcome; at: number }>; release: () => Promise<number> }> {
  const held = await holdNickname(database, 'contested');
  const entered = presence
    .enter(row('contested', instance), Date.now())
    .then((outcome) => ({ outcome, at: Date.now() }));
  await waitUntil('the batch to wait at the unique index', async () => (await waitingOnLocks(database)) >= 1);
  return {
    entered,
    release: async () => {
      await held.release();
      return Date.now();
    },
  };
}

describe('the lock order of presence writes', () => {
  it(
    'ends an instance (a clean shutdown) while its registration batch waits at a unique index: no deadlock, the ' +
      "batch's row ends too",
    async () => {
      const { database, presence } = await presenceOn('locks_leave');
      await presence.renewLease('a', 60_000);
      expect((await presence.enter(row('before', 'a'), Date.now())).kind).toBe('entered');
      const batch = await batchInFlight(database, presence, 'a');
      const leaving = presence.leaveInstance('a').catch((err: unknown) => err);
      await delay(300); // the shutdown reaches what it waits for
      const releasedAt = await batch.release();
      const { outcome, at } = await batch.entered;
      expect(outcome.kind).toBe('entered');
      // Not after a deadlock_timeout (1 s): nobody waited for a deadlock to be detected.
      expect(at - releasedAt).toBeLessThan(500);
      expect(await leaving).toBe(2);
      expect((await sql(database, 'SELECT count(*)::int AS n FROM presence')).rows[0]).toEqual({ n: 0 });
      expect(await deadlocks(database)).toBe(0);
    },
  );

  it(
    'sweeps while a registration batch of the expired instance is in flight: no deadlock, the next sweep ' +
      'ends its rows',
    async () => {
      const { database, presence } = await presenceOn('locks_sweep');
      await presence.renewLease('a', 1_500);
      expect((await presence.enter(row('before', 'a'), Date.now())).kind).toBe('entered');
      const batch = await batchInFlight(database, presence, 'a');
      await waitUntil(
        "a's lease to run out",
        async () =>
          (await sql(database, "SELECT 1 FROM registry_instances WHERE id = 'a' AND lease_until <= now()")).rowCount ===
          1,
        { timeoutMs: 3_000, intervalMs: 50 },
      );
      const sweeping = presence.sweep().catch((err: unknown) => err);
      await delay(300);
      const releasedAt = await batch.release();
      const { outcome, at } = await batch.entered;
      expect(outcome.kind).toBe('entered');
      expect(at - releasedAt).toBeLessThan(500);
      expect(await sweeping).toBe(0); // a's row was in use: passed by, not waited for
      expect(await presence.sweep()).toBe(2);
      expect((await sql(database, 'SELECT count(*)::int AS n FROM registry_instances')).rows[0]).toEqual({ n: 0 });
      expect(await deadlocks(database)).toBe(0);
    },
  );
});
