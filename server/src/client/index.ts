/**
 * The peer client (`p2p-tor-chat-registry/client`): talks to a registry through tor's SocksPort.
 * It loads no server code: nothing here imports chokidar, pino or ini (a test checks it).
 */
export {
  RegistryClient,
  backoffDelay,
  DEFAULT_RECONNECT,
  type ClientState,
  type DisconnectInfo,
  type Hello,
  type PeerPage,
  type ReconnectedInfo,
  type ReconnectingInfo,
  type ReconnectOptions,
  type Registration,
  type RegistryClientEvents,
  type RegistryClientOptions,
  type RegistryEvent,
} from './registry-client.js';
export { createIdentity, identityFromPem, loadOrCreateIdentity, type LoadedIdentity, type PeerIdentity } from './identity.js';
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
