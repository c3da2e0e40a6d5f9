/**
 * When an instance cannot follow the log, it re-syncs its table from a snapshot: fell behind the
 * retained log, or the database is another one (restored from a backup, a failover that lost
 * commits). Subscribers are told exactly the difference. Also: how the cluster's database
 * password is read, and what an operator is told when that goes wrong.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RegistryError } from '../../server/src/protocol/errors.js';
import { parsePeerKey } from '../../server/src/protocol/peer-key.js';
import { keyIdOf } from '../../server/src/store/claim-store.js';
import { buildConfig } from '../../server/src/server/config/config.js';
import { openConfiguredStore } from '../../server/src/store/open-store.js';
import { closeAdmin, freshDatabase, sql, startInstance, View, waitConverged } from '../support/cluster.js';
import {
  ed25519Identity,
  onionService,
  randomOnion,
  RawClient,
  tempDir,
  type Identity,
  type TestServer,
} from '../support/registry-harness.js';
import { logSink } from '../support/log-sink.js';
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
async function twoInstances(): Promise<{
  database: string;
  urls: string[];
  views: View[];
  peers: Map<string, RawClient>;
}> {
  const database = await freshDatabase('resync');
  const started = [await startInstance(database), await startInstance(database)];
  instances.push(...started);
  const urls = started.map((s) => s.url);
  const views = await Promise.all(urls.map((url) => View.of(url)));
  clients.push(...views.map((v) => v.client));
  const peers = new Map<string, RawClient>();
  for (const nickname of ['keep', 'gone']) {
    const client = await RawClient.connect(urls[0] as string);
    clients.push(client);
    expect((await client.register(ed25519Identity(), nickname)).type).toBe('registered');
    peers.set(nickname, client);
  }
  await waitConverged(urls, views);
  return { database, urls, views, peers };
}

/** Statements in one transaction, on a connection of their own, then a notification to every tail. */
async function transaction(database: string, statements: ReadonlyArray<readonly [string, unknown[]?]>): Promise<void> {
  const client = new pg.Client({ connectionString: database });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query('BEGIN');
    for (const [text, params] of statements) await client.query(text, params ?? []);
    await client.query('COMMIT');
    await client.query('NOTIFY registry_presence');
  } finally {
    await client.end();
  }
}

/** What an instance far behind finds: the head moved on and the events between were trimmed. */
const TRIM_THE_LOG: readonly [string] = ['UPDATE presence_log_head SET seq = seq + 3; DELETE FROM presence_events'];

/** An instance that is none of the test's, with a lease that outlasts the test. */
const ELSEWHERE: readonly [string] = [
  "INSERT INTO registry_instances (id, lease_until) VALUES ('elsewhere', now() + interval '1 hour')",
];

/** A registration of `identity` held by the instance 'elsewhere', as the presence table holds it. */
function rowElsewhere(
  identity: Identity,
  nickname: string,
  address: string,
  addressVerified: boolean,
): readonly [string, unknown[]] {
  const key = parsePeerKey(identity.publicKeyPem);
  const peer = {
    nickname,
    address,
    port: 6060,
    publicKey: key.pem,
    keyType: key.type,
    registeredAt: new Date().toISOString(),
    addressVerified,
  };
  return [
    `INSERT INTO presence (key_id, nickname, nickname_key, address, address_verified, instance_id, local_ref,
      public_key, peer)
     VALUES ($1, $2, lower($2), $3, $4, 'elsewhere', 1, $5, $6)`,
    [keyIdOf(key.der), nickname, address, addressVerified, key.der, JSON.stringify(peer)],
  ];
}

describe('re-syncing a cluster instance from a snapshot', () => {
  it(
    're-syncs an instance whose next events were trimmed from the log, telling subscribers the ' + 'difference',
    async () => {
      const { database, urls, views } = await twoInstances();
      // What an instance far behind finds: the head moved on, the events between are gone, and so is a peer.
      await sql(
        database,
        "BEGIN; DELETE FROM presence WHERE nickname_key = 'gone'; UPDATE presence_log_head SET seq = seq + 3; DELETE " +
          'FROM presence_events; COMMIT; NOTIFY registry_presence',
      );
      await waitUntil('every view to lose gone', () => views.every((v) => !v.applied().has('gone')));
      const truth = await waitConverged(urls, views);
      expect([...truth.keys()]).toEqual(['keep']);
      for (const v of views)
        expect(
          v
            .events()
            .filter((e) => e.type === 'peer_left')
            .map((e) => e.nickname),
        ).toEqual(['gone']);
      // And the log is followed again from the new head.
      const late = await RawClient.connect(urls[1] as string);
      clients.push(late);
      expect((await late.register(ed25519Identity(), 'late')).type).toBe('registered');
      expect([...(await waitConverged(urls, views)).keys()].sort()).toEqual(['keep', 'late']);
    },
  );

  it('closes with 1001 a connection whose registration a re-sync finds gone', async () => {
    const { database, peers } = await twoInstances();
    await transaction(database, [["DELETE FROM presence WHERE nickname_key = 'gone'"], TRIM_THE_LOG]);
    expect(await (peers.get('gone') as RawClient).closed).toMatchObject({
      code: 1001,
      reason: expect.stringMatching(/register again/),
    });
    expect((peers.get('keep') as RawClient).ws.readyState).toBe((peers.get('keep') as RawClient).ws.OPEN);
  });

  it(
    'closes with 4001 (replaced) a connection whose key a re-sync finds registered on another instance; the ' +
      'nickname never leaves',
    async () => {
      const { database, urls, views } = await twoInstances();
      const identity = ed25519Identity();
      const old = await RawClient.connect(urls[0] as string);
      clients.push(old);
      expect((await old.register(identity, 'carol')).type).toBe('registered');
      await waitConverged(urls, views);
      const key = keyIdOf(parsePeerKey(identity.publicKeyPem).der);
      await transaction(database, [
        ELSEWHERE,
        ['DELETE FROM presence WHERE key_id = $1', [key]],
        rowElsewhere(identity, 'carol', identity.address, false),
        TRIM_THE_LOG,
      ]);
      await old.waitFor((f) => f.type === 'replaced');
      expect(await old.closed).toMatchObject({ code: 4001 });
      await waitConverged(urls, views);
      for (const v of views) {
        expect(v.events().filter((e) => e.type === 'peer_left')).toEqual([]);
        expect(v.applied().get('carol')).toBe(identity.address);
      }
      // The views compare addresses, which did not change: the second instance may not have re-synced
      // yet when they agree. It answers with the new registration (port 6060) once it has.
      const asker = await RawClient.connect(urls[1] as string);
      clients.push(asker);
      await waitUntil(
        'the second instance to answer with the new registration',
        async () =>
          ((await asker.request({ type: 'lookup', nickname: 'carol' })).peer as { port?: number } | undefined)?.port ===
          6060,
        {
          timeoutMs: 5_000,
          intervalMs: 100,
        },
      );
    },
  );

  it('closes with 4002 (evicted) a connection whose address a re-sync finds proven by another key', async () => {
    const { database, urls, views } = await twoInstances();
    const service = onionService();
    const squatter = ed25519Identity(service.address);
    const client = await RawClient.connect(urls[0] as string);
    clients.push(client);
    expect((await client.register(squatter, 'squatter')).type).toBe('registered');
    await waitConverged(urls, views);
    await transaction(database, [
      ELSEWHERE,
      ["DELETE FROM presence WHERE nickname_key = 'squatter'"],
      rowElsewhere(ed25519Identity(), 'owner', service.address, true),
      TRIM_THE_LOG,
    ]);
    await client.waitFor((f) => f.type === 'evicted');
    expect(await client.closed).toMatchObject({ code: 4002 });
    const truth = await waitConverged(urls, views);
    expect(truth.get('owner')).toBe(service.address);
    expect(truth.has('squatter')).toBe(false);
  });

  it('answers UNAVAILABLE, never registered, to a registration that a re-sync passed by without it', async () => {
    const { database, urls, views } = await twoInstances();
    // The registration of `ghost` commits, and the same transaction loses it again with its event:
    // the instance's tail finds the log moved on without that event and re-syncs from a snapshot without it.
    await sql(
      database,
      `CREATE FUNCTION vanish() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         DELETE FROM presence WHERE key_id = NEW.key_id;
         DELETE FROM presence_events WHERE seq = NEW.seq;
         UPDATE presence_log_head SET seq = seq + 1;
         RETURN NULL;
       END $$;
       CREATE TRIGGER vanish AFTER INSERT ON presence_events FOR EACH ROW WHEN (NEW.nickname = 'ghost' AND NEW.kind =
         'joined') EXECUTE FUNCTION vanish();`,
    );
    const ghost = await RawClient.connect(urls[0] as string);
    clients.push(ghost);
    const identity = ed25519Identity();
    const reply = await ghost.register(identity, 'ghost');
    expect(reply).toMatchObject({ type: 'error', code: 'UNAVAILABLE' });
    expect(reply.retryAfterMs).toBeGreaterThan(0);
    expect((await ghost.request({ type: 'lookup', nickname: 'ghost' })).code).toBe('NOT_FOUND');
    // Asked again, it registers (the database is fine again).
    await sql(database, 'DROP TRIGGER vanish ON presence_events');
    expect((await ghost.register(identity, 'ghost')).type).toBe('registered');
    expect([...(await waitConverged(urls, views)).keys()].sort()).toEqual(['ghost', 'gone', 'keep']);
  });

  it('re-syncs when the log is another one (a database restored from a backup)', async () => {
    const { database, urls, views } = await twoInstances();
    await sql(
      database,
      "BEGIN; DELETE FROM presence WHERE nickname_key = 'keep'; UPDATE presence_log_head SET log_id = 'restored'; " +
        'COMMIT; NOTIFY registry_presence',
    );
    await waitUntil('every view to lose keep', () => views.every((v) => !v.applied().has('keep')));
    expect([...(await waitConverged(urls, views)).keys()]).toEqual(['gone']);
  });
});

describe("the cluster's own address", () => {
  it("is the frontend's master address in hello once the frontend published it, the backend's own before", async () => {
    const database = await freshDatabase('frontend');
    const before = await startInstance(database);
    instances.push(before);
    const first = await RawClient.connect(before.url);
    clients.push(first);
    expect(first.hello.onion).toBe(before.onion);
    const master = randomOnion();
    await sql(database, 'INSERT INTO registry_frontend (id, master_onion) VALUES (1, $1)', [
      master.replace('.onion', '').toUpperCase(),
    ]);
    const after = await startInstance(database);
    instances.push(after);
    const second = await RawClient.connect(after.url);
    clients.push(second);
    expect(second.hello.onion).toBe(master);
    expect((await after.health()).body).toMatchObject({ onion: after.onion, cluster: { frontend: master } });
  });
});

describe("a cluster backend's public listener", () => {
  it(
    'tells plain HTTP, /healthz included, nothing of its instance, database, uptime or peers: its operator ' +
      'listener does',
    async () => {
      const instance = await startInstance(await freshDatabase('public'));
      instances.push(instance);
      const { body } = await instance.health();
      const id = (body as { cluster: { instance: string } }).cluster.instance;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      const res = await fetch(`${instance.url.replace('ws://', 'http://')}healthz`);
      expect(res.status).toBe(426);
      const text = await res.text();
      expect(text).not.toContain(id);
      expect(text).not.toMatch(/uptime|peers|instance|database|cluster/i);
    },
  );
});

describe("what a cluster backend logs as the registry's address", () => {
  const reachable = (lines: ReadonlyArray<Record<string, unknown>>): string[] =>
    lines.map((l) => String(l['msg'])).filter((m) => m.includes('reachable at'));

  it("is the frontend's master address once known, and its own onion as the backend's", async () => {
    const database = await freshDatabase('reachable');
    instances.push(await startInstance(database)); // creates the tables
    const master = randomOnion();
    await sql(database, 'INSERT INTO registry_frontend (id, master_onion) VALUES (1, $1)', [master]);
    const { sink, lines } = logSink();
    const backend = await startInstance(database, { logLevel: 'info', logDestination: sink });
    instances.push(backend);
    await waitUntil('the address to be logged', () => reachable(lines).length > 0);
    expect(reachable(lines)).toEqual([
      `registry reachable at ws://${master}:80/ (the cluster's frontend); ws://${backend.onion}:80/ is this ` +
        `backend's own onion`,
    ]);
  });

  it(
    "says its own onion is the backend's, not where the registry is reachable, before the frontend published " +
      'its address',
    async () => {
      const database = await freshDatabase('reachable');
      const { sink, lines } = logSink();
      const backend = await startInstance(database, { logLevel: 'info', logDestination: sink });
      instances.push(backend);
      await waitUntil('the address to be logged', () =>
        lines.some((l) => String(l['msg']).includes(String(backend.onion))),
      );
      expect(reachable(lines)).toEqual([]);
      expect(lines.map((l) => String(l['msg']))).toContain(
        `ws://${backend.onion}:80/ is this cluster backend's own onion: peers reach the registry at the frontend's ` +
          `address, which it has not published yet`,
      );
    },
  );
});

describe("a backend's announcement to the frontend", () => {
  it("carries its registry instance and lease, renewed with the lease, and keeps an operator's drain", async () => {
    const database = await freshDatabase('backends');
    const backend = await startInstance(database);
    instances.push(backend);
    const row = async (): Promise<{ instance_id: string; lease_s: number; drained: boolean } | undefined> =>
      (
        await sql(
          database,
          'SELECT instance_id, extract(epoch from lease_until - now())::float AS lease_s, drained_at IS NOT NULL AS ' +
            'drained FROM registry_backends WHERE onion = $1',
          [backend.onion],
        )
      ).rows[0] as { instance_id: string; lease_s: number; drained: boolean } | undefined;
    // Announced at the first renewal (a third of the 2 s lease), with the instance's lease ahead of it.
    const first = await waitForValue('the backend announced', row, { timeoutMs: 5_000, intervalMs: 100 });
    const instance = (await sql(database, 'SELECT id FROM registry_instances')).rows as Array<{ id: string }>;
    expect(instance.map((r) => r.id)).toEqual([first.instance_id]);
    expect(first.lease_s).toBeGreaterThan(0);
    expect(first.lease_s).toBeLessThanOrEqual(2);
    await sql(
      database,
      "UPDATE registry_backends SET drained_at = now(), drain_reason = 'maintenance' WHERE onion = $1",
      [backend.onion],
    );
    await delay(1_500); // two renewals later: still announced, still drained
    const later = await row();
    expect(later).toMatchObject({ instance_id: first.instance_id, drained: true });
    expect(later?.lease_s).toBeGreaterThan(0);
  });
});

describe('the cluster database password', () => {
  const config = (store: Record<string, string>) =>
    buildConfig(
      {
        Host: { HOST: '127.0.0.1', PORT: '0' },
        HiddenService: { HiddenServiceDir: '/hs', HiddenServicePort: '80' },
        Store: store,
      },
      {},
    );

  it('is read from [Store] PasswordFile, and the store opens with it', async () => {
    const file = passwordFile('not-needed-on-a-trusted-socket\n');
    const store = await openConfiguredStore(config({ Database: await freshDatabase('pw'), PasswordFile: file }).claims);
    expect((await store.list()).claims).toEqual([]);
    await store.close();
  });

  it('stops the start with the file and the fix when the file cannot be read', async () => {
    const err = await openConfiguredStore(
      config({ Database: await freshDatabase('pw'), PasswordFile: '/no/such/password' }).claims,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).code).toBe('STORE_OPEN_FAILED');
    expect((err as RegistryError).message).toMatch(
      /cannot read \[Store\] PasswordFile \/no\/such\/password .*Fix: create it/,
    );
  });

  it('refuses a password both in the URL and in the file, without showing it', async () => {
    const file = passwordFile('from-file');
    const err = (await openConfiguredStore(
      config({ Database: 'postgres://registry:hunter2@db/registry', PasswordFile: file }).claims,
    ).catch((e: unknown) => e)) as RegistryError;
    expect(err.code).toBe('STORE_OPEN_FAILED');
    expect(err.message).toContain('keep one');
    expect(err.message).not.toContain('hunter2');
  });
});
