/** The greeting (PROTOCOL.md "Greeting"): revision 2's `features`, and every configured limit. */
import {
  FEATURES,
  MAX_LIST_LIMIT,
  PROTOCOL_VERSION,
  type HelloLimits,
  type ServerMessage,
} from '../../protocol/messages.js';
import type { Config } from '../config/config.js';

/** The limits a hello states, from the configuration (made once at start). */
export function helloLimits(config: Pick<Config, 'limits' | 'claims'>): HelloLimits {
  return Object.freeze({
    maxMessageBytes: config.limits.maxMessageBytes,
    heartbeatSeconds: config.limits.heartbeatSeconds,
    requestsPerSecond: config.limits.rateLimitPerSecond,
    requestBurst: config.limits.rateLimitBurst,
    maxListLimit: MAX_LIST_LIMIT,
    claimDays: config.claims.claimDays,
    claimAfterSeconds: config.claims.claimAfterSeconds,
  });
}

export function helloMessage(challenge: string, onion: string | null, limits: HelloLimits): ServerMessage {
  return { type: 'hello', protocol: PROTOCOL_VERSION, challenge, onion, features: FEATURES, limits };
}
