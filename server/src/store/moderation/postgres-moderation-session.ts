/**
 * The moderation store's connections to a cluster's PostgreSQL, durable commits. A server's runs on
 * its claim store's pool (onPool: its poll is one read of one row twice a second, and an instance
 * holds no connection more than docs/CLUSTER.md "Connection budget" says); an operator's command
 * opens a pool of one (open: one transaction at a time).
 */
import pg, { type Pool, type PoolConfig } from 'pg';
import { BEGIN_DURABLE } from '../postgres/postgres-sql.js';
import { checkReadable } from '../postgres/postgres-open.js';
import { openFailure } from '../postgres/postgres-failure.js';
import { isStoreError, storeError } from '../store-error.js';
import type { Query, SqlSession, SqlValue } from './sql-session.js';

/** What the session uses of a pool: reads and a connection for a transaction. */
export type SessionPool = Pick<Pool, 'query' | 'connect'>;

export class PostgresModerationSession implements SqlSession {
  readonly hasPresence = true;

  private constructor(
    private readonly pool: SessionPool,
    readonly target: string,
    private readonly end: () => Promise<void>,
  ) {}

  /**
   * On a pool its owner opened, checked and ends (the claim store's, whose open migrated the
   * schema): `close` leaves the pool open.
   */
  static onPool(pool: SessionPool, target: string): PostgresModerationSession {
    return new PostgresModerationSession(pool, target, () => Promise.resolve());
  }

  /** Connects and checks the schema (the claim store migrated it). */
  static async open(config: PoolConfig, target: string): Promise<PostgresModerationSession> {
    const pool = new pg.Pool({ ...config, max: 1 });
    pool.on('error', () => undefined);
    pool.on('connect', (client) => client.on('error', () => undefined));
    try {
      await checkReadable(pool, target);
    } catch (err) {
      await pool.end().catch(() => undefined);
      if (isStoreError(err)) throw err;
      const failure = openFailure(err, target);
      throw storeError(
        'STORE_OPEN_FAILED',
        `cannot open the moderation tables of ${target}: ${failure.text} (${failure.name}). Fix: ${failure.fix}.`,
        { cause: err },
      );
    }
    return new PostgresModerationSession(pool, target, () => pool.end());
  }

  readonly query: Query = async <R>(sql: string, params: readonly SqlValue[] = []): Promise<R[]> =>
    (await this.pool.query(sql, params as SqlValue[])).rows as R[];

  async transaction<T>(body: (query: Query) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query(BEGIN_DURABLE);
      const result = await body(async <R>(sql: string, params: readonly SqlValue[] = []) => {
        return (await client.query(sql, params as SqlValue[])).rows as R[];
      });
      await client.query('COMMIT');
      client.release();
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
      throw err;
    }
  }

  close(): Promise<void> {
    return this.end();
  }
}
