/**
 * Fans peer_joined / peer_left out to subscribers. Events are serialised once, held for up to
 * `batchMs` so bursts go out together, and always delivered in the order they happened.
 */
import type { ServerMessage } from '../protocol/messages.js';

export interface Subscriber {
  /** Sends one already-serialised text frame. */
  deliver(frame: Buffer): void;
}

interface QueuedEvent {
  readonly seq: number;
  readonly origin: unknown;
  readonly frame: Buffer;
}

export class EventHub {
  /** Each subscriber with the sequence number of the last event it must NOT see. */
  private readonly subscribers = new Map<Subscriber, number>();
  private queue: QueuedEvent[] = [];
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly batchMs: number) {}

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  has(subscriber: Subscriber): boolean {
    return this.subscribers.has(subscriber);
  }

  /** Subscribes to every event published from now on. */
  subscribe(subscriber: Subscriber): void {
    if (!this.subscribers.has(subscriber)) this.subscribers.set(subscriber, this.seq);
  }

  unsubscribe(subscriber: Subscriber): void {
    this.subscribers.delete(subscriber);
  }

  /** Queues an event; `origin` (the subscriber the event is about) never receives it. */
  publish(origin: unknown, event: Extract<ServerMessage, { type: 'peer_joined' | 'peer_left' }>): void {
    if (this.subscribers.size === 0) {
      this.seq += 1;
      return;
    }
    this.queue.push({ seq: ++this.seq, origin, frame: Buffer.from(JSON.stringify(event)) });
    if (this.batchMs === 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.batchMs);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const events = this.queue;
    this.queue = [];
    if (events.length === 0) return;
    for (const [subscriber, since] of this.subscribers) {
      for (const event of events) {
        if (event.seq > since && event.origin !== subscriber) subscriber.deliver(event.frame);
      }
    }
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue = [];
    this.subscribers.clear();
  }
}
