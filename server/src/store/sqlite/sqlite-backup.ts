/**
 * An online, consistent copy of the claim database while the server writes to it: `VACUUM INTO`
 * from a second, read-only connection (node:sqlite's backup() failed now and then with "not an
 * error" when a commit ran during it), checked, synced, then renamed into place.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { SCHEMA_VERSION, schemaVersionOf } from '../migrations.js';
import { storeError } from '../store-error.js';

/** Copies the database at `path` to `file`; STORE_UNAVAILABLE (nothing left at `file`) on failure. */
export function backupSqliteDatabase(path: string, file: string): void {
  const target = resolve(file);
  // Written beside the target and renamed into place: a failed backup never leaves a partial
  // file under the name an operator will restore from.
  const partial = `${target}.partial-${randomBytes(6).toString('hex')}`;
  try {
    const reader = new DatabaseSync(path, { readOnly: true, timeout: 1_000 });
    try {
      reader.prepare('VACUUM INTO ?').run(partial);
    } finally {
      reader.close();
    }
    checkBackup(partial);
    syncFile(partial);
    renameSync(partial, target);
    syncFile(dirname(target));
  } catch (err) {
    for (const leftover of [partial, `${partial}-wal`, `${partial}-shm`, `${partial}-journal`])
      rmSync(leftover, { force: true });
    const reason = err instanceof Error ? err.message : String(err);
    throw storeError(
      'STORE_UNAVAILABLE',
      `cannot back up the claim database ${path} to ${target}: ${reason}. Fix: check that the folder exists, is ` +
        `writable and has space, then retry.`,
      { cause: err },
    );
  }
}

/** Opens the copy on its own and checks it before it replaces anything. */
function checkBackup(file: string): void {
  const copy = new DatabaseSync(file);
  try {
    const check = copy.prepare('PRAGMA quick_check').get() as { quick_check?: unknown } | undefined;
    if (check?.quick_check !== 'ok') throw new Error(`the copy failed its check: ${String(check?.quick_check)}`);
    const version = schemaVersionOf(copy);
    if (version !== SCHEMA_VERSION)
      throw new Error(`the copy has schema version ${version}, expected ${SCHEMA_VERSION}`);
  } finally {
    copy.close();
  }
}

function syncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
