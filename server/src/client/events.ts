/**
 * The client's events: what a RegistryClient emits, the registry's events passed on as they
 * arrive, and the same events as an async iterator.
 */
import type { EventEmitter } from 'node:events';
import { RegistryError } from '../protocol/errors.js';
import type { Claim, Peer, RegistryEvent } from '../protocol/reply-parser.js';
import type { ClientContext, RegisteredPeer } from './client-context.js';

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
  readonly registered: RegisteredPeer | null;
  readonly subscribed: boolean;
}

export interface RegistryClientEvents {
  peer_joined: [peer: Peer];
  peer_left: [nickname: string];
  /** Another connection registered with this client's key; the registry closes this one (4001). */
  replaced: [];
  /** Rev 2: the claim on this registration's nickname and address was made (also in `registration.claim`). */
  claimed: [claim: Claim];
  /**
   * Rev 2: the onion address's owner registered it with an address proof; the registry closes this
   * connection (4002) and the client closes with EVICTED, without reconnecting.
   */
  evicted: [reason: string];
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

/** Emits a registry event under its own name, then as `event`. */
export function emitRegistryEvent(ctx: ClientContext, event: RegistryEvent): void {
  switch (event.type) {
    case 'replaced':
      ctx.wasReplaced = true;
      ctx.events.emit('replaced');
      break;
    case 'evicted':
      ctx.evictedReason = event.reason;
      ctx.events.emit('evicted', event.reason);
      break;
    case 'claimed':
      // A claim is about this connection's registration; without one there is nothing to update.
      if (ctx.peer !== null) ctx.peer = { ...ctx.peer, claim: event.claim };
      ctx.events.emit('claimed', event.claim);
      break;
    case 'peer_joined':
      ctx.events.emit('peer_joined', event.peer);
      break;
    case 'peer_left':
      ctx.events.emit('peer_left', event.nickname);
      break;
  }
  ctx.events.emit('event', event);
}

/** How many events an events() iterator holds for a reader that has not taken them yet. */
export const DEFAULT_MAX_QUEUED_EVENTS = 10_000;

export interface EventStreamOptions {
  /** Events held for the reader; one more and the iterator stops with EVENTS_BEHIND. Default 10,000. */
  readonly maxQueued?: number;
}

/**
 * The registry's events as an async iterator, from the moment it is made until the client closes.
 * Leaving the loop (break/return) stops it. Events are never dropped one by one, since a reader
 * that applies them to a list would then be silently wrong: a reader that falls more than
 * `maxQueued` events behind gets EVENTS_BEHIND instead (the held events are let go), and must list
 * again, as a subscriber the registry cut off does.
 */
export class EventStream implements AsyncIterableIterator<RegistryEvent, undefined> {
  /** Bounded by maxQueued, so taking from its front stays cheap. */
  private readonly queue: RegistryEvent[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  private behind = false;
  private readonly maxQueued: number;

  constructor(
    private readonly events: EventEmitter<RegistryClientEvents>,
    options: EventStreamOptions = {},
  ) {
    const maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED_EVENTS;
    if (!Number.isSafeInteger(maxQueued) || maxQueued < 1) throw new RangeError(`maxQueued must be a whole number of at least 1, not ${String(maxQueued)}`);
    this.maxQueued = maxQueued;
    events.on('event', this.onEvent);
    events.on('closed', this.stop);
  }

  /** Events received and not taken yet. */
  get queued(): number {
    return this.queue.length;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<RegistryEvent, undefined>> {
    while (this.queued === 0 && !this.ended) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
    if (this.behind) {
      this.behind = false; // said once; the iterator is done after that
      throw new RegistryError('EVENTS_BEHIND', `events() fell more than ${this.maxQueued} events behind its reader and stopped: list the peers again and start a new events() (or read faster, or raise maxQueued)`);
    }
    const value = this.queue.shift();
    return value === undefined ? { done: true, value: undefined } : { done: false, value };
  }

  return(): Promise<IteratorResult<RegistryEvent, undefined>> {
    this.stop();
    this.queue.length = 0;
    this.behind = false;
    return Promise.resolve({ done: true, value: undefined });
  }

  private readonly onEvent = (event: RegistryEvent): void => {
    if (this.queue.length >= this.maxQueued) {
      this.queue.length = 0;
      this.behind = true;
      this.stop();
      return;
    }
    this.queue.push(event);
    this.wake?.();
  };

  private readonly stop = (): void => {
    this.ended = true;
    this.events.off('event', this.onEvent);
    this.events.off('closed', this.stop);
    this.wake?.();
  };
}
