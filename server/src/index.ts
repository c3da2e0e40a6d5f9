export { buildConfig, loadConfig, envName, DEFAULT_LIMITS, type Config, type Listen, type RegistryLimits } from './config.js';
export { ErrorCode, CloseCode, ProtocolError, ConfigError } from './errors.js';
export { parseOnionAddress, onionAddressFromPublicKey, type OnionAddress } from './onion-address.js';
export { registrationPayload, PROTOCOL_VERSION, type PeerRecord, type ServerMessage } from './protocol.js';
export { startServer, type RegistryServer, type RegistryStats } from './server.js';
export { createLogger } from './logger.js';
