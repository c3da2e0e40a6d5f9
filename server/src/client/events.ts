/**
 * The client's events: what a RegistryClient emits, the registry's events passed on as they
 * arrive, and the same events as an async iterator.
 */
import type { EventEmitter } from 'node:events';
import type { RegistryError } from '../protocol/errors.js';
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

/**
 * The registry's events as an async iterator, from the moment it is made until the client closes.
 * Leaving the loop (break/return) stops it.
 */
export class EventStream implements AsyncIterableIterator<RegistryEvent, undefined> {
  private readonly queue: RegistryEvent[] = [];
  private wake: (() => void) | null = null;
  private ended = false;

  constructor(private readonly events: EventEmitter<RegistryClientEvents>) {
    events.on('event', this.onEvent);
    events.on('closed', this.stop);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<RegistryEvent, undefined>> {
    while (this.queue.length === 0 && !this.ended) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
    const value = this.queue.shift();
    return value === undefined ? { done: true, value: undefined } : { done: false, value };
  }

  return(): Promise<IteratorResult<RegistryEvent, undefined>> {
    this.stop();
    this.queue.length = 0;
    return Promise.resolve({ done: true, value: undefined });
  }

  private readonly onEvent = (event: RegistryEvent): void => {
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
