/**
 * The presence tables' rows as the registry's types, and the one writer of the log: numbers from
 * the head, the events, the notification (postgres-presence.ts says why it comes last).
 */
import type { PoolClient } from 'pg';
import type { PresenceEvent, PresenceEventKind, PresenceRow } from './presence.js';

export const CHANNEL = 'registry_presence';
export const ROW_COLUMNS = 'key_id, nickname, address, address_verified, instance_id, local_ref, public_key, peer';
export const EVENT_COLUMNS = 'seq, kind, announce, key_id, nickname, instance_id, local_ref, public_key, peer';

/** An event before it has its number. */
export interface Pending {
  readonly kind: PresenceEventKind;
  readonly announce: boolean;
  readonly row: PresenceRow;
}

export function text(value: unknown): string {
  if (typeof value !== 'string') throw new Error(`presence: expected text, got ${typeof value}`);
  return value;
}

export function rowOf(raw: Record<string, unknown>): PresenceRow {
  const der = raw['public_key'];
  if (!(der instanceof Uint8Array)) throw new Error('presence: public_key is not bytea');
  return {
    keyId: text(raw['key_id']),
    nickname: text(raw['nickname']),
    address: text(raw['address']),
    addressVerified: raw['address_verified'] === true,
    instanceId: text(raw['instance_id']),
    localRef: Number(raw['local_ref']),
    publicKeyDer: new Uint8Array(der),
    peerJson: text(raw['peer']),
  };
}

export function eventOf(raw: Record<string, unknown>): PresenceEvent {
  const kind = text(raw['kind']) as PresenceEventKind;
  return {
    seq: Number(raw['seq']),
    kind,
    announce: raw['announce'] === true,
    keyId: text(raw['key_id']),
    nickname: text(raw['nickname']),
    instanceId: text(raw['instance_id']),
    localRef: Number(raw['local_ref']),
    row: kind === 'joined' ? joinedRow(raw) : null,
  };
}

/** A joined event's row: its address and whether it is verified are in the peer object. */
function joinedRow(raw: Record<string, unknown>): PresenceRow {
  const peer = JSON.parse(text(raw['peer'])) as { address?: unknown; addressVerified?: unknown };
  return rowOf({ ...raw, address: peer.address, address_verified: peer.addressVerified === true });
}

/**
 * Numbers and inserts the events and notifies, in ONE statement, last in the transaction (from
 * here to COMMIT the head's lock is held); resolves with the last number.
 */
export async function logEvents(client: PoolClient, events: readonly Pending[]): Promise<number> {
  const result = await client.query(
    `WITH head AS (UPDATE presence_log_head SET seq = seq + $1 WHERE id = 1 RETURNING seq),
     logged AS (
       INSERT INTO presence_events (seq, kind, announce, key_id, nickname, instance_id, local_ref, public_key, peer)
       SELECT (SELECT seq FROM head) - $1 + e.ord, e.kind, e.announce, e.key_id, e.nickname, e.instance_id,
         e.local_ref, e.public_key, e.peer
       FROM unnest($2::text[], $3::boolean[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bytea[], $9::text[])
         WITH ORDINALITY AS e(kind, announce, key_id, nickname, instance_id, local_ref, public_key, peer, ord)
       RETURNING seq
     )
     SELECT (SELECT seq FROM head) AS seq, (SELECT count(*) FROM logged) AS logged, pg_notify('${CHANNEL}',
       '') AS notified`,
    [
      events.length,
      events.map((e) => e.kind),
      events.map((e) => e.announce),
      events.map((e) => e.row.keyId),
      events.map((e) => e.row.nickname),
      events.map((e) => e.row.instanceId),
      events.map((e) => e.row.localRef),
      events.map((e) => (e.kind === 'joined' ? Buffer.from(e.row.publicKeyDer) : null)),
      events.map((e) => (e.kind === 'joined' ? e.row.peerJson : null)),
    ],
  );
  const row = result.rows[0] as { seq: unknown; logged: unknown } | undefined;
  if (row === undefined || Number(row.logged) !== events.length)
    throw new Error('presence: the log write inserted fewer events than it numbered');
  return Number(row.seq);
}
