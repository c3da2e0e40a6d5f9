/**
 * Live presence shared by several registries: who is registered now, on which instance,
 * and the ordered log of every change. Only the cluster has one (postgres-presence.ts); a single
 * registry keeps its peer table in memory and needs none of this.
 *
 * The rules the implementation guarantees:
 *  - one key, one live registration; a nickname (case-insensitively) and an address have at most
 *    one live holder, across every instance: decided by the database inside the write;
 *  - every change is one event in the log, numbered in commit order with no gap; an instance that
 *    applies the log in order holds the same table as any other that reached the same number;
 *  - an instance's rows live as long as its lease: an instance that stops renewing it loses its
 *    rows (an `expired` event each) once another instance sweeps; a new process is a new instance
 *    and never adopts the rows of the one before.
 */

/** One live registration, as the database holds it. */
export interface PresenceRow {
  readonly keyId: string;
  readonly nickname: string;
  readonly address: string;
  readonly addressVerified: boolean;
  /** The instance that holds the connection. */
  readonly instanceId: string;
  /** Which registration of that instance (its own counter): tells a registration from a later one of the same key. */
  readonly localRef: number;
  readonly publicKeyDer: Uint8Array;
  /** The peer object (PROTOCOL.md) as JSON, exactly as its instance serialised it. */
  readonly peerJson: string;
}

/**
 * joined: a registration began. left: it ended (its connection closed, `unregister`).
 * replaced: the same key registered again (4001 for the old connection). evicted: a proven
 * address took it (4002). expired: its instance's lease ran out.
 */
export type PresenceEventKind = 'joined' | 'left' | 'replaced' | 'evicted' | 'expired';

export interface PresenceEvent {
  readonly seq: number;
  readonly kind: PresenceEventKind;
  /** Subscribers are told (peer_left): false for a replacement that keeps the same nickname. */
  readonly announce: boolean;
  readonly keyId: string;
  readonly nickname: string;
  readonly instanceId: string;
  readonly localRef: number;
  /** The new registration, for `joined`; null otherwise. */
  readonly row: PresenceRow | null;
}

export type EnterOutcome =
  /**
   * The row is live; `seq` is the number of its `joined` event; `removed` the rows it replaced or
   * evicted; `registeredAt` when the key's registration began (ms since the epoch): carried from
   * the row of the same key on the same nickname and address that it replaced, on any instance.
   */
  | {
      readonly kind: 'entered';
      readonly seq: number;
      readonly removed: readonly PresenceRow[];
      readonly registeredAt: number;
    }
  | { readonly kind: 'nickname-taken' }
  | { readonly kind: 'address-taken' };

/** A consistent view: the live rows as of log number `seq`. */
export interface PresenceSnapshot {
  readonly logId: string;
  readonly seq: number;
  /** The fingerprint of event `seq` (null when there is none: a new log). */
  readonly anchor: string | null;
  readonly rows: readonly PresenceRow[];
}

/**
 * What tells one event from another event that got the same number later: after a crash or a
 * failover lost the last commits, new commits number their events again from the head that survived.
 */
export function eventFingerprint(event: Pick<PresenceEvent, 'kind' | 'keyId' | 'instanceId' | 'localRef'>): string {
  return `${event.kind} ${event.keyId} ${event.instanceId} ${event.localRef}`;
}

/**
 * Events from a number on (that event itself included, when it is still there), with the log's head as of the same
 * moment (one snapshot).
 */
export interface LogPage {
  readonly logId: string;
  readonly headSeq: number;
  readonly events: readonly PresenceEvent[];
}

export interface PresenceStore {
  /** Starts this instance's lease (or renews it). */
  renewLease(instanceId: string, leaseMs: number): Promise<void>;
  /**
   * Announces this instance's onion address to the frontend (registry_backends) with the
   * instance's lease: the frontend serves the backends whose registry holds a live lease.
   */
  announceBackend(onion: string, instanceId: string, leaseMs: number): Promise<void>;
  /** The frontend's master onion address (registry_frontend), as the frontend wrote it; null before it ran. */
  frontendOnion(): Promise<string | null>;
  /**
   * Makes `row` live, replacing the key's other registration and evicting an unverified holder of
   * the address when `row` is verified. Refused when this instance's lease has run out.
   * `registeredAt` (ms since the epoch, the registering instance's clock) is when this registration
   * began, unless it carries on one of the same key, nickname and address that it replaces.
   */
  enter(row: PresenceRow, registeredAt: number): Promise<EnterOutcome>;
  /** Ends one registration; resolves with its `left` event's number, or null when it was gone. */
  leave(keyId: string, instanceId: string, localRef: number): Promise<number | null>;
  /** Ends every registration of an instance and its lease (a clean shutdown). */
  leaveInstance(instanceId: string): Promise<number>;
  /** Removes the rows of instances whose lease ran out; resolves with how many. */
  sweep(): Promise<number>;
  /** Deletes log events older than `retainMs`, but never the newest one. */
  trimLog(retainMs: number): Promise<number>;
  /** Event `from` and those after it, at most `limit`. */
  readLog(from: number, limit: number): Promise<LogPage>;
  snapshot(): Promise<PresenceSnapshot>;
  /** Calls `onChange` soon after any instance commits a change (best effort: poll as well). */
  listen(onChange: () => void): void;
  close(): Promise<void>;
}
