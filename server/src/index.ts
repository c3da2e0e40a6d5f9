/** The registry server package (`p2p-tor-chat-registry`). The peer client is at `p2p-tor-chat-registry/client`. */
export {
  buildConfig,
  loadConfig,
  envName,
  DEFAULT_LIMITS,
  type Config,
  type Listen,
  type RegistryLimits,
} from './server/config/config.js';
export { createLogger } from './server/logger.js';
export { startServer, type RegistryServer, type RegistryStats } from './server/start-server.js';
export * from './protocol/index.js';
