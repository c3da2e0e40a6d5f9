/**
 * The roster: where a verified registration becomes live and where it ends. Two kinds:
 *  - LocalRoster (here): one registry, the peer table in memory decides at once;
 *  - ClusterRoster (cluster-roster.ts): several registries sharing PostgreSQL, whose database
 *    decides and whose ordered log every instance applies to its own table.
 * Either way the table, the connections it replaces and the subscribers' events change together,
 * in the same order on every instance, and lookups and lists read only the table.
 */
import type { PeerConnection } from '../connection/peer-connection.js';
import type { ClaimKeeper } from './claim-keeper.js';
import { CLAIM_CLOSINGS, EVICTED_REASON } from './claim-refusals.js';
import type { EventHub } from './event-hub.js';
import type { PeerEntry, PeerTable } from './peer-table.js';
import { CLOSINGS } from './refusals.js';
import { nicknameKey } from '../../protocol/messages.js';

/** A registration held by another instance of the cluster: the owner of its entry in this table. */
export class RemotePeer {
  constructor(
    readonly instanceId: string,
    readonly localRef: number,
  ) {}
}

export type PeerOwner = PeerConnection | RemotePeer;
export type LocalEntry = PeerEntry<PeerConnection>;
export type AnyEntry = PeerEntry<PeerOwner>;

export function isLocal(entry: AnyEntry): entry is LocalEntry {
  return !(entry.owner instanceof RemotePeer);
}

export interface Roster {
  /**
   * Makes `entry` live: it enters the table, the registrations it replaces are told and closed, and
   * subscribers get its peer_joined. Resolves with the local registrations it replaced; rejects with
   * the RegistryError to answer (NICKNAME_TAKEN, ADDRESS_TAKEN, REGISTRY_FULL, UNAVAILABLE), nothing
   * changed. `entered` runs once the entry is in the table, before the replaced ones are told, with
   * the local registrations it replaces (the claim keeper carries a reconnection's time over).
   */
  enter(entry: LocalEntry, entered: (replaced: readonly LocalEntry[]) => void): Promise<void>;
  /**
   * Ends `conn`'s registration (unregister, or its close): the table and subscribers follow. Null
   * when it had none; else resolves once done, or rejects (UNAVAILABLE) with the registration kept.
   */
  leave(conn: PeerConnection): Promise<void> | null;
  /** The server is stopping: the connections about to close need not be ended one by one. */
  stopping(): void;
  /** Stops background work and ends what this instance holds, after its connections closed. */
  close(): Promise<void>;
}

/** What both rosters do to the registrations an entry ends, and to subscribers. */
export class RosterEffects {
  constructor(
    readonly peers: PeerTable<PeerOwner>,
    readonly hub: EventHub,
    readonly keeper: ClaimKeeper,
  ) {}

  /**
   * A registration ended by the same key registering again (4001) or by a proven address (4002).
   * `keepClaimTimer`: its claim keeper is told later, by whoever hands its time to the replacement.
   */
  ended(old: AnyEntry, how: 'replaced' | 'evicted', announce: boolean, keepClaimTimer = false): void {
    if (isLocal(old)) {
      if (!keepClaimTimer) this.keeper.left(old);
      if (how === 'replaced') {
        old.owner.send({ type: 'replaced' });
        old.owner.close(CLOSINGS.replaced);
      } else {
        old.owner.send({ type: 'evicted', reason: EVICTED_REASON });
        old.owner.close(CLAIM_CLOSINGS.evicted);
      }
    }
    if (announce) this.left(old);
  }

  joined(entry: AnyEntry): void {
    this.hub.publish(entry.owner, { type: 'peer_joined', peer: entry.peer });
  }

  left(entry: AnyEntry): void {
    this.hub.publish(entry.owner, { type: 'peer_left', nickname: entry.peer.nickname });
  }
}

export class LocalRoster implements Roster {
  constructor(private readonly effects: RosterEffects) {}

  enter(entry: LocalEntry, entered: (replaced: readonly LocalEntry[]) => void): Promise<void> {
    const replaced = this.effects.peers.add(entry); // throws the refusal, having changed nothing
    entered(replaced.filter(isLocal));
    for (const old of replaced) {
      // The same key on the same nickname: subscribers see one peer_joined with the new peer object.
      // An eviction is always a peer_left, even of the nickname the owner takes (erratum 1).
      const how = old.keyId === entry.keyId ? 'replaced' : 'evicted';
      this.effects.ended(
        old,
        how,
        how === 'evicted' || nicknameKey(old.peer.nickname) !== nicknameKey(entry.peer.nickname),
      );
    }
    this.effects.joined(entry);
    return Promise.resolve();
  }

  leave(conn: PeerConnection): Promise<void> | null {
    const entry = this.effects.peers.removeOwner(conn);
    if (entry === undefined) return null;
    this.effects.keeper.left(entry as LocalEntry);
    this.effects.left(entry);
    return Promise.resolve();
  }

  stopping(): void {
    // Nothing to save: ending a registration here costs no write.
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
