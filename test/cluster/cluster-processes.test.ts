/**
 * Cluster instances as the operator runs them: separate processes of the built server
 * (server/dist) sharing one PostgreSQL. What only processes can show: an instance killed with
 * SIGKILL says nothing to anyone, and its peers must still leave, once its lease runs out.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freePort, startBuiltServer, stopBuiltServer, type BuiltServer } from '../hardening/built-server.js';
import { closeAdmin, freshDatabase, sql, View, waitConverged } from '../support/cluster.js';
import { ed25519Identity, randomOnion, RawClient } from '../support/registry-harness.js';
import { waitUntil } from '../support/wait.js';

const LEASE_SECONDS = 2;
const running: BuiltServer[] = [];
const dirs: string[] = [];
const clients: RawClient[] = [];

async function instance(database: string): Promise<{ server: BuiltServer; url: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-instance-'));
  dirs.push(dir);
  const port = await freePort();
  const server = await startBuiltServer({
    dir,
    listen: { port },
    onion: randomOnion(),
    registry: { EventBatchMs: 0 },
    sections: { Store: { Database: database, LeaseSeconds: LEASE_SECONDS } },
  });
  running.push(server);
  return { server, url: `ws://127.0.0.1:${port}/` };
}

async function connect(url: string): Promise<RawClient> {
  const client = await RawClient.connect(url);
  clients.push(client);
  return client;
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(running.splice(0).map((server) => stopBuiltServer(server, 'SIGKILL')));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
afterAll(closeAdmin);

describe('cluster instances as processes', () => {
  it(
    'ends the registrations of an instance killed with SIGKILL once its lease runs out, with peer_left on ' +
      'the others',
    async () => {
      const database = await freshDatabase('killed');
      const [a, b, c] = [await instance(database), await instance(database), await instance(database)];
      const views = [await View.of(a.url), await View.of(b.url)];
      clients.push(...views.map((v) => v.client));
      const doomed = await connect(c.url);
      expect((await doomed.register(ed25519Identity(), 'doomed')).type).toBe('registered');
      const survivor = await connect(a.url);
      expect((await survivor.register(ed25519Identity(), 'survivor')).type).toBe('registered');
      await waitConverged([a.url, b.url], views);

      const killedAt = Date.now();
      await stopBuiltServer(c.server, 'SIGKILL');
      await waitUntil('doomed to leave every view', () => views.every((v) => !v.applied().has('doomed')), {
        timeoutMs: 5 * LEASE_SECONDS * 1000,
        intervalMs: 50,
      });
      const tookMs = Date.now() - killedAt;
      // Lease, plus at most one renewal period and one sweep period: well under three leases.
      expect(tookMs).toBeGreaterThanOrEqual(LEASE_SECONDS * 1000 * 0.5);
      expect(tookMs).toBeLessThan(3 * LEASE_SECONDS * 1000);
      for (const v of views)
        expect(
          v
            .events()
            .filter((e) => e.type === 'peer_left')
            .map((e) => e.nickname),
        ).toEqual(['doomed']);
      expect([...(await waitConverged([a.url, b.url], views)).keys()]).toEqual(['survivor']);
      console.log(
        `a SIGKILLed instance's peer left the other instances' views ${tookMs} ms after the kill (lease ` +
          `${LEASE_SECONDS} s)`,
      );
    },
  );

  it(
    'ends the registrations of an instance stopped with SIGTERM at once, in one write, not after ' + 'its lease',
    async () => {
      const database = await freshDatabase('stopped');
      const [a, b] = [await instance(database), await instance(database)];
      const watcher = await View.of(a.url);
      clients.push(watcher.client);
      for (let i = 0; i < 20; i += 1) {
        const peer = await connect(b.url);
        expect((await peer.register(ed25519Identity(), `leaving${i}`)).type).toBe('registered');
      }
      await waitUntil('the watcher to see all 20', () => watcher.applied().size === 20);
      const stoppedAt = Date.now();
      expect(await stopBuiltServer(b.server, 'SIGTERM')).toBe(0);
      await waitUntil('all 20 to leave', () => watcher.applied().size === 0, { timeoutMs: LEASE_SECONDS * 1000 });
      expect(Date.now() - stoppedAt).toBeLessThan(LEASE_SECONDS * 1000);
      expect(
        b.server
          .logs()
          .some((l) => l.msg === 'cluster instance stopped: its registrations were ended' && l.ended === 20),
      ).toBe(true);
    },
  );

  it('gives a restarted instance a new identity: it never adopts the registrations of the process before', async () => {
    const database = await freshDatabase('restart');
    const a = await instance(database);
    const first = await connect(a.url);
    expect((await first.register(ed25519Identity(), 'before')).type).toBe('registered');
    const before = (await sql(database, 'SELECT instance_id FROM presence')).rows as Array<{ instance_id: string }>;
    expect(before).toHaveLength(1);
    await stopBuiltServer(a.server, 'SIGKILL');
    running.splice(running.indexOf(a.server), 1);
    const again = await instance(database);
    const instances = (await sql(database, 'SELECT id FROM registry_instances ORDER BY started_at')).rows as Array<{
      id: string;
    }>;
    expect(instances.map((i) => i.id)).not.toContain(undefined);
    expect(new Set(instances.map((i) => i.id)).size).toBe(instances.length);
    // The old row is still there (its lease has not run out) and is not this process's.
    const asker = await connect(again.url);
    expect(await asker.request({ type: 'lookup', nickname: 'before' })).toMatchObject({ type: 'peer' });
    const mine = instances.at(-1)?.id;
    expect(mine).not.toBe(before[0]?.instance_id);
    // Once the dead one's lease runs out, the restarted instance (alone now) sweeps it.
    await waitUntil(
      "the dead process's registration to be swept",
      async () => (await asker.request({ type: 'lookup', nickname: 'before' })).code === 'NOT_FOUND',
      {
        timeoutMs: 6 * LEASE_SECONDS * 1000,
        intervalMs: 100,
      },
    );
  });
});
