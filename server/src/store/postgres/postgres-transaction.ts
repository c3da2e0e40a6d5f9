/**
 * One transaction on a connection of a pool, as both PostgreSQL parts of the registry run them
 * (the claim store and the cluster's presence): BEGIN, the body, COMMIT; on a failure ROLLBACK, or
 * the connection dropped when it is broken or COMMIT was on its way (it may have committed).
 */
import type { PoolClient } from 'pg';
import { environmentFailure } from './postgres-failure.js';

/** Ends a failed transaction; false when even that failed (the connection is then dropped). */
async function rollback(client: PoolClient): Promise<boolean> {
  try {
    await client.query('ROLLBACK');
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `body` between `begin` and COMMIT on `client`, which it releases. A failure is passed to
 * `failed` with whether COMMIT was on its way, and what that returns is thrown.
 */
export async function inTransaction<T>(
  client: PoolClient,
  begin: string,
  target: string,
  body: (client: PoolClient) => Promise<T>,
  failed: (err: unknown, committing: boolean) => unknown,
): Promise<T> {
  let committing = false;
  try {
    await client.query(begin);
    const value = await body(client);
    committing = true;
    await client.query('COMMIT');
    client.release();
    return value;
  } catch (err) {
    const broken = committing || environmentFailure(err, target) !== undefined || !(await rollback(client));
    client.release(broken ? true : undefined);
    throw failed(err, committing);
  }
}
