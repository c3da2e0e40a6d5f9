/** Opens the cluster's live presence: the same PostgreSQL as the claims, its own small pool. */
import { instanceLabel, isPostgresDatabase, postgresConnection, type StoreSettings } from '../../store/open-store.js';
import { connectionName, INSTANCE_CONNECTIONS } from '../../store/postgres/postgres-connections.js';
import { redactConnectionString } from '../../store/postgres/postgres-failure.js';
import { poolConfig } from '../../store/postgres/postgres-open.js';
import { STORE_RETRY_AFTER_MS } from '../../store/store-error.js';
import { PostgresPresence } from './postgres-presence.js';
import type { PresenceStore } from './presence.js';

/** The presence of a cluster instance; null for a SQLite file (a single host has no cluster). */
export function openConfiguredPresence(settings: StoreSettings, instanceId?: string): PresenceStore | null {
  if (!isPostgresDatabase(settings.database)) return null;
  const label = instanceLabel(instanceId);
  const pool = poolConfig({
    ...postgresConnection(settings),
    maxConnections: INSTANCE_CONNECTIONS.presence,
    connectTimeoutMs: 5_000,
    statementTimeoutMs: 10_000,
    applicationName: connectionName(label, 'presence'),
  });
  return new PostgresPresence(pool, redactConnectionString(settings.database), STORE_RETRY_AFTER_MS, label);
}
