/**
 * The roster of a cluster instance (several registries sharing PostgreSQL). The database
 * decides every registration (postgres-presence.ts); this instance writes, then waits until its
 * tail has applied the write's event before it answers, so that its own table, its connections
 * and its subscribers change only in the log's order (cluster-replica.ts).
 *
 * Its lease: renewed every third of [Store] LeaseSeconds, on a connection of its own (a full pool
 * or a stuck query cannot delay it). An instance sweeps (ends the registrations of instances whose
 * lease ran out) only once it has itself reached the database without a failure for a whole lease:
 * after the database was away, every live instance has renewed its lease before anyone sweeps, so
 * an outage of the database causes no mass peer_left. Renewal, sweep and housekeeping never
 * overlap themselves (periodic-task.ts); a failing housekeeping step is reported as that step,
 * and says nothing about the lease.
 *
 * When the database cannot be reached: register and unregister answer UNAVAILABLE (nothing
 * changed); a connection that closes keeps its registration until its `left` can be written (the
 * writes are retried, in order, until they are, or the lease runs out).
 */
import type { RegistryError } from '../../protocol/errors.js';
import { parseOnionAddress, type OnionAddress } from '../../protocol/onion-address.js';
import type { EnterOutcome, PresenceRow, PresenceStore } from './presence.js';
import { isStoreError } from '../../store/store-error.js';
import { ClusterReplica } from './cluster-replica.js';
import { ClusterTail } from './cluster-tail.js';
import type { PeerConnection } from '../connection/peer-connection.js';
import type { Logger } from '../logger.js';
import { REFUSALS, refuse } from '../registry/refusals.js';
import type { ClusterMetrics } from '../../metrics/sources.js';
import { PeriodicTask } from '../periodic-task.js';
import type { LocalEntry, Roster, RosterEffects } from '../registry/roster.js';
import type { ClusterRosterOptions, ClusterStatus } from './cluster-roster-options.js';

export type { ClusterRosterOptions, ClusterStatus };

/** The background work done after a renewal, each step reported on its own. */
type HousekeepingStep = 'announce' | 'frontend' | 'trim';
const STEP_TEXT: Readonly<Record<HousekeepingStep, string>> = {
  announce: 'announcing this backend to the frontend (registry_backends)',
  frontend: "reading the frontend's address (registry_frontend)",
  trim: 'trimming the presence log (presence_events)',
};

/** Log events are kept this long: an instance further behind re-syncs from a snapshot. */
const LOG_RETAIN_MS = 10 * 60_000;
const TRIM_EVERY_MS = 60_000;
/** How often the frontend's address is read again (the backend's own announcement goes with every renewal). */
const FRONTEND_EVERY_MS = 30_000;

export class ClusterRoster implements Roster {
  readonly instanceId: string;
  private readonly presence: PresenceStore;
  private readonly effects: RosterEffects;
  private readonly logger: Logger;
  private readonly leaseMs: number;
  private readonly retryAfterMs: number;
  private readonly applyTimeoutMs: number;
  private readonly onion: () => string | null;
  private readonly frontendChanged: () => void;
  private readonly replica: ClusterReplica;
  private readonly tail: ClusterTail;
  private nextRef = 1;
  /** Registrations whose `left` is still to be written (their connections closed): ref to key. */
  private readonly outbox = new Map<number, string>();
  private flushing = false;
  /** Since when every call to the database succeeded (Date.now()); null while it fails. */
  private healthySince: number | null = null;
  /** When the lease was last renewed (Date.now()), null before the first renewal. */
  private lastRenewedAt: number | null = null;
  private readonly renewal: PeriodicTask;
  private readonly sweeping: PeriodicTask;
  private readonly housekeeping: PeriodicTask;
  private readonly failingSteps = new Set<HousekeepingStep>();
  private lastTrim = 0;
  private lastFrontendRead = 0;
  private master: OnionAddress | null = null;
  /** The last unusable registry_frontend value warned about: said once, not every 30 s. */
  private badFrontend: string | null = null;
  private closing = false;

  constructor(options: ClusterRosterOptions) {
    this.instanceId = options.instanceId;
    this.presence = options.presence;
    this.effects = options.effects;
    this.logger = options.logger;
    this.leaseMs = options.leaseMs;
    this.retryAfterMs = options.retryAfterMs;
    this.applyTimeoutMs = options.applyTimeoutMs ?? 5_000;
    this.onion = options.onion;
    this.frontendChanged = options.frontendChanged ?? (() => undefined);
    this.replica = new ClusterReplica({
      instanceId: this.instanceId,
      effects: options.effects,
      orphaned: (keyId, ref) => this.queueLeave(keyId, ref),
    });
    this.tail = new ClusterTail({
      presence: this.presence,
      replica: this.replica,
      logger: this.logger,
      pollMs: options.pollMs ?? 1_000,
    });
    this.renewal = new PeriodicTask(() => this.renew(), Math.max(250, Math.floor(this.leaseMs / 3)));
    this.sweeping = new PeriodicTask(() => this.sweep(), Math.max(250, Math.floor(this.leaseMs / 2)));
    // Run after each renewal that succeeded, never while the previous run is still going.
    this.housekeeping = new PeriodicTask(() => this.keepHouse());
  }

  /** Takes a lease, loads the replica and starts following the log. Rejects when the database cannot be reached. */
  async start(): Promise<void> {
    await this.presence.renewLease(this.instanceId, this.leaseMs);
    await this.tail.start();
    await this.housekeeping.trigger();
    this.healthySince = Date.now();
    this.lastRenewedAt = this.healthySince;
    this.renewal.start();
    this.sweeping.start();
    this.logger.info(
      { instance: this.instanceId, peers: this.effects.peers.size, leaseMs: this.leaseMs },
      'cluster instance started: following the shared presence',
    );
  }

  async enter(entry: LocalEntry, entered: (replaced: readonly LocalEntry[]) => void): Promise<void> {
    const ref = this.nextRef++;
    this.replica.expect(ref, entry, entered);
    const startedAt = Date.now();
    let outcome: EnterOutcome;
    try {
      outcome = await this.presence.enter(this.rowOf(entry, ref), startedAt);
    } catch (err) {
      this.replica.forget(ref);
      throw this.refusal(err);
    }
    if (outcome.kind !== 'entered') {
      this.replica.forget(ref);
      throw refuse(
        outcome.kind === 'nickname-taken' ? REFUSALS.nicknameTaken(entry.peer.nickname) : REFUSALS.addressTaken,
      );
    }
    await this.tail.waitFor(outcome.seq, this.applyTimeoutMs);
    // Its join (or a snapshot holding it) put it in the table: registered. Its claim is timed from
    // when the registration it carries on began, on whichever instance that was.
    if (!this.replica.forget(ref)) {
      if (outcome.registeredAt < startedAt) this.effects.keeper.carryOn(entry, outcome.registeredAt);
      return;
    }
    // Not in the table: the log could not be read back in time, or a re-sync from a snapshot that no
    // longer held it went past its event. Either way it must not outlive this answer: ended (again).
    this.queueLeave(entry.keyId, ref);
    throw refuse(REFUSALS.clusterUnavailable, this.retryAfterMs);
  }

  /**
   * The cluster's address, once its Onionbalance frontend published it: what `hello` reports as
   * the registry's own address (PROTOCOL.md), since peers reach the cluster there, not at this backend.
   */
  get frontendOnion(): OnionAddress | null {
    return this.master;
  }

  status(): ClusterStatus {
    return {
      instance: this.instanceId,
      database: this.healthySince === null ? 'unreachable' : 'reachable',
      applied: this.replica.applied,
      frontend: this.master,
      housekeeping: this.failingSteps.size === 0 ? 'ok' : 'failing',
    };
  }

  /** The instance's numbers for the metrics (registry-metrics.ts). */
  metrics(): ClusterMetrics {
    const now = Date.now();
    return {
      databaseReachable: this.healthySince !== null,
      applied: this.replica.applied,
      head: Math.max(this.tail.headSeq, this.replica.applied),
      lagSeconds: this.replica.applied >= this.tail.headSeq ? 0 : (now - this.tail.caughtUpAt) / 1000,
      leaseAgeSeconds: this.lastRenewedAt === null ? -1 : (now - this.lastRenewedAt) / 1000,
      leaseSeconds: this.leaseMs / 1000,
      resyncs: this.tail.resyncs,
    };
  }

  leave(conn: PeerConnection): Promise<void> | null {
    const entry = this.effects.peers.registrationOf(conn) as LocalEntry | undefined;
    if (entry === undefined) return null; // a registration still being written ends once applied (it is orphaned)
    const ref = this.replica.refOf(entry);
    if (ref === undefined) return null;
    if (conn.closed || this.closing) {
      this.queueLeave(entry.keyId, ref);
      return Promise.resolve();
    }
    return this.leaveNow(entry.keyId, ref);
  }

  /** From now on a closing connection's leave is only queued: close() ends them all in one write. */
  stopping(): void {
    this.closing = true;
  }

  /** Ends this instance's registrations in one write and stops; a database away leaves them to the lease. */
  async close(): Promise<void> {
    this.closing = true;
    void this.sweeping.stop();
    void this.housekeeping.stop();
    await this.renewal.stop(); // a renewal after the leave below would take a lease again
    this.tail.stop();
    try {
      const ended = await this.presence.leaveInstance(this.instanceId);
      this.logger.info({ ended }, 'cluster instance stopped: its registrations were ended');
    } catch (err) {
      this.logger.warn(
        { err, leaseMs: this.leaseMs },
        'cluster instance stopped without reaching the shared database: its registrations end when its lease runs out',
      );
    }
    await this.presence.close();
  }

  private async leaveNow(keyId: string, ref: number): Promise<void> {
    let seq: number | null;
    try {
      seq = await this.presence.leave(keyId, this.instanceId, ref);
    } catch (err) {
      throw this.refusal(err);
    }
    // Null: ended already (replaced, or swept); the tail applies that. A wait that times out still
    // answers: the database holds the leave, and the table follows once the log can be read.
    if (seq !== null) await this.tail.waitFor(seq, this.applyTimeoutMs);
  }

  private queueLeave(keyId: string, ref: number): void {
    this.outbox.set(ref, keyId);
    if (!this.closing) void this.flush();
  }

  /** Writes the queued leaves in order; stops at the first failure (retried at the next renewal). */
  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (const [ref, keyId] of this.outbox) {
        await this.presence.leave(keyId, this.instanceId, ref);
        this.outbox.delete(ref);
      }
    } catch (err) {
      if (!isStoreError(err))
        this.logger.error({ err }, 'writing the end of a closed registration failed: retried at the next renewal');
    } finally {
      this.flushing = false;
    }
    this.tail.poke();
  }

  private async renew(): Promise<void> {
    try {
      await this.presence.renewLease(this.instanceId, this.leaseMs);
    } catch (err) {
      if (this.closing) return;
      if (this.healthySince !== null)
        this.logger.warn(
          { err, leaseMs: this.leaseMs },
          "cannot renew this instance's lease in the shared database: register and unregister answer UNAVAILABLE " +
            'until it is back',
        );
      this.healthySince = null;
      return;
    }
    this.lastRenewedAt = Date.now();
    if (this.healthySince === null) {
      this.healthySince = Date.now();
      this.logger.info({ pendingLeaves: this.outbox.size }, 'the shared database is reachable again: lease renewed');
    }
    if (this.outbox.size > 0) void this.flush();
    void this.housekeeping.trigger();
  }

  /**
   * Announces this backend's onion with the lease just renewed (the frontend follows it: a backend
   * whose registry stops renewing leaves the master descriptor), reads the frontend's address now
   * and then, and trims the log.
   */
  private async keepHouse(): Promise<void> {
    const now = Date.now();
    await this.step('announce', () => this.announce());
    if (
      now - this.lastFrontendRead >= FRONTEND_EVERY_MS &&
      (await this.step('frontend', async () => this.learnFrontend(await this.presence.frontendOnion())))
    ) {
      this.lastFrontendRead = now;
    }
    if (now - this.lastTrim >= TRIM_EVERY_MS && (await this.step('trim', () => this.presence.trimLog(LOG_RETAIN_MS))))
      this.lastTrim = now;
  }

  /** One housekeeping step; a failure is said once (until the step works again) and never counts against the lease. */
  private async step(step: HousekeepingStep, run: () => Promise<unknown>): Promise<boolean> {
    try {
      await run();
    } catch (err) {
      if (this.closing) return false;
      if (!this.failingSteps.has(step))
        this.logger.warn(
          { err, step },
          `cluster housekeeping: ${STEP_TEXT[step]} failed; the lease is renewed all the same, and this is tried ` +
            `again after the next renewal`,
        );
      this.failingSteps.add(step);
      return false;
    }
    if (this.failingSteps.delete(step))
      this.logger.info({ step }, `cluster housekeeping: ${STEP_TEXT[step]} works again`);
    return true;
  }

  private async announce(): Promise<void> {
    const onion = this.onion();
    if (onion !== null) await this.presence.announceBackend(onion, this.instanceId, this.leaseMs);
  }

  private learnFrontend(text: string | null): void {
    if (text === null) return;
    const parsed = parseOnionAddress(text);
    if (!parsed.ok) {
      if (text !== this.badFrontend)
        this.logger.warn(
          { frontend: text },
          `registry_frontend holds no v3 onion address (${parsed.reason}): hello keeps reporting this backend's own ` +
            `address; check the frontend's log`,
        );
      this.badFrontend = text;
      return;
    }
    if (parsed.address === this.master) return;
    this.master = parsed.address;
    this.frontendChanged();
  }

  private async sweep(): Promise<void> {
    if (this.healthySince === null || Date.now() - this.healthySince < this.leaseMs) return;
    try {
      const swept = await this.presence.sweep();
      if (swept > 0) this.logger.info({ swept }, 'ended the registrations of cluster instances whose lease ran out');
    } catch (err) {
      if (!isStoreError(err)) this.logger.error({ err }, 'sweeping expired cluster instances failed');
    }
  }

  private rowOf(entry: LocalEntry, localRef: number): PresenceRow {
    return {
      keyId: entry.keyId,
      nickname: entry.peer.nickname,
      address: entry.peer.address,
      addressVerified: entry.peer.addressVerified,
      instanceId: this.instanceId,
      localRef,
      publicKeyDer: entry.keyDer,
      peerJson: entry.json,
    };
  }

  /** The store's unavailability as the protocol's UNAVAILABLE; anything else is a bug, thrown on. */
  private refusal(err: unknown): unknown {
    if (isStoreError(err, 'STORE_UNAVAILABLE') || isStoreError(err, 'STORE_CLOSED')) {
      return refuse(REFUSALS.clusterUnavailable, (err as RegistryError).retryAfterMs ?? this.retryAfterMs);
    }
    return err;
  }
}
