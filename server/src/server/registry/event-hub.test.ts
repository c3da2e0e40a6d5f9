import { describe, expect, it } from 'vitest';
import { EventHub, textFrame, type Subscriber } from './event-hub.js';
import { FairScheduler, SLICE_MS, TURN_BUDGET_MS, type TurnTaker } from '../scheduling/fair-scheduler.js';

/** CPU time one write to a subscriber takes on the fake clock: ten writes fill a slice. */
const WRITE_MS = SLICE_MS / 10;

/** The text frames in `wire`, decoded (server frames: unmasked). */
function decodeFrames(wire: Buffer): string[] {
  const texts: string[] = [];
  let at = 0;
  while (at < wire.length) {
    expect(wire[at]).toBe(0x81);
    let length = (wire[at + 1] as number) & 0x7f;
    let header = 2;
    if (length === 126) {
      length = wire.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) {
      length = Number(wire.readBigUInt64BE(at + 2));
      header = 10;
    }
    texts.push(wire.toString('utf8', at + header, at + header + length));
    at += header + length;
  }
  expect(at).toBe(wire.length);
  return texts;
}

/** A connection without a socket, for requests offered between slices. */
const connection = (): TurnTaker => ({
  backlog: [],
  busy: false,
  turnMs: 0,
  excess: 0,
  closed: false,
  readingPaused: false,
  pauseReading() {},
  resumeReading() {},
  close() {},
});

/** A hub on a real FairScheduler with a fake clock; what happened, in order, goes to `timeline`. */
function fakeHub() {
  let clock = 0;
  const turns: Array<() => void> = [];
  const timeline: string[] = [];
  const scheduler = new FairScheduler<TurnTaker>({
    refuseExcess: () => {},
    maxBacklog: 64,
    run: (_conn, data) => {
      timeline.push(`request ${String(data)}`);
      clock += String(data).startsWith('dear') ? 2 * TURN_BUDGET_MS : 0.01;
    },
    now: () => clock,
    scheduleTurn: (turn) => turns.push(turn),
  });
  const hub = new EventHub({ batchMs: 0, slices: scheduler });
  class FakeSubscriber implements Subscriber {
    readonly events: string[] = [];
    writes = 0;
    constructor(readonly name: string) {}
    deliver(wire: Buffer): void {
      clock += WRITE_MS;
      this.writes += 1;
      for (const text of decodeFrames(wire)) {
        const event = JSON.parse(text) as { type: string; nickname?: string; peer?: { nickname: string } };
        this.events.push(`${event.type === 'peer_joined' ? '+' : '-'}${event.peer?.nickname ?? event.nickname ?? '?'}`);
      }
      timeline.push(`deliver ${this.name}`);
    }
  }
  const subscribers = (count: number): FakeSubscriber[] =>
    Array.from({ length: count }, (_, i) => {
      const s = new FakeSubscriber(`s${i}`);
      hub.subscribe(s);
      return s;
    });
  const join = (origin: unknown, nickname: string): void =>
    hub.publish(origin, {
      type: 'peer_joined',
      peer: {
        nickname,
        address: 'x.onion',
        port: 1,
        publicKey: 'k',
        keyType: 'ed25519',
        registeredAt: '',
        addressVerified: false,
      },
    });
  const leave = (origin: unknown, nickname: string): void => hub.publish(origin, { type: 'peer_left', nickname });
  /** Runs the turns the scheduler asks for (as the event loop would) until none is left. */
  const runTurns = (limit = 1_000): number => {
    let n = 0;
    for (; turns.length > 0 && n < limit; n += 1) (turns.shift() as () => void)();
    return n;
  };
  const nextTurn = (): void => {
    expect(turns.length).toBeGreaterThan(0);
    (turns.shift() as () => void)();
  };
  return { hub, scheduler, timeline, turns, subscribers, join, leave, runTurns, nextTurn, FakeSubscriber };
}

describe('event hub', () => {
  it('yields to requests between slices of a fan-out bigger than a slice', () => {
    const { scheduler, timeline, subscribers, join, nextTurn, runTurns } = fakeHub();
    const subs = subscribers(100);
    join(null, 'alice');
    expect(timeline).toEqual([]); // nothing is written inside publish()
    nextTurn();
    const firstSlice = timeline.length;
    expect(firstSlice).toBeGreaterThan(0);
    expect(firstSlice).toBeLessThanOrEqual(SLICE_MS / WRITE_MS + 1);
    // A request that arrives between two slices runs before the rest of the fan-out.
    scheduler.offer(connection(), Buffer.from('ping'), false);
    expect(timeline.at(-1)).toBe('request ping');
    runTurns();
    expect(timeline.filter((t) => t.startsWith('deliver'))).toHaveLength(100);
    expect(subs.every((s) => s.events.join() === '+alice')).toBe(true);
  });

  it('runs held requests at the start of every turn, however long the fan-out', () => {
    const { scheduler, timeline, subscribers, join, nextTurn } = fakeHub();
    subscribers(100);
    join(null, 'alice');
    const conn = connection();
    scheduler.offer(conn, Buffer.from('dear'), false);
    scheduler.offer(conn, Buffer.from('held'), false); // past its share of this turn: waits for the next
    expect(timeline).toEqual(['request dear']);
    nextTurn();
    expect(timeline[1]).toBe('request held');
    expect(timeline.length - 2).toBeLessThanOrEqual(SLICE_MS / WRITE_MS + 1);
  });

  it('sends every subscriber every event once, in order, one write per pass', () => {
    const { hub, subscribers, join, leave, nextTurn, runTurns } = fakeHub();
    const subs = subscribers(30);
    join(null, 'a');
    join(null, 'b');
    nextTurn(); // part of the first pass
    leave(null, 'a'); // published during the pass: goes in the next one
    join(null, 'c');
    runTurns();
    for (const s of subs) {
      expect(s.events).toEqual(['+a', '+b', '-a', '+c']);
      expect(s.writes).toBe(2);
    }
    expect(hub.loggedEvents).toBe(0); // delivered to all: the shared log is empty again
  });

  it('gives a subscriber that subscribes mid-fan-out only the events published after it', () => {
    const { hub, subscribers, join, nextTurn, runTurns, FakeSubscriber } = fakeHub();
    const early = subscribers(30);
    join(null, 'a');
    nextTurn();
    const late = new FakeSubscriber('late');
    hub.subscribe(late);
    join(null, 'b');
    runTurns();
    expect(late.events).toEqual(['+b']);
    expect(early.every((s) => s.events.join() === '+a,+b')).toBe(true);
  });

  it('stops delivering to a subscriber that unsubscribes mid-fan-out', () => {
    const { hub, subscribers, join, nextTurn, runTurns } = fakeHub();
    const subs = subscribers(30);
    join(null, 'a');
    nextTurn();
    const leaver = subs.at(-1) as (typeof subs)[number];
    expect(leaver.events).toEqual([]); // not reached in the first slice
    hub.unsubscribe(leaver);
    join(null, 'b');
    runTurns();
    expect(leaver.events).toEqual([]);
    expect(subs.slice(0, -1).every((s) => s.events.join() === '+a,+b')).toBe(true);
  });

  it('never sends the origin its own event, and still sends it the others in order', () => {
    const { subscribers, join, leave, runTurns } = fakeHub();
    const [self, other] = subscribers(2) as [
      ReturnType<typeof subscribers>[number],
      ReturnType<typeof subscribers>[number],
    ];
    join(null, 'x');
    join(self, 'self');
    leave(null, 'x');
    runTurns();
    expect(self.events).toEqual(['+x', '-x']);
    expect(self.writes).toBe(1);
    expect(other.events).toEqual(['+x', '+self', '-x']);
  });

  it('keeps nothing and asks for no turn when nobody subscribes', () => {
    const { hub, join, turns } = fakeHub();
    join(null, 'a');
    expect(hub.loggedEvents).toBe(0);
    expect(turns).toHaveLength(0);
  });

  it('frames payloads of every length class as one unmasked text frame', () => {
    for (const length of [0, 125, 126, 65_535, 65_536]) {
      const payload = Buffer.alloc(length, 0x61);
      const frame = textFrame(payload);
      expect(decodeFrames(frame)).toEqual([payload.toString()]);
      expect(frame.length).toBe(length + (length < 126 ? 2 : length < 65_536 ? 4 : 10));
    }
  });
});
