/**
 * The PostgreSQL schema, as an ordered list of migrations beside the SQLite ones (same versions,
 * same meaning). `schema_version` holds one row: the version the database is at. Each migration
 * runs in its own transaction together with the version bump, under an advisory lock, so that
 * several registries opening one new database at once migrate it exactly once. Append new
 * migrations; never edit a released one.
 */
import type { PoolClient } from 'pg';
import type { RegistryError } from '../../protocol/errors.js';
import { schemaNewerError, SCHEMA_VERSION as SQLITE_SCHEMA_VERSION, type Migration } from '../migrations.js';
import { environmentFailure, openFailure } from './postgres-failure.js';
import { isStoreError, storeError } from '../store-error.js';

export const PG_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    summary: 'claims: one row per key, nickname and address unique',
    // COLLATE "C": nickname order is byte order, as in SQLite, whatever the database's collation;
    // list paging compares nickname_key with > and must use the same order as the index.
    // Times are ms since the epoch.
    sql: `
      CREATE TABLE claims (
        key_id           text    NOT NULL PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{64}$'),
        public_key       bytea   NOT NULL,
        nickname         text    NOT NULL,
        nickname_key     text    COLLATE "C" NOT NULL UNIQUE CHECK (nickname_key = lower(nickname)),
        address          text    NOT NULL UNIQUE,
        address_verified boolean NOT NULL,
        claimed_at       bigint  NOT NULL,
        last_seen_at     bigint  NOT NULL,
        expires_at       bigint  NOT NULL
      );
    `,
  },
  {
    version: 2,
    summary: 'index claims by expiry',
    sql: `CREATE INDEX claims_by_expiry ON claims (expires_at);`,
  },
  {
    version: 3,
    summary: 'cluster: live presence with instance leases, the ordered presence log, backends and frontend',
    // Only several registries sharing one database use these (postgres-presence.ts says how).
    //  - registry_instances: one row per running registry process, with its lease (database time).
    //  - presence: the live registrations of the whole cluster; the unique indexes make one key one
    //    registration and a nickname (case-insensitively) and an address one holder across instances.
    //  - presence_log_head: the log's last sequence number. Every write of presence bumps it in the
    //    same transaction, so commits are numbered in commit order with no gap; log_id names this
    //    log (a database restored from a backup gets a new one, and every instance re-syncs).
    //  - presence_events: the log itself, trimmed by age.
    //  - registry_backends, registry_frontend: what Onionbalance's frontend and the backends learn
    //    of each other (docs/CLUSTER.md).
    sql: `
      CREATE TABLE registry_instances (
        id          text        NOT NULL PRIMARY KEY,
        started_at  timestamptz NOT NULL DEFAULT now(),
        lease_until timestamptz NOT NULL
      );
      CREATE TABLE presence (
        key_id           text    NOT NULL PRIMARY KEY,
        nickname         text    NOT NULL,
        nickname_key     text    COLLATE "C" NOT NULL UNIQUE CHECK (nickname_key = lower(nickname)),
        address          text    NOT NULL UNIQUE,
        address_verified boolean NOT NULL,
        instance_id      text    NOT NULL,
        local_ref        bigint  NOT NULL,
        public_key       bytea   NOT NULL,
        peer             text    NOT NULL
      );
      CREATE INDEX presence_by_instance ON presence (instance_id);
      CREATE TABLE presence_log_head (
        id     smallint NOT NULL PRIMARY KEY CHECK (id = 1),
        seq    bigint   NOT NULL,
        log_id text     NOT NULL
      );
      INSERT INTO presence_log_head VALUES (1, 0, md5(random()::text || clock_timestamp()::text));
      CREATE TABLE presence_events (
        seq         bigint      NOT NULL PRIMARY KEY,
        at          timestamptz NOT NULL DEFAULT now(),
        kind        text        NOT NULL CHECK (kind IN ('joined', 'left', 'replaced', 'evicted', 'expired')),
        announce    boolean     NOT NULL,
        key_id      text        NOT NULL,
        nickname    text        NOT NULL,
        instance_id text        NOT NULL,
        local_ref   bigint      NOT NULL,
        public_key  bytea,
        peer        text
      );
      CREATE TABLE registry_backends (
        onion     text        NOT NULL PRIMARY KEY,
        last_seen timestamptz NOT NULL
      );
      CREATE TABLE registry_frontend (
        id           smallint    NOT NULL PRIMARY KEY DEFAULT 1 CHECK (id = 1),
        master_onion text        NOT NULL,
        updated_at   timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 4,
    summary:
      "cluster operations: backends follow their registry's lease and can be drained; a registration's start " +
      'travels with it',
    // - registry_backends.instance_id, lease_until: the registry instance that serves this onion
    //   and its lease, written at every renewal (and kept when it stops), so the frontend lists
    //   the backends whose registry is alive, not every onion seen in the last day.
    // - drained_at, drain_reason: set by `cluster drain`: the frontend leaves the backend out of
    //   the master descriptor while its registry goes on serving whoever still reaches it.
    // - presence.registered_at: when the key's registration began (ms since the epoch), carried
    //   from a replaced row so that ClaimAfterSeconds does not start again on another instance.
    sql: `
      ALTER TABLE registry_backends
        ADD COLUMN instance_id  text,
        ADD COLUMN lease_until  timestamptz,
        ADD COLUMN drained_at   timestamptz,
        ADD COLUMN drain_reason text;
      ALTER TABLE presence ADD COLUMN registered_at bigint;
    `,
  },
  {
    version: 5,
    summary: 'moderation: blocked keys and addresses, reserved nicknames, the audit trail, the decisions version',
    // The operator's decisions (docs/OPERATIONS.md "Moderation"). Times are ms since the epoch;
    // expires_at null: until the operator lifts it.
    //  - moderation_blocks: a key (its key id) or an onion address; label: the nickname it was named by.
    //  - moderation_reservations: a nickname or glob, lowercase; for_key_id: the one key that may use it.
    //  - moderation_audit: every operator action, append-only (the triggers refuse UPDATE and DELETE).
    //  - moderation_version: bumped with every decision; every instance polls it (moderation-watch.ts).
    sql: `
      CREATE TABLE moderation_blocks (
        kind       text   NOT NULL CHECK (kind IN ('key', 'address')),
        target     text   NOT NULL,
        label      text,
        reason     text,
        note       text,
        created_at bigint NOT NULL,
        created_by text   NOT NULL,
        expires_at bigint,
        PRIMARY KEY (kind, target)
      );
      CREATE TABLE moderation_reservations (
        pattern    text   NOT NULL PRIMARY KEY CHECK (pattern = lower(pattern)),
        for_key_id text,
        for_label  text,
        reason     text,
        note       text,
        created_at bigint NOT NULL,
        created_by text   NOT NULL,
        expires_at bigint
      );
      CREATE TABLE moderation_audit (
        seq    bigserial PRIMARY KEY,
        at     bigint NOT NULL,
        action text   NOT NULL,
        target text   NOT NULL,
        reason text,
        note   text,
        actor  text   NOT NULL,
        detail text
      );
      CREATE FUNCTION moderation_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'moderation_audit is append-only'; END $$;
      CREATE TRIGGER moderation_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON moderation_audit
        FOR EACH STATEMENT EXECUTE FUNCTION moderation_audit_append_only();
      CREATE TABLE moderation_version (
        id      smallint NOT NULL PRIMARY KEY CHECK (id = 1),
        version bigint   NOT NULL
      );
      INSERT INTO moderation_version VALUES (1, 0);
    `,
  },
];

export const PG_SCHEMA_VERSION: number = PG_MIGRATIONS[PG_MIGRATIONS.length - 1]?.version ?? 0;
if (PG_SCHEMA_VERSION !== SQLITE_SCHEMA_VERSION)
  throw new Error('the PostgreSQL and SQLite schemas must be at the same version');

/** Any constant: the key of the advisory lock migrations take (ASCII "p2pclaim" as an int8). */
const MIGRATION_LOCK = '8084106818316921197';

/** The version the database is at: 0 when it has no schema_version table (a new database). */
export async function pgSchemaVersionOf(client: PoolClient): Promise<number> {
  const table = await client.query<{ name: string | null }>("SELECT to_regclass('schema_version')::text AS name");
  if (table.rows[0]?.name === null || table.rows[0] === undefined) return 0;
  const row = await client.query<{ version: number }>('SELECT version FROM schema_version');
  const version = row.rows[0]?.version;
  if (typeof version !== 'number' || !Number.isInteger(version)) throw new Error('schema_version holds no version');
  return version;
}

function refuseNewer(version: number, target: string): RegistryError {
  return schemaNewerError(version, PG_SCHEMA_VERSION, target);
}

/** A new database with a claims table but no schema_version is someone else's: never write into it. */
async function refuseForeign(client: PoolClient, target: string): Promise<void> {
  const table = await client.query<{ name: string | null }>("SELECT to_regclass('claims')::text AS name");
  if (table.rows[0]?.name !== null && table.rows[0] !== undefined) {
    throw storeError(
      'STORE_OPEN_FAILED',
      `cannot open the claim database ${target}: it holds a claims table but no registry schema version. ` +
        "Fix: point [Store] Database at the registry's own database (or schema), or drop that table.",
    );
  }
}

async function applyOne(client: PoolClient, migration: Migration, target: string): Promise<void> {
  // The lock is taken before the transaction begins, not inside it: a transaction that waited for
  // it inside could still see the catalog as it was before the other registry's migration (its
  // to_regclass('schema_version') said null, and a half-seen new database looked foreign).
  let locked = false;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    locked = true;
    await client.query('BEGIN');
    // Read again under the lock: another registry may have migrated meanwhile.
    const current = await pgSchemaVersionOf(client);
    if (current > PG_SCHEMA_VERSION) throw refuseNewer(current, target);
    if (current === 0) await refuseForeign(client, target);
    if (current < migration.version) {
      if (current === 0)
        await client.query(
          'CREATE TABLE schema_version (version integer NOT NULL); INSERT INTO schema_version VALUES (0)',
        );
      await client.query(migration.sql);
      await client.query('UPDATE schema_version SET version = $1', [migration.version]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (isStoreError(err)) throw err;
    const failure = environmentFailure(err, target) ?? openFailure(err, target);
    throw storeError(
      'STORE_MIGRATION_FAILED',
      `cannot migrate the claim database ${target} to schema version ${migration.version} (${migration.summary}): ` +
        `${failure.text} (${failure.name}). Fix: ${failure.fix}; the database was left at its previous version.`,
      { cause: err },
    );
  } finally {
    if (locked) await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
  }
}

/** Brings the database to the newest version. A database newer than this code is refused untouched. */
export async function migratePostgres(
  client: PoolClient,
  target: string,
): Promise<{ readonly from: number; readonly to: number }> {
  const from = await pgSchemaVersionOf(client);
  if (from > PG_SCHEMA_VERSION) throw refuseNewer(from, target);
  for (const migration of PG_MIGRATIONS) {
    if (migration.version > from) await applyOne(client, migration, target);
  }
  return { from, to: await pgSchemaVersionOf(client) };
}
