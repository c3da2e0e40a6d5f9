/**
 * One batch of presence writes (group commit, see postgres-presence.ts): each registration or
 * leave decided in turn under the unique indexes, then every event of the batch logged and
 * numbered at once.
 */
import type { PoolClient } from 'pg';
import { nicknameKey } from '../../protocol/messages.js';
import { logEvents, ROW_COLUMNS, rowOf, type Pending } from './postgres-presence-rows.js';
import type { EnterOutcome, PresenceRow } from './presence.js';

/** A registration or a leave waiting for the next batch, with what to tell its caller. */
export type Queued =
  | {
      readonly kind: 'enter';
      readonly row: PresenceRow;
      readonly registeredAt: number;
      readonly settle: Settle<EnterOutcome>;
    }
  | {
      readonly kind: 'leave';
      readonly keyId: string;
      readonly instanceId: string;
      readonly localRef: number;
      readonly settle: Settle<number | null>;
    };

export interface Settle<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (err: unknown) => void;
}

/** What one queued write decided; `lastEvent` is the index of its last event in the batch, then its number. */
export type Decided =
  | { readonly value: EnterOutcome | null; readonly lastEvent: number | null }
  | { readonly error: unknown };

/**
 * Decides a batch's writes in turn in one transaction, then logs their events with one statement
 * (its last, see postgres-presence.ts); `lostLease` is the error of a registration whose instance's
 * lease ran out.
 */
export async function batchIn(
  client: PoolClient,
  batch: readonly Queued[],
  lostLease: () => Error,
): Promise<Decided[]> {
  const pending: Pending[] = [];
  const decided: Decided[] = [];
  // This instance's lease, locked against a sweep or a shutdown deleting it (rows of an instance
  // whose lease ran out are swept). FOR KEY SHARE, not FOR SHARE: the renewal's update does not wait for it.
  const enter = batch.find((op) => op.kind === 'enter');
  const leased =
    enter === undefined ||
    (
      await client.query('SELECT 1 FROM registry_instances WHERE id = $1 AND lease_until > now() FOR KEY SHARE', [
        enter.row.instanceId,
      ])
    ).rowCount === 1;
  for (const op of batch) {
    if (op.kind === 'enter' && !leased) {
      decided.push({ error: lostLease() });
      continue;
    }
    const before = pending.length;
    const value = op.kind === 'enter' ? await decideEnter(client, op, pending) : await decideLeave(client, op, pending);
    decided.push({ value, lastEvent: pending.length === before ? null : pending.length - 1 });
  }
  if (pending.length === 0) return decided;
  const first = (await logEvents(client, pending)) - pending.length + 1;
  return decided.map((d, i) => ('error' in d ? d : numbered(d, batch[i] as Queued, first)));
}

/** The rules of a registration on the rows it meets (presence.ts); its events go to `pending`. */
async function decideEnter(
  client: PoolClient,
  op: Extract<Queued, { kind: 'enter' }>,
  pending: Pending[],
): Promise<EnterOutcome> {
  const { row } = op;
  const key = nicknameKey(row.nickname);
  const raws = (
    await client.query(
      `SELECT ${ROW_COLUMNS}, registered_at FROM presence WHERE key_id = $1 OR nickname_key = $2 OR address = $3 ` +
        `FOR UPDATE`,
      [row.keyId, key, row.address],
    )
  ).rows as Array<Record<string, unknown>>;
  const removed: Pending[] = [];
  let registeredAt = op.registeredAt;
  for (const raw of raws) {
    const old = rowOf(raw);
    if (old.keyId === row.keyId) {
      // The same key on the same binding, reconnected (to whichever instance): not interrupted.
      const since = raw['registered_at'];
      if (typeof since === 'number' && nicknameKey(old.nickname) === key && old.address === row.address)
        registeredAt = Math.min(registeredAt, since);
      removed.push({ kind: 'replaced', announce: nicknameKey(old.nickname) !== key, row: old });
    } else if (old.address === row.address && row.addressVerified && !old.addressVerified) {
      // Evicted from the address, and from the nickname too when it holds that as well (erratum 1).
      removed.push({ kind: 'evicted', announce: true, row: old });
    } else if (nicknameKey(old.nickname) === key) return { kind: 'nickname-taken' };
    else return { kind: 'address-taken' };
  }
  if (removed.length > 0)
    await client.query('DELETE FROM presence WHERE key_id = ANY($1::text[])', [removed.map((r) => r.row.keyId)]);
  await client.query(
    `INSERT INTO presence (${ROW_COLUMNS}, nickname_key, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, ` +
      `$8, $9, $10)`,
    [
      row.keyId,
      row.nickname,
      row.address,
      row.addressVerified,
      row.instanceId,
      row.localRef,
      row.publicKeyDer,
      row.peerJson,
      key,
      registeredAt,
    ],
  );
  pending.push(...removed, { kind: 'joined', announce: true, row });
  // numbered once the batch is logged
  return { kind: 'entered', seq: 0, removed: removed.map((r) => r.row), registeredAt };
}

async function decideLeave(
  client: PoolClient,
  op: Extract<Queued, { kind: 'leave' }>,
  pending: Pending[],
): Promise<null> {
  const gone = await client.query(
    `DELETE FROM presence WHERE key_id = $1 AND instance_id = $2 AND local_ref = $3 RETURNING ${ROW_COLUMNS}`,
    [op.keyId, op.instanceId, op.localRef],
  );
  for (const raw of gone.rows)
    pending.push({ kind: 'left', announce: true, row: rowOf(raw as Record<string, unknown>) });
  return null;
}

/** A decision with its events' numbers: the batch's first event is `first`. */
function numbered(decided: Exclude<Decided, { readonly error: unknown }>, op: Queued, first: number): Decided {
  const seq = decided.lastEvent === null ? null : first + decided.lastEvent;
  if (op.kind === 'leave' || decided.value === null || decided.value.kind !== 'entered')
    return { value: decided.value, lastEvent: seq };
  return { value: { ...decided.value, seq: seq as number }, lastEvent: seq };
}

export function settle(op: Queued, decided: Decided): void {
  if ('error' in decided) return op.settle.reject(decided.error);
  if (op.kind === 'enter') op.settle.resolve(decided.value as EnterOutcome);
  else op.settle.resolve(decided.lastEvent);
}
