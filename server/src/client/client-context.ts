/** The state that the client's parts share: one object, made by the client and passed to each part. */
import type { EventEmitter } from 'node:events';
import type { PeerRecord } from '../protocol/messages.js';
import type { RegistryClientEvents } from './events.js';
import type { ClientSettings } from './options.js';
import { PendingRequests } from './requests.js';
import { SocksAgent } from './socks5.js';
import type { Connection } from './transport.js';

export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** What `register` sends besides the key and signature: the fields of the peer object it asks for. */
export type Registration = Pick<PeerRecord, 'nickname' | 'address' | 'port'>;

export interface ClientContext {
  readonly settings: ClientSettings;
  /** Opens every connection through the SOCKS proxy; undefined for direct connections. */
  readonly agent: SocksAgent | undefined;
  readonly requests: PendingRequests;
  /** Where the client's events are emitted (the RegistryClient itself). */
  readonly events: EventEmitter<RegistryClientEvents>;
  state: ClientState;
  /** The current connection, greeted or not yet; null while there is none. */
  connection: Connection | null;
  /** The current connection's registration. */
  peer: PeerRecord | null;
  /** The registration to restore after a reconnect. */
  wanted: Registration | null;
  /** Whether to subscribe again after a reconnect. */
  wantSubscribed: boolean;
  /** The registry said another connection registered our key: reconnecting would fight over it. */
  wasReplaced: boolean;
  /** Attempts since the connection was lost, and the timer of the next one. */
  readonly reconnect: { attempt: number; timer: NodeJS.Timeout | undefined };
}

export function createContext(settings: ClientSettings, events: EventEmitter<RegistryClientEvents>): ClientContext {
  return {
    settings,
    agent: settings.socks === undefined ? undefined : new SocksAgent(settings.socks, { socksTimeoutMs: settings.connectTimeoutMs }),
    requests: new PendingRequests(settings.requestTimeoutMs),
    events,
    state: 'idle',
    connection: null,
    peer: null,
    wanted: null,
    wantSubscribed: false,
    wasReplaced: false,
    reconnect: { attempt: 0, timer: undefined },
  };
}
