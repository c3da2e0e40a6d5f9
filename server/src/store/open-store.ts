/**
 * Opens the claim store a configuration names (`[Store] Database`, `[Claims] ClaimDays`): a SQLite
 * file, or a postgres:// URL (a cluster's shared database, which also holds the live presence).
 * What the server's start and the operators' commands share; it takes only the store's settings. A failure is a
 * RegistryError whose
 * message is the one line to print (the path or URL without its password, the cause, the fix).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseConnectionString } from 'pg-connection-string';
import type { PoolConfig } from 'pg';
import type { ClaimStore, Clock } from './claim-store.js';
import { APPLICATION_NAME, connectionName, INSTANCE_CONNECTIONS } from './postgres/postgres-connections.js';
import { redactConnectionString } from './postgres/postgres-failure.js';
import { openPostgresClaimStore } from './postgres/postgres-open.js';
import type { PostgresClaimStoreOptions } from './postgres/postgres-store.js';
import { openSqliteClaimStore } from './sqlite/sqlite-store.js';
import { STORE_RETRY_AFTER_MS, storeError } from './store-error.js';

/** The store's slice of the configuration ([Store] Database and PasswordFile, [Claims] ClaimDays). */
export interface StoreSettings {
  /** A SQLite file's path, or a postgres:// URL. */
  readonly database: string;
  /** The PostgreSQL password's file, or null (no password, or it is in the URL). */
  readonly passwordFile: string | null;
  readonly claimDays: number;
}

/** A `[Store] Database` that names PostgreSQL rather than a SQLite file. */
export function isPostgresDatabase(database: string): boolean {
  return /^postgres(ql)?:\/\//i.test(database);
}

export interface OpenStoreOptions {
  /** The store's clock (ms since the epoch); tests inject one. */
  readonly now?: Clock;
  /** A cluster instance's id: its connections carry it in their application_name. */
  readonly instanceId?: string;
  /**
   * Reads only (operators' `claims list`, `claims show`, `backup`): nothing is created, migrated or
   * written, so a read-only SQLite file or mount, or a PostgreSQL role with only SELECT, serves.
   */
  readonly readOnly?: boolean;
}

/**
 * Opens (creating and migrating it if needed) the configured database. A SQLite file's folder is
 * created when absent, so that the default `./data/registry.db` works out of the box; a folder that
 * cannot be created is reported by the store, naming it.
 */
export async function openConfiguredStore(
  settings: StoreSettings,
  options: OpenStoreOptions = {},
): Promise<ClaimStore> {
  const now = options.now === undefined ? {} : { now: options.now };
  const readOnly = options.readOnly === true;
  if (isPostgresDatabase(settings.database)) {
    return openPostgresClaimStore({
      ...postgresConnection(settings),
      claimDays: settings.claimDays,
      retryAfterMs: STORE_RETRY_AFTER_MS,
      maxConnections: INSTANCE_CONNECTIONS.claims,
      applicationName: connectionName(instanceLabel(options.instanceId), 'claims'),
      readOnly,
      ...now,
    });
  }
  const path = resolve(settings.database);
  if (readOnly) return openSqliteClaimStore({ path, claimDays: settings.claimDays, readOnly, ...now });
  try {
    // The claims say which key uses which nickname and when it was last online: only the server's
    // user may read them. SQLite gives its -wal and -shm files the database file's mode.
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, '', { flag: 'wx', mode: 0o600 });
  } catch {
    // It exists already, or the folder cannot be made: openSqliteClaimStore names it and the fix.
  }
  return openSqliteClaimStore({ path, claimDays: settings.claimDays, ...now });
}

/** What names an instance's connections in pg_stat_activity; the operator's commands have no instance. */
export function instanceLabel(instanceId: string | undefined): string {
  return instanceId === undefined ? APPLICATION_NAME : `${APPLICATION_NAME} ${instanceId}`;
}

/**
 * The URL as it is, or (with [Store] PasswordFile) its parts plus the file's password: the driver
 * would let the URL's absent password override one given beside it.
 */
export function postgresConnection(
  settings: Pick<StoreSettings, 'database' | 'passwordFile'>,
): Pick<PostgresClaimStoreOptions, 'connectionString' | 'pool'> {
  const { database, passwordFile } = settings;
  if (passwordFile === null) return { connectionString: database };
  const target = redactConnectionString(database);
  let password: string;
  try {
    password = readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw storeError(
      'STORE_OPEN_FAILED',
      `cannot read [Store] PasswordFile ${passwordFile} (the password of ${target}): ${(err as Error).message}. Fix: ` +
        `create it, readable by the server's user, holding only the password.`,
      { cause: err },
    );
  }
  const parts = parseConnectionString(database);
  if (parts.password !== undefined && parts.password !== '') {
    throw storeError(
      'STORE_OPEN_FAILED',
      `[Store] Database ${target} holds a password and [Store] PasswordFile is set too: keep one (the file; remove ` +
        `the password from the URL).`,
    );
  }
  const pool: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parts))
    if (value !== undefined && value !== null && value !== '' && key !== 'password') pool[key] = value;
  if (typeof pool['port'] === 'string') pool['port'] = Number(pool['port']);
  return { pool: { ...(pool as Omit<PoolConfig, 'connectionString' | 'types'>), password } };
}
