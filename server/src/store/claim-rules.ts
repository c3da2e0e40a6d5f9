/**
 * The conflict rules of a claim (PROTOCOL.md revision 2, "Claims" and "Address proof"), as one pure
 * decision that every store runs inside its write transaction, on the rows it read (and locked)
 * there: decide first, then change. Shared so that SQLite and PostgreSQL cannot drift apart.
 */
import type { Claim, ClaimOutcome, ClaimRequest, KeyId, RelevantClaims } from './claim-store.js';
import { nicknameKey } from '../protocol/messages.js';

export type ClaimDecision =
  /** A conflict: nothing is to be written. */
  | { readonly write: false; readonly outcome: ClaimOutcome }
  /** Delete the rows of `remove` (expired, or displaced), then upsert `claim` by its key id. */
  | { readonly write: true; readonly remove: readonly KeyId[]; readonly claim: Claim; readonly outcome: ClaimOutcome };

/**
 * `found`: every row, expired ones too, on the request's key id, nickname key or address. Expired
 * rows do not exist for the rules, but they are in the way of the unique indexes.
 */
export function decideClaim(
  request: ClaimRequest,
  found: readonly Claim[],
  now: number,
  claimMs: number,
): ClaimDecision {
  const key = nicknameKey(request.nickname);
  let own: Claim | null = null;
  let othersNickname: Claim | null = null;
  let othersAddress: Claim | null = null;
  for (const claim of found) {
    if (claim.keyId === request.keyId) own = claim;
    else {
      if (nicknameKey(claim.nickname) === key) othersNickname = claim;
      if (claim.address === request.address) othersAddress = claim;
    }
  }

  const liveAddress = othersAddress !== null && othersAddress.expiresAt > now ? othersAddress : null;
  const mayDisplace =
    liveAddress !== null &&
    request.addressVerified &&
    request.displaceUnverified === true &&
    !liveAddress.addressVerified;
  // Erratum 1: the unverified claim on the proven address is displaced from the nickname too.
  const nicknameDisplaced = mayDisplace && othersNickname?.keyId === liveAddress.keyId;
  if (othersNickname !== null && othersNickname.expiresAt > now && !nicknameDisplaced)
    return { write: false, outcome: { kind: 'nickname-taken', holder: othersNickname } };
  if (liveAddress !== null && !mayDisplace)
    return { write: false, outcome: { kind: 'address-taken', holder: liveAddress } };
  const displaced = mayDisplace ? liveAddress : null;

  // Whatever else is in the way is expired (it does not exist) or displaced.
  const remove: KeyId[] = [];
  if (othersNickname !== null) remove.push(othersNickname.keyId);
  if (othersAddress !== null && othersAddress.keyId !== othersNickname?.keyId) remove.push(othersAddress.keyId);

  const ownLive = own !== null && own.expiresAt > now ? own : null;
  const sameAddress = ownLive !== null && ownLive.address === request.address;
  const sameBinding = sameAddress && nicknameKey(ownLive.nickname) === key;
  const claim: Claim = Object.freeze({
    keyId: request.keyId,
    publicKeyDer: request.publicKeyDer,
    nickname: request.nickname,
    address: request.address,
    // The key proved this address once; registering again without the proof, or under another
    // nickname, does not undo that.
    addressVerified: request.addressVerified || (sameAddress && ownLive.addressVerified),
    claimedAt: sameBinding ? ownLive.claimedAt : now,
    lastSeenAt: now,
    expiresAt: now + claimMs,
  });
  return { write: true, remove, claim, outcome: { kind: 'claimed', claim, previous: ownLive, displaced } };
}

/** Sorts the live claims a lookup by key, nickname key or address found into what each of them is. */
export function sortRelevant(
  claims: Iterable<Claim>,
  keyId: KeyId,
  nicknameKeyOfRequest: string,
  address: string,
): RelevantClaims {
  let byNickname: Claim | null = null;
  let byAddress: Claim | null = null;
  let byKey: Claim | null = null;
  for (const claim of claims) {
    if (claim.keyId === keyId) byKey = claim;
    if (nicknameKey(claim.nickname) === nicknameKeyOfRequest) byNickname = claim;
    if (claim.address === address) byAddress = claim;
  }
  return { byNickname, byAddress, byKey };
}
