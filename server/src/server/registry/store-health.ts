/** Whether the claim store can be written, as the keeper last saw it: said once when it changes. */
import { isStoreError, STORE_RETRY_AFTER_MS } from '../../store/store-error.js';
import type { Logger } from '../logger.js';
import { unavailable } from './claim-refusals.js';

export class StoreHealth {
  private failing = false;

  constructor(private readonly logger: Logger) {}

  /**
   * A store failure as the refusal to answer (UNAVAILABLE); logged once when the store starts
   * failing, not once per request, and not at all when it is closed (a shutdown). Anything else is
   * returned as it is (a bug, or a protocol refusal).
   */
  failure(err: unknown): Error & { retryAfterMs?: number | null } {
    if (!isStoreError(err, 'STORE_UNAVAILABLE') && !isStoreError(err, 'STORE_CLOSED'))
      return err instanceof Error ? err : new Error(String(err));
    // Closed only by close(): the server is shutting down, nothing is wrong with the store.
    if (err.code === 'STORE_CLOSED') return unavailable(STORE_RETRY_AFTER_MS);
    if (!this.failing) {
      this.failing = true;
      this.logger.error({ err }, 'the claim store cannot be written: registrations answer UNAVAILABLE until it can');
    }
    return unavailable(err.retryAfterMs ?? STORE_RETRY_AFTER_MS);
  }

  /** Whether the last write worked (false from a failure until the next write that works). */
  get writable(): boolean {
    return !this.failing;
  }

  /** A write worked. */
  healthy(): void {
    if (!this.failing) return;
    this.failing = false;
    this.logger.info('the claim store can be written again');
  }
}
