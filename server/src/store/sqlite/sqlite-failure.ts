/**
 * What an SQLite failure means for the registry: which ones are the environment (a disk, a lock, a
 * permission; the operation may succeed later, so it is STORE_UNAVAILABLE) and which are bugs, and
 * the one line that tells an operator the cause and the fix.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/** SQLite primary result codes that come from the environment rather than from our SQL. */
const ENVIRONMENT_CODES: ReadonlyMap<number, string> = new Map([
  [5, 'SQLITE_BUSY'],
  [6, 'SQLITE_LOCKED'],
  [7, 'SQLITE_NOMEM'],
  [8, 'SQLITE_READONLY'],
  [10, 'SQLITE_IOERR'],
  [11, 'SQLITE_CORRUPT'],
  [13, 'SQLITE_FULL'],
  [14, 'SQLITE_CANTOPEN'],
  [15, 'SQLITE_PROTOCOL'],
  [26, 'SQLITE_NOTADB'],
]);

export interface SqliteFailure {
  /** e.g. SQLITE_FULL */
  readonly name: string;
  /** SQLite's own words, e.g. "database or disk is full". */
  readonly text: string;
  /** What the operator should do. */
  readonly fix: string;
}

function isSqliteError(err: unknown): err is Error & { errcode: number; errstr: string } {
  return (
    err instanceof Error &&
    (err as { code?: unknown }).code === 'ERR_SQLITE_ERROR' &&
    typeof (err as { errcode?: unknown }).errcode === 'number'
  );
}

function fixFor(name: string, path: string): string {
  switch (name) {
    case 'SQLITE_BUSY':
    case 'SQLITE_LOCKED':
    case 'SQLITE_PROTOCOL':
      return (
        `another process holds the write lock on ${path} (a claims command or a backup?): retry, and stop that ` +
        `process if it lasts`
      );
    case 'SQLITE_READONLY':
      return (
        `make ${path}, its -wal and -shm files and their folder writable by the registry's user (and not a ` +
        `read-only mount)`
      );
    case 'SQLITE_FULL':
      return `free space on the file system that holds ${path}`;
    case 'SQLITE_IOERR':
      return (
        `check the disk that holds ${path}: it is full, failing, read-only, or over a file-size limit (see the ` +
        `system log)`
      );
    case 'SQLITE_CANTOPEN':
      return `check that the folder of ${path} exists and that the registry's user may create and write files in it`;
    case 'SQLITE_CORRUPT':
    case 'SQLITE_NOTADB':
      return (
        `${path} is damaged or is not a registry database: move it away and restore a backup (p2p-registry ` +
        `backup makes one)`
      );
    default:
      return 'free memory on this host, then retry';
  }
}

/**
 * The failure an SQLite error stands for, or undefined when it is not an environment failure (a
 * constraint, a bad statement: a bug, to be thrown as it is).
 */
export function environmentFailure(err: unknown, path: string): SqliteFailure | undefined {
  if (!isSqliteError(err)) return undefined;
  const name = ENVIRONMENT_CODES.get(err.errcode & 0xff);
  if (name === undefined) return undefined;
  return { name, text: err.errstr, fix: fixFor(name, path) };
}

/**
 * Why a database cannot be opened, as precisely as the file system tells: SQLite says only "unable
 * to open database file" for a missing folder, a folder in place of the file, or a permission.
 */
export function openFailure(err: unknown, path: string): SqliteFailure {
  const folder = dirname(path);
  if (!existsSync(folder)) {
    return {
      name: 'ENOENT',
      text: `the folder ${folder} does not exist`,
      fix: `create ${folder} (writable by the registry's user) or set [Store] Database to another path`,
    };
  }
  if (existsSync(path) && statSync(path).isDirectory()) {
    return {
      name: 'EISDIR',
      text: `${path} is a folder`,
      fix: `set [Store] Database to a file path, e.g. ${path}/registry.db`,
    };
  }
  const failure = environmentFailure(err, path);
  if (failure !== undefined) return failure;
  const text = err instanceof Error ? err.message : String(err);
  return { name: 'ERROR', text, fix: `check ${path} and its folder` };
}
