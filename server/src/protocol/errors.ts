/**
 * The one catalog of error codes, and the one error class (`RegistryError`) that carries them.
 *
 * Each code says which part raises it, what it means (the default message, written for the person
 * who has to act on it) and, for protocol errors, the close code that follows it (null: the
 * connection stays open). Codes are stable: clients and scripts switch on them. Messages are for
 * people and may change; a raiser may pass a more specific one.
 */

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  /** A bug while handling one of the connection's requests (after an INTERNAL reply). */
  INTERNAL_ERROR: 1011,
  REPLACED: 4001,
  /** Revision 2: the address was proven by its owner (after `{"type":"evicted"}`). */
  EVICTED: 4002,
  /** Revision 3: the operator blocked this key or address, or reserved its nickname (after `{"type":"blocked"}`). */
  BLOCKED: 4003,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Who raises a code: the registry on the wire, or a local part of the client, CLI or server start. */
export type ErrorSource = 'protocol' | 'client' | 'socks' | 'identity' | 'store' | 'config' | 'usage';

export interface ErrorSpec {
  readonly source: ErrorSource;
  /** The default message: what happened and what to do. */
  readonly message: string;
  /** The close code that follows this error on the wire; null when the connection stays open. */
  readonly closeCode: CloseCode | null;
}

function protocol(message: string, closeCode: CloseCode | null = null): ErrorSpec & { readonly source: 'protocol' } {
  return { source: 'protocol', message, closeCode };
}

function local<S extends Exclude<ErrorSource, 'protocol'>>(
  source: S,
  message: string,
): ErrorSpec & { readonly source: S } {
  return { source, message, closeCode: null };
}

/** The catalog. docs/PROTOCOL.md's "Error codes" table lists the protocol rows. */
export const ERROR_CATALOG = {
  // ---- answered by the registry (PROTOCOL.md) ----
  BAD_JSON: protocol('the frame is not valid UTF-8, not JSON, or not a JSON object'),
  BAD_REQUEST: protocol('a field is missing or of the wrong JSON type, or the id or list limit is out of range'),
  BINARY_NOT_SUPPORTED: protocol(
    'binary frames are not supported: send text frames holding JSON',
    CloseCode.UNSUPPORTED_DATA,
  ),
  UNKNOWN_TYPE: protocol('the server does not know this request type'),
  INVALID_NICKNAME: protocol('nickname must be 1-32 of A-Z a-z 0-9 _ . - and start with a letter or digit'),
  INVALID_ADDRESS: protocol('address is not a v3 onion address'),
  INVALID_PORT: protocol('port must be an integer from 1 to 65535'),
  INVALID_PUBLIC_KEY: protocol(
    'publicKey must be a PEM SubjectPublicKeyInfo of an Ed25519 key or an RSA key of 2048-8192 bits',
  ),
  BAD_SIGNATURE: protocol("signature does not verify for this connection's challenge"),
  BAD_ADDRESS_PROOF: protocol(
    "addressProof does not verify: it must be the onion key's Ed25519 signature over this connection's challenge, " +
      "the address and the key's hash",
  ),
  ADDRESS_PROOF_REQUIRED: protocol(
    'this registry requires an address proof: send addressProof, signed with the onion service key',
  ),
  NICKNAME_TAKEN: protocol('another key holds this nickname'),
  ADDRESS_TAKEN: protocol('this onion address is registered by another peer'),
  ALREADY_REGISTERED: protocol('this connection has registered already: one registration per connection'),
  NOT_REGISTERED: protocol('this connection has not registered'),
  NOT_FOUND: protocol('no peer with that nickname is online'),
  REGISTRY_FULL: protocol('the registry is full, try again later'),
  RATE_LIMITED: protocol('too many requests: slow down and retry (after retryAfterMs when the reply carries it)'),
  UNAVAILABLE: protocol(
    'the server cannot serve this request right now; nothing was changed: retry after retryAfterMs',
  ),
  INTERNAL: protocol('internal error', CloseCode.INTERNAL_ERROR),
  BLOCKED: protocol(
    "the registry's operator blocked this key or onion address: registering again will be refused the same way",
  ),
  NICKNAME_RESERVED: protocol("the registry's operator reserved this nickname: choose another one"),

  // ---- raised by the peer client library ----
  BAD_URL: local('client', 'the registry URL must be ws://<host>:<port>/'),
  SOCKS_REQUIRED: local(
    'client',
    'an onion address needs a SOCKS proxy: connect through tor (e.g. socks 127.0.0.1:9050)',
  ),
  NO_IDENTITY: local('client', 'register needs an identity: pass `identity` (see loadOrCreateIdentity)'),
  CONNECT_FAILED: local('client', 'cannot connect to the registry: check the URL and that the registry is running'),
  PROTOCOL_MISMATCH: local('client', 'the registry speaks another protocol version: upgrade the client'),
  BAD_RESPONSE: local('client', 'the registry sent a reply this client cannot read: is it the registry?'),
  NOT_CONNECTED: local('client', 'not connected to the registry: call connect() first'),
  CONNECTION_CLOSED: local('client', 'the connection to the registry closed'),
  TIMEOUT: local('client', 'no answer from the registry in time: retry'),
  REPLACED: local('client', 'another connection registered with this key, and the registry closed this one'),
  EVICTED: local('client', "the onion address's owner proved it, and the registry closed this unverified registration"),
  RECONNECT_FAILED: local('client', 'gave up reconnecting to the registry'),
  EVENTS_BEHIND: local(
    'client',
    'events() fell too far behind its reader and stopped: list the peers again and start a new events() (or read ' +
      'faster, or raise maxQueued)',
  ),
  CLOSED: local('client', 'the client is closed'),

  // ---- raised by the SOCKS5 client (tor's SocksPort) ----
  SOCKS_PROXY_UNREACHABLE: local(
    'socks',
    'cannot reach the SOCKS proxy: is tor running, and is --socks its SocksPort?',
  ),
  SOCKS_TIMEOUT: local('socks', 'no connection through the proxy in time: retry, or raise the timeout'),
  SOCKS_ABORTED: local('socks', 'the connection attempt was cancelled'),
  SOCKS_PROXY_CLOSED: local('socks', 'the proxy closed the connection during the handshake'),
  SOCKS_NOT_SOCKS5: local('socks', "that is not a SOCKS5 proxy: point --socks at tor's SocksPort"),
  SOCKS_AUTH_REQUIRED: local(
    'socks',
    'the proxy requires a username and password: give them (--socks <user>:<password>@<host>:<port>)',
  ),
  SOCKS_AUTH_FAILED: local('socks', 'the proxy refused the SOCKS username and password: check them, or leave them out'),
  SOCKS_BAD_CREDENTIALS: local('socks', 'a SOCKS username and password go together, each 1-255 bytes'),
  SOCKS_BAD_REPLY: local('socks', 'the proxy sent a reply that is not SOCKS5'),
  SOCKS_BAD_DESTINATION: local('socks', 'the destination host must be 1-255 bytes and the port 1-65535'),
  SOCKS_GENERAL_FAILURE: local('socks', 'the proxy failed to connect (general failure): check its log'),
  SOCKS_NOT_ALLOWED: local('socks', 'the proxy refused the connection by its rules (SocksPolicy?)'),
  SOCKS_NETWORK_UNREACHABLE: local('socks', 'network unreachable from the proxy: has tor finished bootstrapping?'),
  SOCKS_HOST_UNREACHABLE: local(
    'socks',
    'onion service not reachable (yet?): tor could not reach it; a new onion service needs a while to publish its ' +
      'descriptor, so retry in a minute, and check the address',
  ),
  SOCKS_CONNECTION_REFUSED: local(
    'socks',
    'connection refused at the destination: is the port right and the service behind it running?',
  ),
  SOCKS_TTL_EXPIRED: local('socks', 'the connection attempt expired inside the proxy (TTL expired): retry'),
  SOCKS_COMMAND_NOT_SUPPORTED: local('socks', 'the proxy does not support CONNECT'),
  SOCKS_ADDRESS_TYPE_NOT_SUPPORTED: local(
    'socks',
    "the proxy does not accept host names (DOMAINNAME): use tor's SocksPort",
  ),
  SOCKS_ONION_DESCRIPTOR_NOT_FOUND: local(
    'socks',
    'onion service not reachable (yet?): tor found no descriptor for it; retry in a minute, and check the address',
  ),
  SOCKS_ONION_DESCRIPTOR_INVALID: local('socks', "the onion service's descriptor is invalid"),
  SOCKS_ONION_INTRO_FAILED: local(
    'socks',
    'onion service not reachable (yet?): every introduction point failed; retry',
  ),
  SOCKS_ONION_REND_FAILED: local('socks', 'onion service not reachable (yet?): the rendezvous failed; retry'),
  SOCKS_ONION_AUTH_MISSING: local('socks', 'the onion service requires client authorization, and tor has none for it'),
  SOCKS_ONION_AUTH_WRONG: local('socks', "tor's client authorization for this onion service was refused"),
  SOCKS_ONION_BAD_ADDRESS: local('socks', 'not a valid onion address: check it (a v3 address has 56 characters)'),
  SOCKS_ONION_INTRO_TIMEOUT: local('socks', 'onion service not reachable (yet?): introduction timed out; retry'),
  SOCKS_UNKNOWN_REPLY: local('socks', 'the proxy refused to connect with a reply code this client does not know'),

  // ---- raised when reading a peer's key file ----
  KEY_UNREADABLE: local('identity', 'the key file cannot be read: check the path and its permissions'),
  KEY_INVALID: local('identity', 'the key file does not hold a PEM private key'),
  KEY_NOT_ED25519: local('identity', 'the key file holds a key that is not Ed25519'),
  KEY_WRITE_FAILED: local('identity', 'the key file cannot be written: check the folder and its permissions'),
  ONION_KEY_UNREADABLE: local(
    'identity',
    "the onion service key (tor's hs_ed25519_secret_key) cannot be read: check the path and that this user may read it",
  ),
  ONION_KEY_INVALID: local(
    'identity',
    "the file is not tor's hs_ed25519_secret_key (a 32-byte header, then the 64-byte expanded key)",
  ),
  ONION_KEY_MISMATCH: local(
    'identity',
    'the onion service key is not the key of this address: pass the hs_ed25519_secret_key of --address',
  ),

  // ---- raised by the claim store (server/src/store) ----
  STORE_UNAVAILABLE: local('store', 'the claim store cannot be written right now; nothing was changed: retry later'),
  STORE_OPEN_FAILED: local('store', 'the claim database cannot be opened'),
  STORE_SCHEMA_NEWER: local('store', 'the claim database has a newer schema than this version knows'),
  STORE_MIGRATION_FAILED: local('store', 'the claim database could not be migrated'),
  STORE_CORRUPT: local('store', 'the claim database holds a row this version cannot read'),
  STORE_BAD_INPUT: local('store', 'a value passed to the claim store is not valid'),
  STORE_CLOSED: local('store', 'the claim store is closed'),

  // ---- raised at start and by the command line ----
  CONFIG_INVALID: local(
    'config',
    'Fix config.ini (see config.ini.example) or the REGISTRY_* environment variables, then start again.',
  ),
  USAGE: local('usage', 'the command line is not valid: see p2p-registry --help'),
} as const satisfies Record<string, ErrorSpec>;

export type AnyErrorCode = keyof typeof ERROR_CATALOG;

type CodesOf<S extends ErrorSource> = {
  [C in AnyErrorCode]: (typeof ERROR_CATALOG)[C]['source'] extends S ? C : never;
}[AnyErrorCode];

/** Codes the registry answers on the wire. */
export type ErrorCode = CodesOf<'protocol'>;
export type ClientErrorCode = CodesOf<'client'>;
export type SocksErrorCode = CodesOf<'socks'>;
export type IdentityErrorCode = CodesOf<'identity'>;
export type StoreErrorCode = CodesOf<'store'>;

function codesOf<S extends ErrorSource>(source: S): { readonly [C in CodesOf<S>]: C } {
  const codes: Record<string, string> = {};
  for (const [code, spec] of Object.entries(ERROR_CATALOG)) if (spec.source === source) codes[code] = code;
  return Object.freeze(codes) as { readonly [C in CodesOf<S>]: C };
}

/** The protocol's codes by name, e.g. `ErrorCode.NOT_FOUND` (a value as well as a type). */
export const ErrorCode = codesOf('protocol');

export interface RegistryErrorOptions extends ErrorOptions {
  /** SOCKS: the proxy's reply code (RFC 1928 REP field), when the error is one. */
  readonly replyCode?: number;
  /** CONFIG_INVALID: every required key that is missing, and every value that is wrong. */
  readonly missing?: readonly string[];
  readonly invalid?: readonly string[];
  /** RATE_LIMITED, UNAVAILABLE, STORE_UNAVAILABLE: when a retry can succeed, in ms (the reply's retryAfterMs). */
  readonly retryAfterMs?: number;
}

/**
 * Every error of the project: a protocol refusal (sent to the peer as `{"type":"error",…}`), an error
 * reply the client received, or a local failure of the client, the CLI or the configuration.
 */
export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  readonly code: AnyErrorCode;
  readonly replyCode: number | null;
  readonly missing: readonly string[];
  readonly invalid: readonly string[];
  /** RATE_LIMITED, UNAVAILABLE: wait at least this long before retrying; null when not said. */
  readonly retryAfterMs: number | null;

  constructor(code: AnyErrorCode, message: string = ERROR_CATALOG[code].message, options: RegistryErrorOptions = {}) {
    // A protocol refusal is an answer, not a bug, and a flood makes thousands a second: no stack is
    // captured for one (capturing it costs more than most requests do).
    const quiet = ERROR_CATALOG[code].source === 'protocol' && options.cause === undefined;
    const stackTraceLimit = Error.stackTraceLimit;
    if (quiet) Error.stackTraceLimit = 0;
    try {
      super(message, options.cause === undefined ? undefined : { cause: options.cause });
    } finally {
      if (quiet) Error.stackTraceLimit = stackTraceLimit;
    }
    this.code = code;
    this.replyCode = options.replyCode ?? null;
    this.missing = options.missing ?? [];
    this.invalid = options.invalid ?? [];
    this.retryAfterMs = options.retryAfterMs ?? null;
  }

  get source(): ErrorSource {
    return ERROR_CATALOG[this.code].source;
  }

  /** True for codes the registry itself answers with (as opposed to local failures). */
  get fromServer(): boolean {
    return this.source === 'protocol';
  }

  /** The close code that follows this error on the wire (protocol errors only). */
  get closeCode(): CloseCode | null {
    return ERROR_CATALOG[this.code].closeCode;
  }
}

/** True when `code` is a code of the catalog (for codes read off the wire). */
export function isErrorCode(code: unknown): code is AnyErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CATALOG, code);
}

/** True when `code` is one the registry answers on the wire. */
export function isProtocolCode(code: AnyErrorCode): code is ErrorCode {
  return ERROR_CATALOG[code].source === 'protocol';
}

/** The one-line message of a configuration failure: every missing key and every wrong value. */
export function configErrorMessage(missing: readonly string[], invalid: readonly string[]): string {
  const parts: string[] = [];
  if (missing.length > 0) parts.push(`[Configuration error] Missing variables in config: ${missing.join(', ')}`);
  if (invalid.length > 0) parts.push(`[Configuration error] Invalid values in config: ${invalid.join('; ')}`);
  return `${parts.join('. ')}. ${ERROR_CATALOG.CONFIG_INVALID.message}`;
}

/** A configuration failure with every problem found (the server does not start). */
export function configError(missing: readonly string[], invalid: readonly string[]): RegistryError {
  return new RegistryError('CONFIG_INVALID', configErrorMessage(missing, invalid), { missing, invalid });
}
