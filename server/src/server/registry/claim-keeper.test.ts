import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { storeError } from '../../store/store-error.js';
import type { Claim, ClaimStore } from '../../store/claim-store.js';
import { ClaimKeeper, type Prepared } from './claim-keeper.js';
import type { PeerConnection } from '../connection/peer-connection.js';
import type { PeerEntry } from './peer-table.js';
import { logSink } from '../../../../test/support/log-sink.js';
import { delay } from '../../../../test/support/wait.js';
import { randomOnion } from '../../../../test/support/registry-harness.js';

/** A store whose delayed claims fail with `failure`; everything else succeeds and does nothing. */
function failingStore(failure: () => Error): { store: ClaimStore; claims: () => number } {
  let claims = 0;
  const store = {
    claim: () => {
      claims += 1;
      return Promise.reject(failure());
    },
    touch: () => Promise.resolve(0),
    purgeExpired: () => Promise.resolve(0),
    close: () => Promise.resolve(),
  } as unknown as ClaimStore;
  return { store, claims: () => claims };
}

function keeperWith(
  store: ClaimStore,
  intervals: { touchIntervalMs?: number; purgeIntervalMs?: number } = {},
): { keeper: ClaimKeeper; errors: () => number } {
  const { sink, lines } = logSink();
  const keeper = new ClaimKeeper({ store, claimAfterSeconds: 0, logger: pino({ level: 'error' }, sink), ...intervals });
  return { keeper, errors: () => lines.filter((l) => (l.level as number) >= 50).length };
}

const entry = {
  keyId: 'k'.repeat(64),
  peer: { nickname: 'alice', address: randomOnion() },
} as unknown as PeerEntry<PeerConnection>;

describe('the delayed claim', () => {
  it('is retried while the store cannot be written', async () => {
    const { store, claims } = failingStore(() => storeError('STORE_UNAVAILABLE', 'locked', { retryAfterMs: 50 }));
    const { keeper } = keeperWith(store);
    keeper.entered(entry, null, []);
    await delay(400);
    expect(claims()).toBeGreaterThan(2);
    await keeper.close();
  });

  it('that fails with a bug is logged once and not retried', async () => {
    const { store, claims } = failingStore(() => new TypeError('a bug'));
    const { keeper, errors } = keeperWith(store);
    keeper.entered(entry, null, []);
    await delay(1_500);
    expect(claims()).toBe(1);
    expect(errors()).toBe(1);
    await keeper.close();
  });
});

describe('last-seen and purges', () => {
  const claim = { keyId: entry.keyId, expiresAt: Date.now() + 60_000 } as unknown as Claim;

  it('logs a touch that fails with a bug once, and does not keep its keys for another try', async () => {
    const touched: string[][] = [];
    const store = {
      touch: (ids: readonly string[]) => {
        touched.push([...ids]);
        return Promise.reject(new TypeError('a bug'));
      },
      purgeExpired: () => Promise.resolve(0),
      close: () => Promise.resolve(),
    } as unknown as ClaimStore;
    const { keeper, errors } = keeperWith(store, { touchIntervalMs: 20 });
    keeper.entered(entry, claim, []);
    keeper.left(entry);
    await delay(300);
    expect(touched.filter((ids) => ids.includes(entry.keyId))).toHaveLength(1);
    expect(errors()).toBe(1);
    await keeper.close();
  });

  it('logs a purge that fails with a bug once, and does not run it again', async () => {
    let purges = 0;
    const store = {
      touch: () => Promise.resolve(0),
      purgeExpired: () => {
        purges += 1;
        return Promise.reject(new TypeError('a bug'));
      },
      close: () => Promise.resolve(),
    } as unknown as ClaimStore;
    const { keeper, errors } = keeperWith(store, { purgeIntervalMs: 20 });
    await delay(300);
    expect(purges).toBe(1);
    expect(errors()).toBe(1);
    await keeper.close();
  });

  it('writes no delayed claim once it is closing, and logs no error for one', async () => {
    let closed = false;
    let claims = 0;
    const store = {
      claim: () => {
        claims += 1;
        return Promise.reject(closed ? storeError('STORE_CLOSED', 'closed') : new Error('not closed yet'));
      },
      touch: () => Promise.resolve(0),
      purgeExpired: () => Promise.resolve(0),
      close: () => {
        closed = true;
        return Promise.resolve();
      },
    } as unknown as ClaimStore;
    const { keeper, errors } = keeperWith(store);
    const closing = keeper.close();
    // A registration that got in while the server shut down.
    keeper.entered(entry, null, []);
    await closing;
    await delay(100);
    expect(claims).toBe(0);
    expect(errors()).toBe(0);
  });
});

describe('what a registration wrote, once the roster answered', () => {
  const made = { keyId: 'k'.repeat(64), nickname: 'alice2' } as unknown as Claim;
  const previous = { keyId: 'k'.repeat(64), nickname: 'alice' } as unknown as Claim;

  it('is reverted when it was refused; a revert the store cannot write now is tried again until it can', async () => {
    const reverts: Array<[Claim, readonly Claim[]]> = [];
    const store = {
      revert: (m: Claim, restore: readonly Claim[]) => {
        reverts.push([m, restore]);
        return reverts.length < 3
          ? Promise.reject(storeError('STORE_UNAVAILABLE', 'locked', { retryAfterMs: 20 }))
          : Promise.resolve(1);
      },
      touch: () => Promise.resolve(0),
      purgeExpired: () => Promise.resolve(0),
      close: () => Promise.resolve(),
    } as unknown as ClaimStore;
    const { keeper, errors } = keeperWith(store);
    await keeper.abandon({ held: made, undo: { made, restore: [previous] }, displaced: null });
    await expect.poll(() => reverts.length).toBe(3);
    expect(reverts.every(([m, restore]) => m === made && restore[0] === previous)).toBe(true);
    // Said once, as any store that cannot be written.
    expect(errors()).toBe(1);
    await keeper.close();
  });

  it(
    'deletes the displaced claim once it is in; a deletion that fails with a bug is logged, and the ' +
      'registration stands',
    async () => {
      const released: string[] = [];
      const store = {
        releaseClaim: (claim: Claim) => {
          released.push(claim.keyId);
          return Promise.reject(new TypeError('a bug'));
        },
        touch: () => Promise.resolve(0),
        purgeExpired: () => Promise.resolve(0),
        close: () => Promise.resolve(),
      } as unknown as ClaimStore;
      const { keeper, errors } = keeperWith(store);
      const prepared: Prepared = { held: null, undo: null, displaced: previous };
      await expect(keeper.completed(prepared)).resolves.toBeUndefined();
      expect(released).toEqual([previous.keyId]);
      expect(errors()).toBe(1);
      await keeper.close();
    },
  );
});

describe(
  'a registration that carries on an earlier one (a cluster: the same key reconnected to another ' + 'instance)',
  () => {
    const held = {
      ...entry,
      owner: { send: () => undefined, log: { debug: () => undefined } },
    } as unknown as PeerEntry<PeerConnection>;

    function countingKeeper(claimAfterSeconds: number): { keeper: ClaimKeeper; claims: () => number } {
      let claims = 0;
      const store = {
        claim: () => {
          claims += 1;
          return Promise.resolve({ kind: 'claimed', claim: { expiresAt: Date.now() + 1_000 } });
        },
        touch: () => Promise.resolve(0),
        purgeExpired: () => Promise.resolve(0),
        close: () => Promise.resolve(),
      } as unknown as ClaimStore;
      const keeper = new ClaimKeeper({ store, claimAfterSeconds, logger: pino({ level: 'silent' }) });
      return { keeper, claims: () => claims };
    }

    it('is claimed ClaimAfterSeconds after the earlier start, not after its own', async () => {
      const { keeper, claims } = countingKeeper(1);
      keeper.entered(held, null, []);
      keeper.carryOn(held, Date.now() - 800);
      await delay(400);
      expect(claims()).toBe(1);
      await keeper.close();
    });

    it('keeps its own start when the one it carries on is later', async () => {
      const { keeper, claims } = countingKeeper(1);
      keeper.entered(held, null, []);
      keeper.carryOn(held, Date.now() + 10_000);
      await delay(400);
      expect(claims()).toBe(0);
      await keeper.close();
    });
  },
);
