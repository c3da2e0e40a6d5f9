/**
 * Opens the claim store a configuration names (`[Store] Database`, `[Claims] ClaimDays`): what the
 * server's start and the operators' commands share. A failure is a RegistryError whose message is
 * the one line to print (the path, the cause, the fix).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Clock } from '../store/claim-store.js';
import { openSqliteClaimStore, type SqliteClaimStore } from '../store/sqlite-store.js';
import type { Config } from './config.js';

export interface OpenStoreOptions {
  /** The store's clock (ms since the epoch); tests inject one. */
  readonly now?: Clock;
}

/**
 * Opens (creating and migrating it if needed) the configured database. Its folder is created when
 * absent, so that the default `./data/registry.db` works out of the box; a folder that cannot be
 * created is reported by the store, naming it.
 */
export async function openConfiguredStore(config: Pick<Config, 'claims'>, options: OpenStoreOptions = {}): Promise<SqliteClaimStore> {
  const path = resolve(config.claims.database);
  try {
    // The claims say which key uses which nickname and when it was last online: only the server's
    // user may read them. SQLite gives its -wal and -shm files the database file's mode.
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, '', { flag: 'wx', mode: 0o600 });
  } catch {
    // It exists already, or the folder cannot be made: openSqliteClaimStore names it and the fix.
  }
  return openSqliteClaimStore({ path, claimDays: config.claims.claimDays, ...(options.now === undefined ? {} : { now: options.now }) });
}
