/** What a RegistryClient can be told, its defaults, and the checks made before anything connects. */
import { RegistryError } from '../protocol/errors.js';
import type { PeerIdentity } from './identity.js';
import { socksProxyError } from './socks5-messages.js';
import type { SocksProxy } from './socks5.js';

export interface ReconnectOptions {
  /** The first attempt's window; it grows by `factor` with each failed attempt, up to maxDelayMs. */
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly factor: number;
  /**
   * 0..1: each delay is the window reduced by up to this fraction at random. 1 (the default, "full
   * jitter") picks uniformly between 0 and the window, so peers dropped together by a restart
   * spread their attempts over it instead of reconnecting in lockstep.
   */
  readonly jitter: number;
  /** Attempts before giving up (the client then closes with RECONNECT_FAILED). */
  readonly maxAttempts: number;
}

export interface RegistryClientOptions {
  /** `ws://<host>:<port>/`; an .onion host requires `socks`. */
  readonly url: string;
  /** Required for `register`. */
  readonly identity?: PeerIdentity;
  /** SOCKS5 proxy (tor's SocksPort); host names are resolved by the proxy. */
  readonly socks?: SocksProxy;
  /** Time to reach the registry and receive its hello, racing attempts included. Default 60 s. */
  readonly connectTimeoutMs?: number;
  /**
   * An attempt to connect (or reconnect) with no hello after this long is raced by a second one on
   * circuits of its own, and the first hello wins (connection-race.ts). Default 5 s; 0 disables
   * racing, and so does a delay not shorter than connectTimeoutMs.
   */
  readonly raceDelayMs?: number;
  /** Time for a reply. Default 30 s. */
  readonly requestTimeoutMs?: number;
  /**
   * A connection that shows no sign of life this long is dropped and reconnected; the client pings
   * every third of it. Default 90 s; 0 disables both.
   */
  readonly livenessTimeoutMs?: number;
  /** Reconnection after a lost connection; `false` disables it. */
  readonly reconnect?: Partial<ReconnectOptions> | false;
}

/** The options after defaults and checks: what the client's parts read. */
export interface ClientSettings {
  /** The normalized URL (`URL.href`). */
  readonly url: string;
  readonly identity: PeerIdentity | undefined;
  readonly socks: SocksProxy | undefined;
  readonly connectTimeoutMs: number;
  /** 0: no racing. */
  readonly raceDelayMs: number;
  readonly requestTimeoutMs: number;
  readonly livenessTimeoutMs: number;
  /** null: reconnection is disabled. */
  readonly reconnect: ReconnectOptions | null;
}

/**
 * Windows of 5, 10, 20, 40, 60, 60 ... s with full jitter: a lone peer is back after 2.5 s on
 * average, and the 20,000 peers a restart drops at once come 4,000 a second at most instead of all
 * in the same instant, then thinner with each window; the onion admits ~300 new connections/s
 * after a burst of 3,000 (torrc.template), so all are back in about 1.5 min (reconnect.test.ts
 * simulates it; docs/OPERATIONS.md "Capacity").
 */
export const DEFAULT_RECONNECT: ReconnectOptions = Object.freeze({
  initialDelayMs: 5_000,
  maxDelayMs: 60_000,
  factor: 2,
  jitter: 1,
  maxAttempts: Number.POSITIVE_INFINITY,
});

const DEFAULT_CONNECT_TIMEOUT_MS = 60_000;
/**
 * A healthy connection greets well within it, so a racer is rarely started for nothing (each costs
 * tor new circuits); a dead introduction point stalls an attempt ~16 s before tor tries another.
 */
export const DEFAULT_RACE_DELAY_MS = 5_000;
/** Node's longest timer: a longer delay fires after 1 ms instead. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_LIVENESS_TIMEOUT_MS = 90_000;

/** Every problem of the reconnect options at once (RangeError), or the options frozen. */
export function checkReconnectOptions(options: ReconnectOptions): ReconnectOptions {
  const problems: string[] = [];
  if (!(options.initialDelayMs >= 0)) problems.push('initialDelayMs must be >= 0');
  if (!(options.maxDelayMs >= options.initialDelayMs)) problems.push('maxDelayMs must be >= initialDelayMs');
  if (!(options.maxDelayMs <= MAX_TIMER_MS))
    problems.push(`maxDelayMs must be <= ${MAX_TIMER_MS} (Node's longest timer)`);
  if (!(options.factor >= 1)) problems.push('factor must be >= 1');
  if (!(options.jitter >= 0 && options.jitter <= 1)) problems.push('jitter must be between 0 and 1');
  if (!(options.maxAttempts >= 1)) problems.push('maxAttempts must be >= 1');
  if (problems.length > 0) throw new RangeError(`invalid reconnect options: ${problems.join('; ')}`);
  return Object.freeze({ ...options });
}

/** The race delay, checked (RangeError, like the reconnect options). */
function checkRaceDelay(ms: number): number {
  if (typeof ms !== 'number' || !(ms >= 0 && ms <= MAX_TIMER_MS)) {
    throw new RangeError(
      `invalid raceDelayMs: must be a number of ms from 0 (no racing) to ${MAX_TIMER_MS}, got ${String(ms)}`,
    );
  }
  return ms;
}

/** The registry URL, normalized; BAD_URL, SOCKS_REQUIRED or SOCKS_BAD_CREDENTIALS when it cannot be used as given. */
function checkUrl(text: string, socks: SocksProxy | undefined): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RegistryError('BAD_URL', `registry URL "${text}" is not a URL: use ws://<host>:<port>/`);
  }
  if (url.protocol !== 'ws:') {
    throw new RegistryError(
      'BAD_URL',
      `registry URL must start with ws:// (got ${url.protocol}//): use ws://<host>:<port>/`,
    );
  }
  if (url.hostname.toLowerCase().endsWith('.onion') && socks === undefined) {
    // Never hand an .onion name to the local resolver: that leaks which service we look for.
    throw new RegistryError(
      'SOCKS_REQUIRED',
      `${url.hostname} is an onion address: connect through tor with a SOCKS proxy (e.g. socks 127.0.0.1:9050)`,
    );
  }
  // Credentials that cannot be sent would fail every attempt alike: refused here, once.
  const badProxy = socks === undefined ? undefined : socksProxyError(socks);
  if (badProxy !== undefined) throw badProxy;
  return url.href;
}

/** Defaults spread in, then checked; throws before anything connects. */
export function resolveOptions(options: RegistryClientOptions): ClientSettings {
  const url = checkUrl(options.url, options.socks);
  return Object.freeze({
    url,
    identity: options.identity,
    socks: options.socks,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    raceDelayMs: checkRaceDelay(options.raceDelayMs ?? DEFAULT_RACE_DELAY_MS),
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    livenessTimeoutMs: options.livenessTimeoutMs ?? DEFAULT_LIVENESS_TIMEOUT_MS,
    reconnect:
      options.reconnect === false ? null : checkReconnectOptions({ ...DEFAULT_RECONNECT, ...options.reconnect }),
  });
}
