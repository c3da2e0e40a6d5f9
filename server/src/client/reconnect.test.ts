import { describe, expect, it } from 'vitest';
import { DEFAULT_RECONNECT, type ReconnectOptions } from './options.js';
import { backoffDelay } from './reconnect.js';

/** A seeded generator (mulberry32): the same "random" crowd on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** How many of `delays` fall in each of `buckets` equal slices of [0, window]. */
function histogram(delays: readonly number[], window: number, buckets: number): number[] {
  const counts = new Array<number>(buckets).fill(0);
  for (const delay of delays) {
    const bucket = Math.min(buckets - 1, Math.floor((delay / window) * buckets));
    counts[bucket] = (counts[bucket] as number) + 1;
  }
  return counts;
}

/**
 * A restart's reconnect storm against the onion's admission (torrc.template: 6 introduction points
 * at 50/s with bursts of 500, i.e. 300/s and 3,000 at once), in 100 ms steps: every peer attempts
 * after its backoff delay; an attempt past the bucket fails and the peer backs off again.
 * Returns the seconds until all are in, the refused attempts, and the most attempts in any one
 * second after the first window (the crowd's first attempts all fall in that window).
 */
interface Storm {
  readonly allInSeconds: number;
  readonly refused: number;
  readonly peakAfterFirstWindow: number;
}

function storm(peers: number, options: ReconnectOptions, random: () => number): Storm {
  const stepMs = 100;
  const ratePerStep = 300 / (1000 / stepMs);
  const burst = 3_000;
  const due = new Map<number, number[]>(); // step -> attempt numbers of the peers due then
  const schedule = (nowStep: number, attempt: number): void => {
    const step = nowStep + Math.max(1, Math.ceil(backoffDelay(attempt, options, random) / stepMs));
    const list = due.get(step) ?? [];
    list.push(attempt);
    due.set(step, list);
  };
  for (let i = 0; i < peers; i += 1) schedule(0, 1);
  let tokens = burst;
  let waiting = peers;
  let refused = 0;
  const perSecond = new Map<number, number>();
  for (let step = 0; step < 10 * 60 * (1000 / stepMs) && waiting > 0; step += 1) {
    tokens = Math.min(burst, tokens + ratePerStep);
    const attempts = due.get(step) ?? [];
    due.delete(step);
    const second = Math.floor((step * stepMs) / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + attempts.length);
    for (const attempt of attempts) {
      if (tokens >= 1) {
        tokens -= 1;
        waiting -= 1;
      } else {
        refused += 1;
        schedule(step, attempt + 1);
      }
    }
    if (waiting === 0) break;
  }
  const firstWindowSeconds = Math.ceil(options.initialDelayMs / 1000);
  const later = [...perSecond].filter(([second]) => second >= firstWindowSeconds).map(([, count]) => count);
  const lastSecond = Math.max(...perSecond.keys());
  return {
    allInSeconds: waiting === 0 ? lastSecond + 1 : Number.POSITIVE_INFINITY,
    refused,
    peakAfterFirstWindow: Math.max(0, ...later),
  };
}

describe('reconnect backoff with full jitter', () => {
  it("spreads a crowd's first attempts evenly from 0 to the first window, none at the same instant", () => {
    const random = seeded(1);
    const delays = Array.from({ length: 10_000 }, () => backoffDelay(1, DEFAULT_RECONNECT, random));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThanOrEqual(DEFAULT_RECONNECT.initialDelayMs);
    // Ten slices of the window each get 10% of the crowd, give or take 1.5 points.
    for (const count of histogram(delays, DEFAULT_RECONNECT.initialDelayMs, 10)) {
      expect(count).toBeGreaterThan(850);
      expect(count).toBeLessThan(1_150);
    }
    // No single millisecond holds more than 1% of the crowd.
    const perMs = new Map<number, number>();
    for (const delay of delays) perMs.set(delay, (perMs.get(delay) ?? 0) + 1);
    expect(Math.max(...perMs.values())).toBeLessThan(100);
  });

  it('doubles the window with each failed attempt and spreads every attempt over it', () => {
    const options = { ...DEFAULT_RECONNECT, initialDelayMs: 100, maxDelayMs: 100_000 };
    for (const [attempt, window] of [
      [1, 100],
      [2, 200],
      [3, 400],
      [6, 3_200],
    ] as const) {
      const random = seeded(attempt);
      const delays = Array.from({ length: 2_000 }, () => backoffDelay(attempt, options, random));
      expect(Math.max(...delays)).toBeLessThanOrEqual(window);
      expect(Math.min(...delays)).toBeLessThan(window * 0.05);
      expect(histogram(delays, window, 4).every((count) => count > 400)).toBe(true);
    }
    expect(backoffDelay(3, options, () => 0)).toBe(400);
    expect(backoffDelay(3, options, () => 0.5)).toBe(200);
  });

  it('never waits longer than maxDelayMs, however many attempts failed', () => {
    const random = seeded(7);
    for (const attempt of [7, 8, 20, 100, 1_000, 10_000]) {
      for (let i = 0; i < 200; i += 1)
        expect(backoffDelay(attempt, DEFAULT_RECONNECT, random)).toBeLessThanOrEqual(DEFAULT_RECONNECT.maxDelayMs);
      expect(backoffDelay(attempt, DEFAULT_RECONNECT, () => 0)).toBe(DEFAULT_RECONNECT.maxDelayMs);
    }
  });

  it(
    "keeps a partial jitter's delays in the window's last fraction, and a random outside 0..1 inside " + 'the window',
    () => {
      const options = { ...DEFAULT_RECONNECT, initialDelayMs: 1_000, jitter: 0.25 };
      expect(backoffDelay(1, options, () => 0)).toBe(1_000);
      expect(backoffDelay(1, options, () => 1)).toBe(750);
      expect(backoffDelay(1, DEFAULT_RECONNECT, () => 2)).toBe(0);
      expect(backoffDelay(1, DEFAULT_RECONNECT, () => -1)).toBe(DEFAULT_RECONNECT.initialDelayMs);
    },
  );

  it(
    'brings 20,000 peers dropped by a restart back through a 300/s onion in 1.5 minutes, with half the refusals of ' +
      'a lockstep backoff',
    () => {
      const result = storm(20_000, DEFAULT_RECONNECT, seeded(42));
      // The bound is the onion's: 3,000 at once, then 300/s, ~57 s for the other 17,000; the rest is
      // the stragglers' growing windows.
      expect(result.allInSeconds).toBeGreaterThan(57);
      expect(result.allInSeconds).toBeLessThan(120);
      // The old backoff (500 ms, half jitter: everyone between 250 and 500 ms, then again at each
      // doubling) hammers the introduction points: twice the refused attempts, and waves of
      // retries eight times denser.
      const lockstep = storm(
        20_000,
        { ...DEFAULT_RECONNECT, initialDelayMs: 500, maxDelayMs: 30_000, jitter: 0.5 },
        seeded(42),
      );
      expect(result.refused).toBeLessThan(lockstep.refused / 2);
      expect(result.peakAfterFirstWindow).toBeLessThan(lockstep.peakAfterFirstWindow / 5);
    },
  );
});
