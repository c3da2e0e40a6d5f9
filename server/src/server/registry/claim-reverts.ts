/**
 * Claims written for registrations that were then refused, put back as they were: a refused
 * registration changes nothing. A revert the store cannot write yet is kept and tried again.
 */
import type { Claim, ClaimStore } from '../../store/claim-store.js';
import { isStoreError, STORE_RETRY_AFTER_MS } from '../../store/store-error.js';
import type { Logger } from '../logger.js';
import type { StoreHealth } from './store-health.js';

/** A claim written for a registration, and what it replaced: put back if the registration is refused. */
export interface Undo {
  readonly made: Claim;
  readonly restore: readonly Claim[];
}

export class ClaimReverts {
  /** Reverts the store could not write yet, and the timer that tries them again. */
  private readonly waiting = new Set<Undo>();
  private timer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(
    private readonly store: ClaimStore,
    private readonly health: StoreHealth,
    private readonly logger: Logger,
  ) {}

  async revert(undo: Undo): Promise<void> {
    this.waiting.delete(undo);
    try {
      await this.store.revert(undo.made, undo.restore);
      this.health.healthy();
    } catch (err) {
      this.health.failure(err);
      if (!isStoreError(err, 'STORE_UNAVAILABLE')) {
        if (!isStoreError(err, 'STORE_CLOSED'))
          this.logger.error({ err }, 'reverting the claim of a refused registration failed');
        return;
      }
      this.waiting.add(undo);
      if (!this.closing && this.timer === undefined) {
        this.timer = setTimeout(
          () => {
            this.timer = undefined;
            for (const again of [...this.waiting]) void this.revert(again);
          },
          (err as { retryAfterMs?: number | null }).retryAfterMs ?? STORE_RETRY_AFTER_MS,
        ).unref();
      }
    }
  }

  /** Tries every waiting revert once more (the store still open); says how many are left undone. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.timer);
    await Promise.all([...this.waiting].map((undo) => this.revert(undo)));
    if (this.waiting.size > 0)
      this.logger.warn(
        { reverts: this.waiting.size },
        'closing with claims of refused registrations not reverted: the store could not be written',
      );
  }
}
