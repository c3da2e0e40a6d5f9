/**
 * The claim store on PostgreSQL (the `pg` driver, a pool of connections), for several registries
 * sharing one database. Same contract as the SQLite store (claim-store.contract.ts).
 *
 * Conflicts are decided by the database inside each write: a claim is one READ COMMITTED
 * transaction that locks the rows in its way (SELECT … FOR UPDATE) and writes under unique indexes
 * on the nickname key and the address and the key id's primary key. Of two claims racing for a
 * nickname, on one pool or on two, the loser's INSERT meets the winner's row at the unique index
 * (23505) once the winner commits; the loser's transaction is then run again from the start, sees
 * the winner's claim and answers nickname-taken. So exactly one wins.
 *
 * Durability: claims and releases run with synchronous_commit on and resolve only after COMMIT
 * returned. Each key's claims, reverts and releases run one after another in the order they were
 * issued (key-order.ts): on separate pool connections a later release could commit first and be
 * undone by an earlier claim still waiting for a lock. Touches and purges are single statements
 * that need not be durable; they wait for the claims and releases issued before them, so they
 * never overtake one.
 *
 * Failures: a server that is down, restarting, out of disk or read-only makes an operation reject
 * with STORE_UNAVAILABLE (with retryAfterMs): its transaction rolled back, nothing changed. The
 * pool drops the broken connections and opens new ones on the next call: the store recovers by
 * itself once the server is back. Messages name the target without its password.
 */
import { CommitStats } from '../../metrics/latency-histogram.js';
import type pg from 'pg';
import type { Pool, PoolClient } from 'pg';
import {
  MS_PER_DAY,
  type Claim,
  type ClaimList,
  type ClaimOutcome,
  type ClaimRequest,
  type ClaimStore,
  type Clock,
  type KeyId,
  type ListPage,
  type RelevantClaims,
} from '../claim-store.js';
import { checkAddress, checkClaim, checkClaimRequest, checkKeyId, checkNickname } from '../claim-row.js';
import { decideClaim, sortRelevant } from '../claim-rules.js';
import { backupPostgresClaims } from './postgres-backup.js';
import { environmentFailure, lostRace, RACE_ATTEMPTS } from './postgres-failure.js';
import type { Checked, PostgresClaimStoreOptions } from './postgres-store-options.js';

export type { PostgresClaimStoreOptions };
import { inTransaction } from './postgres-transaction.js';
import { KeyOrder } from '../key-order.js';
import { BEGIN_DURABLE, claimFromPgRow, exactParams, SQL, upsertParams } from './postgres-sql.js';
import type { RegistryError } from '../../protocol/errors.js';
import { storeError } from '../store-error.js';
import { nicknameKey } from '../../protocol/messages.js';

const PURGE_CHUNK = 1_000;

export class PostgresClaimStore implements ClaimStore {
  /** Each transaction of a write: its duration, or its failure. */
  readonly commits = new CommitStats();
  /** The database, without its password: for messages and logs. */
  readonly target: string;
  readonly #pool: Pool;
  readonly #now: Clock;
  readonly #claimMs: number;
  readonly #retryAfterMs: number;
  /** Every write in flight, for close. */
  readonly #writes = new Set<Promise<unknown>>();
  /** Claims and releases in flight: touches and purges wait for those issued before them. */
  readonly #durable = new Set<Promise<unknown>>();
  /** Each key's claims, reverts and releases, in the order they were issued. */
  readonly #keyOrder = new KeyOrder();
  #closed = false;

  /** Use openPostgresClaimStore: it migrates and checks the database first. */
  constructor(pool: Pool, target: string, options: Checked) {
    this.target = target;
    this.#pool = pool;
    this.#now = options.now;
    this.#claimMs = Math.round(options.claimDays * MS_PER_DAY);
    this.#retryAfterMs = options.retryAfterMs;
  }

  async findForRegistration(query: {
    readonly keyId: KeyId;
    readonly nickname: string;
    readonly address: string;
  }): Promise<RelevantClaims> {
    const keyId = checkKeyId(query.keyId);
    const key = nicknameKey(checkNickname(query.nickname));
    const address = checkAddress(query.address);
    const rows = await this.#read(SQL.relevant, [keyId, key, address, this.#time()]);
    return sortRelevant(
      rows.map((row) => claimFromPgRow(row, this.target)),
      keyId,
      key,
      address,
    );
  }

  async claim(request: ClaimRequest): Promise<ClaimOutcome> {
    checkClaimRequest(request);
    return this.#durableWrite([request.keyId], async () => {
      for (let attempt = 1; ; attempt += 1) {
        try {
          return await this.#transaction('written', (client) => this.#claimIn(client, request));
        } catch (err) {
          if (!lostRace(err)) throw err;
          if (attempt >= RACE_ATTEMPTS) throw this.#unavailableOr(err, 'written');
        }
      }
    });
  }

  async touch(keyIds: readonly KeyId[]): Promise<number> {
    const ids = [...new Set(keyIds.map(checkKeyId))];
    return this.#orderedWrite(async () => {
      if (ids.length === 0) return 0;
      const now = this.#time();
      return (await this.#statement(SQL.touch, [ids, now, now + this.#claimMs])).rowCount ?? 0;
    });
  }

  async revert(made: Claim, restore: readonly Claim[]): Promise<number> {
    checkClaim(made);
    restore.forEach(checkClaim);
    return this.#durableWrite([made.keyId, ...restore.map((claim) => claim.keyId)], () =>
      this.#transaction('written', async (client) => {
        await client.query(SQL.deleteExact, exactParams(made));
        const now = this.#time();
        let restored = 0;
        for (const claim of restore) {
          if (claim.expiresAt <= now) continue;
          const key = nicknameKey(claim.nickname);
          await client.query(SQL.deleteExpiredInWay, [claim.keyId, key, claim.address, now]);
          restored += (await client.query(SQL.restore, upsertParams(claim, key))).rowCount ?? 0;
        }
        return restored;
      }),
    );
  }

  async releaseClaim(claim: Claim): Promise<boolean> {
    checkClaim(claim);
    return this.#durableWrite([claim.keyId], () =>
      this.#transaction(
        'written',
        async (client) => ((await client.query(SQL.deleteExact, exactParams(claim))).rowCount ?? 0) > 0,
      ),
    );
  }

  async releaseKey(keyId: KeyId): Promise<Claim | null> {
    const id = checkKeyId(keyId);
    return this.#durableWrite([id], () =>
      this.#transaction('written', async (client) =>
        this.#liveOrNull((await client.query(SQL.deleteKey, [id])).rows[0]),
      ),
    );
  }

  async releaseNickname(nickname: string): Promise<Claim | null> {
    const key = nicknameKey(checkNickname(nickname));
    // Whose claim it deletes is known only inside the write: ordered with no key's writes.
    return this.#durableWrite([], () =>
      this.#transaction('written', async (client) =>
        this.#liveOrNull((await client.query(SQL.deleteNickname, [key])).rows[0]),
      ),
    );
  }

  async getByNickname(nickname: string): Promise<Claim | null> {
    const key = nicknameKey(checkNickname(nickname));
    const rows = await this.#read(SQL.byNickname, [key, this.#time()]);
    return rows[0] === undefined ? null : claimFromPgRow(rows[0], this.target);
  }

  async list(page: ListPage = {}): Promise<ClaimList> {
    const after = page.after === undefined ? '' : nicknameKey(page.after);
    const limit = page.limit;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 1)) {
      throw storeError('STORE_BAD_INPUT', 'claim store: list limit must be a whole number >= 1');
    }
    // One more than asked tells whether there is a next page without a second query.
    const rows = await this.#read(SQL.listAfter, [after, this.#time(), limit === undefined ? null : limit + 1]);
    const claims = rows.map((row) => claimFromPgRow(row, this.target));
    const more = limit !== undefined && claims.length > limit;
    if (more) claims.length = limit;
    return { claims, next: more ? (claims[claims.length - 1]?.nickname ?? null) : null };
  }

  async purgeExpired(): Promise<number> {
    return this.#orderedWrite(async () => {
      let total = 0;
      for (;;) {
        const deleted = (await this.#statement(SQL.purge, [this.#time(), PURGE_CHUNK])).rowCount ?? 0;
        total += deleted;
        if (deleted < PURGE_CHUNK) return total;
      }
    });
  }

  /**
   * A psql script (schema, version and every row, COPY format) of one REPEATABLE READ snapshot:
   * consistent however many writes run meanwhile. Restore into an empty database with
   * `psql -v ON_ERROR_STOP=1 -f <file>`; pg_dump of the database is the operator's other way.
   */
  async backup(file: string): Promise<void> {
    this.#assertOpen();
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw this.#unavailableOr(err, 'backed up');
    }
    await backupPostgresClaims(client, this.target, file, this.#retryAfterMs);
  }

  /**
   * The pool's reads and transactions, lent to the moderation store of the same process (revision
   * 3): its poll and reads take a connection of this pool, so an instance's connection budget stays
   * as docs/CLUSTER.md says. Not the pool itself: only this store ends it (close).
   */
  get sharedPool(): Pick<Pool, 'query' | 'connect'> {
    const pool = this.#pool;
    return { query: pool.query.bind(pool) as Pool['query'], connect: pool.connect.bind(pool) as Pool['connect'] };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#writes]);
    await this.#pool.end();
  }

  /** The clock as a whole number of ms (an injected clock may return fractions). */
  #time(): number {
    return Math.floor(this.#now());
  }

  #assertOpen(): void {
    if (this.#closed) throw storeError('STORE_CLOSED', `the claim store ${this.target} is closed`);
  }

  #liveOrNull(row: unknown): Claim | null {
    if (row === undefined) return null;
    const claim = claimFromPgRow(row, this.target);
    return claim.expiresAt > this.#time() ? claim : null;
  }

  /** The conflict rules (claim-rules.ts) on the rows this transaction locked. */
  async #claimIn(client: PoolClient, request: ClaimRequest): Promise<ClaimOutcome> {
    const key = nicknameKey(request.nickname);
    const found = (await client.query(SQL.lockRelevant, [request.keyId, key, request.address])).rows.map((row) =>
      claimFromPgRow(row, this.target),
    );
    const decision = decideClaim(request, found, this.#time(), this.#claimMs);
    if (!decision.write) return decision.outcome;
    if (decision.remove.length > 0) await client.query(SQL.deleteKeys, [decision.remove]);
    await client.query(SQL.upsert, upsertParams(decision.claim, key));
    return decision.outcome;
  }

  #unavailable(err: unknown, doing: string, committing = false): RegistryError | undefined {
    const failure = environmentFailure(err, this.target);
    if (failure === undefined) return undefined;
    // A connection lost while COMMIT was on its way: the server may have committed it.
    const changed = committing ? 'The write may or may not have been committed' : 'Nothing was changed';
    return storeError(
      'STORE_UNAVAILABLE',
      `the claim database ${this.target} cannot be ${doing}: ${failure.text} (${failure.name}). ${changed}. ` +
        `Fix: ${failure.fix}; the store reconnects by itself on the next call.`,
      { cause: err, retryAfterMs: this.#retryAfterMs },
    );
  }

  /** A race lost too often is the database being overloaded: unavailable, not a bug. */
  #unavailableOr(err: unknown, doing: string): unknown {
    return this.#unavailable(err, doing) ?? err;
  }

  async #read(sql: string, params: unknown[]): Promise<unknown[]> {
    this.#assertOpen();
    try {
      return (await this.#pool.query(sql, params)).rows;
    } catch (err) {
      throw this.#unavailableOr(err, 'read');
    }
  }

  /** One statement outside a transaction (touch, purge): not durable, by the contract. */
  async #statement(sql: string, params: unknown[]): Promise<pg.QueryResult> {
    try {
      return await this.#pool.query(sql, params);
    } catch (err) {
      throw this.#unavailableOr(err, 'written');
    }
  }

  /** BEGIN (durable), body, COMMIT on one connection; ROLLBACK and the error otherwise. */
  async #transaction<T>(doing: string, body: (client: PoolClient) => Promise<T>): Promise<T> {
    const started = performance.now();
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      this.commits.failures += 1;
      throw this.#unavailableOr(err, doing);
    }
    try {
      const result = await inTransaction(
        client,
        BEGIN_DURABLE,
        this.target,
        body,
        (err, committing) => this.#unavailable(err, doing, committing) ?? err,
      );
      this.commits.latency.observeSince(started);
      return result;
    } catch (err) {
      // A lost race is retried (claim), not a failure of the store.
      if (!lostRace(err)) this.commits.failures += 1;
      throw err;
    }
  }

  #track<T>(promise: Promise<T>, durable: boolean): Promise<T> {
    this.#writes.add(promise);
    if (durable) this.#durable.add(promise);
    const done = (): void => {
      this.#writes.delete(promise);
      this.#durable.delete(promise);
    };
    promise.then(done, done);
    return promise;
  }

  /** Runs after the writes of the same keys issued before it (key-order.ts). */
  #durableWrite<T>(keys: readonly KeyId[], run: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(storeError('STORE_CLOSED', `the claim store ${this.target} is closed`));
    return this.#track(this.#keyOrder.run(keys, run), true);
  }

  /** Runs after every claim and release issued before it has settled. */
  #orderedWrite<T>(run: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(storeError('STORE_CLOSED', `the claim store ${this.target} is closed`));
    const earlier = [...this.#durable];
    const write = earlier.length === 0 ? run() : Promise.allSettled(earlier).then(run);
    return this.#track(write, false);
  }
}
