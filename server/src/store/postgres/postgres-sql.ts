/** The SQL of the PostgreSQL claim store, and the one conversion of its rows to the shared row shape. */
import type { Claim } from '../claim-store.js';
import { claimFromRow } from '../claim-row.js';
import { nicknameKey } from '../../protocol/messages.js';

/** claim-row.ts's CLAIM_COLUMNS, with the boolean as 0/1 as claimFromRow expects. */
const COLUMNS =
  'key_id, public_key, nickname, address, address_verified::int AS address_verified, claimed_at, last_seen_at, ' +
  'expires_at';

/**
 * Begins a durable write: whatever the server or role says, a claim's COMMIT returns only once its
 * WAL is flushed (synchronous_commit off would acknowledge before). One round trip.
 */
export const BEGIN_DURABLE =
  "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT set_config('synchronous_commit', 'on', true) WHERE " +
  "current_setting('synchronous_commit') = 'off'";

export const SQL = {
  relevant: `SELECT ${COLUMNS} FROM claims
    WHERE (key_id = $1 OR nickname_key = $2 OR address = $3) AND expires_at > $4`,
  /** Expired rows too, locked until the transaction ends: they are in the way of the unique indexes. */
  lockRelevant: `SELECT ${COLUMNS} FROM claims WHERE key_id = $1 OR nickname_key = $2 OR address = $3 FOR UPDATE`,
  byNickname: `SELECT ${COLUMNS} FROM claims WHERE nickname_key = $1 AND expires_at > $2`,
  deleteKeys: 'DELETE FROM claims WHERE key_id = ANY($1::text[])',
  deleteKey: `DELETE FROM claims WHERE key_id = $1 RETURNING ${COLUMNS}`,
  deleteNickname: `DELETE FROM claims WHERE nickname_key = $1 RETURNING ${COLUMNS}`,
  /** Only while the key's claim is still exactly the one read (a revert, a displaced claim). */
  deleteExact:
    'DELETE FROM claims WHERE key_id = $1 AND nickname_key = $2 AND address = $3 AND address_verified = $4 AND ' +
    'claimed_at = $5',
  deleteExpiredInWay:
    'DELETE FROM claims WHERE (key_id = $1 OR nickname_key = $2 OR address = $3) AND expires_at <= $4',
  /** Any unique index in the way (a live claim of that key, nickname or address) leaves it out. */
  restore: `INSERT INTO claims (key_id, public_key, nickname, nickname_key, address, address_verified, claimed_at,
    last_seen_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
  upsert: `INSERT INTO claims (key_id, public_key, nickname, nickname_key, address, address_verified, claimed_at,
    last_seen_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (key_id) DO UPDATE SET
      public_key = excluded.public_key, nickname = excluded.nickname, nickname_key = excluded.nickname_key,
      address = excluded.address, address_verified = excluded.address_verified, claimed_at = excluded.claimed_at,
      last_seen_at = excluded.last_seen_at, expires_at = excluded.expires_at`,
  touch: 'UPDATE claims SET last_seen_at = $2, expires_at = $3 WHERE key_id = ANY($1::text[]) AND expires_at > $2',
  purge: 'DELETE FROM claims WHERE key_id IN (SELECT key_id FROM claims WHERE expires_at <= $1 LIMIT $2)',
  /** LIMIT NULL is no limit. */
  listAfter: `SELECT ${COLUMNS} FROM claims WHERE nickname_key > $1 AND expires_at > $2 ORDER BY nickname_key LIMIT $3`,
  /** A page of every row, expired ones too, for the backup. */
  dumpAfter:
    'SELECT key_id, public_key, nickname, nickname_key, address, address_verified, claimed_at, last_seen_at, ' +
    'expires_at FROM claims WHERE key_id > $1 ORDER BY key_id LIMIT $2',
} as const;

/** A row of COLUMNS as a Claim; bytea arrives as a Buffer, which becomes a plain Uint8Array copy. */
export function claimFromPgRow(row: unknown, target: string): Claim {
  if (typeof row === 'object' && row !== null) {
    const der = (row as { public_key?: unknown }).public_key;
    if (der instanceof Uint8Array) return claimFromRow({ ...row, public_key: new Uint8Array(der) }, target);
  }
  return claimFromRow(row, target);
}

/** The upsert's parameters. */
export function upsertParams(claim: Claim, nicknameKey: string): unknown[] {
  return [
    claim.keyId,
    Buffer.from(claim.publicKeyDer.buffer, claim.publicKeyDer.byteOffset, claim.publicKeyDer.byteLength),
    claim.nickname,
    nicknameKey,
    claim.address,
    claim.addressVerified,
    claim.claimedAt,
    claim.lastSeenAt,
    claim.expiresAt,
  ];
}

/** What identifies a claim exactly (deleteExact's parameters). */
export function exactParams(claim: Claim): unknown[] {
  return [claim.keyId, nicknameKey(claim.nickname), claim.address, claim.addressVerified, claim.claimedAt];
}
