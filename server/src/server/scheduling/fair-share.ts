/**
 * A server-wide budget shared fairly between the connections that want it. Per window (a second)
 * at most `capacity` units are granted in all, and a user that has had some in this window gets
 * more only within its share: the capacity divided by the users that asked in this window or the
 * last. Every user's first grant of a window needs only room in the budget, so a flood from many
 * connections takes at most an equal share each and cannot take all of it from an honest one.
 */
import { monotonicNow } from './monotonic-now.js';
export class FairShare<U extends object> {
  /** Units granted to each user that asked in the current window (0: asked, got none). */
  private users = new Map<U, number>();
  private previousUsers = 0;
  private used = 0;
  private windowStart: number;

  constructor(
    private readonly capacity: number,
    private readonly windowMs = 1_000,
    private readonly now: () => number = monotonicNow,
  ) {
    this.windowStart = now();
  }

  /** Takes `amount` units for `user`: 0 when granted, else the milliseconds until a retry can succeed. */
  take(user: U, amount = 1): number {
    const now = this.now();
    this.roll(now);
    const mine = this.users.get(user);
    const users = Math.max(this.previousUsers, this.users.size + (mine === undefined ? 1 : 0));
    const fits = this.used + amount <= this.capacity;
    const withinShare = mine === undefined || mine === 0 || mine + amount <= this.capacity / users;
    if (fits && withinShare) {
      this.used += amount;
      this.users.set(user, (mine ?? 0) + amount);
      return 0;
    }
    if (mine === undefined) this.users.set(user, 0);
    return Math.max(1, Math.ceil(this.windowStart + this.windowMs - now));
  }

  private roll(now: number): void {
    if (now - this.windowStart < this.windowMs) return;
    // A window with no users at all means nobody wanted it lately: the next one starts afresh.
    const idleWindows = Math.floor((now - this.windowStart) / this.windowMs);
    this.previousUsers = idleWindows === 1 ? this.users.size : 0;
    this.users = new Map();
    this.used = 0;
    this.windowStart += idleWindows * this.windowMs;
  }
}
