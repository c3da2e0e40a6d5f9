/**
 * The operator's decisions in force, compiled for the checks a registration passes (and that a
 * new decision runs over the live table): one Map lookup per block, one match per reservation.
 */
import type { Block, Decisions, Reservation } from '../../store/moderation/moderation-store.js';
import { NicknamePattern } from './nickname-pattern.js';

/** What a decision does to a registration: refuse it, or end it, with the operator's public reason. */
export interface Hit {
  readonly kind: 'blocked' | 'reserved';
  readonly reason: string | null;
}

/** What the rules look at of a registration. */
export interface Registrant {
  readonly keyId: string;
  readonly peer: { readonly nickname: string; readonly address: string };
}

function inForce(decision: { readonly expiresAt: number | null }, now: number): boolean {
  return decision.expiresAt === null || decision.expiresAt > now;
}

export class ModerationRules {
  static readonly NONE = new ModerationRules({ version: 0, blocks: [], reservations: [] });

  readonly version: number;
  private readonly keys = new Map<string, Block>();
  private readonly addresses = new Map<string, Block>();
  private readonly reservations: ReadonlyArray<{ readonly rule: Reservation; readonly pattern: NicknamePattern }>;

  constructor(decisions: Decisions) {
    this.version = decisions.version;
    for (const block of decisions.blocks) (block.kind === 'key' ? this.keys : this.addresses).set(block.target, block);
    this.reservations = decisions.reservations.map((rule) => ({ rule, pattern: new NicknamePattern(rule.pattern) }));
  }

  get size(): number {
    return this.keys.size + this.addresses.size + this.reservations.length;
  }

  /** The decision `who` falls under now, or null. Blocks come first: they are about the registrant itself. */
  hit(who: Registrant, now: number = Date.now()): Hit | null {
    const block = this.keys.get(who.keyId) ?? this.addresses.get(who.peer.address);
    if (block !== undefined && inForce(block, now)) return { kind: 'blocked', reason: block.reason };
    for (const { rule, pattern } of this.reservations) {
      if (!inForce(rule, now) || rule.forKeyId === who.keyId) continue;
      if (pattern.covers(who.peer.nickname)) return { kind: 'reserved', reason: rule.reason };
    }
    return null;
  }
}
