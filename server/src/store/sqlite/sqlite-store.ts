/**
 * The claim store on SQLite (node:sqlite, no native build). One connection, owned by the server's
 * thread; writes go through group commit (group-commit.ts), reads run at once on committed state.
 *
 * Durability: WAL with synchronous=FULL syncs the WAL at every COMMIT, and a write's promise
 * resolves only after its COMMIT returned, so whatever a promise reported survives kill -9 and a
 * power cut. A batch of touches and purges alone (the ClaimStore contract lets those be lost)
 * commits with synchronous=NORMAL: in the WAL, so it survives kill -9, synced by the next synced
 * commit or checkpoint; the WAL is one log in commit order, so a power cut loses only the newest
 * such batches, never a claim or release nor anything before one. A failed write rolls its whole
 * transaction back and rejects with STORE_UNAVAILABLE; the next write simply begins a new
 * transaction, so the store recovers by itself once the disk does.
 *
 * The event loop: large writes are sliced (a touch of every live key, a purge) with the event loop
 * served between slices, and the WAL is checkpointed from another thread (sqlite-checkpointer.ts),
 * never inside a commit.
 */
import type { CommitStats } from '../../metrics/latency-histogram.js';
import { resolve } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
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
import { checkAddress, checkClaim, checkClaimRequest, checkKeyId, checkNickname, claimFromRow } from '../claim-row.js';
import { prepareStatements, type Statements } from './sqlite-statements.js';
import { decideClaim, sortRelevant } from '../claim-rules.js';
import { GroupCommit, type Settled, type WriteOp } from '../group-commit.js';
import { SqliteCheckpointer } from './sqlite-checkpointer.js';
import { migrate } from '../migrations.js';
import { backupSqliteDatabase } from './sqlite-backup.js';
import { environmentFailure } from './sqlite-failure.js';
import {
  JOURNAL_SIZE_LIMIT_BYTES,
  openConnection,
  openError,
  openReadOnly,
  probeWrite,
  WAL_AUTOCHECKPOINT_PAGES,
} from './sqlite-open.js';
import type { RegistryError } from '../../protocol/errors.js';
import { isStoreError, storeError } from '../store-error.js';
import { checkOptions, type SqliteClaimStoreOptions } from './sqlite-store-options.js';
import { nicknameKey } from '../../protocol/messages.js';

export type { SqliteClaimStoreOptions };

/** Rows a purge deletes per transaction, so that a large purge never holds the thread for long. */
const PURGE_CHUNK = 1_000;
/** Keys a touch updates per transaction: the periodic touch of every live key comes in slices. */
const TOUCH_CHUNK = 500;
/** Opens (creating it if absent) and migrates the database at `options.path`; or, `readOnly`, only opens it. */
export async function openSqliteClaimStore(options: SqliteClaimStoreOptions): Promise<SqliteClaimStore> {
  const checked = checkOptions(options);
  const path = resolve(checked.path);
  if (checked.readOnly) return new SqliteClaimStore(openReadOnly(path, checked.busyTimeoutMs), path, checked);
  const db = openConnection(path, checked.busyTimeoutMs);
  try {
    migrate(db, path);
    probeWrite(db, path);
    return new SqliteClaimStore(db, path, checked);
  } catch (err) {
    db.close();
    // A read before the migrations' own error handling (the schema version) fails as the open did.
    throw isStoreError(err) ? err : openError(err, path);
  }
}

export class SqliteClaimStore implements ClaimStore {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #sql: Statements;
  readonly #now: Clock;
  readonly #claimMs: number;
  readonly #retryAfterMs: number;
  readonly #writes: GroupCommit;

  get commits(): CommitStats {
    return this.#writes.stats;
  }
  readonly #sync: { readonly full: StatementSync; readonly normal: StatementSync }; // NORMAL: touches and purges only
  #syncFull = true;
  readonly #savepoint: { readonly begin: StatementSync; readonly release: StatementSync };
  /** None on a read-only store: it never commits, so it has no WAL of its own to copy. */
  readonly #checkpointer: SqliteCheckpointer | null;
  #closed = false;
  #stats = { writes: 0, commits: 0, failedCommits: 0 };

  /** Use openSqliteClaimStore: it migrates and checks the file first. */
  constructor(db: DatabaseSync, path: string, options: Required<SqliteClaimStoreOptions>) {
    this.path = path;
    this.#db = db;
    this.#sql = prepareStatements(db);
    this.#now = options.now;
    this.#claimMs = Math.round(options.claimDays * MS_PER_DAY);
    this.#retryAfterMs = options.retryAfterMs;
    this.#writes = new GroupCommit((ops, durable) => this.#commit(ops, durable), options.maxBatch);
    this.#sync = { full: db.prepare('PRAGMA synchronous = FULL'), normal: db.prepare('PRAGMA synchronous = NORMAL') };
    this.#savepoint = { begin: db.prepare('SAVEPOINT op'), release: db.prepare('RELEASE op') };
    this.#checkpointer = options.readOnly
      ? null
      : new SqliteCheckpointer({
          path,
          journalSizeLimitBytes: JOURNAL_SIZE_LIMIT_BYTES,
          intervalMs: options.checkpointIntervalMs,
          // The WAL must not grow without bound: SQLite checkpoints inside commits again, as before.
          onFailure: () => {
            if (!this.#closed) db.exec(`PRAGMA wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
          },
        });
  }

  async findForRegistration(query: {
    readonly keyId: KeyId;
    readonly nickname: string;
    readonly address: string;
  }): Promise<RelevantClaims> {
    const keyId = checkKeyId(query.keyId);
    const key = nicknameKey(checkNickname(query.nickname));
    const address = checkAddress(query.address);
    const rows = this.#read(() => this.#sql.relevant.all({ keyId, nicknameKey: key, address, now: this.#time() }));
    return sortRelevant(
      rows.map((row) => claimFromRow(row, this.path)),
      keyId,
      key,
      address,
    );
  }

  async claim(request: ClaimRequest): Promise<ClaimOutcome> {
    checkClaimRequest(request);
    return this.#write(() => this.#claimNow(request));
  }

  /**
   * In slices of TOUCH_CHUNK keys, each queued once the one before has committed, so the event
   * loop serves sockets between them (the periodic touch of a full registry is ~20,000 keys). A
   * claim or release queued meanwhile may commit before a later slice: harmless, since a touch only
   * moves a live claim's last-seen to now and leaves a released key alone.
   */
  async touch(keyIds: readonly KeyId[]): Promise<number> {
    const ids = keyIds.map(checkKeyId);
    let touched = 0;
    for (let from = 0; from < ids.length; from += TOUCH_CHUNK) {
      const slice = ids.slice(from, from + TOUCH_CHUNK);
      touched += await this.#write(() => {
        const now = this.#time();
        let changed = 0;
        for (const keyId of slice)
          changed += Number(this.#sql.touch.run({ keyId, now, expiresAt: now + this.#claimMs }).changes);
        return changed;
      }, false);
    }
    return touched;
  }

  async revert(made: Claim, restore: readonly Claim[]): Promise<number> {
    checkClaim(made);
    restore.forEach(checkClaim);
    return this.#write(() => {
      this.#sql.deleteExact.run(exactParams(made));
      const now = this.#time();
      let restored = 0;
      for (const claim of restore) {
        if (claim.expiresAt <= now) continue;
        const key = nicknameKey(claim.nickname);
        this.#sql.deleteExpiredInWay.run({ keyId: claim.keyId, nicknameKey: key, address: claim.address, now });
        const { changes } = this.#sql.restore.run({
          ...exactParams(claim),
          der: claim.publicKeyDer,
          nickname: claim.nickname,
          lastSeenAt: claim.lastSeenAt,
          expiresAt: claim.expiresAt,
        });
        restored += Number(changes);
      }
      return restored;
    });
  }

  async releaseClaim(claim: Claim): Promise<boolean> {
    checkClaim(claim);
    return this.#write(() => Number(this.#sql.deleteExact.run(exactParams(claim)).changes) > 0);
  }

  async releaseKey(keyId: KeyId): Promise<Claim | null> {
    const id = checkKeyId(keyId);
    return this.#write(() => this.#liveOrNull(this.#sql.deleteKey.get(id)));
  }

  async releaseNickname(nickname: string): Promise<Claim | null> {
    const key = nicknameKey(checkNickname(nickname));
    return this.#write(() => this.#liveOrNull(this.#sql.deleteNickname.get(key)));
  }

  async getByNickname(nickname: string): Promise<Claim | null> {
    const key = nicknameKey(checkNickname(nickname));
    const row = this.#read(() => this.#sql.byNickname.get({ nicknameKey: key, now: this.#time() }));
    return row === undefined ? null : claimFromRow(row, this.path);
  }

  async list(page: ListPage = {}): Promise<ClaimList> {
    const after = page.after === undefined ? '' : nicknameKey(page.after);
    const limit = page.limit ?? -1; // SQLite: a negative LIMIT is no limit
    if (page.limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 1)) {
      throw storeError('STORE_BAD_INPUT', 'claim store: list limit must be a whole number >= 1');
    }
    // One more than asked tells whether there is a next page without a second query.
    const rows = this.#read(() =>
      this.#sql.listAfter.all({ after, now: this.#time(), limit: limit < 0 ? -1 : limit + 1 }),
    );
    const claims = rows.map((row) => claimFromRow(row, this.path));
    const more = limit >= 0 && claims.length > limit;
    if (more) claims.length = limit;
    return { claims, next: more ? (claims[claims.length - 1]?.nickname ?? null) : null };
  }

  async purgeExpired(): Promise<number> {
    let total = 0;
    for (;;) {
      const deleted = await this.#write(() => Number(this.#sql.purge.run(this.#time(), PURGE_CHUNK).changes), false);
      total += deleted;
      if (deleted < PURGE_CHUNK) return total;
    }
  }

  /**
   * VACUUM INTO from a second, read-only connection: one read transaction, so the copy is a
   * snapshot of committed claims however many writes run meanwhile, and it never touches this
   * connection's transactions. It runs on the calling thread (about as long as reading the file);
   * the operator's `p2p-registry backup` runs it in its own process. (node:sqlite's backup() failed
   * now and then here with "not an error" when this connection committed during it.)
   */
  async backup(file: string): Promise<void> {
    this.#assertOpen();
    backupSqliteDatabase(this.path, file);
  }

  /** Writes committed, transactions committed (one sync each), transactions that failed, WAL checkpoints. */
  stats(): {
    readonly writes: number;
    readonly commits: number;
    readonly failedCommits: number;
    readonly checkpoints: number;
  } {
    return { ...this.#stats, checkpoints: this.#checkpointer?.checkpoints ?? 0 };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes.idle();
    await this.#checkpointer?.close();
    this.#db.close(); // the last connection: SQLite checkpoints what is left and removes the WAL
  }

  /** The clock as a whole number of ms (an injected clock may return fractions). */
  #time(): number {
    return Math.floor(this.#now());
  }

  #assertOpen(): void {
    if (this.#closed) throw storeError('STORE_CLOSED', `the claim store ${this.path} is closed`);
  }

  #liveOrNull(row: unknown): Claim | null {
    if (row === undefined) return null;
    const claim = claimFromRow(row, this.path);
    return claim.expiresAt > this.#time() ? claim : null;
  }

  #unavailable(err: unknown, doing: string): RegistryError | undefined {
    const failure = environmentFailure(err, this.path);
    if (failure === undefined) return undefined;
    return storeError(
      'STORE_UNAVAILABLE',
      `the claim database ${this.path} cannot be ${doing}: ${failure.text} (${failure.name}). Nothing was changed. ` +
        `Fix: ${failure.fix}; the store retries by itself on the next write.`,
      { cause: err, retryAfterMs: this.#retryAfterMs },
    );
  }

  #read<T>(run: () => T): T {
    this.#assertOpen();
    try {
      return run();
    } catch (err) {
      throw this.#unavailable(err, 'read') ?? err;
    }
  }

  /** `durable` is false only for touches and purges (see the file's comment). */
  #write<T>(op: WriteOp<T>, durable = true): Promise<T> {
    if (this.#closed) return Promise.reject(storeError('STORE_CLOSED', `the claim store ${this.path} is closed`));
    return this.#writes.enqueue(op, durable);
  }

  /**
   * One transaction for the batch; each op in a savepoint, so that an op that throws (a bug, or a
   * row that fails its checks) is undone alone. An environment failure ends the whole batch:
   * SQLite may already have rolled the transaction back, and later ops must not run outside it.
   */
  #commit(ops: readonly WriteOp<unknown>[], durable: boolean): readonly Settled[] {
    const db = this.#db;
    const settled: Settled[] = [];
    try {
      if (durable !== this.#syncFull) {
        (durable ? this.#sync.full : this.#sync.normal).run(); // outside a transaction: for the next COMMIT
        this.#syncFull = durable;
      }
      db.exec('BEGIN IMMEDIATE');
      for (const op of ops) {
        this.#savepoint.begin.run();
        try {
          settled.push({ ok: true, value: op() });
          this.#savepoint.release.run();
        } catch (error) {
          if (environmentFailure(error, this.path) !== undefined) throw error;
          db.exec('ROLLBACK TO op; RELEASE op');
          settled.push({ ok: false, error });
        }
      }
      db.exec('COMMIT');
      this.#checkpointer?.committed();
      this.#stats.commits += 1;
      this.#stats.writes += ops.length;
      return settled;
    } catch (err) {
      this.#stats.failedCommits += 1;
      try {
        if (db.isTransaction) db.exec('ROLLBACK');
      } catch {
        // SQLite rolls back by itself when it cannot; the next BEGIN starts clean either way.
      }
      throw this.#unavailable(err, 'written') ?? err;
    }
  }

  /** The conflict rules (claim-rules.ts), run inside the write transaction: decide first, then change. */
  #claimNow(request: ClaimRequest): ClaimOutcome {
    const now = this.#time();
    const key = nicknameKey(request.nickname);
    const found = this.#sql.anyRelevant
      .all({ keyId: request.keyId, nicknameKey: key, address: request.address })
      .map((row) => claimFromRow(row, this.path));
    const decision = decideClaim(request, found, now, this.#claimMs);
    if (!decision.write) return decision.outcome;
    for (const keyId of decision.remove) this.#sql.deleteKey.run(keyId);
    const { claim } = decision;
    this.#sql.upsert.run({
      keyId: claim.keyId,
      der: claim.publicKeyDer,
      nickname: claim.nickname,
      nicknameKey: key,
      address: claim.address,
      verified: claim.addressVerified ? 1 : 0,
      claimedAt: claim.claimedAt,
      now,
      expiresAt: claim.expiresAt,
    });
    return decision.outcome;
  }
}

/** What identifies a claim exactly (deleteExact's parameters). */
function exactParams(claim: Claim): {
  keyId: string;
  nicknameKey: string;
  address: string;
  verified: number;
  claimedAt: number;
} {
  return {
    keyId: claim.keyId,
    nicknameKey: nicknameKey(claim.nickname),
    address: claim.address,
    verified: claim.addressVerified ? 1 : 0,
    claimedAt: claim.claimedAt,
  };
}
