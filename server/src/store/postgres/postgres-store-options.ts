/** The PostgreSQL claim store's options, their defaults and their checks. */
import type { PoolConfig } from 'pg';
import type { Clock } from '../claim-store.js';
import { APPLICATION_NAME, connectionName, INSTANCE_CONNECTIONS } from './postgres-connections.js';
import { storeError } from '../store-error.js';
import { STORE_RETRY_AFTER_MS } from '../store-error.js';

export interface PostgresClaimStoreOptions {
  /** `postgres://user:password@host:port/database?…` (or `?host=/run/postgresql` for a socket). */
  readonly connectionString?: string;
  /** Pool options instead of (or on top of) a connection string: host, user, password, ssl, … */
  readonly pool?: Omit<PoolConfig, 'connectionString' | 'types'>;
  /** A claim lasts this many days after its key was last seen. */
  readonly claimDays: number;
  /** The clock (ms since the epoch); tests inject one. */
  readonly now?: Clock;
  /** The `retryAfterMs` that STORE_UNAVAILABLE suggests. */
  readonly retryAfterMs?: number;
  /** Most connections this store holds. */
  readonly maxConnections?: number;
  /** How long to wait for a connection (or for a free one in the pool). */
  readonly connectTimeoutMs?: number;
  /** The server cancels a statement after this long; the driver gives up on it a little later. */
  readonly statementTimeoutMs?: number;
  /** What pg_stat_activity names this store's connections. */
  readonly applicationName?: string;
  /**
   * Reads only (the operators' `claims list`, `claims show`, `backup`): nothing is migrated or
   * written at open, so a role with only SELECT serves; writes through the store fail.
   */
  readonly readOnly?: boolean;
}

const DEFAULTS = {
  now: Date.now,
  retryAfterMs: STORE_RETRY_AFTER_MS,
  maxConnections: INSTANCE_CONNECTIONS.claims,
  connectTimeoutMs: 5_000,
  statementTimeoutMs: 10_000,
  applicationName: connectionName(APPLICATION_NAME, 'claims'),
  readOnly: false,
} as const;

export type Checked = Required<Omit<PostgresClaimStoreOptions, 'connectionString' | 'pool'>> &
  Pick<PostgresClaimStoreOptions, 'connectionString' | 'pool'>;

export function checkOptions(options: PostgresClaimStoreOptions): Checked {
  const full = { ...DEFAULTS, ...options };
  const problems: string[] = [];
  if (full.connectionString === undefined && full.pool === undefined)
    problems.push('connectionString or pool is required');
  if (
    full.connectionString !== undefined &&
    (typeof full.connectionString !== 'string' || full.connectionString === '')
  )
    problems.push('connectionString must be a non-empty string');
  if (!(Number.isFinite(full.claimDays) && full.claimDays > 0))
    problems.push(`claimDays must be a positive number, got ${String(full.claimDays)}`);
  for (const name of ['retryAfterMs', 'connectTimeoutMs', 'statementTimeoutMs'] as const) {
    if (!(Number.isSafeInteger(full[name]) && full[name] >= 0)) problems.push(`${name} must be a whole number >= 0`);
  }
  if (!(Number.isSafeInteger(full.maxConnections) && full.maxConnections >= 1))
    problems.push('maxConnections must be a whole number >= 1');
  if (typeof full.now !== 'function') problems.push('now must be a function');
  if (typeof full.applicationName !== 'string') problems.push('applicationName must be a string');
  if (typeof full.readOnly !== 'boolean') problems.push('readOnly must be true or false');
  if (problems.length > 0) throw storeError('STORE_BAD_INPUT', `claim store options: ${problems.join('; ')}`);
  return full;
}
