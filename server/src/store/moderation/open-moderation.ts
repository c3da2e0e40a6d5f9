/**
 * Opens the moderation store beside the claim store, on the database `[Store] Database` names.
 * The claim store's open creates and migrates that database first; this one only checks its version.
 */
import { resolve } from 'node:path';
import type { Clock } from '../claim-store.js';
import { instanceLabel, isPostgresDatabase, postgresConnection, type StoreSettings } from '../open-store.js';
import { connectionName } from '../postgres/postgres-connections.js';
import { redactConnectionString } from '../postgres/postgres-failure.js';
import { poolConfig } from '../postgres/postgres-open.js';
import { ModerationStore } from './moderation-store.js';
import { PostgresModerationSession } from './postgres-moderation-session.js';
import { SqliteModerationSession } from './sqlite-moderation-session.js';

export async function openModerationStore(
  settings: Pick<StoreSettings, 'database' | 'passwordFile'>,
  options: { readonly instanceId?: string; readonly now?: Clock } = {},
): Promise<ModerationStore> {
  if (!isPostgresDatabase(settings.database))
    return new ModerationStore(SqliteModerationSession.open(resolve(settings.database)), options.now);
  const config = poolConfig({
    ...postgresConnection(settings),
    maxConnections: 1,
    connectTimeoutMs: 5_000,
    statementTimeoutMs: 10_000,
    applicationName: connectionName(instanceLabel(options.instanceId), 'moderation'),
  });
  const session = await PostgresModerationSession.open(config, redactConnectionString(settings.database));
  return new ModerationStore(session, options.now);
}
