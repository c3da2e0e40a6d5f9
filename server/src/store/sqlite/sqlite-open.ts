/**
 * Opening a SQLite claim database for reading only (the operators' `claims list`, `claims show`,
 * `backup`), and the one-line error of a file that cannot be opened, which both opens share.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { pathToFileURL } from 'node:url';
import type { RegistryError } from '../../protocol/errors.js';
import { readOnlySchemaError, SCHEMA_VERSION, schemaVersionOf } from '../migrations.js';
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
