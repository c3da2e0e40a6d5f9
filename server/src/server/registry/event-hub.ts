/**
 * Fans peer_joined / peer_left out to subscribers. Each event is serialised and framed once, into a
 * shared log; each subscriber only has a cursor (the last event it has seen or must not see). Events
 * are held for up to `batchMs` so bursts go out together, then delivered in passes: a pass brings
 * every subscriber up to the same event with ONE write each (its pending frames back to back), and
 * runs in slices of the fair scheduler's turns so that a large fan-out delays a request by at most
 * about one slice. Every subscriber gets every event once, in the order they happened.
 */
import type { ServerMessage } from '../../protocol/messages.js';
import type { SlicedWork } from '../scheduling/fair-scheduler.js';

export interface Subscriber {
  /** Writes bytes holding one or more whole WebSocket text frames, already framed. */
  deliver(wire: Buffer): void;
}

/** What the hub needs of the fair scheduler: a slice of a later turn, until the work is done. */
export interface SliceSource {
  wake(work: SlicedWork): void;
}

export interface EventHubOptions {
  /** How long an event may wait so that a burst goes out in one pass (0: at the next turn). */
  readonly batchMs: number;
  readonly slices: SliceSource;
}

type HubEvent = Extract<ServerMessage, { type: 'peer_joined' | 'peer_left' }>;

interface LoggedEvent {
  /** The subscriber the event is about: it never receives it. */
  readonly origin: unknown;
  /** The whole WebSocket frame, shared by every subscriber. */
  readonly wire: Buffer;
}

interface Subscription {
  /** Sequence number of the last event this subscriber has been sent or must not see. */
  cursor: number;
}

/** The frames after one cursor up to the pass's end, joined once for every subscriber at that cursor. */
interface Segment {
  readonly bytes: Buffer;
  readonly origins: ReadonlySet<unknown>;
}

/** An unmasked, unfragmented WebSocket text frame (RFC 6455 5.2), as a server sends it. */
export function textFrame(payload: Buffer): Buffer {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = 0x81; // FIN, opcode 1 (text)
  if (length < 126) frame[1] = length;
  else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  payload.copy(frame, header);
  return frame;
}

export class EventHub implements SlicedWork {
  private readonly subscribers = new Map<Subscriber, Subscription>();
  /** Events some subscriber may still need: log[i] has sequence number logStart + i. */
  private log: LoggedEvent[] = [];
  private logStart = 1;
  private seq = 0;
  /** Events up to this one may be delivered (the batch timer moves it). */
  private released = 0;
  /** The pass in progress brings the subscribers in `due` up to this event. */
  private passEnd = 0;
  private due: Subscriber[] = [];
  private dueIndex = 0;
  private segments = new Map<number, Segment>();
  private timer: NodeJS.Timeout | undefined;
  private readonly batchMs: number;
  private readonly slices: SliceSource;
  private readonly release = (): void => {
    this.timer = undefined;
    this.released = this.seq;
    this.slices.wake(this);
  };

  constructor(options: EventHubOptions) {
    this.batchMs = options.batchMs;
    this.slices = options.slices;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Events held in the shared log (for tests and stats). */
  get loggedEvents(): number {
    return this.log.length;
  }

  /** Events published since the start (peer_joined, peer_left). */
  get published(): number {
    return this.seq;
  }

  /** Writes to subscribers since the start, and their bytes (one write carries a batch of events). */
  deliveries = 0;
  deliveredBytes = 0;

  /** Subscribes to every event published from now on. */
  subscribe(subscriber: Subscriber): void {
    if (!this.subscribers.has(subscriber)) this.subscribers.set(subscriber, { cursor: this.seq });
  }

  /** Ends a subscription at once, even in the middle of a pass. */
  unsubscribe(subscriber: Subscriber): void {
    this.subscribers.delete(subscriber);
    if (this.subscribers.size === 0) this.forget();
  }

  /** Logs an event; `origin` (the subscriber the event is about) never receives it. */
  publish(origin: unknown, event: HubEvent): void {
    this.seq += 1;
    if (this.subscribers.size === 0) {
      this.forget();
      return;
    }
    this.log.push({ origin, wire: textFrame(Buffer.from(JSON.stringify(event))) });
    if (this.batchMs === 0) this.release();
    else this.timer ??= setTimeout(this.release, this.batchMs);
  }

  /**
   * One slice of delivery (called by the fair scheduler): writes to subscribers until `overdue()`
   * or nothing is left. True while work is left for a later slice.
   */
  runSlice(overdue: () => boolean): boolean {
    for (;;) {
      if (this.dueIndex >= this.due.length && !this.startPass()) return false;
      const subscriber = this.due[this.dueIndex++] as Subscriber;
      this.deliverTo(subscriber);
      if (overdue()) return this.dueIndex < this.due.length || this.released > this.passEnd;
    }
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.subscribers.clear();
    this.forget();
  }

  /**
   * Ends the pass that is done (every subscriber's cursor is now at least its end, so the log up to
   * there is dropped) and starts the next one if events were released meanwhile.
   */
  private startPass(): boolean {
    this.trimLog(this.passEnd);
    this.due = [];
    this.dueIndex = 0;
    this.segments.clear();
    if (this.released <= this.passEnd) return false;
    this.passEnd = this.released;
    for (const [subscriber, subscription] of this.subscribers) {
      if (subscription.cursor < this.passEnd) this.due.push(subscriber);
    }
    return true;
  }

  private deliverTo(subscriber: Subscriber): void {
    const subscription = this.subscribers.get(subscriber);
    // left, or subscribed after this pass began
    if (subscription === undefined || subscription.cursor >= this.passEnd) return;
    const from = subscription.cursor;
    subscription.cursor = this.passEnd;
    const segment = this.segmentAfter(from);
    if (!segment.origins.has(subscriber)) {
      if (segment.bytes.length > 0) this.deliver(subscriber, segment.bytes);
      return;
    }
    // A subscriber that is the origin of some of these events: its own join of the rest.
    const frames: Buffer[] = [];
    for (let seq = from + 1; seq <= this.passEnd; seq += 1) {
      const event = this.event(seq);
      if (event.origin !== subscriber) frames.push(event.wire);
    }
    if (frames.length > 0)
      this.deliver(subscriber, frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames));
  }

  private deliver(subscriber: Subscriber, bytes: Buffer): void {
    this.deliveries += 1;
    this.deliveredBytes += bytes.length;
    subscriber.deliver(bytes);
  }

  /** The frames after `from` up to the end of the pass, joined once per pass. */
  private segmentAfter(from: number): Segment {
    let segment = this.segments.get(from);
    if (segment === undefined) {
      const events = this.log.slice(from + 1 - this.logStart, this.passEnd + 1 - this.logStart);
      segment = {
        bytes: events.length === 1 ? (events[0] as LoggedEvent).wire : Buffer.concat(events.map((e) => e.wire)),
        origins: new Set(events.map((e) => e.origin)),
      };
      this.segments.set(from, segment);
    }
    return segment;
  }

  private event(seq: number): LoggedEvent {
    return this.log[seq - this.logStart] as LoggedEvent;
  }

  /** Drops the events up to `seq` from the log. */
  private trimLog(seq: number): void {
    const drop = Math.min(this.log.length, seq + 1 - this.logStart);
    if (drop <= 0) return;
    this.log.splice(0, drop);
    this.logStart += drop;
  }

  /** No subscribers: nothing logged is needed, and a later subscriber starts from now. */
  private forget(): void {
    this.log = [];
    this.logStart = this.seq + 1;
    this.released = this.seq;
    this.passEnd = this.seq;
    this.due = [];
    this.dueIndex = 0;
    this.segments.clear();
  }
}
