/**
 * When an instance cannot follow the log, it re-syncs its table from a snapshot: fell behind the
 * retained log, or the database is another one (restored from a backup, a failover that lost
 * commits). Subscribers are told exactly the difference. Also: how the cluster's database
 * password is read, and what an operator is told when that goes wrong.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RegistryError } from '../../server/src/protocol/errors.js';
import { buildConfig } from '../../server/src/server/config.js';
import { openConfiguredStore } from '../../server/src/server/open-store.js';
import { closeAdmin, freshDatabase, sql, startInstance, View, waitConverged } from '../support/cluster.js';
import { ed25519Identity, randomOnion, RawClient, tempDir, type TestServer } from '../support/registry-harness.js';
import { delay, waitForValue, waitUntil } from '../support/wait.js';

const instances: TestServer[] = [];
const clients: RawClient[] = [];
const dirs: string[] = [];

function passwordFile(content: string): string {
  const dir = tempDir('pw-');
  dirs.push(dir);
  const file = join(dir, 'password');
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(instances.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await closeAdmin();
});

/** Two instances, a subscriber on each, and peers `keep` and `gone` registered through the first. */
async function twoInstances(): Promise<{ database: string; urls: string[]; views: View[] }> {
  const database = await freshDatabase('resync');
  const started = [await startInstance(database), await startInstance(database)];
  instances.push(...started);
  const urls = started.map((s) => s.url);
  const views = await Promise.all(urls.map((url) => View.of(url)));
  clients.push(...views.map((v) => v.client));
  for (const nickname of ['keep', 'gone']) {
    const client = await RawClient.connect(urls[0] as string);
    clients.push(client);
    expect((await client.register(ed25519Identity(), nickname)).type).toBe('registered');
  }
  await waitConverged(urls, views);
  return { database, urls, views };
}

describe('re-syncing a cluster instance from a snapshot', () => {
  it('re-syncs an instance whose next events were trimmed from the log, telling subscribers the difference', async () => {
    const { database, urls, views } = await twoInstances();
    // What an instance far behind finds: the head moved on, the events between are gone, and so is a peer.
    await sql(
      database,
      "BEGIN; DELETE FROM presence WHERE nickname_key = 'gone'; UPDATE presence_log_head SET seq = seq + 3; DELETE FROM presence_events; COMMIT; NOTIFY registry_presence",
    );
    await waitUntil('every view to lose gone', () => views.every((v) => !v.applied().has('gone')));
    const truth = await waitConverged(urls, views);
    expect([...truth.keys()]).toEqual(['keep']);
    for (const v of views) expect(v.events().filter((e) => e.type === 'peer_left').map((e) => e.nickname)).toEqual(['gone']);
    // And the log is followed again from the new head.
    const late = await RawClient.connect(urls[1] as string);
    clients.push(late);
    expect((await late.register(ed25519Identity(), 'late')).type).toBe('registered');
    expect([...(await waitConverged(urls, views)).keys()].sort()).toEqual(['keep', 'late']);
  });

  it('re-syncs when the log is another one (a database restored from a backup)', async () => {
    const { database, urls, views } = await twoInstances();
    await sql(database, "BEGIN; DELETE FROM presence WHERE nickname_key = 'keep'; UPDATE presence_log_head SET log_id = 'restored'; COMMIT; NOTIFY registry_presence");
    await waitUntil('every view to lose keep', () => views.every((v) => !v.applied().has('keep')));
    expect([...(await waitConverged(urls, views)).keys()]).toEqual(['gone']);
  });
});

describe("the cluster's own address", () => {
  it('is the frontend\'s master address in hello once the frontend published it, the backend\'s own before', async () => {
    const database = await freshDatabase('frontend');
    const before = await startInstance(database);
    instances.push(before);
    const first = await RawClient.connect(before.url);
    clients.push(first);
    expect(first.hello.onion).toBe(before.onion);
    const master = randomOnion();
    await sql(database, 'INSERT INTO registry_frontend (id, master_onion) VALUES (1, $1)', [master.replace('.onion', '').toUpperCase()]);
    const after = await startInstance(database);
    instances.push(after);
    const second = await RawClient.connect(after.url);
    clients.push(second);
    expect(second.hello.onion).toBe(master);
    const healthz = (await (await fetch(`${after.url.replace('ws://', 'http://')}healthz`)).json()) as { onion: string; cluster: { frontend: string } };
    expect(healthz).toMatchObject({ onion: after.onion, cluster: { frontend: master } });
  });
});

describe("a backend's announcement to the frontend", () => {
  it('carries its registry instance and lease, renewed with the lease, and keeps an operator\'s drain', async () => {
    const database = await freshDatabase('backends');
    const backend = await startInstance(database);
    instances.push(backend);
    const row = async (): Promise<{ instance_id: string; lease_s: number; drained: boolean } | undefined> =>
      (
        await sql(database, 'SELECT instance_id, extract(epoch from lease_until - now())::float AS lease_s, drained_at IS NOT NULL AS drained FROM registry_backends WHERE onion = $1', [
          backend.onion,
        ])
      ).rows[0] as { instance_id: string; lease_s: number; drained: boolean } | undefined;
    // Announced at the first renewal (a third of the 2 s lease), with the instance's lease ahead of it.
    const first = await waitForValue('the backend announced', row, { timeoutMs: 5_000, intervalMs: 100 });
    const instance = (await sql(database, 'SELECT id FROM registry_instances')).rows as Array<{ id: string }>;
    expect(instance.map((r) => r.id)).toEqual([first.instance_id]);
    expect(first.lease_s).toBeGreaterThan(0);
    expect(first.lease_s).toBeLessThanOrEqual(2);
    await sql(database, "UPDATE registry_backends SET drained_at = now(), drain_reason = 'maintenance' WHERE onion = $1", [backend.onion]);
    await delay(1_500); // two renewals later: still announced, still drained
    const later = await row();
    expect(later).toMatchObject({ instance_id: first.instance_id, drained: true });
    expect(later?.lease_s).toBeGreaterThan(0);
  });
});

describe('the cluster database password', () => {
  const config = (store: Record<string, string>) =>
    buildConfig({ Host: { HOST: '127.0.0.1', PORT: '0' }, HiddenService: { HiddenServiceDir: '/hs', HiddenServicePort: '80' }, Store: store }, {});

  it('is read from [Store] PasswordFile, and the store opens with it', async () => {
    const file = passwordFile('not-needed-on-a-trusted-socket\n');
    const store = await openConfiguredStore(config({ Database: await freshDatabase('pw'), PasswordFile: file }));
    expect((await store.list()).claims).toEqual([]);
    await store.close();
  });

  it('stops the start with the file and the fix when the file cannot be read', async () => {
    const err = await openConfiguredStore(config({ Database: await freshDatabase('pw'), PasswordFile: '/no/such/password' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).code).toBe('STORE_OPEN_FAILED');
    expect((err as RegistryError).message).toMatch(/cannot read \[Store\] PasswordFile \/no\/such\/password .*Fix: create it/);
  });

  it('refuses a password both in the URL and in the file, without showing it', async () => {
    const file = passwordFile('from-file');
    const err = (await openConfiguredStore(config({ Database: 'postgres://registry:hunter2@db/registry', PasswordFile: file })).catch((e: unknown) => e)) as RegistryError;
    expect(err.code).toBe('STORE_OPEN_FAILED');
    expect(err.message).toContain('keep one');
    expect(err.message).not.toContain('hunter2');
  });
});
