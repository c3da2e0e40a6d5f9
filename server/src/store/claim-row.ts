/**
 * The store's two boundaries: rows read back from the database (unknown until checked, because a
 * file can be edited, damaged or written by another version) and requests passed in by the server
 * (checked so that nothing malformed is ever written).
 */
import { NICKNAME_PATTERN } from '../protocol/messages.js';
import { keyIdOf, type Claim, type ClaimRequest } from './claim-store.js';
import type { RegistryError } from '../protocol/errors.js';
import { storeError } from './store-error.js';

const KEY_ID = /^[0-9a-f]{64}$/;
/**
 * The canonical form only. The v3 checksum is the protocol layer's check (parseOnionAddress), done
 * once per registration before the store is asked; repeating its SHA3 here cost a quarter of a lookup.
 */
const ONION_ADDRESS = /^[a-z2-7]{56}\.onion$/;
/** An SPKI DER is tens of bytes (Ed25519) to about a kilobyte (RSA-8192). */
const MAX_DER_BYTES = 2_048;

/** The columns every query that returns claims selects, in this order. */
export const CLAIM_COLUMNS =
  'key_id, public_key, nickname, address, address_verified, claimed_at, last_seen_at, expires_at';

function corrupt(path: string, what: string): RegistryError {
  return storeError(
    'STORE_CORRUPT',
    `the claim database ${path} holds a claim this version cannot read (${what}). Fix: restore a backup, or release ` +
      `that claim.`,
  );
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A row of CLAIM_COLUMNS as a Claim, or STORE_CORRUPT naming what is wrong (never the key). */
export function claimFromRow(row: unknown, path: string): Claim {
  if (typeof row !== 'object' || row === null) throw corrupt(path, 'not a row');
  const r = row as Record<string, unknown>;
  const { key_id, public_key, nickname, address, address_verified, claimed_at, last_seen_at, expires_at } = r;
  if (typeof key_id !== 'string' || !KEY_ID.test(key_id)) throw corrupt(path, 'key_id is not 64 hex digits');
  if (!(public_key instanceof Uint8Array) || public_key.length === 0) throw corrupt(path, 'public_key is not bytes');
  if (typeof nickname !== 'string' || !NICKNAME_PATTERN.test(nickname)) throw corrupt(path, 'nickname is not valid');
  if (typeof address !== 'string' || !ONION_ADDRESS.test(address))
    throw corrupt(path, 'address is not an onion address');
  if (address_verified !== 0 && address_verified !== 1) throw corrupt(path, 'address_verified is not 0 or 1');
  if (!isTime(claimed_at) || !isTime(last_seen_at) || !isTime(expires_at))
    throw corrupt(path, 'a time is not a whole number of ms');
  return Object.freeze({
    keyId: key_id,
    publicKeyDer: public_key,
    nickname,
    address,
    addressVerified: address_verified === 1,
    claimedAt: claimed_at,
    lastSeenAt: last_seen_at,
    expiresAt: expires_at,
  });
}

function badInput(what: string): RegistryError {
  return storeError('STORE_BAD_INPUT', `claim store: ${what}`);
}

export function checkKeyId(keyId: unknown): string {
  if (typeof keyId !== 'string' || !KEY_ID.test(keyId))
    throw badInput('keyId must be 64 lowercase hex digits (SHA-256 of the SPKI DER)');
  return keyId;
}

export function checkNickname(nickname: unknown): string {
  if (typeof nickname !== 'string' || !NICKNAME_PATTERN.test(nickname))
    throw badInput('nickname does not match NICKNAME_PATTERN');
  return nickname;
}

export function checkAddress(address: unknown): string {
  if (typeof address !== 'string' || !ONION_ADDRESS.test(address)) {
    throw badInput('address must be a v3 onion address in canonical form (56 lowercase base32 characters and .onion)');
  }
  return address;
}

/** Checks a claim request whole: the key id must be the hash of the DER it comes with. */
export function checkClaimRequest(request: ClaimRequest): ClaimRequest {
  checkKeyId(request.keyId);
  checkNickname(request.nickname);
  checkAddress(request.address);
  const der = request.publicKeyDer;
  if (!(der instanceof Uint8Array) || der.length === 0 || der.length > MAX_DER_BYTES)
    throw badInput(`publicKeyDer must be 1-${MAX_DER_BYTES} bytes`);
  if (keyIdOf(der) !== request.keyId) throw badInput('keyId is not the SHA-256 of publicKeyDer');
  if (typeof request.addressVerified !== 'boolean') throw badInput('addressVerified must be a boolean');
  return request;
}

/** Checks a claim passed back in (a revert): a claim request's checks, and its times. */
export function checkClaim(claim: Claim): Claim {
  checkClaimRequest(claim);
  if (!isTime(claim.claimedAt) || !isTime(claim.lastSeenAt) || !isTime(claim.expiresAt))
    throw badInput('claimedAt, lastSeenAt and expiresAt must be whole numbers of ms');
  return claim;
}
