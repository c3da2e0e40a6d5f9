/**
 * The peer table: pure data, no I/O. Nicknames are unique case-insensitively (the peer's spelling is
 * kept), addresses are unique, and a registration belongs to one owner (a connection).
 */
import { nicknameKey, type PeerRecord } from '../../protocol/messages.js';
import { REFUSALS, refuse } from './refusals.js';

export interface PeerEntry<Owner> {
  readonly owner: Owner;
  readonly peer: PeerRecord;
  /** DER of the public key, to recognise the same peer coming back on a new connection. */
  readonly keyDer: Buffer;
  /** Revision 2: the key's id (SHA-256 of keyDer, hex): one live registration per key, and its claim. */
  readonly keyId: string;
  /** `peer` as JSON, made once: lookups and lists splice it into replies instead of re-serialising. */
  readonly json: string;
}

export interface Page<Owner> {
  readonly entries: PeerEntry<Owner>[];
  readonly next: string | null;
}

/** Index of the first element of a sorted array that is greater than `key` (or >= when inclusive). */
function bound(sorted: readonly string[], key: string, inclusive: boolean): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const value = sorted[mid] as string;
    if (value < key || (!inclusive && value === key)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class PeerTable<Owner> {
  private readonly byNickname = new Map<string, PeerEntry<Owner>>();
  private readonly byAddress = new Map<string, PeerEntry<Owner>>();
  private readonly byOwner = new Map<Owner, PeerEntry<Owner>>();
  private readonly byKey = new Map<string, PeerEntry<Owner>>();
  /** Lower-cased nicknames in order, for paging. */
  private readonly order: string[] = [];

  constructor(private readonly maxPeers: number) {}

  get size(): number {
    return this.byNickname.size;
  }

  lookup(nickname: string): PeerEntry<Owner> | undefined {
    return this.byNickname.get(nicknameKey(nickname));
  }

  registrationOf(owner: Owner): PeerEntry<Owner> | undefined {
    return this.byOwner.get(owner);
  }

  /** The key's live registration (revision 2: at most one). */
  registrationOfKey(keyId: string): PeerEntry<Owner> | undefined {
    return this.byKey.get(keyId);
  }

  /** Every registration, in no particular order (a cluster's re-sync compares them with a snapshot). */
  entries(): IterableIterator<PeerEntry<Owner>> {
    return this.byOwner.values();
  }

  list(after: string | null, limit: number): Page<Owner> {
    const start = after === null ? 0 : bound(this.order, nicknameKey(after), false);
    const keys = this.order.slice(start, start + limit);
    const entries = keys.map((key) => this.byNickname.get(key) as PeerEntry<Owner>);
    const more = start + limit < this.order.length;
    const last = entries[entries.length - 1];
    return { entries, next: more && last !== undefined ? last.peer.nickname : null };
  }

  /**
   * The registrations that admitting `candidate` would replace, or the coded error that refuses it:
   * NICKNAME_TAKEN, ADDRESS_TAKEN or REGISTRY_FULL. Replaced are the same key's registration on
   * another owner, whatever its nickname and address (revision 2: one key, one live registration),
   * and, for a candidate with a proven address, an unverified holder of the address with another
   * key (revision 2: eviction; its keyId differs from the candidate's), also when that holder holds
   * the nickname too (erratum 1: a squatter of both never keeps the nickname against the proof).
   */
  admit(candidate: PeerEntry<Owner>): PeerEntry<Owner>[] {
    const byNick = this.byNickname.get(nicknameKey(candidate.peer.nickname));
    const byAddr = this.byAddress.get(candidate.peer.address);
    const evicts = candidate.peer.addressVerified && byAddr !== undefined && !byAddr.peer.addressVerified;
    if (
      byNick !== undefined &&
      byNick.owner !== candidate.owner &&
      !byNick.keyDer.equals(candidate.keyDer) &&
      !(evicts && byNick === byAddr)
    ) {
      throw refuse(REFUSALS.nicknameTaken(candidate.peer.nickname));
    }
    if (
      byAddr !== undefined &&
      byAddr.owner !== candidate.owner &&
      !byAddr.keyDer.equals(candidate.keyDer) &&
      !evicts
    ) {
      throw refuse(REFUSALS.addressTaken);
    }
    const replaced = [byNick, byAddr, this.byKey.get(candidate.keyId)].filter(
      (reg, index, all): reg is PeerEntry<Owner> => reg !== undefined && all.indexOf(reg) === index,
    );
    if (this.size - replaced.length >= this.maxPeers) {
      throw refuse(REFUSALS.registryFull);
    }
    return replaced;
  }

  /** Adds a registration, replacing what admit() names; returns the replaced registrations. */
  add(candidate: PeerEntry<Owner>): PeerEntry<Owner>[] {
    const replaced = this.admit(candidate);
    for (const old of replaced) this.delete(old);
    const existing = this.byOwner.get(candidate.owner);
    if (existing !== undefined) this.delete(existing);
    this.insert(candidate);
    return replaced;
  }

  private insert(candidate: PeerEntry<Owner>): void {
    const key = nicknameKey(candidate.peer.nickname);
    this.byNickname.set(key, candidate);
    this.byAddress.set(candidate.peer.address, candidate);
    this.byOwner.set(candidate.owner, candidate);
    this.byKey.set(candidate.keyId, candidate);
    this.order.splice(bound(this.order, key, true), 0, key);
  }

  /**
   * Adds a registration that another authority already admitted (a cluster's shared database):
   * whatever is in its way is removed first, the size limit does not apply. Returns what it removed.
   */
  force(candidate: PeerEntry<Owner>): PeerEntry<Owner>[] {
    const inWay = [
      this.byNickname.get(nicknameKey(candidate.peer.nickname)),
      this.byAddress.get(candidate.peer.address),
      this.byKey.get(candidate.keyId),
      this.byOwner.get(candidate.owner),
    ];
    const removed = inWay.filter(
      (reg, index, all): reg is PeerEntry<Owner> => reg !== undefined && all.indexOf(reg) === index,
    );
    for (const old of removed) this.delete(old);
    this.insert(candidate);
    return removed;
  }

  /** Removes the owner's registration, if it has one; returns it. */
  removeOwner(owner: Owner): PeerEntry<Owner> | undefined {
    const reg = this.byOwner.get(owner);
    if (reg !== undefined) this.delete(reg);
    return reg;
  }

  private delete(reg: PeerEntry<Owner>): void {
    const key = nicknameKey(reg.peer.nickname);
    if (this.byNickname.get(key) === reg) {
      this.byNickname.delete(key);
      const at = bound(this.order, key, true);
      if (this.order[at] === key) this.order.splice(at, 1);
    }
    if (this.byAddress.get(reg.peer.address) === reg) this.byAddress.delete(reg.peer.address);
    if (this.byOwner.get(reg.owner) === reg) this.byOwner.delete(reg.owner);
    if (this.byKey.get(reg.keyId) === reg) this.byKey.delete(reg.keyId);
  }
}
