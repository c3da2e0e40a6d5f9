import { describe, expect, it } from 'vitest';
import { NOT_HOLDING, OutputBudget, UnreadMeter, type OutputHolder } from './output-budget.js';
import { CLOSINGS, type Closing } from '../registry/refusals.js';

const MIB = 1_048_576;

describe('UnreadMeter', () => {
  it('does not count a reply being sent, even one larger than MaxBufferedBytes', () => {
    const meter = new UnreadMeter();
    // A page of 1000 peers with RSA-8192 keys, queued after an empty queue.
    meter.record(1_600_000, true, 0);
    expect(meter.unread(1_600_000)).toBe(0);
    // Half of it written: still nothing unread beyond it.
    expect(meter.unread(800_000)).toBe(0);
  });

  it('counts events queued behind the reply, and the reply once a larger one replaces it', () => {
    const meter = new UnreadMeter();
    meter.record(1_600_000, true, 0);
    meter.record(300, false, 1_600_000);
    expect(meter.unread(1_600_300)).toBe(300);
    // 1,000,000 bytes were written; a second, larger page is now the reply being sent.
    meter.record(1_700_000, true, 600_300);
    expect(meter.unread(2_300_300)).toBe(600_300);
  });

  it('counts every reply but the largest of a client that asks and never reads', () => {
    const meter = new UnreadMeter();
    let queued = 0;
    for (let i = 0; i < 100; i += 1) {
      meter.record(40_000, true, queued);
      queued += 40_000;
    }
    expect(meter.unread(queued)).toBe(99 * 40_000);
  });
});

class FakeHolder implements OutputHolder {
  outputBytes = 0;
  outputRank = NOT_HOLDING;
  closing = false;
  terminated = false;
  readonly closings: Closing[] = [];

  constructor(
    readonly name: string,
    public queued: number,
    public unread = queued,
  ) {}

  queuedBytes(): number {
    return this.terminated ? 0 : this.queued;
  }

  unreadBytes(): number {
    return this.unread;
  }

  close(closing: Closing): void {
    this.closing = true;
    this.closings.push(closing);
  }

  terminate(): void {
    this.terminated = true;
  }
}

describe('OutputBudget', () => {
  it('keeps a running total of what is queued', () => {
    const budget = new OutputBudget(10 * MIB);
    const a = new FakeHolder('a', MIB);
    const b = new FakeHolder('b', 2 * MIB);
    budget.update(a);
    budget.update(b);
    expect(budget.total).toBe(3 * MIB);
    a.queued = 0;
    budget.update(a);
    budget.release(b);
    expect(budget.total).toBe(0);
  });

  it('past the bound closes the connections with the most unread bytes first, until under it', () => {
    const budget = new OutputBudget(4 * MIB);
    const honest = new FakeHolder('honest reader of a big page', 1.5 * MIB, 0);
    const heavy = new FakeHolder('heavy', 1.4 * MIB);
    const medium = new FakeHolder('medium', MIB);
    const light = new FakeHolder('light', 0.5 * MIB);
    for (const holder of [honest, light, medium, heavy]) budget.update(holder);
    expect(budget.total).toBe(4.4 * MIB);
    expect(heavy.closings).toEqual([CLOSINGS.outputFull]);
    expect([honest, medium, light].map((h) => h.closing)).toEqual([false, false, false]);
    // The closed one keeps its queue (its close frame waits behind it) while within twice the bound.
    expect(heavy.terminated).toBe(false);
  });

  it('reads stale counts again before closing anyone', () => {
    const budget = new OutputBudget(2 * MIB);
    const drained = new FakeHolder('drained without a drain event', 1.5 * MIB);
    budget.update(drained);
    drained.queued = 0;
    const next = new FakeHolder('next', MIB);
    budget.update(next);
    expect(budget.total).toBe(MIB);
    expect(next.closing).toBe(false);
  });

  it('cuts off closing connections at once rather than pass twice the bound', () => {
    const budget = new OutputBudget(MIB);
    const closing = new FakeHolder('already closing', 1.5 * MIB);
    budget.update(closing);
    expect(closing.closing).toBe(true);
    const other = new FakeHolder('other', 0.9 * MIB);
    budget.update(other);
    expect(closing.terminated).toBe(true);
    expect(budget.total).toBeLessThanOrEqual(2 * MIB);
  });
});

/** A reader that never reads, counting every time the budget reads a holder (the budget's work). */
class CountedReader extends FakeHolder {
  constructor(
    name: string,
    queued: number,
    private readonly work: { reads: number },
  ) {
    super(name, queued);
  }

  override queuedBytes(): number {
    this.work.reads += 1;
    return super.queuedBytes();
  }

  override unreadBytes(): number {
    this.work.reads += 1;
    return super.unreadBytes();
  }

  /** One more frame it will not read. */
  grow(bytes: number): void {
    this.queued += bytes;
    this.unread += bytes;
  }
}

/**
 * Holder reads per send over `sends` sends of `frame` bytes, round robin over `count` readers; a
 * reader closed by the budget is replaced by a new one, as an attacker would reconnect.
 */
function readsPerSend(
  budget: OutputBudget,
  count: number,
  sends: number,
  frame: number,
  work: { reads: number },
): number {
  const readers = Array.from({ length: count }, (_, i) => new CountedReader(`reader ${i}`, frame, work));
  for (const reader of readers) budget.update(reader);
  work.reads = 0;
  for (let i = 0; i < sends; i += 1) {
    if (readers[i % count]!.closing) readers[i % count] = new CountedReader(`reader ${i}`, 0, work);
    const reader = readers[i % count]!;
    reader.grow(frame);
    budget.update(reader);
  }
  return work.reads / sends;
}

describe('OutputBudget cost per send', () => {
  it(
    'stays a few holder reads while closing connections keep the total over the bound, however many ' + 'hold output',
    () => {
      const costs = [100, 2_000].map((count) => {
        const work = { reads: 0 };
        const budget = new OutputBudget(4 * MIB);
        // Closed for the bound, it keeps its queue while its close frame waits behind it.
        const closing = new CountedReader('closed, draining', 5 * MIB, work);
        budget.update(closing);
        expect(closing.closing).toBe(true);
        const cost = readsPerSend(budget, count, 2_000, 100, work);
        expect(budget.total).toBeGreaterThan(4 * MIB);
        return cost;
      });
      expect(costs[0]).toBeLessThanOrEqual(4);
      expect(costs[1]).toBeLessThanOrEqual(4);
    },
  );

  it(
    'stays a few holder reads per send while open connections keep passing the bound, however many ' + 'hold output',
    () => {
      const costs = [100, 2_000].map((count) => {
        const work = { reads: 0 };
        const budget = new OutputBudget(MIB);
        // Each round queues 2 MiB more in all: the bound is passed again and again.
        const cost = readsPerSend(budget, count, 20 * count, Math.ceil((2 * MIB) / count), work);
        expect(budget.total).toBeLessThanOrEqual(2 * MIB);
        return cost;
      });
      expect(costs[0]).toBeLessThanOrEqual(10);
      expect(costs[1]).toBeLessThanOrEqual(10);
    },
  );
});
