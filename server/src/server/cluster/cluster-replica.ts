/**
 * A cluster instance's replica of the shared presence: the peer table, kept equal to the database
 * by applying its log in order (cluster-tail.ts reads it), or a snapshot when the log cannot be
 * followed. Every change to the table happens here, so every instance's table, connections and
 * subscribers see the same changes in the same order (the log's), and a subscriber that applies its
 * events to a list ends with the same set as a fresh list, on any instance.
 *
 * Registrations of this instance are matched to their connections by their local ref: the registrar
 * announces one (`expect`) before it writes, and its `joined` event, when applied, puts that
 * connection's entry in the table. A `joined` of this instance that nobody expects any more (its
 * connection closed, its wait gave up) is ended again through `orphaned`.
 */
import { eventFingerprint, type PresenceEvent, type PresenceRow, type PresenceSnapshot } from './presence.js';

import { CLOSINGS, type Closing } from '../registry/refusals.js';
import { isLocal, RemotePeer, type AnyEntry, type LocalEntry, type RosterEffects } from '../registry/roster.js';
import { nicknameKey } from '../../protocol/messages.js';

interface Expected {
  readonly entry: LocalEntry;
  readonly entered: (replaced: readonly LocalEntry[]) => void;
}

export interface ReplicaOptions {
  readonly instanceId: string;
  readonly effects: RosterEffects;
  /** A registration of this instance that is in the database but has no connection: end it. */
  readonly orphaned: (keyId: string, localRef: number) => void;
}

export class ClusterReplica {
  /** The log this replica follows, the last event applied from it, and that event's fingerprint (null: unknown). */
  logId = '';
  applied = 0;
  anchor: string | null = null;
  private readonly instanceId: string;
  private readonly effects: RosterEffects;
  private readonly orphaned: (keyId: string, localRef: number) => void;
  private readonly expected = new Map<number, Expected>();
  private readonly refs = new Map<LocalEntry, number>();
  /**
   * A registration of this instance that the log just ended as replaced while this instance has a
   * registration of the same key in flight: the join that follows in the same transaction takes
   * over its claim timer (as on a single host, a reconnection is not an interruption), then the
   * claim keeper lets it go. Let go at the next join whatever it is, and at a snapshot.
   */
  private handover: LocalEntry | null = null;

  constructor(options: ReplicaOptions) {
    this.instanceId = options.instanceId;
    this.effects = options.effects;
    this.orphaned = options.orphaned;
  }

  /** A registration of this instance is about to be written with this ref. */
  expect(localRef: number, entry: LocalEntry, entered: Expected['entered']): void {
    this.expected.set(localRef, { entry, entered });
  }

  /** Gives up on an expected registration; true when it had not been applied yet. */
  forget(localRef: number): boolean {
    return this.expected.delete(localRef);
  }

  refOf(entry: LocalEntry): number | undefined {
    return this.refs.get(entry);
  }

  /** Applies the next event of the log (the tail checked that it is the next). */
  apply(event: PresenceEvent): void {
    if (event.kind !== 'joined') this.end(event, event.kind);
    else if (event.row !== null) {
      this.join(event.row);
      this.letGoHandover();
    } else throw new Error(`presence event ${event.seq} is a join without its row`);
    this.applied = event.seq;
    this.anchor = eventFingerprint(event);
  }

  /**
   * Makes the table equal to a snapshot: what is gone leaves (peer_left), what is new joins, what
   * is unchanged stays untouched. Used at start and whenever the log cannot be followed.
   */
  load(snapshot: PresenceSnapshot): void {
    const wanted = new Map(snapshot.rows.map((row) => [row.keyId, row]));
    const byAddress = new Map(snapshot.rows.map((row) => [row.address, row]));
    for (const entry of [...this.effects.peers.entries()]) {
      const row = wanted.get(entry.keyId);
      if (row !== undefined && this.isRow(entry, row.instanceId, row.localRef)) wanted.delete(entry.keyId);
      else this.vanish(entry, row, byAddress.get(entry.peer.address));
    }
    for (const row of wanted.values()) this.join(row);
    this.letGoHandover();
    this.logId = snapshot.logId;
    this.applied = snapshot.seq;
    this.anchor = snapshot.anchor;
  }

  private join(row: PresenceRow): void {
    const mine = row.instanceId === this.instanceId;
    const expected = mine ? this.expected.get(row.localRef) : undefined;
    if (expected !== undefined) this.expected.delete(row.localRef);
    const entry: AnyEntry = expected?.entry ?? {
      owner: new RemotePeer(row.instanceId, row.localRef),
      peer: JSON.parse(row.peerJson) as AnyEntry['peer'],
      keyDer: Buffer.from(row.publicKeyDer),
      keyId: row.keyId,
      json: row.peerJson,
    };
    // The log's order makes this table equal to the database's: nothing should be in the way. Should
    // something be (a bug), the database is right: it is removed, and subscribers are told.
    for (const old of this.effects.peers.force(entry)) {
      this.forgetRef(old);
      this.effects.left(old);
    }
    if (expected !== undefined) {
      this.refs.set(expected.entry, row.localRef);
      expected.entered(this.handover?.keyId === row.keyId ? [this.handover] : []);
    }
    this.effects.joined(entry);
    if (mine && (expected === undefined || expected.entry.owner.closed)) this.orphaned(row.keyId, row.localRef);
  }

  private end(event: PresenceEvent, kind: Exclude<PresenceEvent['kind'], 'joined'>): void {
    const entry = this.effects.peers.registrationOfKey(event.keyId);
    // gone already (a snapshot)
    if (entry === undefined || !this.isRow(entry, event.instanceId, event.localRef)) return;
    this.remove(entry, kind, event.announce);
  }

  /**
   * An entry a snapshot no longer holds, ended as its missed event would have ended it, as far as
   * the snapshot tells: its key registered again (4001, and the new row's join follows), its
   * address proven by another key (4002), or else gone (1001: register again). A client told 4001
   * or 4002 does not reconnect to take its key or address back.
   */
  private vanish(entry: AnyEntry, sameKey: PresenceRow | undefined, sameAddress: PresenceRow | undefined): void {
    if (sameKey !== undefined)
      return this.remove(entry, 'replaced', nicknameKey(sameKey.nickname) !== nicknameKey(entry.peer.nickname));
    if (sameAddress?.addressVerified && sameAddress.keyId !== entry.keyId) return this.remove(entry, 'evicted', true);
    this.remove(entry, 'expired', true, CLOSINGS.registrationLost);
  }

  private remove(
    entry: AnyEntry,
    kind: Exclude<PresenceEvent['kind'], 'joined'>,
    announce: boolean,
    closing: Closing = CLOSINGS.leaseLost,
  ): void {
    this.effects.peers.removeOwner(entry.owner);
    this.forgetRef(entry);
    if (kind === 'replaced' || kind === 'evicted') {
      const handOver = kind === 'replaced' && isLocal(entry) && this.expects(entry.keyId);
      if (handOver) {
        this.letGoHandover();
        this.handover = entry;
      }
      return this.effects.ended(entry, kind, announce, handOver);
    }
    if (isLocal(entry)) {
      this.effects.keeper.left(entry);
      // Its instance's lease ran out (this one was cut off from the database): the peer must register again.
      if (kind === 'expired' && !entry.owner.closed) entry.owner.close(closing);
    }
    if (announce) this.effects.left(entry);
  }

  /** Whether a registration of this key by this instance is being written. */
  private expects(keyId: string): boolean {
    for (const { entry } of this.expected.values()) if (entry.keyId === keyId) return true;
    return false;
  }

  private letGoHandover(): void {
    if (this.handover === null) return;
    this.effects.keeper.left(this.handover);
    this.handover = null;
  }

  private forgetRef(entry: AnyEntry): void {
    if (isLocal(entry)) this.refs.delete(entry);
  }

  private isRow(entry: AnyEntry, instanceId: string, localRef: number): boolean {
    if (entry.owner instanceof RemotePeer)
      return entry.owner.instanceId === instanceId && entry.owner.localRef === localRef;
    return instanceId === this.instanceId && this.refs.get(entry as LocalEntry) === localRef;
  }
}
