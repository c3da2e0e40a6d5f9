/**
 * Background work run at an interval that never overlaps itself: a tick that finds the previous
 * run still going is skipped, so a slow database gets one query at a time from each task instead
 * of a pile of them (each holding a connection) that grows by one every interval.
 */
export class PeriodicTask {
  private readonly run: () => Promise<void>;
  private readonly everyMs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  /** `run` must not reject: a task reports its own failures. Without `everyMs` it runs only when triggered. */
  constructor(run: () => Promise<void>, everyMs?: number) {
    this.run = run;
    this.everyMs = everyMs;
  }

  /** Ticks from now on, every `everyMs`; the first tick is one interval away. */
  start(): void {
    if (this.stopped || this.timer !== undefined || this.everyMs === undefined) return;
    this.timer = setInterval(() => void this.trigger(), this.everyMs).unref();
  }

  /** Whether a run is in progress. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Runs now unless a run is in progress (then resolves when that one ends). */
  trigger(): Promise<void> {
    if (this.running !== undefined) return this.running;
    if (this.stopped) return Promise.resolve();
    this.running = this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** No more ticks; resolves once a run in progress has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }
}
