/**
 * Opening a SQLite claim database: the server's connection (WAL, synchronous=FULL, checked
 * writable), or for reading only (the operators' `claims list`, `claims show`, `backup`); and the
 * one-line error of a file that cannot be opened, which both opens share.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { pathToFileURL } from 'node:url';
import type { RegistryError } from '../../protocol/errors.js';
import { readOnlySchemaError, refuseIfNewer, SCHEMA_VERSION, schemaVersionOf } from '../migrations.js';
import { openFailure } from './sqlite-failure.js';
import { isStoreError, storeError } from '../store-error.js';

export function openError(err: unknown, path: string): RegistryError {
  const failure = openFailure(err, path);
  return storeError(
    'STORE_OPEN_FAILED',
    `cannot open the claim database ${path}: ${failure.text} (${failure.name}). Fix: ${failure.fix}.`,
    { cause: err },
  );
}

/**
 * Where a read-only connection opens `path`. A WAL reader needs the -shm file beside the database,
 * which it creates when absent; in a folder it may not write, it cannot. Then, with no -wal either,
 * no server has the file open (a WAL connection keeps both while it lives), and the file is read as
 * immutable: SQLite then takes no locks and needs no -shm.
 */
function readOnlyLocation(path: string): string | URL {
  if (existsSync(`${path}-wal`)) return path;
  try {
    accessSync(dirname(path), constants.W_OK);
    return path;
  } catch {
    const url = pathToFileURL(path);
    url.searchParams.set('immutable', '1');
    return url;
  }
}

/** The read-only connection of a `readOnly` store: a file at another schema version is refused. */
export function openReadOnly(path: string, busyTimeoutMs: number): DatabaseSync {
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(readOnlyLocation(path), { readOnly: true, timeout: busyTimeoutMs });
    const version = schemaVersionOf(db);
    if (version !== SCHEMA_VERSION) throw readOnlySchemaError(version, SCHEMA_VERSION, path);
    return db;
  } catch (err) {
    db?.close();
    if (isStoreError(err)) throw err;
    throw openError(err, path);
  }
}

/** The WAL is truncated back to this after a checkpoint, so that one burst does not keep it large. */
export const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;
/**
 * WAL pages between automatic checkpoints, used only if the checkpoint thread cannot run (SQLite's
 * default is 1,000; a checkpoint writes a page once however often it changed).
 */
export const WAL_AUTOCHECKPOINT_PAGES = 10_000;

/** Opens the connection and sets it up; any failure is one STORE_OPEN_FAILED line. */
export function openConnection(path: string, busyTimeoutMs: number): DatabaseSync {
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { timeout: busyTimeoutMs });
    // Before WAL mode, which rewrites the header: a newer file must be left exactly as it was.
    // Reading the version is also where "file is not a database" shows.
    refuseIfNewer(db, path);
    const mode = db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode?: unknown } | undefined;
    if (mode?.journal_mode !== 'wal')
      throw new Error(`the file system refused WAL mode (journal_mode is ${String(mode?.journal_mode)})`);
    // Checkpoints run from the checkpoint thread (sqlite-checkpointer.ts), not inside a commit.
    db.exec(
      `PRAGMA synchronous = FULL; PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}; PRAGMA ` +
        `wal_autocheckpoint = 0;`,
    );
    return db;
  } catch (err) {
    db?.close();
    if (isStoreError(err)) throw err;
    throw openError(err, path);
  }
}

/**
 * A real write at start, so that a database that opens but cannot be written (read-only file or
 * mount, full disk) stops the start instead of failing the first registration. SQLite opens a file
 * it may not write read-only without a word; rewriting the schema version is the smallest write.
 */
export function probeWrite(db: DatabaseSync, path: string): void {
  try {
    db.exec(`BEGIN IMMEDIATE; PRAGMA user_version = ${schemaVersionOf(db)}; COMMIT;`);
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw openError(err, path);
  }
}
