export { buildConfig, loadConfig, envName, DEFAULT_LIMITS, type Config, type Listen, type RegistryLimits } from './config.js';
export { ErrorCode, CloseCode, ProtocolError, ConfigError } from './errors.js';
export { parseOnionAddress, onionAddressFromPublicKey, type OnionAddress } from './onion-address.js';
export { registrationPayload, PROTOCOL_VERSION, type PeerRecord, type ServerMessage } from './protocol.js';
export { startServer, type RegistryServer, type RegistryStats } from './server.js';
export { createLogger } from './logger.js';
export {
  RegistryClient,
  RegistryError,
  backoffDelay,
  DEFAULT_RECONNECT,
  type ClientErrorCode,
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
  type RegistryErrorCode,
  type RegistryEvent,
} from './registry-client.js';
export { createIdentity, identityFromPem, loadOrCreateIdentity, IdentityError, type IdentityErrorCode, type LoadedIdentity, type PeerIdentity } from './peer-identity.js';
export { socksConnect, SocksAgent, SocksError, parseSocksAddress, DEFAULT_SOCKS_TIMEOUT_MS, type SocksAgentOptions, type SocksConnectOptions, type SocksErrorCode, type SocksProxy } from './socks5.js';
