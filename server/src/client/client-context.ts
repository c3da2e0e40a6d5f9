/** The state that the client's parts share: one object, made by the client and passed to each part. */
import type { EventEmitter } from 'node:events';
import type { RegistryError } from '../protocol/errors.js';
import type { PeerRecord } from '../protocol/messages.js';
import type { RegisteredPeer, RegistryClientEvents } from './event-types.js';
import type { OnionKey } from './onion-key.js';
import type { ClientSettings } from './options.js';
import type { ConnectionRace } from './connection-race.js';
import { PendingRequests } from './requests.js';
import type { RegistryConnection } from './transport.js';

export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** What `register` sends besides the key and signature: the fields of the peer object it asks for. */
export interface Registration extends Pick<PeerRecord, 'nickname' | 'address' | 'port'> {
  /**
   * Rev 2: the key of the onion service at `address` (see loadOnionKey). The registration then
   * carries an address proof, made again for every connection's challenge.
   */
  readonly onionKey?: OnionKey;
}

export interface ClientContext {
  readonly settings: ClientSettings;
  readonly requests: PendingRequests;
  /** Where the client's events are emitted (the RegistryClient itself). */
  readonly events: EventEmitter<RegistryClientEvents>;
  state: ClientState;
  /** The current connection: greeted, the winner of its race; null while there is none. */
  connection: RegistryConnection | null;
  /** The attempts to connect in flight; null while none is. */
  race: ConnectionRace | null;
  /** The current connection's registration, with its claim as last reported. */
  peer: RegisteredPeer | null;
  /** The registration to restore after a reconnect. */
  wanted: Registration | null;
  /** Whether to subscribe again after a reconnect. */
  wantSubscribed: boolean;
  /** The registry said another connection registered our key: reconnecting would fight over it. */
  wasReplaced: boolean;
  /** Rev 2: the registry evicted us (the address's owner proved it), with its reason; null if not. */
  evictedReason: string | null;
  /** Rev 3: the registry's operator blocked us (`blocked` arrived): the public ' +
'reason, or '' without one; null if not. */
  blockedReason: string | null;
  /**
   * Attempts since the connection was lost, the timer of the next one, and the refusal that made
   * the last attempt fail (its retryAfterMs, if any, is the least delay before the next).
   */
  readonly reconnect: { attempt: number; timer: NodeJS.Timeout | undefined; refusal: RegistryError | null };
}

export function createContext(settings: ClientSettings, events: EventEmitter<RegistryClientEvents>): ClientContext {
  return {
    settings,
    requests: new PendingRequests(settings.requestTimeoutMs),
    events,
    state: 'idle',
    connection: null,
    race: null,
    peer: null,
    wanted: null,
    wantSubscribed: false,
    wasReplaced: false,
    evictedReason: null,
    blockedReason: null,
    reconnect: { attempt: 0, timer: undefined, refusal: null },
  };
}
