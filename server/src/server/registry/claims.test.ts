/** Protocol revision 2, "Claims", over real sockets: every test has its own temp database. */
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import {
  ed25519Identity,
  tempDir,
  type RawClient,
  type TestServer,
} from '../../../../test/support/registry-harness.js';
import { claimRows, testSession } from '../../../../test/support/test-session.js';
import { delay } from '../../../../test/support/wait.js';
import { ManualClock } from '../../../../test/support/claim-store.contract.js';
import { MS_PER_DAY } from '../../store/claim-store.js';

const { server, client } = testSession();
const AT_ONCE = { claims: { ClaimAfterSeconds: 0 } };

function untilOf(frame: Record<string, unknown>): number {
  return Date.parse((frame.claim as { until: string }).until);
}

/**
 * Registers `nickname` and closes the connection again (its claim, if any, stays), then waits
 * until the server has taken the registration out and written its last-seen.
 */
async function registerAndLeave(
  s: TestServer,
  c: RawClient,
  identity = ed25519Identity(),
  nickname = 'alice',
): Promise<void> {
  const peers = s.server.stats().peers;
  expect(await c.register(identity, nickname)).toMatchObject({ type: 'registered' });
  c.close();
  await c.closed;
  await expect.poll(() => s.server.stats().peers).toBe(peers);
  await delay(50);
}

describe('claims: when they are made', () => {
  it('answers registered with claim null, then sends claimed after ClaimAfterSeconds of registration', async () => {
    const s = await server({}, { claims: { ClaimAfterSeconds: 1 } });
    const c = await client(s);
    const started = Date.now();
    expect(await c.register(ed25519Identity(), 'alice')).toMatchObject({ type: 'registered', claim: null });
    expect(claimRows(s.database)).toEqual([]);
    const claimed = await c.waitFor((f) => f.type === 'claimed', 5_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(untilOf(claimed)).toBeGreaterThan(Date.now() + 30 * MS_PER_DAY - 60_000);
    expect(claimRows(s.database)).toMatchObject([{ nickname: 'alice' }]);
  });

  it('makes no claim for a registration that ends before ClaimAfterSeconds', async () => {
    const s = await server({}, { claims: { ClaimAfterSeconds: 1 } });
    const c = await client(s);
    await c.register(ed25519Identity(), 'alice');
    expect(await c.request({ type: 'unregister' })).toMatchObject({ type: 'unregistered' });
    await delay(1_300);
    expect(c.frames.some((f) => f.type === 'claimed')).toBe(false);
    expect(claimRows(s.database)).toEqual([]);
    expect(await (await client(s)).register(ed25519Identity(), 'alice')).toMatchObject({ type: 'registered' });
  });

  it(
    'with ClaimAfterSeconds 0 claims before the registered reply, which carries the claim, ' + 'durable by then',
    async () => {
      const s = await server({}, AT_ONCE);
      const c = await client(s);
      const reply = await c.register(ed25519Identity(), 'alice');
      expect(reply).toMatchObject({ type: 'registered', claim: { until: expect.any(String) } });
      // Read from another connection the moment the reply arrived: committed already.
      expect(claimRows(s.database)).toMatchObject([{ nickname: 'alice', expires_at: untilOf(reply) }]);
      await delay(100);
      expect(c.frames.some((f) => f.type === 'claimed')).toBe(false);
    },
  );

  it('reports the claim a key holds already at once, and restarts no delay for it', async () => {
    const s = await server({}, { claims: { ClaimAfterSeconds: 1 } });
    const id = ed25519Identity();
    const first = await client(s);
    await first.register(id, 'alice');
    await first.waitFor((f) => f.type === 'claimed');
    first.close();
    await first.closed;
    const again = await client(s);
    expect(await again.register(id, 'Alice')).toMatchObject({
      type: 'registered',
      claim: { until: expect.any(String) },
    });
  });

  it(
    'does not restart the delay when the same key replaces its own registration on the same nickname ' + 'and address',
    async () => {
      const s = await server({}, { claims: { ClaimAfterSeconds: 2 } });
      const id = ed25519Identity();
      const old = await client(s);
      await old.register(id, 'alice');
      const started = Date.now();
      await delay(1_200);
      const fresh = await client(s);
      expect(await fresh.register(id, 'alice', 6060)).toMatchObject({ type: 'registered', claim: null });
      expect((await old.closed).code).toBe(4001);
      await fresh.waitFor((f) => f.type === 'claimed', 5_000);
      // Uninterrupted since the first registration: claimed about 2 s after it, not 2 s after the second.
      expect(Date.now() - started).toBeLessThan(3_000);
    },
  );

  it('keeps one claim per key: a claim on another nickname and address replaces the old one at once', async () => {
    const s = await server({}, AT_ONCE);
    const id = ed25519Identity();
    await registerAndLeave(s, await client(s), id, 'alice');
    const moved = ed25519Identity();
    const c = await client(s);
    expect(await c.register({ ...id, address: moved.address }, 'alicia')).toMatchObject({
      claim: { until: expect.any(String) },
    });
    expect(claimRows(s.database)).toMatchObject([{ nickname: 'alicia', address: moved.address }]);
    expect(await (await client(s)).register(ed25519Identity(id.address), 'alice')).toMatchObject({
      type: 'registered',
    });
  });
});

describe('claims: what they hold', () => {
  it(
    'refuses the nickname and the address of an offline claim to another key, without saying until when ' +
      '(erratum 1)',
    async () => {
      const s = await server({}, AT_ONCE);
      const owner = ed25519Identity();
      await registerAndLeave(s, await client(s), owner, 'alice');
      const c = await client(s);
      const taken = await c.register(ed25519Identity(), 'ALICE');
      const addressTaken = await c.register(ed25519Identity(owner.address), 'bob');
      expect(taken).toEqual({
        type: 'error',
        id: taken.id,
        code: 'NICKNAME_TAKEN',
        message: 'nickname "ALICE" is claimed by another key',
      });
      expect(addressTaken).toEqual({
        type: 'error',
        id: addressTaken.id,
        code: 'ADDRESS_TAKEN',
        message: 'this onion address is claimed by another key',
      });
    },
  );

  it(
    'refuses a claim the same way whenever its key was last online: nothing in the refusal follows from that time ' +
      '(erratum 1)',
    async () => {
      const clock = new ManualClock(Date.parse('2030-01-01T00:00:00.000Z'));
      const s = await server({}, { ...AT_ONCE, now: clock.now });
      const [early, late] = [ed25519Identity(), ed25519Identity()];
      await registerAndLeave(s, await client(s), early, 'early');
      clock.time += 7 * MS_PER_DAY + 12_345;
      await registerAndLeave(s, await client(s), late, 'late');
      const c = await client(s);
      const refusals = [await c.register(ed25519Identity(), 'early'), await c.register(ed25519Identity(), 'late')];
      expect(refusals.map((r) => r.message)).toEqual([
        'nickname "early" is claimed by another key',
        'nickname "late" is claimed by another key',
      ]);
      const byAddress = [
        await c.register(ed25519Identity(early.address), 'x1'),
        await c.register(ed25519Identity(late.address), 'x2'),
      ];
      expect(byAddress[0]).toEqual({ ...byAddress[1], id: byAddress[0]?.id });
    },
  );

  it('never shows an offline claim in lookup, list or events', async () => {
    const s = await server({ EventBatchMs: 0 }, AT_ONCE);
    const watcher = await client(s);
    await watcher.request({ type: 'subscribe' });
    await registerAndLeave(s, await client(s), ed25519Identity(), 'alice');
    await watcher.waitFor((f) => f.type === 'peer_left');
    expect(await watcher.request({ type: 'lookup', nickname: 'alice' })).toMatchObject({
      type: 'error',
      code: 'NOT_FOUND',
    });
    expect(await watcher.request({ type: 'list' })).toMatchObject({ type: 'peers', peers: [], next: null });
    const refused = await client(s);
    expect(await refused.register(ed25519Identity(), 'alice')).toMatchObject({ code: 'NICKNAME_TAKEN' });
    await delay(100);
    expect(watcher.events().map((e) => e.type)).toEqual(['peer_joined', 'peer_left']);
  });

  it('survives a restart of the server on the same database file', async () => {
    const database = join(tempDir('claims-restart-'), 'registry.db');
    const first = await server({}, { ...AT_ONCE, database });
    const owner = ed25519Identity();
    await registerAndLeave(first, await client(first), owner, 'alice');
    await first.close();
    const second = await server({}, { ...AT_ONCE, port: first.port, database });
    expect(await (await client(second)).register(ed25519Identity(), 'alice')).toMatchObject({ code: 'NICKNAME_TAKEN' });
    expect(await (await client(second)).register(owner, 'alice')).toMatchObject({
      type: 'registered',
      claim: { until: expect.any(String) },
    });
  });

  it('releases the claim with unregister release:true, so that another key may take the nickname at once', async () => {
    const s = await server({}, AT_ONCE);
    const c = await client(s);
    await c.register(ed25519Identity(), 'alice');
    expect(await c.request({ type: 'unregister', release: true })).toMatchObject({ type: 'unregistered' });
    expect(claimRows(s.database)).toEqual([]);
    expect(await c.request({ type: 'lookup', nickname: 'alice' })).toMatchObject({ code: 'NOT_FOUND' });
    expect(await (await client(s)).register(ed25519Identity(), 'alice')).toMatchObject({ type: 'registered' });
    expect(await c.request({ type: 'unregister', release: true })).toMatchObject({ code: 'NOT_REGISTERED' });
    expect(await c.request({ type: 'unregister', release: 'yes' })).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('keeps the claim on unregister without release', async () => {
    const s = await server({}, AT_ONCE);
    const c = await client(s);
    await c.register(ed25519Identity(), 'alice');
    expect(await c.request({ type: 'unregister', release: false })).toMatchObject({ type: 'unregistered' });
    expect(await (await client(s)).register(ed25519Identity(), 'alice')).toMatchObject({ code: 'NICKNAME_TAKEN' });
  });
});

describe('claims: how long they last', () => {
  it('expires a claim ClaimDays after its key was last seen (an injected clock), and frees the nickname', async () => {
    const clock = new ManualClock(Date.now());
    const s = await server({}, { claims: { ClaimAfterSeconds: 0, ClaimDays: 2 }, now: clock.now });
    await registerAndLeave(s, await client(s), ed25519Identity(), 'alice');
    clock.advanceDays(1.9);
    expect(await (await client(s)).register(ed25519Identity(), 'alice')).toMatchObject({ code: 'NICKNAME_TAKEN' });
    clock.advanceDays(0.2);
    expect(await (await client(s)).register(ed25519Identity(), 'alice')).toMatchObject({ type: 'registered' });
  });

  it('records last-seen at disconnect: a claim lasts ClaimDays from then, not from when it was made', async () => {
    const clock = new ManualClock(Date.now());
    const s = await server({}, { claims: { ClaimAfterSeconds: 0, ClaimDays: 2 }, now: clock.now });
    const c = await client(s);
    await c.register(ed25519Identity(), 'alice');
    clock.advanceDays(1.5);
    c.close();
    await c.closed;
    await expect.poll(() => claimRows(s.database)[0]?.last_seen_at).toBe(clock.time);
    clock.advanceDays(1.9);
    expect(await (await client(s)).register(ed25519Identity(), 'alice')).toMatchObject({ code: 'NICKNAME_TAKEN' });
  });

  it('records last-seen of live registrations every touch interval', async () => {
    const clock = new ManualClock(Date.now());
    const s = await server({}, { ...AT_ONCE, now: clock.now, touchIntervalMs: 50 });
    await (await client(s)).register(ed25519Identity(), 'alice');
    clock.advanceDays(3);
    await expect.poll(() => claimRows(s.database)[0]?.last_seen_at).toBe(clock.time);
  });
});

describe('claims: when the store cannot be written', () => {
  /** Holds the database's write lock from another connection, as a stuck operator command would. */
  function lockDatabase(path: string): () => void {
    const db = new DatabaseSync(path);
    db.exec('BEGIN EXCLUSIVE');
    return () => {
      db.exec('ROLLBACK');
      db.close();
    };
  }

  it.each([0, 600])(
    'answers register UNAVAILABLE with retryAfterMs and changes nothing (ClaimAfterSeconds %i), then recovers',
    async (after) => {
      const s = await server({}, { claims: { ClaimAfterSeconds: after } });
      const c = await client(s);
      const unlock = lockDatabase(s.database);
      let reply: Record<string, unknown>;
      try {
        reply = await c.register(ed25519Identity(), 'alice');
      } finally {
        unlock();
      }
      expect(reply).toMatchObject({ type: 'error', code: 'UNAVAILABLE', retryAfterMs: expect.any(Number) });
      expect(await c.request({ type: 'lookup', nickname: 'alice' })).toMatchObject({ code: 'NOT_FOUND' });
      expect(claimRows(s.database)).toEqual([]);
      expect(await c.register(ed25519Identity(), 'alice')).toMatchObject({ type: 'registered' });
    },
  );

  it('answers unregister release UNAVAILABLE and keeps both the registration and the claim', async () => {
    const s = await server({}, AT_ONCE);
    const c = await client(s);
    await c.register(ed25519Identity(), 'alice');
    const unlock = lockDatabase(s.database);
    let reply: Record<string, unknown>;
    try {
      reply = await c.request({ type: 'unregister', release: true });
    } finally {
      unlock();
    }
    expect(reply).toMatchObject({ type: 'error', code: 'UNAVAILABLE', retryAfterMs: expect.any(Number) });
    expect(await c.request({ type: 'lookup', nickname: 'alice' })).toMatchObject({ type: 'peer' });
    expect(claimRows(s.database)).toHaveLength(1);
    expect(await c.request({ type: 'unregister', release: true })).toMatchObject({ type: 'unregistered' });
  });

  it('refuses to start on a database it cannot open, naming the path and the fix', async () => {
    const folder = tempDir('not-a-db-');
    await expect(server({}, { database: folder })).rejects.toThrow(
      new RegExp(`^cannot open the claim database ${folder}: .*Fix: `),
    );
  });
});
