/** The SQLite claim store's options, their defaults and their checks. */
import type { Clock } from '../claim-store.js';
import { storeError } from '../store-error.js';
import { STORE_RETRY_AFTER_MS } from '../store-error.js';

export interface SqliteClaimStoreOptions {
  /** The database file; its folder must exist. */
  readonly path: string;
  /** A claim lasts this many days after its key was last seen. */
  readonly claimDays: number;
  /** The clock (ms since the epoch); tests inject one. */
  readonly now?: Clock;
  /**
   * How long a write waits for another process's write lock (a `claims release` or a migration by
   * another process). The wait blocks the server's thread, so it is short.
   */
  readonly busyTimeoutMs?: number;
  /** Most writes in one transaction. 1 turns group commit off (one transaction per write). */
  readonly maxBatch?: number;
  /** The `retryAfterMs` that STORE_UNAVAILABLE suggests. */
  readonly retryAfterMs?: number;
  /**
   * Reads only (the operators' `claims list`, `claims show`, `backup`): the file is opened with
   * SQLite's read-only flag, so an account or a mount that may not write can read it; nothing is
   * migrated or written, and writes through the store fail.
   */
  readonly readOnly?: boolean;
  /** How often the WAL is checkpointed (from another thread) when something was committed. */
  readonly checkpointIntervalMs?: number;
}

const DEFAULTS = {
  now: Date.now,
  busyTimeoutMs: 1_000,
  maxBatch: 512,
  retryAfterMs: STORE_RETRY_AFTER_MS,
  readOnly: false,
  checkpointIntervalMs: 1_000,
} as const;

export function checkOptions(options: SqliteClaimStoreOptions): Required<SqliteClaimStoreOptions> {
  const full = { ...DEFAULTS, ...options };
  const problems: string[] = [];
  if (typeof full.path !== 'string' || full.path === '' || full.path === ':memory:')
    problems.push('path must be a file path');
  if (!(Number.isFinite(full.claimDays) && full.claimDays > 0))
    problems.push(`claimDays must be a positive number, got ${String(full.claimDays)}`);
  if (!(Number.isSafeInteger(full.busyTimeoutMs) && full.busyTimeoutMs >= 0))
    problems.push('busyTimeoutMs must be a whole number >= 0');
  if (!(Number.isSafeInteger(full.maxBatch) && full.maxBatch >= 1))
    problems.push('maxBatch must be a whole number >= 1');
  if (!(Number.isSafeInteger(full.retryAfterMs) && full.retryAfterMs >= 0))
    problems.push('retryAfterMs must be a whole number >= 0');
  if (!(Number.isSafeInteger(full.checkpointIntervalMs) && full.checkpointIntervalMs >= 1))
    problems.push('checkpointIntervalMs must be a whole number >= 1');
  if (typeof full.now !== 'function') problems.push('now must be a function');
  if (typeof full.readOnly !== 'boolean') problems.push('readOnly must be true or false');
  if (problems.length > 0) throw storeError('STORE_BAD_INPUT', `claim store options: ${problems.join('; ')}`);
  return full;
}
