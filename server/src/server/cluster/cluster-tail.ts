/**
 * Follows the cluster's presence log into the replica (cluster-replica.ts): woken by the
 * database's notifications and, should one be missed, by a poll. Each read starts at the last
 * event applied, which must still be there unchanged, and pages are applied only when they
 * continue it; anything else re-syncs the replica from a snapshot:
 *  - the next event is not there (this instance fell behind the retained log);
 *  - the last event applied is gone or another one (a crash or a failover lost the last commits and
 *    new ones were numbered from the head that survived);
 *  - the log has another id (the database was restored from a backup, or replaced);
 *  - the log's head is behind what was applied.
 * While the database cannot be reached nothing is applied: the table stays as it was (lookups and
 * lists keep working) and the tail resumes where it stopped, with no gap and no mass peer_left.
 */
import { eventFingerprint, type LogPage, type PresenceStore } from './presence.js';
import type { ClusterReplica } from './cluster-replica.js';
import type { Logger } from '../logger.js';

const PAGE = 500;

interface Waiter {
  readonly seq: number;
  readonly resolve: (applied: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

export interface TailOptions {
  readonly presence: PresenceStore;
  readonly replica: ClusterReplica;
  readonly logger: Logger;
  /** How often the log is read without a notification. */
  readonly pollMs: number;
}

export class ClusterTail {
  private readonly presence: PresenceStore;
  private readonly replica: ClusterReplica;
  private readonly logger: Logger;
  private readonly pollMs: number;
  private running: Promise<void> | undefined;
  private again = false;
  private failing = false;
  private stopped = false;
  private poll: NodeJS.Timeout | undefined;
  private waiters: Waiter[] = [];
  /** The log's head as last read (its highest sequence number). */
  headSeq = 0;
  /** Re-syncs from a snapshot since the start. */
  resyncs = 0;
  /** When a read last found nothing left to apply (Date.now()): the lag in time grows from it. */
  caughtUpAt = Date.now();

  constructor(options: TailOptions) {
    this.presence = options.presence;
    this.replica = options.replica;
    this.logger = options.logger;
    this.pollMs = options.pollMs;
  }

  /** Loads the replica from a snapshot, then follows the log. Rejects when the database cannot be read. */
  async start(): Promise<void> {
    this.replica.load(await this.presence.snapshot());
    this.presence.listen(() => this.poke());
    this.poll = setInterval(() => this.poke(), this.pollMs).unref();
  }

  /** Reads the log now (or once more after the read in progress). */
  poke(): void {
    if (this.stopped) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.catchUp().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.poke();
      }
    });
  }

  /** Resolves true once event `seq` is applied, false after `timeoutMs` (or at stop). */
  waitFor(seq: number, timeoutMs: number): Promise<boolean> {
    if (this.replica.applied >= seq) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: Waiter = { seq, resolve, timer: setTimeout(() => this.settle(waiter, false), timeoutMs) };
      this.waiters.push(waiter);
      this.poke();
    });
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.poll);
    for (const waiter of [...this.waiters]) this.settle(waiter, false);
  }

  private settle(waiter: Waiter, applied: boolean): void {
    clearTimeout(waiter.timer);
    this.waiters = this.waiters.filter((w) => w !== waiter);
    waiter.resolve(applied);
  }

  private async catchUp(): Promise<void> {
    try {
      while (!this.stopped && (await this.readPage())) {
        // a full page: there may be more
      }
      if (this.failing)
        this.logger.info(
          { applied: this.replica.applied },
          'the shared database is reachable again: the presence log is followed from where it stopped',
        );
      this.failing = false;
    } catch (err) {
      if (!this.failing)
        this.logger.warn(
          { err },
          'cannot read the presence log of the shared database: lookups and lists answer from the last state ' +
            'read; retrying',
        );
      this.failing = true;
    }
    for (const waiter of [...this.waiters]) if (this.replica.applied >= waiter.seq) this.settle(waiter, true);
  }

  /** Applies one page; true when a full page was read (read again). */
  private async readPage(): Promise<boolean> {
    const after = this.replica.applied;
    // From the last event applied on: it must still be there and still be the same event.
    const page = await this.presence.readLog(after, PAGE + 1);
    if (this.stopped) return false;
    const problem = this.discontinuity(page, after);
    if (problem !== null) {
      await this.resync(problem);
      return false;
    }
    this.headSeq = page.headSeq;
    const events = page.events.filter((event) => event.seq > after);
    for (const event of events) {
      if (event.seq !== this.replica.applied + 1) {
        await this.resync(`event ${this.replica.applied + 1} is missing`);
        return false;
      }
      this.replica.apply(event);
    }
    if (this.replica.applied >= page.headSeq) this.caughtUpAt = Date.now();
    // Past the anchor, a full page holds PAGE new events; from an empty log (no anchor) PAGE + 1.
    return events.length >= PAGE;
  }

  /** Why this page does not continue what was applied, or null when it does. */
  private discontinuity(page: LogPage, after: number): string | null {
    if (page.logId !== this.replica.logId) return 'the log was replaced (a database restored from a backup?)';
    if (page.headSeq < after)
      return `the log's head went back from ${after} to ${page.headSeq} (a crash or a failover lost commits)`;
    const anchor = page.events[0];
    if (
      after > 0 &&
      this.replica.anchor !== null &&
      (anchor?.seq !== after || eventFingerprint(anchor) !== this.replica.anchor)
    ) {
      return `event ${after}, the last one applied, is not in the log any more (trimmed, or lost and numbered again)`;
    }
    const next = page.events.find((event) => event.seq > after);
    if (next === undefined ? page.headSeq > after : next.seq !== after + 1)
      return `the log moved from ${after} to ${page.headSeq} without the events between`;
    return null;
  }

  private async resync(why: string): Promise<void> {
    const snapshot = await this.presence.snapshot();
    if (this.stopped) return;
    this.resyncs += 1;
    this.logger.warn(
      { from: this.replica.applied, to: snapshot.seq },
      `re-syncing the presence replica from a snapshot: ${why}`,
    );
    this.replica.load(snapshot);
  }
}
