/**
 * Live presence in PostgreSQL (presence.ts says what it guarantees; schema versions 3 and 4 hold
 * the tables). How:
 *  - Registrations and leaves are written in batches (group commit): what arrives while a batch is
 *    being written goes into the next, one READ COMMITTED transaction that decides each write in
 *    turn under the unique indexes (key, nickname key, address), then, as its LAST statement, bumps
 *    presence_log_head and inserts all its events with the numbers it got (one statement). The
 *    head's row lock is held until COMMIT, so a later writer gets its numbers only after the
 *    earlier one committed: numbers follow commit order, and a transaction that rolls back takes
 *    its numbers with it.
 *  - The lock order, the same in every writer: registry_instances rows (a batch's own, FOR KEY
 *    SHARE; a shutdown's or a sweep's, deleted), then presence rows, then the head, LAST. So no
 *    transaction holding the head ever waits for a row lock or a unique index, and nobody waits for
 *    the head while holding what its holder needs. A sweep passes by instance rows in use (SKIP
 *    LOCKED) rather than waiting for them. What remains: two batches that lock the same two
 *    presence rows in opposite orders can still deadlock; PostgreSQL ends one (40P01) after
 *    deadlock_timeout and it runs again.
 *  - Two registrations racing for a nickname on two instances: the loser's INSERT waits at the unique
 *    index for the winner's COMMIT, fails with 23505, and its batch runs again and sees the winner.
 *  - pg_notify inside the transaction wakes every instance's tail at COMMIT (delivered only then).
 *  - Leases are in database time (now()), so instance clocks do not matter.
 *  - Commits wait for the WAL flush, like the claims' (tried without: `pg_ctl stop -m immediate`
 *    then lost registrations answered a second before, and every instance had to re-sync and close
 *    their connections). The price: batches commit one after another, one flush each, since the
 *    head's lock is held until COMMIT returns; batching is what keeps that from being one flush
 *    per registration (`make bench-cluster` measures it).
 */
import pg, { type Pool, type PoolClient, type PoolConfig } from 'pg';

import { APPLICATION_NAME, connectionName } from '../../store/postgres/postgres-connections.js';
import { environmentFailure, lostRace, RACE_ATTEMPTS } from '../../store/postgres/postgres-failure.js';
import { SoleConnection } from '../../store/postgres/postgres-sole-connection.js';
import { BEGIN_DURABLE } from '../../store/postgres/postgres-sql.js';
import { CHANNEL, EVENT_COLUMNS, eventOf, logEvents, ROW_COLUMNS, rowOf, text } from './postgres-presence-rows.js';
import { inTransaction } from '../../store/postgres/postgres-transaction.js';
import { batchIn, type Decided, type Queued, settle } from './presence-batch.js';
import {
  eventFingerprint,
  type EnterOutcome,
  type LogPage,
  type PresenceRow,
  type PresenceSnapshot,
  type PresenceStore,
} from './presence.js';
import { RegistryError } from '../../protocol/errors.js';
import { storeError } from '../../store/store-error.js';

const LISTEN_RETRY_MS = 1_000;
/** The advisory lock a sweep holds for its transaction (any constant: ASCII "p2psweep" as an int8). */
const SWEEP_LOCK = '8084647922310145392';
/** Most registrations and leaves one transaction writes. */
const MAX_BATCH = 256;

export class PostgresPresence implements PresenceStore {
  readonly #pool: Pool;
  readonly #config: PoolConfig;
  readonly #label: string;
  readonly #target: string;
  readonly #retryAfterMs: number;
  #listener: pg.Client | undefined;
  /** The lease's own connection: a full pool or a stuck query elsewhere never delays a renewal. */
  readonly #lease: SoleConnection;
  #listenTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Writes waiting for the batch after the one in flight. */
  #queue: Queued[] = [];
  #writing = false;

  /** `label` names this instance's connections in pg_stat_activity (postgres-connections.ts). */
  constructor(config: PoolConfig, target: string, retryAfterMs: number, label = APPLICATION_NAME) {
    this.#config = config;
    this.#label = label;
    this.#pool = new pg.Pool(config); // sized and named by its opener (open-store.ts: INSTANCE_CONNECTIONS.presence)
    this.#pool.on('error', () => undefined);
    this.#pool.on('connect', (client) => client.on('error', () => undefined));
    this.#lease = new SoleConnection({ ...config, application_name: connectionName(label, 'lease') });
    this.#target = target;
    this.#retryAfterMs = retryAfterMs;
  }

  async renewLease(instanceId: string, leaseMs: number): Promise<void> {
    // On the lease's own connection. Updates no key column: a batch's FOR KEY SHARE on this row
    // does not make it wait.
    await this.#query(
      `INSERT INTO registry_instances (id, lease_until) VALUES ($1, now() + $2 * interval '1 millisecond')
       ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until`,
      [instanceId, leaseMs],
      this.#lease,
    );
  }

  async announceBackend(onion: string, instanceId: string, leaseMs: number): Promise<void> {
    // A drain (drained_at) is the operator's and survives the announcements.
    await this.#query(
      `INSERT INTO registry_backends (onion, last_seen, instance_id, lease_until) VALUES ($1, now(), $2,
        now() + $3 * interval '1 millisecond')
       ON CONFLICT (onion) DO UPDATE SET last_seen = now(), instance_id = excluded.instance_id,
         lease_until = excluded.lease_until`,
      [onion, instanceId, leaseMs],
    );
  }

  async frontendOnion(): Promise<string | null> {
    const row = (await this.#query('SELECT master_onion FROM registry_frontend WHERE id = 1')).rows[0] as
      | { master_onion?: unknown }
      | undefined;
    return typeof row?.master_onion === 'string' ? row.master_onion : null;
  }

  /** Queued into the next batch: registrations that arrive together share one transaction and one flush. */
  enter(row: PresenceRow, registeredAt: number): Promise<EnterOutcome> {
    return new Promise((resolve, reject) =>
      this.#submit({ kind: 'enter', row, registeredAt, settle: { resolve, reject } }),
    );
  }

  leave(keyId: string, instanceId: string, localRef: number): Promise<number | null> {
    return new Promise((resolve, reject) =>
      this.#submit({ kind: 'leave', keyId, instanceId, localRef, settle: { resolve, reject } }),
    );
  }

  async leaveInstance(instanceId: string): Promise<number> {
    return this.#write(async (client) => {
      // The lock order (top of this file): the instance's row first, which waits for its batches
      // in flight (they hold it FOR KEY SHARE), then its presence rows, then the head.
      await client.query('DELETE FROM registry_instances WHERE id = $1', [instanceId]);
      const gone = (
        await client.query(`DELETE FROM presence WHERE instance_id = $1 RETURNING ${ROW_COLUMNS}`, [instanceId])
      ).rows.map(rowOf);
      if (gone.length > 0)
        await logEvents(
          client,
          gone.map((r) => ({ kind: 'left', announce: true, row: r })),
        );
      return gone.length;
    });
  }

  async sweep(): Promise<number> {
    return this.#write(async (client) => {
      // One sweep in the cluster at a time; the others have nothing to do.
      const alone = (await client.query('SELECT pg_try_advisory_xact_lock($1) AS alone', [SWEEP_LOCK])).rows[0] as {
        alone: boolean;
      };
      if (!alone.alone) return 0;
      // The lock order: instance rows first. A row in use is passed by (SKIP LOCKED): its instance is
      // renewing its lease, or one of its batches is in flight; the next sweep sees it again.
      const ended = (
        await client.query(
          'DELETE FROM registry_instances WHERE id IN (SELECT id FROM registry_instances WHERE lease_until <= now() ' +
            'FOR UPDATE SKIP LOCKED) RETURNING id',
        )
      ).rows.map((r: { id: unknown }) => text(r.id));
      // Rows of an instance that has no row at all are swept too: they can only be left over.
      const gone = (
        await client.query(
          `DELETE FROM presence p WHERE p.instance_id = ANY($1::text[]) OR NOT EXISTS (SELECT 1 FROM ` +
            `registry_instances i WHERE i.id = p.instance_id) RETURNING ${ROW_COLUMNS}`,
          [ended],
        )
      ).rows.map(rowOf);
      if (gone.length > 0)
        await logEvents(
          client,
          gone.map((r) => ({ kind: 'expired', announce: true, row: r })),
        );
      return gone.length;
    });
  }

  async trimLog(retainMs: number): Promise<number> {
    // The newest event stays: it is every instance's anchor (cluster-tail.ts), however old.
    const result = await this.#query(
      "DELETE FROM presence_events WHERE at < now() - $1 * interval '1 millisecond' AND seq < (SELECT seq FROM " +
        'presence_log_head WHERE id = 1)',
      [retainMs],
    );
    return result.rowCount ?? 0;
  }

  /** One statement, so one snapshot: the head and the events are as of the same moment. */
  async readLog(from: number, limit: number): Promise<LogPage> {
    const result = await this.#query(
      `SELECT h.seq AS head_seq, h.log_id, e.* FROM presence_log_head h
       LEFT JOIN LATERAL (SELECT ${EVENT_COLUMNS} FROM presence_events WHERE seq >= $1 ORDER BY seq LIMIT $2) e ON true
       WHERE h.id = 1`,
      [from, limit],
    );
    const rows = result.rows as Array<Record<string, unknown>>;
    const first = rows[0];
    if (first === undefined) throw new Error('presence_log_head has no row: the schema is damaged');
    const events = rows.filter((raw) => raw['seq'] !== null).map(eventOf);
    return { logId: text(first['log_id']), headSeq: Number(first['head_seq']), events };
  }

  async snapshot(): Promise<PresenceSnapshot> {
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw this.#mapped(err, 'read');
    }
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const head = (await client.query('SELECT seq, log_id FROM presence_log_head WHERE id = 1')).rows[0] as {
        seq: unknown;
        log_id: unknown;
      };
      const rows = (await client.query(`SELECT ${ROW_COLUMNS} FROM presence ORDER BY key_id`)).rows.map(rowOf);
      const last = (await client.query(`SELECT ${EVENT_COLUMNS} FROM presence_events WHERE seq = $1`, [head.seq]))
        .rows[0] as Record<string, unknown> | undefined;
      await client.query('COMMIT');
      client.release();
      return {
        logId: text(head.log_id),
        seq: Number(head.seq),
        anchor: last === undefined ? null : eventFingerprint(eventOf(last)),
        rows,
      };
    } catch (err) {
      client.release(true);
      throw this.#mapped(err, 'read');
    }
  }

  listen(onChange: () => void): void {
    if (this.#closed || this.#listener !== undefined) return;
    const client = new pg.Client({ ...this.#config, application_name: connectionName(this.#label, 'listener') });
    this.#listener = client;
    const retry = (): void => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      client.end().catch(() => undefined);
      if (!this.#closed) this.#listenTimer = setTimeout(() => this.listen(onChange), LISTEN_RETRY_MS).unref();
    };
    client.on('error', retry);
    client.on('end', retry);
    client.on('notification', () => onChange());
    client
      .connect()
      .then(() => client.query(`LISTEN ${CHANNEL}`))
      .then(() => onChange(), retry); // caught up after a reconnect: changes meanwhile were not notified
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#listenTimer);
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => undefined);
    this.#lease.close();
    await this.#pool.end();
  }

  #submit(op: Queued): void {
    if (this.#closed) {
      op.settle.reject(storeError('STORE_CLOSED', `the presence of ${this.#target} is closed`));
      return;
    }
    this.#queue.push(op);
    if (!this.#writing) void this.#drain();
  }

  /** Writes the queue a batch at a time; what arrives meanwhile waits for the next batch (group commit). */
  async #drain(): Promise<void> {
    this.#writing = true;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      try {
        const decided = await this.#writeBatch(batch);
        for (const [i, op] of batch.entries()) settle(op, decided[i] as Decided);
      } catch (err) {
        const mapped = this.#mapped(err, 'written');
        for (const op of batch) op.settle.reject(mapped);
      }
    }
    this.#writing = false;
  }

  /** One transaction for the whole batch; a lost race (another instance's commit in the way) runs it again. */
  async #writeBatch(batch: readonly Queued[]): Promise<Decided[]> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.#transaction((client) => batchIn(client, batch, () => this.#lostLease()));
      } catch (err) {
        if (!lostRace(err) || attempt >= RACE_ATTEMPTS) throw err;
      }
    }
  }

  #lostLease(): Error {
    return this.#unavailable(
      new Error('this instance lost its lease in the shared database'),
      'written',
      'it renews the lease by itself; retry',
    );
  }

  /** One statement on the pool, or on `on` (the lease's own connection). */
  async #query(
    sql: string,
    params: unknown[] = [],
    on: { query(sql: string, params: unknown[]): Promise<pg.QueryResult> } = this.#pool,
  ): Promise<pg.QueryResult> {
    if (this.#closed) throw storeError('STORE_CLOSED', `the presence of ${this.#target} is closed`);
    try {
      return await on.query(sql, params);
    } catch (err) {
      throw this.#mapped(err, 'reached');
    }
  }

  async #write<T>(body: (client: PoolClient) => Promise<T>): Promise<T> {
    try {
      return await this.#transaction(body);
    } catch (err) {
      throw this.#mapped(err, 'written');
    }
  }

  /** One transaction; its errors are thrown as the driver gave them (enter retries lost races). */
  async #transaction<T>(body: (client: PoolClient) => Promise<T>): Promise<T> {
    if (this.#closed) throw storeError('STORE_CLOSED', `the presence of ${this.#target} is closed`);
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw this.#mapped(err, 'written');
    }
    return inTransaction(client, BEGIN_DURABLE, this.#target, body, (err) => err);
  }

  /** Environment failures become STORE_UNAVAILABLE; anything else (a bug) is thrown as it is. */
  #mapped(err: unknown, doing: string): unknown {
    if (err instanceof RegistryError) return err;
    const failure = environmentFailure(err, this.#target);
    if (failure === undefined) return err;
    return this.#unavailable(
      err,
      doing,
      `${failure.fix}; it reconnects by itself`,
      `${failure.text} (${failure.name})`,
    );
  }

  #unavailable(
    cause: unknown,
    doing: string,
    fix: string,
    what = cause instanceof Error ? cause.message : String(cause),
  ): Error {
    return storeError(
      'STORE_UNAVAILABLE',
      `the cluster's presence in ${this.#target} cannot be ${doing}: ${what}. Fix: ${fix}.`,
      { cause, retryAfterMs: this.#retryAfterMs },
    );
  }
}
