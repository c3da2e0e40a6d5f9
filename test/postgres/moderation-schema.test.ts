/**
 * The moderation commands open the shared database without migrating it (the claim store does
 * that): at another schema version than this registry's they refuse, saying what to do, and
 * leave the database as it was.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { openModerationStore } from '../../server/src/store/moderation/open-moderation.js';
import { openPostgresClaimStore } from '../../server/src/store/postgres/postgres-open.js';
import { PG_SCHEMA_VERSION } from '../../server/src/store/postgres/postgres-schema.js';
import { closeAdmin, freshDatabase, sql } from '../support/cluster.js';

afterAll(closeAdmin);

async function databaseAt(version: number): Promise<string> {
  const database = await freshDatabase('moderation_schema');
  const store = await openPostgresClaimStore({ connectionString: database, claimDays: 30 });
  await store.close();
  await sql(database, 'UPDATE schema_version SET version = $1', [version]);
  return database;
}

describe('the moderation store on a PostgreSQL database at another schema version', () => {
  it('refuses an older one (STORE_OPEN_FAILED): start the server once, it migrates', async () => {
    const database = await databaseAt(PG_SCHEMA_VERSION - 1);
    await expect(openModerationStore({ database, passwordFile: null })).rejects.toMatchObject({
      code: 'STORE_OPEN_FAILED',
      message: expect.stringMatching(/schema version \d+, older than .*Fix: start the server once/),
    });
    expect((await sql(database, 'SELECT version FROM schema_version')).rows[0].version).toBe(PG_SCHEMA_VERSION - 1);
  });

  it('refuses a newer one, written by a newer registry', async () => {
    const database = await databaseAt(PG_SCHEMA_VERSION + 1);
    await expect(openModerationStore({ database, passwordFile: null })).rejects.toMatchObject({
      message: expect.stringContaining(String(PG_SCHEMA_VERSION + 1)),
    });
  });

  it('opens one at this version', async () => {
    const store = await openModerationStore({ database: await databaseAt(PG_SCHEMA_VERSION), passwordFile: null });
    await store.close();
  });
});
