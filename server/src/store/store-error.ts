/**
 * The store's failures, as one small coded error. These codes belong in the catalog
 * (protocol/errors.ts, source 'store') once the store is wired in; until then they live here so
 * the store stays self-contained. The server answers STORE_UNAVAILABLE with the protocol's
 * `UNAVAILABLE` and `retryAfterMs`; the start turns the STORE_OPEN_* codes into its one fatal line.
 */

export const STORE_ERRORS = {
  /** A write (or the read it needs) failed at runtime; nothing was changed. Retry later. */
  STORE_UNAVAILABLE: 'the claim store cannot be written right now; nothing was changed: retry later',
  /** The database cannot be opened or first written: permissions, missing folder, disk, not a database. */
  STORE_OPEN_FAILED: 'the claim database cannot be opened',
  /** The file was written by a newer version of the registry. */
  STORE_SCHEMA_NEWER: 'the claim database has a newer schema than this version knows',
  /** A migration failed; it was rolled back and the file is at its previous version. */
  STORE_MIGRATION_FAILED: 'the claim database could not be migrated',
  /** A row read back does not have the shape the schema promises. */
  STORE_CORRUPT: 'the claim database holds a row this version cannot read',
  /** The caller passed a value the store refuses to write (a bug in the caller). */
  STORE_BAD_INPUT: 'a value passed to the claim store is not valid',
  /** The store was closed. */
  STORE_CLOSED: 'the claim store is closed',
} as const;

export type StoreErrorCode = keyof typeof STORE_ERRORS;

export interface StoreErrorOptions {
  readonly cause?: unknown;
  /** The database, for messages that name it. */
  readonly path?: string;
  /** STORE_UNAVAILABLE: how long the caller should wait before retrying. */
  readonly retryAfterMs?: number;
}

export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code: StoreErrorCode;
  readonly path: string | null;
  readonly retryAfterMs: number | null;

  constructor(code: StoreErrorCode, message: string = STORE_ERRORS[code], options: StoreErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.path = options.path ?? null;
    this.retryAfterMs = options.retryAfterMs ?? null;
  }
}

export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}
