/** The SQL of the claim store, prepared once per connection. */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { CLAIM_COLUMNS } from '../claim-row.js';

export interface Statements {
  readonly relevant: StatementSync;
  readonly anyRelevant: StatementSync;
  readonly byNickname: StatementSync;
  readonly deleteKey: StatementSync;
  readonly deleteExact: StatementSync;
  readonly deleteExpiredInWay: StatementSync;
  readonly restore: StatementSync;
  readonly deleteNickname: StatementSync;
  readonly upsert: StatementSync;
  readonly touch: StatementSync;
  readonly purge: StatementSync;
  readonly listAfter: StatementSync;
}

export function prepareStatements(db: DatabaseSync): Statements {
  const live = 'expires_at > :now';
  return {
    relevant: db.prepare(
      `SELECT ${CLAIM_COLUMNS} FROM claims WHERE (key_id = :keyId OR nickname_key = :nicknameKey OR address = ` +
        `:address) AND ${live}`,
    ),
    anyRelevant: db.prepare(
      `SELECT ${CLAIM_COLUMNS} FROM claims WHERE key_id = :keyId OR nickname_key = :nicknameKey OR address = :address`,
    ),
    byNickname: db.prepare(`SELECT ${CLAIM_COLUMNS} FROM claims WHERE nickname_key = :nicknameKey AND ${live}`),
    deleteKey: db.prepare(`DELETE FROM claims WHERE key_id = ? RETURNING ${CLAIM_COLUMNS}`),
    // Only while the key's claim is still exactly the one read (a revert, a displaced claim).
    deleteExact: db.prepare(
      'DELETE FROM claims WHERE key_id = :keyId AND nickname_key = :nicknameKey AND address = :address AND ' +
        'address_verified = :verified AND claimed_at = :claimedAt',
    ),
    deleteExpiredInWay: db.prepare(
      'DELETE FROM claims WHERE (key_id = :keyId OR nickname_key = :nicknameKey OR address = :address) AND ' +
        'expires_at <= :now',
    ),
    // Any unique index in the way (a live claim of that key, nickname or address) leaves it out.
    restore: db.prepare(
      `INSERT INTO claims (key_id, public_key, nickname, nickname_key, address, address_verified, claimed_at,
        last_seen_at, expires_at)
       VALUES (:keyId, :der, :nickname, :nicknameKey, :address, :verified, :claimedAt, :lastSeenAt,
         :expiresAt) ON CONFLICT DO NOTHING`,
    ),
    deleteNickname: db.prepare(`DELETE FROM claims WHERE nickname_key = ? RETURNING ${CLAIM_COLUMNS}`),
    upsert: db.prepare(
      `INSERT INTO claims (key_id, public_key, nickname, nickname_key, address, address_verified, claimed_at,
        last_seen_at, expires_at)
       VALUES (:keyId, :der, :nickname, :nicknameKey, :address, :verified, :claimedAt, :now, :expiresAt)
       ON CONFLICT (key_id) DO UPDATE SET
         public_key = excluded.public_key, nickname = excluded.nickname, nickname_key = excluded.nickname_key,
         address = excluded.address, address_verified = excluded.address_verified, claimed_at = excluded.claimed_at,
         last_seen_at = excluded.last_seen_at, expires_at = excluded.expires_at`,
    ),
    touch: db.prepare(
      `UPDATE claims SET last_seen_at = :now, expires_at = :expiresAt WHERE key_id = :keyId AND ${live}`,
    ),
    purge: db.prepare('DELETE FROM claims WHERE rowid IN (SELECT rowid FROM claims WHERE expires_at <= ? LIMIT ?)'),
    listAfter: db.prepare(
      `SELECT ${CLAIM_COLUMNS} FROM claims WHERE nickname_key > :after AND ${live} ORDER BY nickname_key LIMIT :limit`,
    ),
  };
}
