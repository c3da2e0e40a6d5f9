import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { postgresUrl, startPostgresAgain, stopPostgres } from '../../../../test/support/postgres.js';
import { delay, waitUntil } from '../../../../test/support/wait.js';
import {
  CLAIM_DAYS,
  describeClaimStoreContract,
  failureOf,
  ManualClock,
  newAddress,
  newKey,
  request,
} from '../../../../test/support/claim-store.contract.js';
import { openPostgresClaimStore } from './postgres-open.js';
import type { PostgresClaimStore, PostgresClaimStoreOptions } from './postgres-store.js';
import { PG_SCHEMA_VERSION } from './postgres-schema.js';
import { openModerationStore } from '../moderation/open-moderation.js';

const server = inject('postgres');
const admin = new pg.Pool({ connectionString: postgresUrl(server, 'postgres'), max: 2 });
admin.on('error', () => undefined);
let databases = 0;

/** A new, empty database for one test. */
async function freshDatabase(): Promise<string> {
  databases += 1;
  const name = `claims_${process.pid}_${databases}`;
  await admin.query(`CREATE DATABASE ${name}`);
  return postgresUrl(server, name);
}

const dirs: string[] = [];
const opened: PostgresClaimStore[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
});
afterAll(async () => {
  await admin.end();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describeClaimStoreContract('postgres', async (options) =>
  openPostgresClaimStore({ connectionString: await freshDatabase(), ...options }),
);

async function openAt(
  connectionString: string,
  extra: Partial<PostgresClaimStoreOptions> = {},
): Promise<PostgresClaimStore> {
  const store = await openPostgresClaimStore({ connectionString, claimDays: CLAIM_DAYS, ...extra });
  opened.push(store);
  return store;
}

async function sql(connectionString: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

describe('PostgreSQL claim store', () => {
  it('creates the schema at the newest version, with unique indexes on nickname key and address', async () => {
    const url = await freshDatabase();
    await openAt(url);
    expect((await sql(url, 'SELECT version FROM schema_version')).rows).toEqual([{ version: PG_SCHEMA_VERSION }]);
    const indexes = (
      await sql(url, "SELECT indexdef FROM pg_indexes WHERE tablename = 'claims' ORDER BY indexname")
    ).rows.map((r: { indexdef: string }) => r.indexdef);
    expect(indexes.join('\n')).toMatch(/UNIQUE INDEX claims_address_key .*\(address\)/);
    expect(indexes.join('\n')).toMatch(/UNIQUE INDEX claims_nickname_key_key .*\(nickname_key\)/);
    expect(indexes.join('\n')).toMatch(/UNIQUE INDEX claims_pkey .*\(key_id\)/);
  });

  it('refuses a database with a newer schema version in one line, and leaves it untouched', async () => {
    const url = await freshDatabase();
    await (await openPostgresClaimStore({ connectionString: url, claimDays: CLAIM_DAYS })).close();
    await sql(url, 'UPDATE schema_version SET version = 99');
    const err = await failureOf(openPostgresClaimStore({ connectionString: url, claimDays: CLAIM_DAYS }));
    expect(err.code).toBe('STORE_SCHEMA_NEWER');
    expect(err.message).toMatch(/schema version 99, newer than this registry knows/);
    expect(err.message).not.toContain('\n');
    expect((await sql(url, 'SELECT version FROM schema_version')).rows).toEqual([{ version: 99 }]);
  });

  it('names the target without its password when it cannot be reached', async () => {
    const nowhere = encodeURIComponent(join(server.dir, 'no-such-socket-dir'));
    const url = `postgres://registry:s3cret-pw@/nowhere?host=${nowhere}`;
    const err = await failureOf(
      openPostgresClaimStore({ connectionString: url, claimDays: CLAIM_DAYS, connectTimeoutMs: 2_000 }),
    );
    expect(err.code).toBe('STORE_OPEN_FAILED');
    expect(err.message).toContain('postgres://registry@/nowhere');
    expect(err.message).not.toContain('s3cret-pw');
  });

  it('gives exactly one of two stores a nickname they claim at the same moment, 200 times', async () => {
    const url = await freshDatabase();
    const [a, b] = [await openAt(url), await openAt(url)];
    for (let round = 0; round < 200; round += 1) {
      const [first, second] = [newKey(), newKey()];
      const outcomes = await Promise.all([
        a.claim(request(first, `race-${round}`, newAddress())),
        b.claim(request(second, `RACE-${round}`, newAddress())),
      ]);
      expect(outcomes.map((o) => o.kind).sort()).toEqual(['claimed', 'nickname-taken']);
      const winner = outcomes[0]?.kind === 'claimed' ? first : second;
      expect((await b.getByNickname(`race-${round}`))?.keyId).toBe(winner.keyId);
    }
    expect((await a.list()).claims).toHaveLength(200);
  }, 60_000);

  it(
    'applies the durable writes of one key in the order they were issued: a release after a claim that waits for a ' +
      'lock deletes that claim',
    async () => {
      const url = await freshDatabase();
      const store = await openAt(url);
      const [key, other] = [newKey(), newKey()];
      // An outside transaction holds the nickname at its unique index: the claim waits there.
      const locker = new pg.Client({ connectionString: url });
      await locker.connect();
      try {
        await locker.query('BEGIN');
        await locker.query(
          'INSERT INTO claims (key_id, public_key, nickname, nickname_key, address, address_verified, claimed_at, ' +
            "last_seen_at, expires_at) VALUES ($1, $2, 'alice', 'alice', $3, false, 0, 0, 1)",
          [other.keyId, Buffer.from(other.publicKeyDer), newAddress()],
        );
        const claiming = store.claim(request(key, 'alice', newAddress()));
        await waitUntil(
          'the claim to wait at the unique index',
          async () =>
            ((
              await sql(
                url,
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
              )
            ).rowCount ?? 0) > 0,
        );
        const releasing = store.releaseKey(key.keyId);
        await delay(300);
        await locker.query('ROLLBACK');
        expect((await claiming).kind).toBe('claimed');
        expect(await releasing).toMatchObject({ keyId: key.keyId, nickname: 'alice' });
        expect(await store.getByNickname('alice')).toBeNull();
      } finally {
        await locker.end();
      }
    },
  );

  it('rejects writes with STORE_UNAVAILABLE while the server is down, keeps what it acknowledged, and recovers ' +
    'by itself', async () => {
    const url = await freshDatabase();
    const store = await openAt(url, { retryAfterMs: 750, connectTimeoutMs: 2_000 });
    const acknowledged = await store.claim(request(newKey(), 'before', newAddress()));
    expect(acknowledged.kind).toBe('claimed');
    await stopPostgres(server, 'immediate');
    try {
      const down = await failureOf(store.claim(request(newKey(), 'during', newAddress())));
      expect(down.code).toBe('STORE_UNAVAILABLE');
      expect(down.retryAfterMs).toBe(750);
      expect(down.message).toContain('Nothing was changed');
      expect((await failureOf(store.releaseNickname('before'))).code).toBe('STORE_UNAVAILABLE');
      expect((await failureOf(store.getByNickname('before'))).code).toBe('STORE_UNAVAILABLE');
    } finally {
      await startPostgresAgain(server);
    }
    const after = await store.claim(request(newKey(), 'after', newAddress()));
    expect(after.kind).toBe('claimed');
    expect((await store.list()).claims.map((c) => c.nickname)).toEqual(['after', 'before']);
  }, 60_000);

  it('rejects writes on a read-only database with STORE_UNAVAILABLE and changes nothing', async () => {
    const url = await freshDatabase();
    const store = await openAt(url, { maxConnections: 1 });
    await store.claim(request(newKey(), 'kept', newAddress()));
    const name = url.slice(url.lastIndexOf('/') + 1, url.indexOf('?'));
    await sql(url, `ALTER DATABASE ${name} SET default_transaction_read_only = on`);
    await admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [name],
    );
    // The first call may still meet the terminated connection; either way it is unavailable.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      expect((await failureOf(store.claim(request(newKey(), 'refused', newAddress())))).code).toBe('STORE_UNAVAILABLE');
    }
    const readOnly = await failureOf(store.releaseNickname('kept'));
    expect(readOnly.message).toMatch(/read-only transaction .*\(25006\)/);
    expect((await store.list()).claims.map((c) => c.nickname)).toEqual(['kept']);
  });

  it('backs up one consistent snapshot as a psql script that restores into an empty database', async () => {
    const url = await freshDatabase();
    const clock = new ManualClock();
    const store = await openAt(url, { now: clock.now });
    for (const nickname of ['alpha', 'Bravo', 'charlie'])
      await store.claim(request(newKey(), nickname, newAddress(), { addressVerified: nickname === 'alpha' }));
    const dir = mkdtempSync(join(tmpdir(), 'pg-backup-'));
    dirs.push(dir);
    const file = join(dir, 'claims.sql');
    await store.backup(file);
    expect(readFileSync(file, 'utf8')).toMatch(
      new RegExp(`^-- p2p-registry claim backup of postgres://[^\\n]*schema version ${PG_SCHEMA_VERSION}\\.`),
    );

    const restored = await freshDatabase();
    const psql = join(server.binDir, 'psql');
    await promisify(execFile)(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', restored, '-f', file]);
    const copy = await openAt(restored, { now: clock.now });
    expect((await copy.list()).claims).toEqual((await store.list()).claims);
  });

  it(
    'backs up the moderation decisions, the audit trail and their version with the claims; the restored database ' +
      'goes on from there',
    async () => {
      const url = await freshDatabase();
      const clock = new ManualClock();
      const store = await openAt(url, { now: clock.now });
      const mallory = newKey();
      await store.claim(request(mallory, 'mallory', newAddress()));
      await store.claim(request(newKey(), 'alice', newAddress()));
      const operator = await openModerationStore({ database: url, passwordFile: null }, { now: clock.now });
      const decision = { by: 'carol', reason: 'spam\tand "tabs"', note: 'line one\nline two \\ end', expiresAt: null };
      await operator.block('key', mallory.keyId, 'mallory', decision);
      await operator.block('address', newAddress(), null, { ...decision, expiresAt: clock.now() + 86_400_000 });
      await operator.reserve('admin*', (n) => n.startsWith('admin'), { keyId: newKey().keyId, label: null }, decision);
      await operator.reserve('root', () => false, null, { ...decision, reason: null, note: null });
      await operator.unreserve('root', decision);
      await operator.claimReleased('alice', newAddress(), decision);
      const before = { decisions: await operator.decisions(), audit: await operator.audit() };
      await operator.close();
      const dir = mkdtempSync(join(tmpdir(), 'pg-backup-'));
      dirs.push(dir);
      const file = join(dir, 'claims.sql');
      await store.backup(file);

      const restored = await freshDatabase();
      await promisify(execFile)(join(server.binDir, 'psql'), [
        '-X',
        '-q',
        '-v',
        'ON_ERROR_STOP=1',
        '-d',
        restored,
        '-f',
        file,
      ]);
      await openAt(restored, { now: clock.now }); // opens (and checks) the restored schema as a server would
      const copy = await openModerationStore({ database: restored, passwordFile: null }, { now: clock.now });
      try {
        expect(before.decisions.blocks).toHaveLength(2);
        expect(before.decisions.reservations).toHaveLength(1);
        expect(await copy.decisions()).toEqual(before.decisions);
        expect(await copy.audit()).toEqual(before.audit);
        // The audit goes on after its last entry, and is still append-only.
        await copy.unblock('key', 'mallory', decision);
        expect((await copy.audit()).map((entry) => entry.seq)).toEqual([
          ...before.audit.map((e) => e.seq),
          before.audit.length + 1,
        ]);
        expect(await copy.version()).toBe(before.decisions.version + 1);
        await expect(sql(restored, 'DELETE FROM moderation_audit')).rejects.toThrow();
      } finally {
        await copy.close();
      }
    },
  );

  it('refuses a backup it cannot write with STORE_UNAVAILABLE, leaving no file', async () => {
    const store = await openAt(await freshDatabase());
    const err = await failureOf(store.backup(join(server.dir, 'no-such-dir', 'claims.sql')));
    expect(err.code).toBe('STORE_UNAVAILABLE');
  });
});
