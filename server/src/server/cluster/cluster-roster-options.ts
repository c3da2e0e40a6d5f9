/** What a cluster instance's roster is given, and what it reports of itself. */
import type { Logger } from '../logger.js';
import type { RosterEffects } from '../registry/roster.js';
import type { PresenceStore } from './presence.js';

export interface ClusterRosterOptions {
  /** This instance's id (a new one for every process): its registrations, its lease, its connections' names. */
  readonly instanceId: string;
  readonly presence: PresenceStore;
  readonly effects: RosterEffects;
  readonly logger: Logger;
  readonly leaseMs: number;
  /** What UNAVAILABLE suggests. */
  readonly retryAfterMs: number;
  /** This instance's onion address, once known: announced to the frontend. */
  readonly onion: () => string | null;
  /** The frontend's address changed (became known, or another): see frontendOnion. */
  readonly frontendChanged?: () => void;
  /** How long an answer waits for its own event to be applied. */
  readonly applyTimeoutMs?: number;
  /** How often the log is read without a notification. */
  readonly pollMs?: number;
}

/** What /healthz says of a cluster instance (a database away does not make it unhealthy: it still serves lookups). */
export interface ClusterStatus {
  readonly instance: string;
  /** Whether the last lease renewal reached the database. */
  readonly database: 'reachable' | 'unreachable';
  /** The last presence log event applied to this instance's table. */
  readonly applied: number;
  /** The frontend's master address, once known (hello reports it). */
  readonly frontend: string | null;
  /**
   * Whether a housekeeping step (announcing this backend, reading the frontend's address, trimming the log) is failing.
   */
  readonly housekeeping: 'ok' | 'failing';
}
