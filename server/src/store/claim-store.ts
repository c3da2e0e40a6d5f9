/**
 * The claim store: the one place the registry keeps state that outlives a connection (PROTOCOL.md
 * revision 2, "Claims" and "Address proof"). Narrow on purpose: claims in, claims out. The live peer
 * table stays in memory; lookups and lists never come here.
 *
 * Every operation is async because the PostgreSQL store is. Every conflict is decided by
 * the store inside the write itself (a transaction, or a unique index), never by a read the caller
 * made earlier: two registrations racing for a nickname, on one instance or on two, get exactly one
 * winner.
 *
 * Durability: a write's promise resolves only once the write is durable (committed and synced).
 *  - `claim` and `release*` MUST be durable before they resolve: the server reports them to the
 *    peer (`registered` with a claim, `claimed`, `unregistered` with release) and a report must
 *    survive kill -9 and a power cut (PROTOCOL "Durability").
 *  - `touch` and `purgeExpired` need not be (a lost touch shortens a claim by at most the touch
 *    interval, which the protocol allows; a lost purge is redone). Implementations may batch them,
 *    but must not reorder them before an earlier `claim` or `release` of the same key.
 *  - the durable writes of one key (`claim`, `revert`, `releaseClaim`, `releaseKey`) take effect in
 *    the order they were issued: a release issued after a claim deletes that claim, whichever of
 *    the two the database could run first.
 * Reads see every write whose promise has resolved; writes still in flight may or may not be seen.
 */
import type { CommitStats } from '../metrics/latency-histogram.js';
import { keyDigest } from '../protocol/signing.js';

/** Milliseconds since the Unix epoch. Every time the store reads comes from the injected clock. */
export type Clock = () => number;

/** A key's stable id: lowercase hex SHA-256 of its SubjectPublicKeyInfo DER. */
export type KeyId = string;

export interface Claim {
  readonly keyId: KeyId;
  /** The SPKI DER of the key: enough to rebuild the PEM without another source. */
  readonly publicKeyDer: Uint8Array;
  /** As the peer spelt it; unique case-insensitively. */
  readonly nickname: string;
  /** Canonical v3 onion address: 56 lowercase base32 characters and `.onion`. */
  readonly address: string;
  /** True once a registration of this key proved it runs the onion service at `address`. */
  readonly addressVerified: boolean;
  /** When this key first bound this nickname and address (ms since epoch). */
  readonly claimedAt: number;
  /** When this key was last seen registered (ms since epoch). */
  readonly lastSeenAt: number;
  /** lastSeenAt + claimDays. At or after this instant the claim does not exist. */
  readonly expiresAt: number;
}

/** What a registration asks the store to bind. */
export interface ClaimRequest {
  readonly keyId: KeyId;
  readonly publicKeyDer: Uint8Array;
  readonly nickname: string;
  readonly address: string;
  /** This registration carried a valid address proof. */
  readonly addressVerified: boolean;
  /**
   * Take the address from an unverified claim of another key (PROTOCOL "Address proof"). Honoured
   * only with `addressVerified`; a verified claim is never displaced.
   */
  readonly displaceUnverified?: boolean;
}

/** The claims a registration must respect, none of them expired. Any two may be the same claim. */
export interface RelevantClaims {
  /** The live claim on this nickname (case-insensitively), whoever holds it. */
  readonly byNickname: Claim | null;
  /** The live claim on this address, whoever holds it. */
  readonly byAddress: Claim | null;
  /** This key's own live claim, on whatever nickname and address. */
  readonly byKey: Claim | null;
}

export type ClaimOutcome =
  /**
   * The key holds `claim` now (durably). `previous` is the key's live claim before this write, as it
   * was (on another nickname or address: a move; on the same: a refresh), or null when it had none.
   * `displaced` is another key's unverified claim on the address that a verified claim took.
   */
  | {
      readonly kind: 'claimed';
      readonly claim: Claim;
      readonly previous: Claim | null;
      readonly displaced: Claim | null;
    }
  /** Another key's live claim holds the nickname; nothing was changed. */
  | { readonly kind: 'nickname-taken'; readonly holder: Claim }
  /** Another key's live claim holds the address (and may not be displaced); nothing was changed. */
  | { readonly kind: 'address-taken'; readonly holder: Claim };

export interface ListPage {
  /** Nickname to start after (exclusive, case-insensitive); absent: from the start. */
  readonly after?: string;
  /** Most claims to return; absent: all that remain. */
  readonly limit?: number;
}

export interface ClaimList {
  readonly claims: readonly Claim[];
  /** Pass as `after` for the next page; null when this page reached the end. */
  readonly next: string | null;
}

export interface ClaimStore {
  /** Its commits' durations and failures, for the metrics (a store that keeps nothing has none). */
  readonly commits?: CommitStats;
  /** Claims that bear on a registration of `keyId` with this nickname and address. A read. */
  findForRegistration(query: {
    readonly keyId: KeyId;
    readonly nickname: string;
    readonly address: string;
  }): Promise<RelevantClaims>;

  /**
   * Makes or moves the key's claim, atomically with the conflict rules: a key holds at most one
   * claim (a new nickname or address replaces the old claim at once); another key's live claim on
   * the nickname or the address is a conflict, except as `displaceUnverified` allows. Expired claims
   * in the way are deleted. Durable before it resolves.
   */
  claim(request: ClaimRequest): Promise<ClaimOutcome>;

  /**
   * Records that these keys are registered now: lastSeenAt = now, expiresAt = now + claimDays.
   * Keys without a live claim are skipped. Resolves with how many claims were extended.
   */
  touch(keyIds: readonly KeyId[]): Promise<number>;

  /**
   * Undoes a claim whose registration was refused after it was written (PROTOCOL "Durability": a
   * refused registration changes nothing): deletes `made` only if the key's claim is still exactly
   * it (nickname, address, verification and claimedAt), then puts back each of `restore` (the key's
   * previous claim, a displaced one) as it was, unless it has expired or a live claim now holds its
   * key, nickname or address. Decided inside the write, so a late revert undoes nothing newer.
   * Durable. Resolves with how many claims were put back.
   */
  revert(made: Claim, restore: readonly Claim[]): Promise<number>;

  /**
   * Deletes `claim` only if its key's claim is still exactly it (nickname, address, verification
   * and claimedAt): a claim read earlier (one a proof displaces) that moved or was proven since
   * stays. Decided inside the write. Durable. Resolves with whether it was deleted.
   */
  releaseClaim(claim: Claim): Promise<boolean>;

  /** Deletes the key's claim (the peer's `release`). Resolves with the deleted claim, if any. Durable. */
  releaseKey(keyId: KeyId): Promise<Claim | null>;

  /** Deletes the claim on a nickname, whoever holds it (operators). Durable. */
  releaseNickname(nickname: string): Promise<Claim | null>;

  /** The live claim on a nickname (case-insensitively), or null. */
  getByNickname(nickname: string): Promise<Claim | null>;

  /** Live claims in case-insensitive nickname order, a page at a time. */
  list(page?: ListPage): Promise<ClaimList>;

  /** Deletes expired claims. Resolves with how many were deleted. The server calls it periodically. */
  purgeExpired(): Promise<number>;

  /** Writes an online, consistent copy of the store to `file` (replaced if present). */
  backup(file: string): Promise<void>;

  /** Finishes the writes in flight, then closes. Later calls reject with STORE_CLOSED. */
  close(): Promise<void>;
}

/** Opens a store; the contract tests take one of these. */
export type OpenClaimStore = (options: { readonly now: Clock; readonly claimDays: number }) => Promise<ClaimStore>;

export const MS_PER_DAY = 86_400_000;

/** The key id of an SPKI DER: its digest (protocol/signing.ts). */
export function keyIdOf(publicKeyDer: Uint8Array): KeyId {
  return keyDigest(publicKeyDer);
}
