/**
 * A peer's client for the registry (PROTOCOL.md v1, revision 2): direct or through a SOCKS5 proxy
 * (tor), promise-based requests matched by `id`, events, and reconnection with backoff that
 * restores the registration and the subscription. Against a revision-1 registry the rev-2 parts
 * are simply absent: no features, no claim, addressVerified false.
 *
 * Closes that end the client for good (no reconnecting): 4001 replaced (our key registered on
 * another connection: reconnecting would take it back and forth) and 4002 evicted (the address's
 * owner proved it: registering again would be refused).
 *
 * This class is the facade: the parts live beside it (options, transport, liveness, requests,
 * session, reconnect, events) and share one ClientContext.
 */
import { EventEmitter } from 'node:events';
import { RegistryError } from '../protocol/errors.js';
import {
  expectPeer,
  expectPeerPage,
  type Claim,
  type Frame,
  type Hello,
  type Peer,
  type PeerPage,
  type RegistryEvent,
} from '../protocol/reply-parser.js';
import { createContext, type ClientContext, type ClientState, type Registration } from './client-context.js';
import type { RegisteredPeer } from './event-types.js';
import { EventStream, type EventStreamOptions } from './events.js';
import type { RegistryClientEvents } from './event-types.js';
import { resolveOptions, type RegistryClientOptions } from './options.js';
import { Reconnector } from './reconnect.js';
import { sendRetryingOnce, type RequestBody } from './requests.js';
import {
  forgetConnection,
  notConnected,
  openConnection,
  request,
  routeFrame,
  sendRegister,
  shutdown,
} from './session.js';
import type { ConnectionHandlers } from './transport.js';

export class RegistryClient extends EventEmitter<RegistryClientEvents> {
  readonly url: string;
  private readonly ctx: ClientContext;
  private readonly handlers: ConnectionHandlers;
  private readonly reconnector: Reconnector;
  private connecting: Promise<Hello> | null = null;
  private closing: Promise<void> | null = null;

  constructor(options: RegistryClientOptions) {
    super();
    const settings = resolveOptions(options);
    this.url = settings.url;
    const ctx = createContext(settings, this);
    this.ctx = ctx;
    this.handlers = {
      onFrame: (_connection, frame) => routeFrame(ctx, frame),
      onClose: (connection, code, reason) => {
        if (forgetConnection(ctx, connection, code)) this.reconnector.connectionLost(code, reason);
      },
    };
    this.reconnector = new Reconnector(ctx, () => openConnection(ctx, this.handlers));
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
    return this.ctx.state;
  }

  /** The current connection's greeting (null while not connected). */
  get hello(): Hello | null {
    return this.ctx.connection?.hello ?? null;
  }

  /** This connection's registration, if any, with the claim it holds as last reported. */
  get registration(): RegisteredPeer | null {
    return this.ctx.peer;
  }

  /** Rev 2: the claim this registration holds (`registered`, then `claimed`); null when none (yet). */
  get claim(): Claim | null {
    return this.ctx.peer?.claim ?? null;
  }

  /** Connects once (no retry: reconnection only applies to a connection that was up). */
  connect(): Promise<Hello> {
    const ctx = this.ctx;
    const hello = this.hello;
    if (ctx.state === 'closed') return Promise.reject(new RegistryError('CLOSED', 'the client is closed'));
    if (ctx.state === 'open' && hello !== null) return Promise.resolve(hello);
    if (this.connecting !== null) return this.connecting;
    if (ctx.state === 'reconnecting') return this.nextReconnect();
    ctx.state = 'connecting';
    const connecting = openConnection(ctx, this.handlers).then(
      (greeting) => {
        this.connecting = null;
        ctx.state = 'open';
        return greeting;
      },
      (err: unknown) => {
        this.connecting = null;
        if (ctx.state === 'connecting') ctx.state = 'idle';
        throw err;
      },
    );
    this.connecting = connecting;
    return connecting;
  }

  /**
   * Registers this peer, signing the connection's challenge with the identity. With `onionKey`
   * (rev 2) it adds an address proof; ONION_KEY_MISMATCH when that key is not the key of `address`.
   */
  async register(registration: Registration): Promise<RegisteredPeer> {
    const peer = await sendRegister(this.ctx, registration);
    const { nickname, address, port, onionKey } = registration;
    this.ctx.wanted = onionKey === undefined ? { nickname, address, port } : { nickname, address, port, onionKey };
    return peer;
  }

  /**
   * Leaves the registry; the connection stays open. With `release` (rev 2, feature `claims`) the
   * key's claim is deleted too, freeing the nickname and address at once; without, the claim stays.
   */
  async unregister(options: { readonly release?: boolean } = {}): Promise<void> {
    await request(this.ctx, 'unregister', options.release === true ? { release: true } : {}, 'unregistered');
    this.ctx.wanted = null;
    this.ctx.peer = null;
  }

  async lookup(nickname: string): Promise<Peer> {
    const frame = await this.safeRequest('lookup', { nickname }, 'peer');
    return expectPeer(frame.peer);
  }

  /** One page of peers in case-insensitive nickname order, after `after` (exclusive). */
  async listPage(options: { readonly after?: string | null; readonly limit?: number } = {}): Promise<PeerPage> {
    const body: RequestBody = {};
    if (options.after !== undefined && options.after !== null) body.after = options.after;
    if (options.limit !== undefined) body.limit = options.limit;
    return expectPeerPage(await this.safeRequest('list', body, 'peers'));
  }

  /** Every peer, following `next` across pages. */
  async list(pageSize?: number): Promise<Peer[]> {
    const all: Peer[] = [];
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
    await this.safeRequest('subscribe', {}, 'subscribed');
    this.ctx.wantSubscribed = true;
  }

  /** Round-trip time in milliseconds (of the retry, when the first ping was refused with retryAfterMs). */
  async ping(): Promise<number> {
    let started = performance.now();
    await sendRetryingOnce('ping', () => {
      started = performance.now();
      return request(this.ctx, 'ping', {}, 'pong');
    });
    return performance.now() - started;
  }

  /**
   * The registry's events as an async iterator, from now until the client closes. Leaving the
   * loop (break/return) stops the iterator. A reader more than `maxQueued` events (default 10,000)
   * behind gets EVENTS_BEHIND and must list again (events.ts).
   */
  events(options: EventStreamOptions = {}): AsyncIterableIterator<RegistryEvent> {
    return new EventStream(this, options);
  }

  /** Closes the connection (1000) and stops reconnecting; pending requests fail with CLOSED. */
  close(): Promise<void> {
    this.closing ??= shutdown(this.ctx, null);
    return this.closing;
  }

  /** A request that changes nothing: retried once after retryAfterMs when refused with one. */
  private safeRequest(type: string, body: RequestBody, expect: string): Promise<Frame> {
    return sendRetryingOnce(type, () => request(this.ctx, type, body, expect));
  }

  /** Resolves with the next successful reconnection's hello; rejects if the client closes first. */
  private nextReconnect(): Promise<Hello> {
    return new Promise<Hello>((resolve, reject) => {
      const onReconnected = (): void => {
        this.off('closed', onClosed);
        const hello = this.hello;
        if (hello !== null) resolve(hello);
        else reject(notConnected(this.ctx));
      };
      const onClosed = (error: RegistryError | null): void => {
        this.off('reconnected', onReconnected);
        reject(error ?? new RegistryError('CLOSED', 'the client was closed'));
      };
      this.once('reconnected', onReconnected);
      this.once('closed', onClosed);
    });
  }
}
