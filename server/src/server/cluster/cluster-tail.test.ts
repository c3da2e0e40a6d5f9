/**
 * The cluster tail's continuity rules, on a fake presence log: a page is applied only when it
 * continues the last event applied, unchanged; anything else re-syncs from a snapshot, and the
 * table ends equal to it.
 */
import { describe, expect, it } from 'vitest';
import {
  eventFingerprint,
  type LogPage,
  type PresenceEvent,
  type PresenceRow,
  type PresenceSnapshot,
  type PresenceStore,
} from './presence.js';
import type { ClaimKeeper } from '../registry/claim-keeper.js';
import { ClusterReplica } from './cluster-replica.js';
import { ClusterTail } from './cluster-tail.js';
import { EventHub } from '../registry/event-hub.js';
import { createLogger } from '../logger.js';
import { PeerTable } from '../registry/peer-table.js';
import { RosterEffects, type PeerOwner } from '../registry/roster.js';

const OTHER = 'other-instance';

function row(nickname: string, ref: number): PresenceRow {
  const address = `${nickname.padEnd(56, 'a').slice(0, 56)}.onion`;
  const peer = {
    nickname,
    address,
    port: 5050,
    publicKey: 'k',
    keyType: 'ed25519',
    registeredAt: '2026-12-01T00:00:00.000Z',
    addressVerified: false,
  };
  return {
    keyId: nickname.padEnd(64, '0'),
    nickname,
    address,
    addressVerified: false,
    instanceId: OTHER,
    localRef: ref,
    publicKeyDer: new Uint8Array([ref]),
    peerJson: JSON.stringify(peer),
  };
}

function joined(seq: number, r: PresenceRow): PresenceEvent {
  return {
    seq,
    kind: 'joined',
    announce: true,
    keyId: r.keyId,
    nickname: r.nickname,
    instanceId: r.instanceId,
    localRef: r.localRef,
    row: r,
  };
}

/** A presence store that serves one snapshot and one page, and counts the snapshots taken. */
class FakeLog implements Partial<PresenceStore> {
  snapshots = 0;
  constructor(
    public snapshotValue: PresenceSnapshot,
    public page: LogPage,
  ) {}
  snapshot(): Promise<PresenceSnapshot> {
    this.snapshots += 1;
    return Promise.resolve(this.snapshotValue);
  }
  readLog(from: number, limit = Number.POSITIVE_INFINITY): Promise<LogPage> {
    return Promise.resolve({ ...this.page, events: this.page.events.filter((e) => e.seq >= from).slice(0, limit) });
  }
  listen(): void {}
}

async function tailOn(
  log: FakeLog,
): Promise<{ tail: ClusterTail; replica: ClusterReplica; peers: PeerTable<PeerOwner> }> {
  const peers = new PeerTable<PeerOwner>(100);
  const hub = new EventHub({ batchMs: 0, slices: { wake: () => undefined } });
  const effects = new RosterEffects(peers, hub, {} as ClaimKeeper);
  const replica = new ClusterReplica({ instanceId: 'me', effects, orphaned: () => undefined });
  const tail = new ClusterTail({
    presence: log as unknown as PresenceStore,
    replica,
    logger: createLogger('silent'),
    pollMs: 60_000,
  });
  await tail.start();
  return { tail, replica, peers };
}

const alice = row('alice', 1);
const bob = row('bob', 2);
const carol = row('carol', 3);
const start: PresenceSnapshot = { logId: 'log', seq: 1, anchor: eventFingerprint(joined(1, alice)), rows: [alice] };

describe('the cluster tail', () => {
  it('applies a page that continues the last event applied', async () => {
    const log = new FakeLog(start, { logId: 'log', headSeq: 2, events: [joined(1, alice), joined(2, bob)] });
    const { tail, replica, peers } = await tailOn(log);
    expect(await tail.waitFor(2, 1_000)).toBe(true);
    expect(replica.applied).toBe(2);
    expect(peers.lookup('bob')?.peer.nickname).toBe('bob');
    expect(log.snapshots).toBe(1);
    tail.stop();
  });

  it('re-syncs when the last event applied was lost and its number given to another event', async () => {
    // Event 1 is now carol's join: alice's was lost (a crash, a failover) and the number reused.
    const log = new FakeLog(start, { logId: 'log', headSeq: 2, events: [joined(1, carol), joined(2, bob)] });
    const { tail, replica, peers } = await tailOn(log);
    log.snapshotValue = { logId: 'log', seq: 2, anchor: eventFingerprint(joined(2, bob)), rows: [carol, bob] };
    tail.poke();
    await expect.poll(() => log.snapshots).toBe(2);
    await expect.poll(() => replica.applied).toBe(2);
    expect([...peers.entries()].map((e) => e.peer.nickname).sort()).toEqual(['bob', 'carol']);
    tail.stop();
  });

  it('re-syncs when the head went back, when the log is another one, and when events are missing', async () => {
    for (const page of [
      { logId: 'log', headSeq: 0, events: [] },
      { logId: 'restored', headSeq: 1, events: [joined(1, alice)] },
      { logId: 'log', headSeq: 3, events: [joined(1, alice), joined(3, carol)] },
    ] satisfies LogPage[]) {
      const log = new FakeLog(start, page);
      const { tail } = await tailOn(log);
      tail.poke();
      await expect.poll(() => log.snapshots).toBe(2);
      tail.stop();
    }
  });

  it('reads page after page until the head, from an empty log too (no anchor event in the first page)', async () => {
    const rows = Array.from({ length: 1_200 }, (_, i) => row(`peer${i}`, 100 + i));
    const empty: PresenceSnapshot = { logId: 'log', seq: 0, anchor: null, rows: [] };
    const log = new FakeLog(empty, { logId: 'log', headSeq: 1_200, events: rows.map((r, i) => joined(i + 1, r)) });
    const { tail, replica } = await tailOn(log);
    // waitFor wakes the tail once; the poll (60 s) never comes: one catch-up must read every page.
    expect(await tail.waitFor(1_200, 2_000)).toBe(true);
    expect(replica.applied).toBe(1_200);
    tail.stop();
  });

  it('answers a wait with false when the event is not applied in time', async () => {
    const log = new FakeLog(start, { logId: 'log', headSeq: 1, events: [joined(1, alice)] });
    const { tail } = await tailOn(log);
    expect(await tail.waitFor(5, 50)).toBe(false);
    tail.stop();
  });
});
