/**
 * The catalog of error codes a peer can receive (PROTOCOL.md), and the close codes the server uses.
 * Codes are stable: clients switch on them. Messages are for humans and may change.
 */
export const ErrorCode = {
  BAD_JSON: 'BAD_JSON',
  BAD_REQUEST: 'BAD_REQUEST',
  BINARY_NOT_SUPPORTED: 'BINARY_NOT_SUPPORTED',
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  INVALID_NICKNAME: 'INVALID_NICKNAME',
  INVALID_ADDRESS: 'INVALID_ADDRESS',
  INVALID_PORT: 'INVALID_PORT',
  INVALID_PUBLIC_KEY: 'INVALID_PUBLIC_KEY',
  BAD_SIGNATURE: 'BAD_SIGNATURE',
  NICKNAME_TAKEN: 'NICKNAME_TAKEN',
  ADDRESS_TAKEN: 'ADDRESS_TAKEN',
  ALREADY_REGISTERED: 'ALREADY_REGISTERED',
  NOT_REGISTERED: 'NOT_REGISTERED',
  NOT_FOUND: 'NOT_FOUND',
  REGISTRY_FULL: 'REGISTRY_FULL',
  RATE_LIMITED: 'RATE_LIMITED',
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  REPLACED: 4001,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** An error answered to the peer as `{"type":"error","code",...}`; the connection stays open. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ErrorCode;

  /**
   * Refusals are answers, not bugs, and a flood makes thousands a second: no stack is captured
   * (capturing one costs more than most requests do).
   */
  constructor(code: ErrorCode, message: string) {
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(message);
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
    this.code = code;
  }
}

/** Raised by the configuration loader; `problems` lists every issue found, not just the first. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly missing: readonly string[],
    readonly invalid: readonly string[],
  ) {
    super(ConfigError.describe(missing, invalid));
  }

  static describe(missing: readonly string[], invalid: readonly string[]): string {
    const parts: string[] = [];
    if (missing.length > 0) {
      parts.push(`[Configuration error] Missing variables in config: ${missing.join(', ')}`);
    }
    if (invalid.length > 0) {
      parts.push(`[Configuration error] Invalid values in config: ${invalid.join('; ')}`);
    }
    return `${parts.join('. ')}. Fix config.ini (see config.ini.example) or the REGISTRY_* environment variables, then start again.`;
  }
}
