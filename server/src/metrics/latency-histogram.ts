/**
 * A latency histogram counted with plain increments into a preallocated array: observing allocates
 * nothing (prom-client's labelled observe hashes its labels on every call). The exposition reads it
 * when Prometheus scrapes (registry-metrics.ts).
 */

/** Upper bounds in seconds, from half a millisecond to 10 s; one more bucket holds the rest (+Inf). */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export class LatencyHistogram {
  /** Observations per bucket (not cumulative); the last is above every bound. */
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let bucket = 0;
    while (bucket < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[bucket] as number)) bucket += 1;
    this.counts[bucket] = (this.counts[bucket] as number) + 1;
    this.sum += seconds;
    this.count += 1;
  }

  /** Observes the time since `startedMs` (performance.now()). */
  observeSince(startedMs: number): void {
    this.observe((performance.now() - startedMs) / 1000);
  }
}

/** What a store's commits took, and how many failed (a store keeps one: sqlite-store.ts, postgres-store.ts). */
export class CommitStats {
  readonly latency = new LatencyHistogram();
  failures = 0;
}
