/**
 * Group commit: writes issued during one turn of the event loop are run together, in order, in one
 * transaction, and their promises settle only after that transaction has committed (one fsync for
 * all of them). A registration therefore waits for the end of its turn plus one sync, and the cost
 * of a sync is shared by everything that arrived with it.
 *
 * A write is queued as durable (the default: its promise means it survives a power cut) or not
 * (touches and purges, which the store's contract lets be lost). A batch holding only writes that
 * need not be durable is committed without a sync; one durable write makes the whole batch durable.
 * Batches commit in queue order into one log, so a later synced commit makes every earlier one
 * durable too: a lost write is always one of the most recent, never one before a durable one.
 *
 * The flush runs from setImmediate, i.e. after the poll phase has handed every readable socket's
 * frames to their handlers: a burst of registrations that arrived together commits together. Under
 * load a durable batch also waits up to SYNC_WINDOW_MS for the writes of the next turns.
 */
import { CommitStats } from '../metrics/latency-histogram.js';

/** One write: runs inside the batch's transaction and returns its result. */
export type WriteOp<T> = () => T;

/** How one op of a batch ended, when the batch as a whole committed. */
export type Settled = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/**
 * Runs a batch in one transaction: returns one Settled per op (an op may fail alone, its own
 * effects undone), or throws when the batch as a whole did not commit (then nothing of it did).
 */
export type CommitBatch = (ops: readonly WriteOp<unknown>[], durable: boolean) => readonly Settled[];

/** How long a durable write may wait for company under load; the latency a registration may gain. */
const SYNC_WINDOW_MS = 2;

interface Pending {
  readonly op: WriteOp<unknown>;
  readonly durable: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

export class GroupCommit {
  readonly #commit: CommitBatch;
  readonly #maxBatch: number;
  #queue: Pending[] = [];
  #scheduled = false;
  #idleWaiters: (() => void)[] = [];
  /** When the last batch with a durable write committed (performance.now()). */
  #lastSyncedAt = Number.NEGATIVE_INFINITY;

  /** `maxBatch` bounds one transaction, so that a flood cannot hold the event loop for long. */
  /** Each batch's commit: its duration, or its failure. */
  readonly stats = new CommitStats();

  constructor(commit: CommitBatch, maxBatch: number) {
    this.#commit = commit;
    this.#maxBatch = maxBatch;
  }

  /**
   * Queues a write; it settles after the transaction that holds it has committed (or failed), and
   * when `durable`, after that commit was synced.
   */
  enqueue<T>(op: WriteOp<T>, durable = true): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ op, durable, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /** Resolves once every write queued so far has settled. */
  idle(): Promise<void> {
    if (this.#queue.length === 0 && !this.#scheduled) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // Under load (a synced commit less than a window ago) a durable write waits up to one window for
    // others to share its sync: registrations whose signature checks finish one turn apart would
    // otherwise each pay a sync of their own. Idle, it commits at the end of this turn.
    const wait =
      this.#queue.some((pending) => pending.durable) && performance.now() - this.#lastSyncedAt < SYNC_WINDOW_MS;
    if (wait) setTimeout(() => this.#flush(), SYNC_WINDOW_MS);
    else setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue.length <= this.#maxBatch ? this.#queue : this.#queue.slice(0, this.#maxBatch);
    this.#queue = batch === this.#queue ? [] : this.#queue.slice(this.#maxBatch);
    // The rest goes in the next turn, after the I/O that waited behind this batch.
    if (this.#queue.length > 0) this.#schedule();
    let settled: readonly Settled[];
    const durable = batch.some((pending) => pending.durable);
    const started = performance.now();
    try {
      settled = this.#commit(
        batch.map((pending) => pending.op),
        durable,
      );
      if (durable) this.#lastSyncedAt = performance.now();
      this.stats.latency.observeSince(started);
    } catch (error) {
      this.stats.failures += 1;
      for (const pending of batch) pending.reject(error);
      this.#notifyIdle();
      return;
    }
    batch.forEach((pending, index) => {
      const outcome = settled[index];
      if (outcome === undefined) pending.reject(new Error('group commit: the batch returned fewer results than ops'));
      else if (outcome.ok) pending.resolve(outcome.value);
      else pending.reject(outcome.error);
    });
    this.#notifyIdle();
  }

  #notifyIdle(): void {
    if (this.#queue.length > 0 || this.#scheduled) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
