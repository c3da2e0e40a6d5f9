/**
 * The SQLite schema, as an ordered list of migrations. `PRAGMA user_version` holds the version a
 * file is at; each migration runs in its own transaction together with the version bump, so a file
 * is always exactly at one version. Append new migrations; never edit a released one.
 */
import type { DatabaseSync } from 'node:sqlite';
import { environmentFailure } from './sqlite/sqlite-failure.js';
import type { RegistryError } from '../protocol/errors.js';
import { isStoreError, storeError } from './store-error.js';

export interface Migration {
  readonly version: number;
  readonly summary: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    summary: 'claims: one row per key, nickname and address unique',
    // nickname_key is stored rather than an expression index so that the PostgreSQL store can
    // declare the same unique column. Times are ms since the epoch.
    sql: `
      CREATE TABLE claims (
        key_id           TEXT    NOT NULL PRIMARY KEY CHECK (length(key_id) = 64),
        public_key       BLOB    NOT NULL,
        nickname         TEXT    NOT NULL,
        nickname_key     TEXT    NOT NULL UNIQUE CHECK (nickname_key = lower(nickname)),
        address          TEXT    NOT NULL UNIQUE,
        address_verified INTEGER NOT NULL CHECK (address_verified IN (0, 1)),
        claimed_at       INTEGER NOT NULL,
        last_seen_at     INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    summary: 'index claims by expiry',
    // Version 1 purged expired claims by scanning the table, on the server's only thread, at
    // every purge. With the index a purge reads only what it deletes (bench/claim-store-bench.ts
    // measures both).
    sql: `CREATE INDEX claims_by_expiry ON claims (expires_at);`,
  },
  {
    version: 3,
    summary: 'cluster tables (PostgreSQL only: nothing changes in SQLite)',
    // The PostgreSQL schema's version 3 holds what several registries sharing one database need
    // (postgres-schema.ts); a single-host SQLite file has no use for it. The version is bumped
    // all the same so that both schemas keep one numbering.
    sql: `SELECT 1;`,
  },
  {
    version: 4,
    summary: 'cluster operations: backends follow leases and drains (PostgreSQL only: nothing changes in SQLite)',
    // As version 3: the PostgreSQL schema's version 4 changes cluster tables only.
    sql: `SELECT 1;`,
  },
  {
    version: 5,
    summary: 'moderation: blocked keys and addresses, reserved nicknames, the audit trail, the decisions version',
    // The same tables as PostgreSQL's version 5 (postgres-schema.ts says what each holds).
    sql: `
      CREATE TABLE moderation_blocks (
        kind       TEXT    NOT NULL CHECK (kind IN ('key', 'address')),
        target     TEXT    NOT NULL,
        label      TEXT,
        reason     TEXT,
        note       TEXT,
        created_at INTEGER NOT NULL,
        created_by TEXT    NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (kind, target)
      ) STRICT;
      CREATE TABLE moderation_reservations (
        pattern    TEXT    NOT NULL PRIMARY KEY CHECK (pattern = lower(pattern)),
        for_key_id TEXT,
        for_label  TEXT,
        reason     TEXT,
        note       TEXT,
        created_at INTEGER NOT NULL,
        created_by TEXT    NOT NULL,
        expires_at INTEGER
      ) STRICT;
      CREATE TABLE moderation_audit (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        at     INTEGER NOT NULL,
        action TEXT    NOT NULL,
        target TEXT    NOT NULL,
        reason TEXT,
        note   TEXT,
        actor  TEXT    NOT NULL,
        detail TEXT
      ) STRICT;
      CREATE TRIGGER moderation_audit_no_update BEFORE UPDATE ON moderation_audit
        BEGIN SELECT RAISE(ABORT, 'moderation_audit is append-only'); END;
      CREATE TRIGGER moderation_audit_no_delete BEFORE DELETE ON moderation_audit
        BEGIN SELECT RAISE(ABORT, 'moderation_audit is append-only'); END;
      CREATE TABLE moderation_version (
        id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
      ) STRICT;
      INSERT INTO moderation_version VALUES (1, 0);
    `,
  },
];

export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

export function schemaVersionOf(db: DatabaseSync): number {
  const row = db.prepare('PRAGMA user_version').get() as { user_version?: unknown } | undefined;
  const version = row?.user_version;
  if (typeof version !== 'number' || !Number.isInteger(version))
    throw new Error('PRAGMA user_version returned no integer');
  return version;
}

/** A database of a newer schema than this registry knows (`known`), named by `target`: never touched. */
export function schemaNewerError(version: number, known: number, target: string): RegistryError {
  return storeError(
    'STORE_SCHEMA_NEWER',
    `the claim database ${target} has schema version ${version}, newer than this registry knows (${known}): ` +
      'it was written by a newer p2p-registry. Fix: run that version or a newer one, or restore a backup made by ' +
      'this version.',
  );
}

/**
 * Why a store opened to read only (operators' commands) refuses a database not at `known`: it may
 * not migrate, and reading an older schema as the current one could misread it.
 */
export function readOnlySchemaError(version: number, known: number, target: string): RegistryError {
  if (version > known) return schemaNewerError(version, known, target);
  return storeError(
    'STORE_OPEN_FAILED',
    `cannot read the claim database ${target}: it is at schema version ${version}, older than this registry's ` +
      `${known}. ` +
      'Fix: start the server once (it migrates the file), or run this command with write access.',
  );
}

function refuseNewer(version: number, path: string): RegistryError {
  return schemaNewerError(version, SCHEMA_VERSION, path);
}

/** Refuses, before anything is written, a file that a newer version of the registry wrote. */
export function refuseIfNewer(db: DatabaseSync, path: string): void {
  const version = schemaVersionOf(db);
  if (version > SCHEMA_VERSION) throw refuseNewer(version, path);
}

/** A version-0 file that already holds tables is someone else's database: never write into it. */
function refuseForeign(db: DatabaseSync, path: string): void {
  const row = db.prepare('SELECT count(*) AS n FROM sqlite_schema').get() as { n?: unknown } | undefined;
  if (row?.n !== 0) {
    throw storeError(
      'STORE_OPEN_FAILED',
      `cannot open the claim database ${path}: it holds tables but no registry schema version. ` +
        "Fix: set [Store] Database to the registry's own file, or move this one away.",
    );
  }
}

/**
 * Brings the file to `target` (default: the newest version), one migration per transaction.
 * Resolves with the versions before and after. A file newer than this code is refused untouched.
 */
export function migrate(
  db: DatabaseSync,
  path: string,
  target: number = SCHEMA_VERSION,
): { readonly from: number; readonly to: number } {
  const from = schemaVersionOf(db);
  if (from > SCHEMA_VERSION) throw refuseNewer(from, path);
  if (from === 0) refuseForeign(db, path);
  for (const migration of MIGRATIONS) {
    if (migration.version > target) break;
    db.exec('BEGIN IMMEDIATE');
    try {
      // Read again under the write lock: another process may have migrated meanwhile.
      const current = schemaVersionOf(db);
      if (current > SCHEMA_VERSION) throw refuseNewer(current, path);
      if (current < migration.version) {
        db.exec(migration.sql);
        db.exec(`PRAGMA user_version = ${migration.version}`);
      }
      db.exec('COMMIT');
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      if (isStoreError(err)) throw err;
      const failure = environmentFailure(err, path);
      const cause =
        failure === undefined
          ? err instanceof Error
            ? err.message
            : String(err)
          : `${failure.text} (${failure.name})`;
      const fix = failure?.fix ?? 'report this as a bug, with the message; the file was left at its previous version';
      throw storeError(
        'STORE_MIGRATION_FAILED',
        `cannot migrate the claim database ${path} to schema version ${migration.version} (${migration.summary}): ` +
          `${cause}. Fix: ${fix}.`,
        { cause: err },
      );
    }
  }
  return { from, to: schemaVersionOf(db) };
}
