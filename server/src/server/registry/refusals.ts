/**
 * What the server says to a peer when it refuses something: every error reply's code and text, and
 * every close code with its reason, in one table. Tests and clients match on some of these texts.
 */
import { CloseCode, ErrorCode, RegistryError } from '../../protocol/errors.js';

/** An error reply: its catalog code and the text sent with it. */
export interface Refusal {
  readonly code: ErrorCode;
  readonly message: string;
}

/** A close the server initiates: its close code and the reason sent in the close frame. */
export interface Closing {
  readonly code: CloseCode;
  readonly reason: string;
}

function refusal(code: ErrorCode, message: string): Refusal {
  return { code, message };
}

export const REFUSALS = {
  binaryFrame: refusal(ErrorCode.BINARY_NOT_SUPPORTED, 'send text frames holding JSON'),
  overRate: (perSecond: number) =>
    refusal(ErrorCode.RATE_LIMITED, `too many requests: at most ${perSecond} per second`),
  overRateUnread: (perSecond: number, cost: number) =>
    refusal(
      ErrorCode.RATE_LIMITED,
      `too many requests: at most ${perSecond} per second (this frame holds so many JSON arrays and objects that it ` +
        `counts as ${cost}; it was not read)`,
    ),
  overRateClosing: refusal(ErrorCode.RATE_LIMITED, 'too many requests: closing'),
  serverBusyParsing: refusal(
    ErrorCode.RATE_LIMITED,
    'the server is busy with frames of many JSON arrays and objects: send fewer, or retry in a second (this one was ' +
      'not read)',
  ),
  serverBusySignatures: refusal(
    ErrorCode.RATE_LIMITED,
    'the server is busy checking signatures: retry after retryAfterMs',
  ),
  queueFull: (maxQueued: number) =>
    refusal(
      ErrorCode.RATE_LIMITED,
      `too many requests waiting on this connection: at most ${maxQueued} are queued (this one was not read)`,
    ),
  notFound: refusal(ErrorCode.NOT_FOUND, 'no peer with that nickname is online'),
  notRegistered: refusal(ErrorCode.NOT_REGISTERED, 'this connection has not registered'),
  alreadyRegistered: refusal(
    ErrorCode.ALREADY_REGISTERED,
    'this connection has registered already: one registration per connection',
  ),
  nicknameInvalid: refusal(
    ErrorCode.INVALID_NICKNAME,
    'nickname must be 1-32 of A-Z a-z 0-9 _ . - and start with a letter or digit',
  ),
  addressInvalid: (reason: string) =>
    refusal(ErrorCode.INVALID_ADDRESS, `address is not a v3 onion address: ${reason}`),
  portInvalid: refusal(ErrorCode.INVALID_PORT, 'port must be an integer from 1 to 65535'),
  badSignature: refusal(ErrorCode.BAD_SIGNATURE, "signature does not verify for this connection's challenge"),
  nicknameTaken: (nickname: string) => refusal(ErrorCode.NICKNAME_TAKEN, `nickname "${nickname}" is taken`),
  addressTaken: refusal(ErrorCode.ADDRESS_TAKEN, 'this onion address is registered by another peer'),
  registryFull: refusal(ErrorCode.REGISTRY_FULL, 'the registry is full, try again later'),
  clusterUnavailable: refusal(
    ErrorCode.UNAVAILABLE,
    "the registry's shared database cannot be reached; nothing was changed: retry after retryAfterMs",
  ),
  internal: refusal(ErrorCode.INTERNAL, 'internal error'),
} as const;

export const CLOSINGS = {
  binaryFrame: { code: CloseCode.UNSUPPORTED_DATA, reason: 'binary frames are not supported' },
  overBudget: { code: CloseCode.POLICY_VIOLATION, reason: 'request budget exceeded repeatedly' },
  pendingEvicted: {
    code: CloseCode.POLICY_VIOLATION,
    reason: 'too many new connections: the oldest without a valid request is closed',
  },
  notReading: { code: CloseCode.POLICY_VIOLATION, reason: 'not reading fast enough' },
  outputFull: {
    code: CloseCode.POLICY_VIOLATION,
    reason: 'server output queue full: closing the connections with the most unread bytes',
  },
  idle: { code: CloseCode.POLICY_VIOLATION, reason: 'no valid request in time' },
  replaced: { code: CloseCode.REPLACED, reason: 'replaced by a new connection with the same key' },
  internalError: { code: CloseCode.INTERNAL_ERROR, reason: 'internal error: this connection is closed, reconnect' },
  shutdown: { code: CloseCode.GOING_AWAY, reason: 'server shutting down' },
  leaseLost: {
    code: CloseCode.GOING_AWAY,
    reason: 'this registry instance lost the shared database for too long: register again',
  },
  registrationLost: {
    code: CloseCode.GOING_AWAY,
    reason: "the registry's shared database no longer holds this registration: register again",
  },
} as const satisfies Record<string, Closing>;

export type ClosingName = keyof typeof CLOSINGS;

const CLOSING_NAMES = new Map<Closing, ClosingName>(
  Object.entries(CLOSINGS).map(([name, closing]) => [closing, name as ClosingName]),
);

/** The name of a closing of the table (for the refusal summary's counts), 'other' for any other. */
export function closingName(closing: Closing): ClosingName | 'other' {
  return CLOSING_NAMES.get(closing) ?? 'other';
}

/**
 * The error that answers a request with `what` (thrown by handlers, sent by the dispatcher);
 * `retryAfterMs` goes on the wire with it: when a retry can succeed.
 */
export function refuse(what: Refusal, retryAfterMs?: number): RegistryError {
  return retryAfterMs === undefined
    ? new RegistryError(what.code, what.message)
    : new RegistryError(what.code, what.message, { retryAfterMs });
}
