/**
 * The peer client (`p2p-tor-chat-registry/client`): talks to a registry through tor's SocksPort.
 * It loads no server code: nothing here imports chokidar, pino or ini (client-entry.test.ts checks
 * the built entry).
 */
export { RegistryClient } from './registry-client.js';
export type { ClientState, Registration } from './client-context.js';
export {
  DEFAULT_RACE_DELAY_MS,
  DEFAULT_RECONNECT,
  type ReconnectOptions,
  type RegistryClientOptions,
} from './options.js';
export { backoffDelay } from './reconnect.js';
export { DEFAULT_MAX_QUEUED_EVENTS } from './events.js';
export type { EventStreamOptions } from './events.js';
export type {
  DisconnectInfo,
  ReconnectedInfo,
  ReconnectingInfo,
  RegisteredPeer,
  RegistryClientEvents,
} from './event-types.js';
export type { Claim, Hello, HelloLimits, Peer, PeerPage, RegistryEvent } from '../protocol/reply-parser.js';
export { loadOnionKey, onionKeyFromBytes, type OnionKey } from './onion-key.js';
export { publicKeyDigest, signAddressProof } from './address-proof.js';
export {
  createIdentity,
  identityFromPem,
  loadOrCreateIdentity,
  type LoadedIdentity,
  type PeerIdentity,
} from './identity.js';
export {
  socksConnect,
  SocksAgent,
  parseSocksAddress,
  DEFAULT_SOCKS_TIMEOUT_MS,
  type SocksAgentOptions,
  type SocksConnectOptions,
  type SocksProxy,
} from './socks5.js';
export * from '../protocol/index.js';
