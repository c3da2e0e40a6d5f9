/**
 * Fair turns between connections. Each connection has a share of an event-loop turn in CPU time
 * (round robin); past it, the rest of its frames wait for a later turn with its socket paused, so a
 * flood queued on a few sockets cannot make an honest request wait for all of it. A busy connection
 * (a signature check in flight) holds its frames until released, so replies keep request order.
 * Frames past the backlog are counted, not kept, and answered in their place (see refuseExcess).
 * Work that is not a request (the event fan-out) runs in the same turns, one slice of SLICE_MS
 * each: between two slices the event loop reads the sockets, and their requests run.
 */
import type { RawData } from 'ws';
import type { Closing } from '../registry/refusals.js';
import { monotonicNow } from './monotonic-now.js';

/**
 * Each connection's share of a turn. Honest lookups cost microseconds: a connection's pipelined
 * requests are still answered in one turn (and their replies share one write), while expensive
 * frames (deep nesting, hundreds of times dearer) yield after one or two.
 */
export const TURN_BUDGET_MS = 0.5;

/**
 * Frames a connection may have waiting (the excess is refused, not kept): its request burst
 * (RateLimitBurst, the hello's `requestBurst`), since more requests at once than its budget allows
 * would be refused when they ran anyway. Memory is bounded by not reading a connection whose frames
 * wait, not by this length: what was already read (one socket read, at most 64 KiB) is all it holds.
 */
export function backlogLength(limits: { readonly rateLimitBurst: number }): number {
  return limits.rateLimitBurst;
}

/**
 * The CPU time of one slice of sliced work: an honest request that arrives during a fan-out waits
 * at most about this long for it (a pass to 2,000 subscribers takes a few such slices).
 */
export const SLICE_MS = 1;

/** Work done in slices across turns (see FairScheduler.wake). */
export interface SlicedWork {
  /** Does some of the work, until `overdue()` says the slice is used up; true while some is left. */
  runSlice(overdue: () => boolean): boolean;
}

/** A frame kept for a later turn: its data and whether it was binary. */
export type HeldFrame = [RawData, boolean];

/** What the scheduler needs of a connection. */
export interface TurnTaker {
  /** Frames held for a later turn, oldest first. */
  readonly backlog: HeldFrame[];
  /** While true, frames wait in the backlog (see FairScheduler.busy and release). */
  busy: boolean;
  /** CPU milliseconds spent on its frames in the current turn. */
  turnMs: number;
  /** Frames that arrived past a full backlog: only counted, answered once the backlog has drained. */
  excess: number;
  /** True once the connection is gone: its held frames are dropped. */
  readonly closed: boolean;
  readonly readingPaused: boolean;
  pauseReading(): void;
  resumeReading(): void;
  close(closing: Closing): void;
}

export interface FairSchedulerOptions<C extends TurnTaker> {
  /** Handles one frame of `conn`, now. */
  readonly run: (conn: C, data: RawData, isBinary: boolean) => void;
  /** Answers `count` frames of `conn` that came past a full backlog, after the replies before them. */
  readonly refuseExcess: (conn: C, count: number) => void;
  /** Frames a connection may have waiting (backlogLength). */
  readonly maxBacklog: number;
  /** A monotonic clock in milliseconds (CPU time spent is measured with it). */
  readonly now?: () => number;
  /** Calls `turn` once, at the start of the next event-loop turn. */
  readonly scheduleTurn?: (turn: () => void) => void;
}

const nextLoopTurn = (turn: () => void): void => {
  setImmediate(turn);
};

export class FairScheduler<C extends TurnTaker> {
  /** Connections with frames held for a later turn, and those that used some of this turn. */
  private readonly waiting = new Set<C>();
  private readonly spent = new Set<C>();
  /** Sliced work that wants a slice of the next turn. */
  private readonly work = new Set<SlicedWork>();
  private turnScheduled = false;
  private readonly run: FairSchedulerOptions<C>['run'];
  private readonly refuseExcess: FairSchedulerOptions<C>['refuseExcess'];
  private readonly maxBacklog: number;
  private readonly now: () => number;
  private readonly schedule: (turn: () => void) => void;
  private readonly turn = (): void => this.nextTurn();

  constructor(options: FairSchedulerOptions<C>) {
    this.run = options.run;
    this.refuseExcess = options.refuseExcess;
    this.maxBacklog = options.maxBacklog;
    this.now = options.now ?? monotonicNow;
    this.schedule = options.scheduleTurn ?? nextLoopTurn;
  }

  /** A frame has arrived: it runs now if `conn` has its share left and nothing waiting, else waits. */
  offer(conn: C, data: RawData, isBinary: boolean): void {
    if (conn.busy || conn.backlog.length > 0 || conn.turnMs >= TURN_BUDGET_MS) {
      // Once some are refused, later frames are too until the backlog drains: replies stay in order.
      if (conn.backlog.length >= this.maxBacklog || conn.excess > 0) conn.excess += 1;
      else this.hold(conn, data, isBinary);
      return;
    }
    this.runTimed(conn, data, isBinary);
  }

  /** Holds `conn`'s further frames until release(conn). */
  busy(conn: C): void {
    conn.busy = true;
  }

  /** Ends busy(conn): its held frames run, as far as its share of this turn allows. */
  release(conn: C): void {
    conn.busy = false;
    this.drain(conn);
  }

  /** Gives `work` a slice of the next turn, and of every turn after it until it says it is done. */
  wake(work: SlicedWork): void {
    this.work.add(work);
    this.scheduleTurn();
  }

  /** Keeps a frame, in order, for later; the socket is not read meanwhile (TCP pushes back). */
  private hold(conn: C, data: RawData, isBinary: boolean): void {
    conn.backlog.push([data, isBinary]);
    if (!conn.busy) return this.wait(conn);
    // release() drains the backlog, and reads the socket again once it is empty.
    if (!conn.readingPaused) conn.pauseReading();
  }

  private wait(conn: C): void {
    conn.pauseReading();
    this.waiting.add(conn);
    this.scheduleTurn();
  }

  private runTimed(conn: C, data: RawData, isBinary: boolean): void {
    this.spent.add(conn);
    this.scheduleTurn();
    const started = this.now();
    this.run(conn, data, isBinary);
    conn.turnMs += this.now() - started;
  }

  private drain(conn: C): void {
    if (conn.closed) {
      conn.backlog.length = 0;
      conn.excess = 0;
      return;
    }
    while (!conn.busy && conn.backlog.length > 0 && conn.turnMs < TURN_BUDGET_MS) {
      const [data, isBinary] = conn.backlog.shift() as HeldFrame;
      this.runTimed(conn, data, isBinary);
    }
    if (conn.busy) return;
    if (conn.backlog.length > 0) return this.wait(conn);
    if (conn.excess > 0) this.answerExcess(conn);
    if (conn.readingPaused) conn.resumeReading();
  }

  private answerExcess(conn: C): void {
    const count = conn.excess;
    conn.excess = 0;
    this.refuseExcess(conn, count);
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    this.schedule(this.turn);
  }

  /** A new turn: every connection gets its share again, held frames first, then sliced work. */
  private nextTurn(): void {
    this.turnScheduled = false;
    for (const conn of this.spent) conn.turnMs = 0;
    this.spent.clear();
    const held = [...this.waiting];
    this.waiting.clear();
    for (const conn of held) this.drain(conn);
    this.runSlices();
  }

  /** One slice for each piece of sliced work; work left over asks for the next turn. */
  private runSlices(): void {
    if (this.work.size === 0) return;
    const pending = [...this.work];
    this.work.clear();
    for (const work of pending) {
      const deadline = this.now() + SLICE_MS;
      if (work.runSlice(() => this.now() >= deadline)) this.wake(work);
    }
  }
}
