import { describe, expect, it } from 'vitest';
import { FairScheduler, SLICE_MS, TURN_BUDGET_MS, type HeldFrame, type TurnTaker } from './fair-scheduler.js';
import type { Closing } from '../registry/refusals.js';

/** A connection without a socket: records what the scheduler did to it. */
class FakeConnection implements TurnTaker {
  readonly backlog: HeldFrame[] = [];
  busy = false;
  turnMs = 0;
  excess = 0;
  closed = false;
  readingPaused = false;
  readonly closings: Closing[] = [];

  constructor(readonly name: string) {}

  pauseReading(): void {
    this.readingPaused = true;
  }

  resumeReading(): void {
    this.readingPaused = false;
  }

  close(closing: Closing): void {
    this.closings.push(closing);
  }
}

/** A scheduler on a fake clock: each frame's text is the CPU time in ms it takes to handle. */
function fakeScheduler() {
  let clock = 0;
  const advance = (ms: number): void => {
    clock += ms;
  };
  const turns: Array<() => void> = [];
  const ran: string[] = [];
  const scheduler = new FairScheduler<FakeConnection>({
    run: (conn, data) => {
      ran.push(`${conn.name}:${String(data)}`);
      clock += Number(String(data).split('#')[0]);
    },
    refuseExcess: (conn, count) => ran.push(`${conn.name}:refused ${count}`),
    maxBacklog: MAX_BACKLOG,
    now: () => clock,
    scheduleTurn: (turn) => turns.push(turn),
  });
  /** Runs the turn the scheduler asked for (as the event loop would). */
  const nextTurn = (): void => {
    const turn = turns.shift();
    expect(turn).toBeDefined();
    turn?.();
  };
  const offer = (conn: FakeConnection, ...frames: string[]): void => {
    for (const frame of frames) scheduler.offer(conn, Buffer.from(frame), false);
  };
  return { scheduler, ran, turns, nextTurn, offer, advance };
}

/** The backlog's length in these tests (a server's is its RateLimitBurst). */
const MAX_BACKLOG = 64;
const CHEAP = String(TURN_BUDGET_MS / 10);
const DEAR = String(TURN_BUDGET_MS * 1.2);

describe('fair scheduler', () => {
  it('runs frames at once while the connection is within its share of the turn', () => {
    const { ran, offer } = fakeScheduler();
    const conn = new FakeConnection('a');
    offer(conn, `${CHEAP}#1`, `${CHEAP}#2`, `${CHEAP}#3`);
    expect(ran).toEqual([`a:${CHEAP}#1`, `a:${CHEAP}#2`, `a:${CHEAP}#3`]);
    expect(conn.backlog).toHaveLength(0);
    expect(conn.readingPaused).toBe(false);
  });

  it('holds frames past the share for later turns, in order, with the socket paused until they are done', () => {
    const { ran, turns, nextTurn, offer } = fakeScheduler();
    const conn = new FakeConnection('a');
    offer(conn, `${DEAR}#1`, `${CHEAP}#2`, `${DEAR}#3`);
    expect(ran).toEqual([`a:${DEAR}#1`]);
    expect(conn.readingPaused).toBe(true);
    offer(conn, `${CHEAP}#4`); // behind the held ones, although cheap
    nextTurn();
    expect(ran).toEqual([`a:${DEAR}#1`, `a:${CHEAP}#2`, `a:${DEAR}#3`]);
    expect(conn.readingPaused).toBe(true);
    nextTurn();
    expect(ran).toEqual([`a:${DEAR}#1`, `a:${CHEAP}#2`, `a:${DEAR}#3`, `a:${CHEAP}#4`]);
    expect(conn.readingPaused).toBe(false);
    nextTurn(); // the turn the last frame asked for: nothing left
    expect(turns).toHaveLength(0);
  });

  it('asks for one next turn however many frames wait', () => {
    const { turns, offer } = fakeScheduler();
    const a = new FakeConnection('a');
    const b = new FakeConnection('b');
    offer(a, DEAR, DEAR, DEAR);
    offer(b, DEAR, DEAR);
    expect(turns).toHaveLength(1);
  });

  it('holds the frames of a busy connection until it is released, even across turns', () => {
    const { scheduler, ran, nextTurn, offer } = fakeScheduler();
    const conn = new FakeConnection('a');
    offer(conn, `${CHEAP}#register`);
    scheduler.busy(conn);
    offer(conn, `${CHEAP}#1`, `${CHEAP}#2`);
    nextTurn();
    expect(ran).toEqual([`a:${CHEAP}#register`]);
    expect(conn.backlog).toHaveLength(2);
    scheduler.release(conn);
    expect(ran).toEqual([`a:${CHEAP}#register`, `a:${CHEAP}#1`, `a:${CHEAP}#2`]);
    expect(conn.backlog).toHaveLength(0);
  });

  it('gives every connection its whole share again in a new turn', () => {
    const { ran, nextTurn, offer } = fakeScheduler();
    const a = new FakeConnection('a');
    const b = new FakeConnection('b');
    offer(a, `${DEAR}#a1`, `${DEAR}#a2`);
    offer(b, `${DEAR}#b1`);
    expect(b.turnMs).toBeGreaterThanOrEqual(TURN_BUDGET_MS);
    nextTurn();
    expect(ran).toEqual([`a:${DEAR}#a1`, `b:${DEAR}#b1`, `a:${DEAR}#a2`]);
    expect(b.turnMs).toBe(0); // b held nothing, and its share is reset too
    offer(b, `${CHEAP}#b2`);
    expect(ran.at(-1)).toBe(`b:${CHEAP}#b2`);
  });

  it(`refuses the frames past ${MAX_BACKLOG} waiting, in order and without keeping them; keeps the connection`, () => {
    const { scheduler, ran, turns, nextTurn, offer } = fakeScheduler();
    const conn = new FakeConnection('a');
    scheduler.busy(conn);
    offer(conn, ...Array.from({ length: MAX_BACKLOG }, (_, i) => `${CHEAP}#${i}`));
    offer(conn, `${CHEAP}#x`, `${CHEAP}#y`);
    expect(conn.backlog).toHaveLength(MAX_BACKLOG);
    expect(conn.excess).toBe(2);
    scheduler.release(conn);
    // Within one turn's share only part of the backlog runs; the refusal waits behind the rest.
    while (turns.length > 0) nextTurn();
    expect(ran.at(-1)).toBe('a:refused 2');
    expect(ran.at(-2)).toBe(`a:${CHEAP}#${MAX_BACKLOG - 1}`);
    expect(conn.closings).toEqual([]);
    expect(conn.excess).toBe(0);
  });

  it('stops reading a busy connection once it holds a frame, and reads it again once its backlog has run', () => {
    const { scheduler, ran, turns, nextTurn, offer } = fakeScheduler();
    const conn = new FakeConnection('a');
    scheduler.busy(conn);
    expect(conn.readingPaused).toBe(false);
    offer(conn, `${CHEAP}#1`);
    expect(conn.readingPaused).toBe(true);
    scheduler.release(conn);
    while (turns.length > 0) nextTurn();
    expect(ran).toEqual([`a:${CHEAP}#1`]);
    expect(conn.readingPaused).toBe(false);
  });

  it('drops the held frames of a connection that has closed', () => {
    const { ran, nextTurn, offer } = fakeScheduler();
    const conn = new FakeConnection('a');
    offer(conn, DEAR, CHEAP, CHEAP);
    conn.closed = true;
    nextTurn();
    expect(ran).toHaveLength(1);
    expect(conn.backlog).toHaveLength(0);
  });

  it('gives sliced work one slice per turn, after the held frames, until it says it is done', () => {
    const { scheduler, ran, turns, nextTurn, offer, advance } = fakeScheduler();
    let units = 25; // each unit of work takes a tenth of a slice
    const slices: number[] = [];
    scheduler.wake({
      runSlice: (overdue) => {
        let done = 0;
        while (units > 0) {
          units -= 1;
          done += 1;
          advance(SLICE_MS / 10);
          if (overdue()) break;
        }
        slices.push(done);
        ran.push(`work:${done}`);
        return units > 0;
      },
    });
    const conn = new FakeConnection('a');
    offer(conn, `${DEAR}#1`, `${CHEAP}#2`);
    nextTurn();
    expect(ran).toEqual([`a:${DEAR}#1`, `a:${CHEAP}#2`, 'work:10']);
    nextTurn();
    nextTurn();
    expect(slices).toEqual([10, 10, 5]);
    expect(turns).toHaveLength(0);
  });
});
