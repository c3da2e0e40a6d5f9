/**
 * Opens the moderation store on the database `[Store] Database` names, whose claim store's open
 * created and migrated it. A server's (moderationBeside) shares its claim store's PostgreSQL pool;
 * an operator's command (openModerationStore) opens a connection of its own, as its other
 * commands do, and only checks the schema's version.
 */
import { resolve } from 'node:path';
import type { ClaimStore, Clock } from '../claim-store.js';
import { instanceLabel, isPostgresDatabase, postgresConnection, type StoreSettings } from '../open-store.js';
import { connectionName } from '../postgres/postgres-connections.js';
import { redactConnectionString } from '../postgres/postgres-failure.js';
import { poolConfig } from '../postgres/postgres-open.js';
import { PostgresClaimStore } from '../postgres/postgres-store.js';
import { ModerationStore } from './moderation-store.js';
import { PostgresModerationSession } from './postgres-moderation-session.js';
import { SqliteModerationSession } from './sqlite-moderation-session.js';

type DatabaseSettings = Pick<StoreSettings, 'database' | 'passwordFile'>;

/** An operator's: its own connection (PostgreSQL: one, named as the operator's commands are). */
export async function openModerationStore(
  settings: DatabaseSettings,
  options: { readonly now?: Clock } = {},
): Promise<ModerationStore> {
  if (!isPostgresDatabase(settings.database))
    return new ModerationStore(SqliteModerationSession.open(resolve(settings.database)), options.now);
  const config = poolConfig({
    ...postgresConnection(settings),
    maxConnections: 1,
    connectTimeoutMs: 5_000,
    statementTimeoutMs: 10_000,
    applicationName: connectionName(instanceLabel(undefined), 'claims'),
  });
  const session = await PostgresModerationSession.open(config, redactConnectionString(settings.database));
  return new ModerationStore(session, options.now);
}

/**
 * A server's, beside its open claim store: on PostgreSQL it reads through the claim store's pool
 * (no connection of its own; closing it leaves the pool to the claim store), on SQLite through a
 * WAL connection of its own (a file: no connection budget).
 */
export async function moderationBeside(
  claims: ClaimStore,
  settings: DatabaseSettings,
  options: { readonly now?: Clock } = {},
): Promise<ModerationStore> {
  if (claims instanceof PostgresClaimStore)
    return new ModerationStore(PostgresModerationSession.onPool(claims.sharedPool, claims.target), options.now);
  return openModerationStore(settings, options);
}
