/**
 * A peer's client for the registry (PROTOCOL.md v1): direct or through a SOCKS5 proxy (tor),
 * promise-based requests matched by `id`, events, and reconnection with backoff that restores the
 * registration and the subscription.
 *
 * This class is the facade: the parts live beside it (options, transport, liveness, requests,
 * session, reconnect, events) and share one ClientContext.
 */
import { EventEmitter } from 'node:events';
import { RegistryError } from '../protocol/errors.js';
import type { PeerRecord } from '../protocol/messages.js';
import { expectPeer, expectPeerPage, type Frame, type Hello, type PeerPage, type RegistryEvent } from '../protocol/reply-parser.js';
import { createContext, type ClientContext, type ClientState, type Registration } from './client-context.js';
import { EventStream, type RegistryClientEvents } from './events.js';
import { resolveOptions, type RegistryClientOptions } from './options.js';
import { Reconnector } from './reconnect.js';
import { sendRetryingOnce, type RequestBody } from './requests.js';
import { forgetConnection, notConnected, openConnection, request, routeFrame, sendRegister, shutdown } from './session.js';
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

  /** This connection's registration, if any. */
  get registration(): PeerRecord | null {
    return this.ctx.peer;
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

  /** Registers this peer, signing the connection's challenge with the identity. */
  async register(registration: Registration): Promise<PeerRecord> {
    const peer = await sendRegister(this.ctx, registration);
    this.ctx.wanted = { nickname: registration.nickname, address: registration.address, port: registration.port };
    return peer;
  }

  async unregister(): Promise<void> {
    await request(this.ctx, 'unregister', {}, 'unregistered');
    this.ctx.wanted = null;
    this.ctx.peer = null;
  }

  async lookup(nickname: string): Promise<PeerRecord> {
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
   * loop (break/return) stops the iterator.
   */
  events(): AsyncIterableIterator<RegistryEvent> {
    return new EventStream(this);
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
