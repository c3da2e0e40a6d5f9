import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config/config.js';

export type { Logger };

/**
 * JSON to stdout for machines; pino-pretty when a person runs the server in a terminal and the
 * optional pino-pretty package is installed (it is left out of the production image).
 */
export function createLogger(level: LogLevel, destination: NodeJS.WritableStream = process.stdout): Logger {
  const options = {
    level,
    base: { service: 'p2p-registry' },
    // Fixed in code, never from input: nothing secret is logged on purpose, this is a safety net.
    redact: {
      paths: [
        'publicKey',
        'signature',
        '*.publicKey',
        '*.signature',
        'challenge',
        'password',
        '*.password',
        'connectionString',
        '*.connectionString',
      ],
      censor: '[redacted]',
    },
  };
  if (destination === process.stdout && process.stdout.isTTY && process.env.NO_PRETTY === undefined) {
    try {
      const require = createRequire(import.meta.url);
      const pretty = require('pino-pretty') as (opts: object) => NodeJS.WritableStream;
      return pino(options, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss' }));
    } catch {
      // pino-pretty is optional: fall back to JSON.
    }
  }
  return pino(options, destination);
}
