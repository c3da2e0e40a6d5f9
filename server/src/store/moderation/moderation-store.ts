/**
 * The operator's moderation decisions (PROTOCOL.md revision 3, "Moderation"), kept in the claim
 * database: blocked keys and onion addresses, reserved nicknames, and the append-only audit trail
 * of every operator action. Every decision is one durable transaction that also deletes the claims
 * it hits, appends its audit row and bumps `moderation_version`, the row every running server
 * polls (server/src/server/moderation/moderation-watch.ts) to apply it within a second.
 * Which nicknames a pattern covers is the caller's (server/moderation/nickname-pattern.ts).
 */
import type { Clock, KeyId } from '../claim-store.js';
import type { Query, SqlSession, SqlValue } from './sql-session.js';

export type BlockKind = 'key' | 'address';
export type AuditAction = 'block' | 'unblock' | 'reserve' | 'unreserve' | 'claims-release';

/** Who decided, and why: the public reason (sent to the peer) and the private note (never sent). */
export interface Decision {
  readonly by: string;
  readonly reason: string | null;
  readonly note: string | null;
  /** ms since the epoch; null: until the operator lifts it. */
  readonly expiresAt: number | null;
}

export interface Block extends Decision {
  readonly kind: BlockKind;
  /** A key id (64 hex) or a canonical onion address. */
  readonly target: string;
  /** The nickname the operator named the key by, if so. */
  readonly label: string | null;
  readonly createdAt: number;
}

export interface Reservation extends Decision {
  /** A nickname or glob, lowercase. */
  readonly pattern: string;
  /** The only key that may register it, or null: nobody. */
  readonly forKeyId: KeyId | null;
  readonly forLabel: string | null;
  readonly createdAt: number;
}

export interface AuditEntry {
  readonly seq: number;
  readonly at: number;
  readonly action: AuditAction;
  readonly target: string;
  readonly reason: string | null;
  readonly note: string | null;
  readonly actor: string;
  readonly detail: string | null;
}

/** The decisions in force, and the version they were read at. */
export interface Decisions {
  readonly version: number;
  readonly blocks: readonly Block[];
  readonly reservations: readonly Reservation[];
}

/** What a block or reservation did besides being stored: the claims it deleted (their nicknames). */
export interface Applied {
  readonly claimsDeleted: readonly string[];
  /** It replaced a decision on the same target (new reason, note or expiry). */
  readonly renewed: boolean;
}

interface DecisionRow {
  reason: string | null;
  note: string | null;
  created_at: number;
  created_by: string;
  expires_at: number | null;
}
interface BlockRow extends DecisionRow {
  kind: BlockKind;
  target: string;
  label: string | null;
}
interface ReservationRow extends DecisionRow {
  pattern: string;
  for_key_id: string | null;
  for_label: string | null;
}
interface AuditRow {
  seq: number;
  at: number;
  action: AuditAction;
  target: string;
  reason: string | null;
  note: string | null;
  actor: string;
  detail: string | null;
}

const IN_FORCE = '(expires_at IS NULL OR expires_at > $1)';

function decisionOf(row: DecisionRow): Decision & { readonly createdAt: number } {
  return {
    by: row.created_by,
    reason: row.reason,
    note: row.note,
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    createdAt: Number(row.created_at),
  };
}

function blockOf(row: BlockRow): Block {
  return { ...decisionOf(row), kind: row.kind, target: row.target, label: row.label };
}

function reservationOf(row: ReservationRow): Reservation {
  return { ...decisionOf(row), pattern: row.pattern, forKeyId: row.for_key_id, forLabel: row.for_label };
}

export class ModerationStore {
  private closed: Promise<void> | undefined;

  constructor(
    private readonly session: SqlSession,
    /** The clock decisions are dated and expire by (ms since the epoch); tests inject one. */
    readonly now: Clock = Date.now,
  ) {}

  get target(): string {
    return this.session.target;
  }

  /** The decisions' version: any change to them changes it. One row: cheap to poll. */
  async version(): Promise<number> {
    const rows = await this.session.query<{ version: number }>('SELECT version FROM moderation_version WHERE id = 1');
    return Number(rows[0]?.version ?? 0);
  }

  /** Every decision in force now (expired ones are left out). */
  async decisions(): Promise<Decisions> {
    const now = this.now();
    const version = await this.version();
    const blocks = await this.session.query<BlockRow>(
      `SELECT * FROM moderation_blocks WHERE ${IN_FORCE} ORDER BY kind, target`,
      [now],
    );
    const reservations = await this.session.query<ReservationRow>(
      `SELECT * FROM moderation_reservations WHERE ${IN_FORCE} ORDER BY pattern`,
      [now],
    );
    return { version, blocks: blocks.map(blockOf), reservations: reservations.map(reservationOf) };
  }

  /** The key that holds `nickname` now: by its claim, or (a cluster) its live registration. */
  async keyOfNickname(nickname: string): Promise<{ readonly keyId: KeyId; readonly nickname: string } | null> {
    const key = nickname.toLowerCase();
    type Row = { key_id: string; nickname: string };
    const claims = await this.session.query<Row>(
      'SELECT key_id, nickname FROM claims WHERE nickname_key = $1 AND expires_at > $2',
      [key, this.now()],
    );
    const live = this.session.hasPresence
      ? await this.session.query<Row>('SELECT key_id, nickname FROM presence WHERE nickname_key = $1', [key])
      : [];
    const row = live[0] ?? claims[0];
    return row === undefined ? null : { keyId: row.key_id, nickname: row.nickname };
  }

  /** Blocks a key or an address: stored, the claims of it deleted, audited, versioned; one transaction. */
  block(kind: BlockKind, target: string, label: string | null, decision: Decision): Promise<Applied> {
    return this.session.transaction(async (query) => {
      const now = this.now();
      const renewed = await this.exists(query, 'moderation_blocks', 'kind = $2 AND target = $3', [kind, target]);
      await query(
        `INSERT INTO moderation_blocks (kind, target, label, reason, note, created_at, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (kind, target) DO UPDATE SET label = excluded.label, reason = excluded.reason,
           note = excluded.note, created_at = excluded.created_at, created_by = excluded.created_by,
           expires_at = excluded.expires_at`,
        [kind, target, label, decision.reason, decision.note, now, decision.by, decision.expiresAt],
      );
      const column = kind === 'key' ? 'key_id' : 'address';
      const deleted = await query<{ nickname: string }>(`DELETE FROM claims WHERE ${column} = $1 RETURNING nickname`, [
        target,
      ]);
      const claimsDeleted = deleted.map((row) => row.nickname);
      await this.append(query, 'block', `${kind} ${target}`, decision, deletedDetail(claimsDeleted, label));
      return { claimsDeleted, renewed };
    });
  }

  /** Lifts a block, named by its target or (a key) the nickname it was blocked by. Null: no such block. */
  unblock(kind: BlockKind, targetOrLabel: string, decision: Decision): Promise<Block | null> {
    return this.session.transaction(async (query) => {
      const rows = await query<BlockRow>(
        'DELETE FROM moderation_blocks WHERE kind = $1 AND (target = $2 OR lower(label) = $3) RETURNING *',
        [kind, targetOrLabel, targetOrLabel.toLowerCase()],
      );
      const row = rows[0];
      if (row === undefined) return null;
      await this.append(query, 'unblock', `${kind} ${row.target}`, decision, row.label);
      return blockOf(row);
    });
  }

  /**
   * Reserves a nickname or pattern (lowercase) for nobody or for one key; the claims on nicknames
   * it covers (`covers`), other than that key's, are deleted in the same transaction.
   */
  reserve(
    pattern: string,
    covers: (nickname: string) => boolean,
    forKey: { readonly keyId: KeyId; readonly label: string | null } | null,
    decision: Decision,
  ): Promise<Applied> {
    return this.session.transaction(async (query) => {
      const now = this.now();
      const renewed = await this.exists(query, 'moderation_reservations', 'pattern = $2', [pattern]);
      await query(
        `INSERT INTO moderation_reservations (pattern, for_key_id, for_label, reason, note, created_at, created_by,
          expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (pattern) DO UPDATE SET for_key_id = excluded.for_key_id, for_label = excluded.for_label,
           reason = excluded.reason, note = excluded.note, created_at = excluded.created_at,
           created_by = excluded.created_by, expires_at = excluded.expires_at`,
        [
          pattern,
          forKey?.keyId ?? null,
          forKey?.label ?? null,
          decision.reason,
          decision.note,
          now,
          decision.by,
          decision.expiresAt,
        ],
      );
      const claims = await query<{ key_id: string; nickname: string }>('SELECT key_id, nickname FROM claims');
      const hit = claims.filter((claim) => claim.key_id !== forKey?.keyId && covers(claim.nickname));
      for (const claim of hit) await query('DELETE FROM claims WHERE key_id = $1', [claim.key_id]);
      const claimsDeleted = hit.map((claim) => claim.nickname);
      const forWhom =
        forKey === null ? null : `for key ${forKey.keyId}${forKey.label === null ? '' : ` (${forKey.label})`}`;
      await this.append(query, 'reserve', pattern, decision, deletedDetail(claimsDeleted, forWhom));
      return { claimsDeleted, renewed };
    });
  }

  /** Lifts a reservation. Null: no such reservation. */
  unreserve(pattern: string, decision: Decision): Promise<Reservation | null> {
    return this.session.transaction(async (query) => {
      const rows = await query<ReservationRow>('DELETE FROM moderation_reservations WHERE pattern = $1 RETURNING *', [
        pattern,
      ]);
      const row = rows[0];
      if (row === undefined) return null;
      await this.append(query, 'unreserve', pattern, decision, null);
      return reservationOf(row);
    });
  }

  /** Audits an operator's `claims release` (the claim store deleted the claim). */
  claimReleased(nickname: string, address: string, decision: Decision): Promise<void> {
    return this.session.transaction((query) =>
      this.append(query, 'claims-release', nickname, decision, address, false),
    );
  }

  /** The audit trail, oldest first, from `since` (ms since the epoch) on. */
  async audit(since = 0): Promise<AuditEntry[]> {
    const rows = await this.session.query<AuditRow>('SELECT * FROM moderation_audit WHERE at >= $1 ORDER BY seq', [
      since,
    ]);
    return rows.map((row) => ({ ...row, seq: Number(row.seq), at: Number(row.at) }));
  }

  close(): Promise<void> {
    this.closed ??= this.session.close();
    return this.closed;
  }

  private async exists(query: Query, table: string, where: string, params: readonly SqlValue[]): Promise<boolean> {
    const rows = await query(`SELECT 1 AS found FROM ${table} WHERE ${IN_FORCE} AND ${where}`, [this.now(), ...params]);
    return rows.length > 0;
  }

  /** The audit row, and (a decision) the version bump every server polls. */
  private async append(
    query: Query,
    action: AuditAction,
    target: string,
    decision: Decision,
    detail: string | null,
    bump = true,
  ): Promise<void> {
    await query(
      'INSERT INTO moderation_audit (at, action, target, reason, note, actor, detail) VALUES ($1, $2, $3, $4, ' +
        '$5, $6, $7)',
      [this.now(), action, target, decision.reason, decision.note, decision.by, detail],
    );
    if (bump) await query('UPDATE moderation_version SET version = version + 1 WHERE id = 1');
  }
}

function deletedDetail(claimsDeleted: readonly string[], prefix: string | null): string | null {
  const parts = [
    ...(prefix === null ? [] : [prefix]),
    ...(claimsDeleted.length === 0 ? [] : [`claims deleted: ${claimsDeleted.join(', ')}`]),
  ];
  return parts.length === 0 ? null : parts.join('; ');
}
