/**
 * The store's failures are RegistryErrors with the catalog's `store` codes (protocol/errors.ts).
 * The server answers STORE_UNAVAILABLE with the protocol's `UNAVAILABLE` and its `retryAfterMs`;
 * the start turns the other codes into its one fatal line.
 */
import { RegistryError, type StoreErrorCode } from '../protocol/errors.js';

export type { StoreErrorCode };

/** What STORE_UNAVAILABLE suggests to wait before a retry when nothing says better. */
export const STORE_RETRY_AFTER_MS = 1_000;

export interface StoreErrorOptions {
  readonly cause?: unknown;
  /** STORE_UNAVAILABLE: how long the caller should wait before retrying. */
  readonly retryAfterMs?: number;
}

export function storeError(code: StoreErrorCode, message?: string, options: StoreErrorOptions = {}): RegistryError {
  return new RegistryError(code, message, {
    ...(options.cause === undefined ? {} : { cause: options.cause }),
    ...(options.retryAfterMs === undefined ? {} : { retryAfterMs: options.retryAfterMs }),
  });
}

export function isStoreError(err: unknown, code?: StoreErrorCode): err is RegistryError {
  return err instanceof RegistryError && err.source === 'store' && (code === undefined || err.code === code);
}
