/**
 * Opening the PostgreSQL claim store: the pool's settings, the schema migrated (or, read-only,
 * checked), and the open's failures as one line naming the target (never its password) and the fix.
 */
import pg, { type Pool, type PoolConfig } from 'pg';
import type { RegistryError } from '../../protocol/errors.js';
import { readOnlySchemaError } from '../migrations.js';
import { isStoreError, storeError } from '../store-error.js';
import { describeTarget, openFailure, redactConnectionString } from './postgres-failure.js';
import { migratePostgres, PG_SCHEMA_VERSION, pgSchemaVersionOf } from './postgres-schema.js';
import { PostgresClaimStore } from './postgres-store.js';
import { checkOptions, type PostgresClaimStoreOptions } from './postgres-store-options.js';
import { BEGIN_DURABLE } from './postgres-sql.js';

const INT8_OID = 20;

/** The target as operators see it in messages: never with its password. */
export function postgresTarget(options: Pick<PostgresClaimStoreOptions, 'connectionString' | 'pool'>): string {
  if (options.connectionString !== undefined) return redactConnectionString(options.connectionString);
  const pool = options.pool ?? {};
  return describeTarget({ host: pool.host, port: pool.port, user: pool.user, database: pool.database });
}

/** Times are bigint columns; ms since the epoch fit a double exactly, so they come back as numbers. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

/** The driver's settings for a target: the claim store's pool and the cluster's presence share them. */
export function poolConfig(
  options: Pick<PostgresClaimStoreOptions, 'connectionString' | 'pool'> & {
    readonly maxConnections: number;
    readonly connectTimeoutMs: number;
    readonly statementTimeoutMs: number;
    readonly applicationName: string;
  },
): PoolConfig {
  return {
    ...options.pool,
    ...(options.connectionString === undefined ? {} : { connectionString: options.connectionString }),
    max: options.maxConnections,
    connectionTimeoutMillis: options.connectTimeoutMs,
    statement_timeout: options.statementTimeoutMs,
    query_timeout: options.statementTimeoutMs + 2_000,
    keepAlive: true,
    application_name: options.applicationName,
    types,
  };
}

function openError(err: unknown, target: string): RegistryError {
  const failure = openFailure(err, target);
  return storeError(
    'STORE_OPEN_FAILED',
    `cannot open the claim database ${target}: ${failure.text} (${failure.name}). Fix: ${failure.fix}.`,
    { cause: err },
  );
}

/**
 * Migrates, then makes a real write, so that a database that opens but cannot be written (a
 * standby, a read-only role, a full disk) stops the start instead of failing the first registration.
 */
async function prepareDatabase(pool: Pool, target: string): Promise<void> {
  const client = await pool.connect();
  try {
    await migratePostgres(client, target);
    await client.query(`${BEGIN_DURABLE}; UPDATE schema_version SET version = version; COMMIT`);
    client.release();
  } catch (err) {
    client.release(true);
    throw err;
  }
}

/** A read-only store's open: the database must be at this registry's schema version (nothing is migrated). */
export async function checkReadable(pool: Pool, target: string): Promise<void> {
  const client = await pool.connect();
  try {
    const version = await pgSchemaVersionOf(client);
    if (version !== PG_SCHEMA_VERSION) throw readOnlySchemaError(version, PG_SCHEMA_VERSION, target);
  } finally {
    client.release();
  }
}

/**
 * Connects, migrates (creating the tables in a new database) and checks that it can write; or, `readOnly`, checks its
 * schema.
 */
export async function openPostgresClaimStore(options: PostgresClaimStoreOptions): Promise<PostgresClaimStore> {
  const checked = checkOptions(options);
  const target = postgresTarget(checked);
  const pool = new pg.Pool(poolConfig(checked));
  // An idle connection that the server closed (a restart): the pool has dropped it already and
  // opens a new one on the next call. Without a listener the error would end the process.
  pool.on('error', () => undefined);
  // A checked-out connection that breaks (the server terminated it, a restart) fails its query in
  // flight, which answers STORE_UNAVAILABLE and releases it as broken; the pool removes the idle
  // listener while a connection is checked out, so without this one the error would end the process.
  pool.on('connect', (client) => client.on('error', () => undefined));
  try {
    await (checked.readOnly ? checkReadable(pool, target) : prepareDatabase(pool, target));
  } catch (err) {
    await pool.end().catch(() => undefined);
    if (isStoreError(err)) throw err;
    throw openError(err, target);
  }
  return new PostgresClaimStore(pool, target, checked);
}
