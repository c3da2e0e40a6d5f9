/**
 * The client's events: what a RegistryClient emits, the registry's events passed on as they
 * arrive, and the same events as an async iterator.
 */
import type { EventEmitter } from 'node:events';
import { RegistryError } from '../protocol/errors.js';
import type { RegistryEvent } from '../protocol/reply-parser.js';
import type { ClientContext } from './client-context.js';
import type { RegistryClientEvents } from './event-types.js';

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
    case 'blocked':
      ctx.blockedReason = event.reason ?? '';
      ctx.events.emit('blocked', event.reason);
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
    if (!Number.isSafeInteger(maxQueued) || maxQueued < 1)
      throw new RangeError(`maxQueued must be a whole number of at least 1, not ${String(maxQueued)}`);
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
      throw new RegistryError(
        'EVENTS_BEHIND',
        `events() fell more than ${this.maxQueued} events behind its reader and stopped: list the peers again and ` +
          `start a new events() (or read faster, or raise maxQueued)`,
      );
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
