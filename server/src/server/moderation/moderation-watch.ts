/**
 * How the operator's decisions reach a running server (PROTOCOL.md "Moderation": at once, on every
 * instance). The operator's commands write them to the database the claims are in and bump one
 * row, `moderation_version`; every server polls that row every 500 ms (one indexed read of one row:
 * on SQLite a read on its own WAL connection, on PostgreSQL one query on the claim store's pool) and,
 * when it changed, reads the decisions again and applies them to its own live registrations:
 * each one hit is sent `blocked`, closed with 4003, its registration ended (subscribers everywhere
 * see its peer_left) and its key's claim deleted. Why a poll and not LISTEN/NOTIFY:
 * docs/OPERATIONS.md "Moderation".
 */
import type { ModerationStore } from '../../store/moderation/moderation-store.js';
import type { Logger } from '../logger.js';
import { PeriodicTask } from '../periodic-task.js';
import type { ClaimKeeper } from '../registry/claim-keeper.js';
import type { PeerTable } from '../registry/peer-table.js';
import type { Refusal } from '../registry/refusals.js';
import { isLocal, type LocalEntry, type PeerOwner, type Roster } from '../registry/roster.js';
import { MODERATION_CLOSINGS, MODERATION_REFUSALS } from './moderation-refusals.js';
import { type Hit, ModerationRules } from './moderation-rules.js';

export const MODERATION_POLL_MS = 500;

/** What the registrar asks of moderation. */
export interface ModerationGate {
  /** The refusal for a registration the decisions in force hit (BLOCKED, NICKNAME_RESERVED), or null. */
  refusal(entry: LocalEntry): Refusal | null;
  /** A registration that entered the table while a decision was being applied: ended now if hit. */
  enforceIfHit(entry: LocalEntry): boolean;
}

/** No moderation (an injected store, as the bench's): nothing is ever refused. */
export const NO_MODERATION: ModerationGate = { refusal: () => null, enforceIfHit: () => false };

export interface ModerationWatchOptions {
  readonly store: ModerationStore;
  readonly peers: PeerTable<PeerOwner>;
  readonly roster: Roster;
  readonly keeper: ClaimKeeper;
  readonly logger: Logger;
  readonly pollMs?: number;
}

export class ModerationWatch implements ModerationGate {
  private rules = ModerationRules.NONE;
  private readonly task: PeriodicTask;
  /** The poll failed (said once, until it works again). */
  private failing = false;

  constructor(private readonly options: ModerationWatchOptions) {
    this.task = new PeriodicTask(() => this.poll(), options.pollMs ?? MODERATION_POLL_MS);
  }

  /** Reads the decisions before the server listens (a failure stops the start), then polls. */
  async start(): Promise<void> {
    this.rules = new ModerationRules(await this.options.store.decisions());
    if (this.rules.size > 0) this.options.logger.info({ decisions: this.rules.size }, 'moderation decisions loaded');
    this.task.start();
  }

  refusal(entry: LocalEntry): Refusal | null {
    const hit = this.rules.hit(entry);
    if (hit === null) return null;
    return hit.kind === 'blocked'
      ? MODERATION_REFUSALS.blocked(hit.reason)
      : MODERATION_REFUSALS.nicknameReserved(entry.peer.nickname, hit.reason);
  }

  enforceIfHit(entry: LocalEntry): boolean {
    const hit = this.rules.hit(entry);
    if (hit !== null) this.enforce(entry, hit);
    return hit !== null;
  }

  async close(): Promise<void> {
    await this.task.stop();
    await this.options.store.close();
  }

  private async poll(): Promise<void> {
    try {
      const version = await this.options.store.version();
      if (version !== this.rules.version) this.apply(new ModerationRules(await this.options.store.decisions()));
      if (this.failing) this.options.logger.info('moderation decisions readable again');
      this.failing = false;
    } catch (err) {
      if (!this.failing)
        this.options.logger.warn(
          { err },
          'cannot read the moderation decisions: the ones read last stay in force until the database answers again',
        );
      this.failing = true;
    }
  }

  /** New decisions: every local registration they hit ends. */
  private apply(rules: ModerationRules): void {
    this.rules = rules;
    let ended = 0;
    for (const entry of [...this.options.peers.entries()]) {
      if (!isLocal(entry)) continue; // another instance applies the decisions to its own
      const hit = rules.hit(entry);
      if (hit === null) continue;
      this.enforce(entry, hit);
      ended += 1;
    }
    this.options.logger.info({ version: rules.version, decisions: rules.size, ended }, 'moderation decisions applied');
  }

  /** `blocked`, 4003, the registration ended (peer_left) and its key's claim deleted. */
  private enforce(entry: LocalEntry, hit: Hit): void {
    const conn = entry.owner;
    const { logger, keeper, roster } = this.options;
    keeper
      .release(entry)
      .catch((err: unknown) => logger.warn({ err }, "a blocked registration's claim could not be deleted now"));
    roster.leave(conn)?.catch((err: unknown) => logger.warn({ err }, 'a blocked registration could not be ended now'));
    conn.send({ type: 'blocked', reason: hit.reason });
    conn.close(MODERATION_CLOSINGS.blocked);
  }
}
