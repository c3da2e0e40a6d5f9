/**
 * A peer's client for the registry (PROTOCOL.md v1): direct or through a SOCKS5 proxy (tor),
 * promise-based requests matched by `id`, events, and reconnection with backoff that restores the
 * registration and the subscription.
 */
import { EventEmitter } from 'node:events';
import { WebSocket, type RawData } from 'ws';
import { CloseCode, ErrorCode, RegistryError, isErrorCode, type AnyErrorCode } from '../protocol/errors.js';
import type { PeerIdentity } from './identity.js';
import { PROTOCOL_VERSION, type PeerRecord } from '../protocol/messages.js';
import { SocksAgent, type SocksProxy } from './socks5.js';

/** Server refusals worth retrying on a new connection when restoring a registration. */
const TRANSIENT_SERVER_CODES: ReadonlySet<string> = new Set([ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL, ErrorCode.REGISTRY_FULL]);

export interface Hello {
  readonly protocol: number;
  readonly challenge: string;
  /** The registry's own onion address, or null while it does not know it yet. */
  readonly onion: string | null;
  readonly maxMessageBytes: number;
}

export interface Registration {
  readonly nickname: string;
  readonly address: string;
  readonly port: number;
}

export interface PeerPage {
  readonly peers: readonly PeerRecord[];
  readonly next: string | null;
}

export type RegistryEvent =
  | { readonly type: 'peer_joined'; readonly peer: PeerRecord }
  | { readonly type: 'peer_left'; readonly nickname: string }
  | { readonly type: 'replaced' };

export interface ReconnectOptions {
  /** Delay before the first attempt; doubles (by `factor`) with each failed attempt. */
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly factor: number;
  /** 0..1: each delay is reduced by up to this fraction at random, so peers don't reconnect in lockstep. */
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
  /** Time to reach the registry and receive its hello. Default 60 s. */
  readonly connectTimeoutMs?: number;
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

export interface DisconnectInfo {
  readonly code: number;
  readonly reason: string;
  readonly willReconnect: boolean;
}

export interface ReconnectingInfo {
  readonly attempt: number;
  readonly delayMs: number;
  /** Why the previous attempt failed; null before the first attempt. */
  readonly error: RegistryError | null;
}

export interface ReconnectedInfo {
  /** Attempts it took. */
  readonly attempt: number;
  /** The registration restored on the new connection, or null when there was none (or it was lost). */
  readonly registered: PeerRecord | null;
  readonly subscribed: boolean;
}

export interface RegistryClientEvents {
  peer_joined: [peer: PeerRecord];
  peer_left: [nickname: string];
  /** Another connection registered with this client's key; the registry closes this one (4001). */
  replaced: [];
  /** Every event above, as one stream. */
  event: [event: RegistryEvent];
  disconnected: [info: DisconnectInfo];
  reconnecting: [info: ReconnectingInfo];
  /** Events were missed while disconnected: list again if you keep a view of the registry. */
  reconnected: [info: ReconnectedInfo];
  /** The registration could not be restored after a reconnect (e.g. NICKNAME_TAKEN). */
  registration_lost: [error: RegistryError];
  /** The client is closed for good: null after `close()`, else why. */
  closed: [error: RegistryError | null];
}

export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export const DEFAULT_RECONNECT: ReconnectOptions = Object.freeze({
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  factor: 2,
  jitter: 0.5,
  maxAttempts: Number.POSITIVE_INFINITY,
});
const DEFAULT_CONNECT_TIMEOUT_MS = 60_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_LIVENESS_TIMEOUT_MS = 90_000;
const CLOSE_GRACE_MS = 1_000;
/** A full `list` page of 1000 peers with RSA-8192 keys stays well below this. */
const MAX_PAYLOAD_BYTES = 8 * 1024 * 1024;

/** The delay before reconnection attempt `attempt` (1-based): exponential, capped, with jitter. */
export function backoffDelay(attempt: number, options: ReconnectOptions, random: () => number = Math.random): number {
  const exponential = options.initialDelayMs * options.factor ** Math.max(0, attempt - 1);
  const capped = Math.min(options.maxDelayMs, exponential);
  return Math.round(capped * (1 - options.jitter * random()));
}

function checkReconnectOptions(options: ReconnectOptions): ReconnectOptions {
  const problems: string[] = [];
  if (!(options.initialDelayMs >= 0)) problems.push('initialDelayMs must be >= 0');
  if (!(options.maxDelayMs >= options.initialDelayMs)) problems.push('maxDelayMs must be >= initialDelayMs');
  if (!(options.factor >= 1)) problems.push('factor must be >= 1');
  if (!(options.jitter >= 0 && options.jitter <= 1)) problems.push('jitter must be between 0 and 1');
  if (!(options.maxAttempts >= 1)) problems.push('maxAttempts must be >= 1');
  if (problems.length > 0) throw new RangeError(`invalid reconnect options: ${problems.join('; ')}`);
  return Object.freeze({ ...options });
}

// ---- parsing what the registry sends (untrusted until here) ----

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readPeer(value: unknown): PeerRecord | undefined {
  if (!isRecord(value)) return undefined;
  const { nickname, address, port, publicKey, keyType, registeredAt } = value;
  if (
    typeof nickname !== 'string' ||
    typeof address !== 'string' ||
    typeof port !== 'number' ||
    typeof publicKey !== 'string' ||
    (keyType !== 'ed25519' && keyType !== 'rsa') ||
    typeof registeredAt !== 'string'
  ) {
    return undefined;
  }
  return { nickname, address, port, publicKey, keyType, registeredAt };
}

function readHello(frame: Json): Hello | undefined {
  const { type, protocol, challenge, onion, limits } = frame;
  if (type !== 'hello' || typeof protocol !== 'number' || typeof challenge !== 'string') return undefined;
  if (onion !== null && typeof onion !== 'string') return undefined;
  const max = isRecord(limits) && typeof limits.maxMessageBytes === 'number' ? limits.maxMessageBytes : 16_384;
  return { protocol, challenge, onion, maxMessageBytes: max };
}

function readEvent(frame: Json): RegistryEvent | undefined {
  switch (frame.type) {
    case 'peer_joined': {
      const peer = readPeer(frame.peer);
      return peer === undefined ? undefined : { type: 'peer_joined', peer };
    }
    case 'peer_left':
      return typeof frame.nickname === 'string' ? { type: 'peer_left', nickname: frame.nickname } : undefined;
    case 'replaced':
      return { type: 'replaced' };
    default:
      return undefined;
  }
}

function decodeFrame(data: RawData): Json | undefined {
  try {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Turns a failure to connect (ws, net or SOCKS error) into a RegistryError that says what to do. */
function connectError(err: Error, url: string, socks: SocksProxy | undefined): RegistryError {
  if (err instanceof RegistryError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const via = socks === undefined ? '' : ' through the SOCKS proxy';
  let hint = 'check the URL and that the registry is running';
  if (code === 'ECONNREFUSED') hint = 'nothing listens there: is the registry running, and the port right?';
  else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') hint = 'the host name does not resolve';
  else if (/Unexpected server response: 404/.test(err.message)) hint = 'that is an HTTP server but not the registry\'s WebSocket path: use ws://host:port/';
  else if (/Unexpected server response: 503/.test(err.message)) hint = 'the registry is at its connection limit: retry later';
  return new RegistryError('CONNECT_FAILED', `cannot connect to the registry at ${url}${via}: ${err.message}; ${hint}`, { cause: err });
}

function isConnectionLevel(err: unknown): boolean {
  return err instanceof RegistryError && !err.fromServer;
}

interface Pending {
  readonly expect: string;
  readonly resolve: (frame: Json) => void;
  readonly reject: (err: RegistryError) => void;
  readonly timer: NodeJS.Timeout;
}

/** Request body fields other than `type` and `id`. */
type Body = Record<string, string | number | null>;

export class RegistryClient extends EventEmitter<RegistryClientEvents> {
  readonly url: string;
  private readonly identity: PeerIdentity | undefined;
  private readonly socks: SocksProxy | undefined;
  private readonly agent: SocksAgent | undefined;
  private readonly connectTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly livenessTimeoutMs: number;
  private readonly reconnectOptions: ReconnectOptions | null;

  private currentState: ClientState = 'idle';
  private ws: WebSocket | null = null;
  private currentHello: Hello | null = null;
  private connecting: Promise<Hello> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Frames (and pings) received on the current connection: a request timing out with none is a dead link. */
  private received = 0;
  private livenessTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  /** What to restore after a reconnect. */
  private wanted: Registration | null = null;
  private wantSubscribed = false;
  private peer: PeerRecord | null = null;
  private wasReplaced = false;
  private closing: Promise<void> | null = null;

  constructor(options: RegistryClientOptions) {
    super();
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new RegistryError('BAD_URL', `registry URL "${options.url}" is not a URL: use ws://<host>:<port>/`);
    }
    if (url.protocol !== 'ws:') {
      throw new RegistryError('BAD_URL', `registry URL must start with ws:// (got ${url.protocol}//): use ws://<host>:<port>/`);
    }
    if (url.hostname.toLowerCase().endsWith('.onion') && options.socks === undefined) {
      // Never hand an .onion name to the local resolver: that leaks which service we look for.
      throw new RegistryError('SOCKS_REQUIRED', `${url.hostname} is an onion address: connect through tor with a SOCKS proxy (e.g. socks 127.0.0.1:9050)`);
    }
    this.url = url.href;
    this.identity = options.identity;
    this.socks = options.socks;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.livenessTimeoutMs = options.livenessTimeoutMs ?? DEFAULT_LIVENESS_TIMEOUT_MS;
    this.reconnectOptions = options.reconnect === false ? null : checkReconnectOptions({ ...DEFAULT_RECONNECT, ...options.reconnect });
    this.agent = options.socks === undefined ? undefined : new SocksAgent(options.socks, { socksTimeoutMs: this.connectTimeoutMs });
  }

  /** Creates a client and connects it. */
  static async connect(options: RegistryClientOptions): Promise<RegistryClient> {
    const client = new RegistryClient(options);
    try {
      await client.connect();
    } catch (err) {
      await client.close();
      throw err;
    }
    return client;
  }

  get state(): ClientState {
    return this.currentState;
  }

  /** The current connection's greeting (null while not connected). */
  get hello(): Hello | null {
    return this.currentHello;
  }

  /** This connection's registration, if any. */
  get registration(): PeerRecord | null {
    return this.peer;
  }

  /** Connects once (no retry: reconnection only applies to a connection that was up). */
  connect(): Promise<Hello> {
    if (this.currentState === 'closed') return Promise.reject(new RegistryError('CLOSED', 'the client is closed'));
    if (this.currentState === 'open' && this.currentHello !== null) return Promise.resolve(this.currentHello);
    if (this.connecting !== null) return this.connecting;
    if (this.currentState === 'reconnecting') return this.nextReconnect();
    this.currentState = 'connecting';
    const connecting = this.open().then(
      (hello) => {
        this.connecting = null;
        this.currentState = 'open';
        return hello;
      },
      (err: unknown) => {
        this.connecting = null;
        if (this.currentState === 'connecting') this.currentState = 'idle';
        throw err;
      },
    );
    this.connecting = connecting;
    return connecting;
  }

  /** Resolves with the next successful reconnection's hello; rejects if the client closes first. */
  private nextReconnect(): Promise<Hello> {
    return new Promise<Hello>((resolve, reject) => {
      const onReconnected = (): void => {
        this.off('closed', onClosed);
        if (this.currentHello !== null) resolve(this.currentHello);
        else reject(this.notConnected());
      };
      const onClosed = (error: RegistryError | null): void => {
        this.off('reconnected', onReconnected);
        reject(error ?? new RegistryError('CLOSED', 'the client was closed'));
      };
      this.once('reconnected', onReconnected);
      this.once('closed', onClosed);
    });
  }

  /** Registers this peer, signing the connection's challenge with the identity. */
  async register(registration: Registration): Promise<PeerRecord> {
    const peer = await this.sendRegister(registration);
    this.wanted = { nickname: registration.nickname, address: registration.address, port: registration.port };
    return peer;
  }

  async unregister(): Promise<void> {
    await this.request('unregister', {}, 'unregistered');
    this.wanted = null;
    this.peer = null;
  }

  async lookup(nickname: string): Promise<PeerRecord> {
    const frame = await this.request('lookup', { nickname }, 'peer');
    return this.peerOf(frame.peer);
  }

  /** One page of peers in case-insensitive nickname order, after `after` (exclusive). */
  async listPage(options: { readonly after?: string | null; readonly limit?: number } = {}): Promise<PeerPage> {
    const body: Body = {};
    if (options.after !== undefined && options.after !== null) body.after = options.after;
    if (options.limit !== undefined) body.limit = options.limit;
    const frame = await this.request('list', body, 'peers');
    const { peers, next } = frame;
    if (!Array.isArray(peers) || (next !== null && typeof next !== 'string')) {
      throw new RegistryError('BAD_RESPONSE', 'the registry sent a malformed "peers" reply');
    }
    return { peers: peers.map((p) => this.peerOf(p)), next };
  }

  /** Every peer, following `next` across pages. */
  async list(pageSize?: number): Promise<PeerRecord[]> {
    const all: PeerRecord[] = [];
    let after: string | null = null;
    for (;;) {
      const page: PeerPage = await this.listPage(pageSize === undefined ? { after } : { after, limit: pageSize });
      all.push(...page.peers);
      if (page.next === null || page.next === after) return all;
      after = page.next;
    }
  }

  /** Subscribes to peer_joined / peer_left; they arrive as events (and through `events()`). */
  async subscribe(): Promise<void> {
    await this.request('subscribe', {}, 'subscribed');
    this.wantSubscribed = true;
  }

  /** Round-trip time in milliseconds. */
  async ping(): Promise<number> {
    const started = performance.now();
    await this.request('ping', {}, 'pong');
    return performance.now() - started;
  }

  /**
   * The registry's events as an async iterator, from now until the client closes. Leaving the
   * loop (break/return) stops the iterator.
   */
  events(): AsyncIterableIterator<RegistryEvent> {
    const queue: RegistryEvent[] = [];
    let wake: (() => void) | null = null;
    let ended = false;
    const onEvent = (event: RegistryEvent): void => {
      queue.push(event);
      wake?.();
    };
    const stop = (): void => {
      ended = true;
      this.off('event', onEvent);
      this.off('closed', stop);
      wake?.();
    };
    this.on('event', onEvent);
    this.on('closed', stop);
    const iterator: AsyncIterableIterator<RegistryEvent> = {
      [Symbol.asyncIterator]: () => iterator,
      next: async () => {
        while (queue.length === 0 && !ended) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = null;
        }
        const value = queue.shift();
        return value === undefined ? { done: true, value: undefined } : { done: false, value };
      },
      return: () => {
        stop();
        queue.length = 0;
        return Promise.resolve({ done: true, value: undefined });
      },
    };
    return iterator;
  }

  /** Closes the connection (1000) and stops reconnecting; pending requests fail with CLOSED. */
  close(): Promise<void> {
    this.closing ??= this.shutdown(null);
    return this.closing;
  }

  // ---- connection ----

  /** Opens one WebSocket and waits for the hello. */
  private open(): Promise<Hello> {
    return new Promise<Hello>((resolve, reject) => {
      const ws = new WebSocket(this.url, {
        ...(this.agent === undefined ? {} : { agent: this.agent }),
        handshakeTimeout: this.connectTimeoutMs,
        perMessageDeflate: false,
        maxPayload: MAX_PAYLOAD_BYTES,
      });
      this.ws = ws;
      this.received = 0;
      let greeted = false;
      let failure: RegistryError | null = null;
      const fail = (err: RegistryError): void => {
        failure ??= err;
        if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
      };
      const timer = setTimeout(() => {
        fail(
          new RegistryError(
            'TIMEOUT',
            `no hello from the registry at ${this.url} within ${this.connectTimeoutMs} ms: check the URL${this.socks === undefined ? '' : ' and that tor has bootstrapped'}, or retry`,
          ),
        );
      }, this.connectTimeoutMs);

      ws.on('error', (err) => {
        if (!greeted) failure ??= connectError(err, this.url, this.socks);
        // After the hello, ws closes the socket itself and 'close' reports it.
      });
      ws.on('ping', () => this.touch());
      ws.on('pong', () => this.touch());
      ws.on('message', (data) => {
        if (greeted) {
          this.onFrame(data);
          return;
        }
        const frame = decodeFrame(data);
        const hello = frame === undefined ? undefined : readHello(frame);
        if (hello === undefined) {
          fail(new RegistryError('BAD_RESPONSE', `${this.url} did not greet with a registry hello: is it the registry?`));
          return;
        }
        if (hello.protocol !== PROTOCOL_VERSION) {
          fail(new RegistryError('PROTOCOL_MISMATCH', `the registry speaks protocol ${hello.protocol}, this client ${PROTOCOL_VERSION}: upgrade the client`));
          return;
        }
        greeted = true;
        clearTimeout(timer);
        this.currentHello = hello;
        this.startLiveness();
        resolve(hello);
      });
      ws.on('close', (code, reason) => {
        if (greeted) {
          this.onClose(ws, code, reason.toString('utf8'));
          return;
        }
        clearTimeout(timer);
        if (this.ws === ws) this.ws = null;
        if (this.currentState === 'closed') failure = new RegistryError('CLOSED', 'the client was closed while connecting');
        reject(failure ?? new RegistryError('CONNECT_FAILED', `the registry at ${this.url} closed the connection before its hello (close code ${code})`));
      });
    });
  }

  /**
   * Watches the connection: the client pings the server itself (the server's heartbeat interval is
   * not announced), and a connection with no frame, ping or pong for livenessTimeoutMs is dropped.
   */
  private startLiveness(): void {
    this.stopLiveness();
    const ws = this.ws;
    if (this.livenessTimeoutMs <= 0 || ws === null) return;
    this.livenessTimer = setTimeout(() => {
      if (this.ws === ws) ws.terminate();
    }, this.livenessTimeoutMs);
    this.pingTimer = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.ping();
    }, Math.max(1, Math.floor(this.livenessTimeoutMs / 3)));
    this.livenessTimer.unref();
    this.pingTimer.unref();
  }

  private stopLiveness(): void {
    clearTimeout(this.livenessTimer);
    clearInterval(this.pingTimer);
    this.livenessTimer = undefined;
    this.pingTimer = undefined;
  }

  private touch(): void {
    this.received += 1;
    this.livenessTimer?.refresh();
  }

  private onFrame(data: RawData): void {
    this.touch();
    const frame = decodeFrame(data);
    if (frame === undefined) return;
    const id = frame.id;
    if (typeof id === 'number') {
      const pending = this.pending.get(id);
      if (pending === undefined) return;
      this.pending.delete(id);
      clearTimeout(pending.timer);
      if (frame.type === 'error') {
        const message = typeof frame.message === 'string' ? frame.message : 'the registry refused the request';
        // A code of a later protocol revision is still a refusal: reported with the code in its text.
        pending.reject(
          isErrorCode(frame.code)
            ? new RegistryError(frame.code, message)
            : new RegistryError('BAD_RESPONSE', `the registry refused with code ${JSON.stringify(frame.code)}: ${message}`),
        );
      } else if (frame.type === pending.expect) {
        pending.resolve(frame);
      } else {
        pending.reject(new RegistryError('BAD_RESPONSE', `expected "${pending.expect}" from the registry, got "${String(frame.type)}"`));
      }
      return;
    }
    const event = readEvent(frame);
    if (event === undefined) return;
    if (event.type === 'replaced') {
      this.wasReplaced = true;
      this.emit('replaced');
    } else if (event.type === 'peer_joined') {
      this.emit('peer_joined', event.peer);
    } else {
      this.emit('peer_left', event.nickname);
    }
    this.emit('event', event);
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.ws = null;
    this.currentHello = null;
    this.peer = null;
    this.stopLiveness();
    this.rejectAll(new RegistryError('CONNECTION_CLOSED', `the connection to the registry closed (code ${code}) before the reply`));
    if (this.currentState === 'closed') return;

    if (this.wasReplaced || code === CloseCode.REPLACED) {
      // Another live connection holds our key: reconnecting would only take it back and forth.
      this.emit('disconnected', { code, reason, willReconnect: false });
      void this.shutdown(new RegistryError('REPLACED', 'another connection registered with this key, and the registry closed this one'));
      return;
    }
    if (this.reconnectOptions === null) {
      this.emit('disconnected', { code, reason, willReconnect: false });
      void this.shutdown(new RegistryError('CONNECTION_CLOSED', `the connection to the registry closed (code ${code})`));
      return;
    }
    this.currentState = 'reconnecting';
    this.emit('disconnected', { code, reason, willReconnect: true });
    this.scheduleReconnect(null);
  }

  private scheduleReconnect(error: RegistryError | null): void {
    const options = this.reconnectOptions as ReconnectOptions;
    this.attempt += 1;
    if (this.attempt > options.maxAttempts) {
      const detail = error === null ? '' : `: ${error.message}`;
      void this.shutdown(new RegistryError('RECONNECT_FAILED', `gave up reconnecting after ${options.maxAttempts} attempts${detail}`, { cause: error }));
      return;
    }
    const delayMs = backoffDelay(this.attempt, options);
    this.emit('reconnecting', { attempt: this.attempt, delayMs, error });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.reconnect();
    }, delayMs);
  }

  private async reconnect(): Promise<void> {
    try {
      await this.open();
    } catch (err) {
      if (this.currentState !== 'closed') this.scheduleReconnect(err as RegistryError);
      return;
    }
    if (this.currentState === 'closed') return;
    const ws = this.ws;
    this.currentState = 'open';
    let registered: PeerRecord | null = null;
    try {
      if (this.wanted !== null) {
        try {
          registered = await this.sendRegister(this.wanted);
        } catch (err) {
          if (isConnectionLevel(err) || TRANSIENT_SERVER_CODES.has((err as RegistryError).code)) throw err;
          this.wanted = null;
          this.emit('registration_lost', err as RegistryError);
        }
      }
      if (this.wantSubscribed) await this.request('subscribe', {}, 'subscribed');
    } catch {
      // The new connection is not usable yet: drop it and let the backoff continue.
      if (ws !== null && this.ws === ws) ws.terminate();
      return;
    }
    const attempt = this.attempt;
    this.attempt = 0;
    this.emit('reconnected', { attempt, registered, subscribed: this.wantSubscribed });
  }

  private async shutdown(error: RegistryError | null): Promise<void> {
    if (this.currentState === 'closed') return;
    this.currentState = 'closed';
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.stopLiveness();
    this.rejectAll(error ?? new RegistryError('CLOSED', 'the client was closed'));
    this.agent?.destroy();
    const ws = this.ws;
    if (ws !== null && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        const grace = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
        ws.once('close', () => {
          clearTimeout(grace);
          resolve();
        });
        if (ws.readyState === WebSocket.OPEN) ws.close(CloseCode.NORMAL, 'client closing');
        else ws.terminate();
      });
    }
    this.ws = null;
    this.currentHello = null;
    this.peer = null;
    this.emit('closed', error);
  }

  // ---- requests ----

  private async sendRegister(registration: Registration): Promise<PeerRecord> {
    if (this.identity === undefined) {
      throw new RegistryError('NO_IDENTITY', 'register needs an identity: pass `identity` (see loadOrCreateIdentity)');
    }
    const hello = this.currentHello;
    if (hello === null) throw this.notConnected();
    const { nickname, address, port } = registration;
    const body: Body = {
      nickname,
      address,
      port,
      publicKey: this.identity.publicKeyPem,
      signature: this.identity.sign(hello.challenge, nickname, address, port),
    };
    const frame = await this.request('register', body, 'registered');
    this.peer = this.peerOf(frame.peer);
    return this.peer;
  }

  private notConnected(): RegistryError {
    const why = this.currentState === 'reconnecting' ? 'reconnecting: retry after the "reconnected" event' : `state ${this.currentState}: call connect() first`;
    return new RegistryError(this.currentState === 'closed' ? 'CLOSED' : 'NOT_CONNECTED', `not connected to the registry (${why})`);
  }

  private peerOf(value: unknown): PeerRecord {
    const peer = readPeer(value);
    if (peer === undefined) throw new RegistryError('BAD_RESPONSE', 'the registry sent a malformed peer object');
    return peer;
  }

  private request(type: string, body: Body, expect: string): Promise<Json> {
    const ws = this.ws;
    if (ws === null || this.currentHello === null || ws.readyState !== WebSocket.OPEN) return Promise.reject(this.notConnected());
    const id = this.nextId++;
    const receivedAtSend = this.received;
    return new Promise<Json>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RegistryError('TIMEOUT', `no reply to "${type}" within ${this.requestTimeoutMs} ms`));
        // Nothing at all came back since: the link is dead, so reconnect instead of waiting.
        if (this.received === receivedAtSend && this.ws === ws) ws.terminate();
      }, this.requestTimeoutMs);
      this.pending.set(id, { expect, resolve, reject, timer });
      ws.send(JSON.stringify({ ...body, type, id }));
    });
  }

  private rejectAll(error: RegistryError): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.pending.clear();
  }
}
