/**
 * The claims of live registrations (PROTOCOL.md revision 2, "Claims" and "Address proof"), between
 * the registrar and the claim store. The store decides every conflict inside its writes; this part
 * decides when to write:
 *  - at register: the store's conflicts (NICKNAME_TAKEN, ADDRESS_TAKEN), then one write, so that a
 *    store that cannot be written answers UNAVAILABLE before anything changed: the claim itself
 *    when ClaimAfterSeconds is 0 or the key holds this binding already (a refresh), else a touch;
 *    a registration refused after that write (by the table, or a cluster's presence) changes
 *    nothing: a claim it made or moved is reverted, and an unverified claim its proof displaces
 *    with ClaimAfterSeconds > 0 is deleted only once it is in;
 *  - after ClaimAfterSeconds of uninterrupted registration: the claim, then `claimed`;
 *  - last-seen: every registration that ends is touched (batched), and every live one each
 *    touch interval (at most 10 minutes, as the protocol requires);
 *  - expired claims are purged in the background.
 * Lookups and lists never come here: the live peer table is memory only.
 */
import { nicknameKey, type ClaimInfo } from '../../protocol/messages.js';
import type { Claim, ClaimOutcome, ClaimRequest, ClaimStore, KeyId } from '../../store/claim-store.js';
import { isStoreError, STORE_RETRY_AFTER_MS } from '../../store/store-error.js';
import { ClaimReverts, type Undo } from './claim-reverts.js';
import { StoreHealth } from './store-health.js';
import type { CommitStats } from '../../metrics/latency-histogram.js';
import { CLAIM_REFUSALS } from './claim-refusals.js';
import type { PeerConnection } from '../connection/peer-connection.js';
import type { Logger } from '../logger.js';
import type { PeerEntry } from './peer-table.js';
import { refuse } from './refusals.js';

type Entry = PeerEntry<PeerConnection>;

export interface ClaimKeeperOptions {
  readonly store: ClaimStore;
  readonly claimAfterSeconds: number;
  readonly logger: Logger;
  /** How often live registrations are touched; at most 10 minutes (PROTOCOL.md). */
  readonly touchIntervalMs?: number;
  /** How often expired claims are purged. */
  readonly purgeIntervalMs?: number;
}

/** What prepare() did for a registration, for the registrar to finish or undo once the roster answered. */
export interface Prepared {
  /** The claim the key holds on this nickname and address (made now when ClaimAfterSeconds is 0), or null. */
  readonly held: Claim | null;
  /** The claim written now, when it is not a refresh of the same binding. */
  readonly undo: Undo | null;
  /**
   * ClaimAfterSeconds > 0: another key's unverified claim on the proven address, deleted once the registration is in.
   */
  readonly displaced: Claim | null;
}

/** What the keeper remembers of a live registration. */
interface Tracked {
  /** When the key's uninterrupted registration on this binding began (Date.now()). */
  since: number;
  /** Its delayed claim (or the retry of one), while armed. */
  timer: NodeJS.Timeout | undefined;
  /** The key holds a claim on this binding (no delayed claim is needed). */
  claimed: boolean;
}

const DEFAULT_TOUCH_INTERVAL_MS = 5 * 60_000;
const DEFAULT_PURGE_INTERVAL_MS = 60 * 60_000;

export function claimInfo(claim: Claim): ClaimInfo {
  return { until: new Date(claim.expiresAt).toISOString() };
}

function sameBinding(claim: { readonly nickname: string; readonly address: string }, entry: Entry): boolean {
  return claim.address === entry.peer.address && nicknameKey(claim.nickname) === nicknameKey(entry.peer.nickname);
}

/** What a claim write would have to undo: nothing for a refresh of the binding the key held. */
function undoOf(entry: Entry, outcome: Extract<ClaimOutcome, { kind: 'claimed' }>): Undo | null {
  const { claim, previous, displaced } = outcome;
  if (previous !== null && sameBinding(previous, entry)) return null;
  return { made: claim, restore: [previous, displaced].filter((c): c is Claim => c !== null) };
}

export class ClaimKeeper {
  private readonly store: ClaimStore;
  private readonly claimAfterMs: number;
  private readonly logger: Logger;
  private readonly tracked = new Map<Entry, Tracked>();
  /** Keys whose registration ended and whose last-seen is not written yet. */
  private readonly departed = new Set<KeyId>();
  private flushScheduled = false;
  private readonly health: StoreHealth;
  private readonly reverts: ClaimReverts;
  private readonly touchTimer: NodeJS.Timeout;
  private readonly purgeTimer: NodeJS.Timeout;
  private closed: Promise<void> | undefined;
  /** close() began: no delayed claim is armed any more, and the store closing is nothing to report. */
  private closing = false;
  /** A touch failed with a bug (said once, until a touch works again). */
  private touchBroken = false;

  constructor(options: ClaimKeeperOptions) {
    this.store = options.store;
    this.claimAfterMs = options.claimAfterSeconds * 1000;
    this.logger = options.logger;
    this.health = new StoreHealth(options.logger);
    this.reverts = new ClaimReverts(options.store, this.health, options.logger);
    this.touchTimer = setInterval(() => this.touchLive(), options.touchIntervalMs ?? DEFAULT_TOUCH_INTERVAL_MS).unref();
    this.purgeTimer = setInterval(() => this.purge(), options.purgeIntervalMs ?? DEFAULT_PURGE_INTERVAL_MS).unref();
    this.purge();
  }

  /**
   * Before a verified registration enters the table: resolves with what was written for it (the
   * claim the key holds on this nickname and address, made now when ClaimAfterSeconds is 0). Rejects
   * with the RegistryError to answer (NICKNAME_TAKEN, ADDRESS_TAKEN, UNAVAILABLE), having changed
   * nothing. Once the roster answered, the registrar calls `completed` or `abandon` with it.
   */
  /** Whether the claim store could be written when last tried. */
  get storeWritable(): boolean {
    return this.health.writable;
  }

  /** Live registrations of this registry that hold their claim (counted when Prometheus scrapes). */
  get claimsHeld(): number {
    let held = 0;
    for (const tracked of this.tracked.values()) if (tracked.claimed) held += 1;
    return held;
  }

  /** The store's commits (durations, failures), when the store counts them. */
  get commits(): CommitStats | undefined {
    return this.store.commits;
  }

  async prepare(entry: Entry): Promise<Prepared> {
    try {
      if (this.claimAfterMs === 0) return this.claimed(entry, await this.store.claim(this.requestOf(entry)));
      return await this.checkAndTouch(entry);
    } catch (err) {
      throw this.health.failure(err);
    }
  }

  /**
   * The registration is in: the unverified claim its proof displaced is deleted now. A failure is
   * only logged: the registration stands, and the owner's own claim displaces that claim later.
   */
  async completed(prepared: Prepared): Promise<void> {
    if (prepared.displaced === null) return;
    try {
      // Only while it is the claim read: one that moved or was proven since stays.
      await this.store.releaseClaim(prepared.displaced);
      this.health.healthy();
    } catch (err) {
      this.health.failure(err);
      if (!isStoreError(err)) this.logger.error({ err }, 'deleting the unverified claim on a proven address failed');
    }
  }

  /** The registration entered the table (replacing `replaced`): its delayed claim is armed. */
  entered(entry: Entry, held: Claim | null, replaced: readonly Entry[]): void {
    const tracked: Tracked = { since: Date.now(), timer: undefined, claimed: held !== null };
    // The same key on the same binding, reconnected: its registration was not interrupted.
    for (const old of replaced) {
      const before = this.tracked.get(old);
      if (before !== undefined && old.keyId === entry.keyId && sameBinding(old.peer, entry))
        tracked.since = Math.min(tracked.since, before.since);
    }
    this.tracked.set(entry, tracked);
    if (!tracked.claimed) this.arm(entry, tracked);
  }

  /**
   * The registration carries on one of the same key, nickname and address that began at `since`
   * (Date.now() of the instance it began on; a cluster's database carries it from one instance to
   * the next): its delayed claim is timed from then, as a reconnection to the same host would be.
   */
  carryOn(entry: Entry, since: number): void {
    const tracked = this.tracked.get(entry);
    // Not armed: claimed already, or its claim is being written.
    if (tracked === undefined || tracked.timer === undefined || since >= tracked.since) return;
    tracked.since = since;
    this.arm(entry, tracked);
  }

  /** The registration left the table (unregister, close, replaced, evicted): its last-seen is written. */
  left(entry: Entry): void {
    const tracked = this.tracked.get(entry);
    if (tracked === undefined) return;
    clearTimeout(tracked.timer);
    this.tracked.delete(entry);
    this.departed.add(entry.keyId);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.touchLive(false);
    });
  }

  /**
   * `unregister` with `release`: deletes the key's claim. Rejects with UNAVAILABLE, the claim and
   * the registration unchanged, when the store cannot be written.
   */
  async release(entry: Entry): Promise<void> {
    const tracked = this.tracked.get(entry);
    if (tracked !== undefined) {
      clearTimeout(tracked.timer);
      tracked.timer = undefined;
    }
    try {
      await this.store.releaseKey(entry.keyId);
      this.health.healthy();
    } catch (err) {
      if (tracked !== undefined && this.tracked.get(entry) === tracked && !tracked.claimed) this.arm(entry, tracked);
      throw this.health.failure(err);
    }
  }

  /**
   * The registration was refused after prepare (the table or a cluster's presence changed while the
   * store wrote, or it is unavailable), or its connection closed: the claim it made or moved is
   * reverted, so that it changed nothing. Resolves once that is written; never rejects. A store
   * that cannot be written now gets the revert again later (it undoes nothing newer).
   */
  async abandon(prepared: Prepared): Promise<void> {
    if (prepared.undo !== null) await this.reverts.revert(prepared.undo);
  }

  /** Stops the timers, writes the last-seen of every registration that ended, and closes the store. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      clearInterval(this.touchTimer);
      clearInterval(this.purgeTimer);
      for (const tracked of this.tracked.values()) clearTimeout(tracked.timer);
      await this.reverts.close();
      await this.touch([...this.departed, ...[...this.tracked.keys()].map((entry) => entry.keyId)]);
      this.departed.clear();
      this.tracked.clear();
      await this.store.close();
    })();
    return this.closed;
  }

  private requestOf(entry: Entry): ClaimRequest {
    const verified = entry.peer.addressVerified;
    return {
      keyId: entry.keyId,
      publicKeyDer: entry.keyDer,
      nickname: entry.peer.nickname,
      address: entry.peer.address,
      addressVerified: verified,
      displaceUnverified: verified,
    };
  }

  /** What a claim written at register did; a conflict is the refusal to answer. */
  private claimed(entry: Entry, outcome: ClaimOutcome): Prepared {
    this.health.healthy();
    if (outcome.kind === 'claimed') return { held: outcome.claim, undo: undoOf(entry, outcome), displaced: null };
    if (outcome.kind === 'nickname-taken') throw refuse(CLAIM_REFUSALS.nicknameClaimed(entry.peer.nickname));
    throw refuse(this.addressRefusal(entry, outcome.holder));
  }

  private addressRefusal(
    entry: Entry,
    holder: Claim,
  ): (typeof CLAIM_REFUSALS)['addressVerifiedElsewhere'] | (typeof CLAIM_REFUSALS)['addressClaimed'] {
    return holder.addressVerified && !entry.peer.addressVerified
      ? CLAIM_REFUSALS.addressVerifiedElsewhere
      : CLAIM_REFUSALS.addressClaimed;
  }

  /** ClaimAfterSeconds > 0: the store's conflicts, then one write (a refresh, or a touch). */
  private async checkAndTouch(entry: Entry): Promise<Prepared> {
    const { byNickname, byAddress, byKey } = await this.store.findForRegistration({
      keyId: entry.keyId,
      nickname: entry.peer.nickname,
      address: entry.peer.address,
    });
    // A valid proof takes the address from an unverified claim; nothing takes a verified one.
    const othersAddress = byAddress !== null && byAddress.keyId !== entry.keyId ? byAddress : null;
    const displaced =
      othersAddress !== null && entry.peer.addressVerified && !othersAddress.addressVerified ? othersAddress : null;
    // Erratum 1: that claim loses the nickname too, when it holds it.
    if (byNickname !== null && byNickname.keyId !== entry.keyId && byNickname.keyId !== displaced?.keyId)
      throw refuse(CLAIM_REFUSALS.nicknameClaimed(entry.peer.nickname));
    if (othersAddress !== null && displaced === null) throw refuse(this.addressRefusal(entry, othersAddress));
    if (byKey !== null && sameBinding(byKey, entry))
      return this.claimed(entry, await this.store.claim(this.requestOf(entry)));
    await this.store.touch([entry.keyId]);
    this.health.healthy();
    return { held: null, undo: null, displaced };
  }

  private arm(
    entry: Entry,
    tracked: Tracked,
    delayMs = Math.max(0, tracked.since + this.claimAfterMs - Date.now()),
  ): void {
    if (this.closing) return;
    clearTimeout(tracked.timer);
    tracked.timer = setTimeout(() => void this.claimLater(entry, tracked), delayMs).unref();
  }

  /** The delayed claim; retried while the registration lives and the store cannot be written. */
  private async claimLater(entry: Entry, tracked: Tracked): Promise<void> {
    tracked.timer = undefined;
    let outcome: ClaimOutcome;
    try {
      outcome = await this.store.claim(this.requestOf(entry));
      this.health.healthy();
    } catch (err) {
      if (this.closing || isStoreError(err, 'STORE_CLOSED')) {
        this.logger.debug({ err }, 'delayed claim not written: shutting down');
        return;
      }
      const failure = this.health.failure(err);
      // Only a store that cannot be written now is worth retrying; anything else is a bug, logged
      // once: retrying it every second would log it every second for as long as the peer stays.
      if (!isStoreError(err, 'STORE_UNAVAILABLE')) {
        this.logger.error({ err }, 'delayed claim failed');
        return;
      }
      if (this.tracked.get(entry) === tracked) this.arm(entry, tracked, failure.retryAfterMs ?? STORE_RETRY_AFTER_MS);
      return;
    }
    tracked.claimed = true;
    if (outcome.kind !== 'claimed') {
      // Another key's claim got there first (an operator released this one meanwhile, say).
      entry.owner.log.debug({ outcome: outcome.kind }, 'delayed claim refused');
      return;
    }
    if (this.tracked.get(entry) === tracked) entry.owner.send({ type: 'claimed', claim: claimInfo(outcome.claim) });
  }

  /** Touches every live registration (and the departed ones not written yet). */
  private touchLive(all = true): void {
    const ids = new Set(this.departed);
    this.departed.clear();
    if (all) for (const entry of this.tracked.keys()) ids.add(entry.keyId);
    void this.touch([...ids]);
  }

  private async touch(ids: readonly KeyId[]): Promise<void> {
    if (ids.length === 0) return;
    try {
      await this.store.touch(ids);
      this.health.healthy();
      this.touchBroken = false;
    } catch (err) {
      if (isStoreError(err, 'STORE_UNAVAILABLE')) {
        // Kept for the next interval: a failed touch must not shorten a claim for long.
        for (const id of ids) this.departed.add(id);
        this.health.failure(err);
      } else if (!isStoreError(err, 'STORE_CLOSED') && !this.touchBroken) {
        // A bug: trying the same keys again would fail again, unseen, at every interval.
        this.touchBroken = true;
        this.logger.error(
          { err },
          'writing last-seen failed, not because the store is away: those keys are not tried again (said once until ' +
            'a touch works)',
        );
      }
    }
  }

  private purge(): void {
    this.store.purgeExpired().then(
      (purged) => {
        if (purged > 0) this.logger.info({ purged }, 'expired claims purged');
      },
      (err: unknown) => {
        if (isStoreError(err, 'STORE_UNAVAILABLE')) return void this.health.failure(err);
        if (isStoreError(err, 'STORE_CLOSED')) return;
        // A bug would fail again every interval: stopped, and said once. Reads ignore expired claims.
        clearInterval(this.purgeTimer);
        this.logger.error(
          { err },
          'purging expired claims failed, not because the store is away: not tried again until a restart',
        );
      },
    );
  }
}
