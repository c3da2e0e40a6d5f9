/** A token bucket: `ratePerSecond` tokens refill continuously up to `burst`; each request takes one. */
import { monotonicNow } from './monotonic-now.js';
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = monotonicNow,
  ) {
    this.tokens = burst;
    this.updatedAt = now();
  }

  /** Takes `count` tokens if there are that many; otherwise takes none. */
  take(count = 1): boolean {
    this.refill();
    if (this.tokens < count) return false;
    this.tokens -= count;
    return true;
  }

  /** Whole milliseconds until `count` tokens (at most a burst) are there; at least 1. */
  msUntil(count = 1): number {
    this.refill();
    const missing = Math.min(count, this.burst) - this.tokens;
    return Math.max(1, Math.ceil((missing * 1000) / this.ratePerSecond));
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.ratePerSecond);
    this.updatedAt = now;
  }
}
