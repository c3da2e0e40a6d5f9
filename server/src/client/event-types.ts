/** What a RegistryClient emits, and the registration it reports: types only, shared by the client's parts. */
import type { RegistryError } from '../protocol/errors.js';
import type { Claim, Peer, RegistryEvent } from '../protocol/reply-parser.js';

/** What `register` resolves with: the peer object, and the claim the key holds (rev 2; null: none yet). */
export interface RegisteredPeer extends Peer {
  readonly claim: Claim | null;
}

export interface DisconnectInfo {
  readonly code: number;
  readonly reason: string;
  readonly willReconnect: boolean;
}

export interface ReconnectingInfo {
  readonly attempt: number;
  readonly delayMs: number;
  /** Why the previous attempt failed; null before the first attempt. */
  readonly error: RegistryError | null;
}

export interface ReconnectedInfo {
  /** Attempts it took. */
  readonly attempt: number;
  /** The registration restored on the new connection, or null when there was none (or it was lost). */
  readonly registered: RegisteredPeer | null;
  readonly subscribed: boolean;
}

export interface RegistryClientEvents {
  peer_joined: [peer: Peer];
  peer_left: [nickname: string];
  /** Another connection registered with this client's key; the registry closes this one (4001). */
  replaced: [];
  /** Rev 2: the claim on this registration's nickname and address was made (also in `registration.claim`). */
  claimed: [claim: Claim];
  /**
   * Rev 2: the onion address's owner registered it with an address proof; the registry closes this
   * connection (4002) and the client closes with EVICTED, without reconnecting.
   */
  evicted: [reason: string];
  /**
   * Rev 3: the registry's operator blocked this key or address, or reserved the nickname; the
   * registry closes this connection (4003) and the client closes with BLOCKED, without reconnecting.
   */
  blocked: [reason: string | null];
  /** Every event above, as one stream. */
  event: [event: RegistryEvent];
  disconnected: [info: DisconnectInfo];
  reconnecting: [info: ReconnectingInfo];
  /** Events were missed while disconnected: list again if you keep a view of the registry. */
  reconnected: [info: ReconnectedInfo];
  /** The registration could not be restored after a reconnect (e.g. NICKNAME_TAKEN). */
  registration_lost: [error: RegistryError];
  /** The client is closed for good: null after `close()`, else why. */
  closed: [error: RegistryError | null];
}
