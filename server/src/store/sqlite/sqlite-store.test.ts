import { spawn, execFileSync } from 'node:child_process';
import { fstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  CLAIM_DAYS,
  describeClaimStoreContract,
  failureOf,
  ManualClock,
  newAddress,
  newKey,
  request,
} from '../../../../test/support/claim-store.contract.js';
import { MS_PER_DAY } from '../claim-store.js';
import { migrate, SCHEMA_VERSION, schemaVersionOf } from '../migrations.js';
import { openSqliteClaimStore, type SqliteClaimStore, type SqliteClaimStoreOptions } from './sqlite-store.js';
import type { RegistryError } from '../../protocol/errors.js';
import { isStoreError } from '../store-error.js';
import { timersLeftBy } from '../../../../test/support/timers-left.js';
import { waitUntil } from '../../../../test/support/wait.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'claim-store-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describeClaimStoreContract('sqlite', (options) =>
  openSqliteClaimStore({ path: join(tempDir(), 'registry.db'), ...options }),
);

const opened: SqliteClaimStore[] = [];
async function openAt(path: string, extra: Partial<SqliteClaimStoreOptions> = {}): Promise<SqliteClaimStore> {
  const store = await openSqliteClaimStore({ path, claimDays: CLAIM_DAYS, ...extra });
  opened.push(store);
  return store;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
});

function countClaims(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return Number((db.prepare('SELECT count(*) AS n FROM claims').get() as { n: number }).n);
  } finally {
    db.close();
  }
}

/**
 * Failure injection that works as root (chmod does not stop root, and there is no tmpfs or loop
 * mount to fill here): RLIMIT_FSIZE. With the soft file-size limit of this process at 0 the kernel
 * refuses every write() to a regular file with EFBIG (Node ignores SIGXFSZ), which is what SQLite
 * meets on a full or read-only disk: its write fails with SQLITE_IOERR_WRITE. Lifting the limit is
 * the disk coming back. Nothing may be logged while it holds, or the log's own writes fail too.
 */
function refuseFileWrites(): void {
  // Vitest's fork workers write their output to sockets, which the limit does not touch; a worker
  // whose output is a file would lose it, so refuse to run that way rather than lose it silently.
  if (fstatSync(1).isFile() || fstatSync(2).isFile())
    throw new Error('run the store tests in vitest fork workers (stdout must not be a file)');
  execFileSync('prlimit', ['--pid', String(process.pid), '--fsize=0:unlimited']);
}
function allowFileWrites(): void {
  execFileSync('prlimit', ['--pid', String(process.pid), '--fsize=unlimited:unlimited']);
}

describe('SQLite claim store', () => {
  it('creates an empty file at the newest schema version, in WAL mode', async () => {
    const path = join(tempDir(), 'new.db');
    await openAt(path);
    const db = new DatabaseSync(path, { readOnly: true });
    expect(schemaVersionOf(db)).toBe(SCHEMA_VERSION);
    expect(db.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
    expect(db.prepare("SELECT name FROM sqlite_schema WHERE name = 'claims_by_expiry'").get()).toEqual({
      name: 'claims_by_expiry',
    });
    db.close();
  });

  it('migrates a version-1 file to the newest version and keeps its claims', async () => {
    const path = join(tempDir(), 'v1.db');
    const v1 = new DatabaseSync(path);
    migrate(v1, path, 1);
    expect(schemaVersionOf(v1)).toBe(1);
    const key = newKey();
    const address = newAddress();
    const now = Date.now();
    v1.prepare(
      `INSERT INTO claims (key_id, public_key, nickname, nickname_key, address, address_verified, claimed_at,
        last_seen_at, expires_at)
       VALUES (?, ?, 'Old', 'old', ?, 1, ?, ?, ?)`,
    ).run(key.keyId, key.publicKeyDer, address, now, now, now + MS_PER_DAY);
    v1.close();

    const store = await openAt(path);
    expect(await store.getByNickname('old')).toMatchObject({
      keyId: key.keyId,
      nickname: 'Old',
      address,
      addressVerified: true,
    });
    const db = new DatabaseSync(path, { readOnly: true });
    expect(schemaVersionOf(db)).toBe(SCHEMA_VERSION);
    db.close();
  });

  it('refuses a file with a newer schema, naming the path and the fix, and leaves it untouched', async () => {
    const path = join(tempDir(), 'newer.db');
    const db = new DatabaseSync(path);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    const before = readFileSync(path);
    const err = await failureOf(openAt(path));
    expect(err.code).toBe('STORE_SCHEMA_NEWER');
    expect(err.message).toBe(
      `the claim database ${path} has schema version ${SCHEMA_VERSION + 1}, newer than this registry knows ` +
        `(${SCHEMA_VERSION}): ` +
        'it was written by a newer p2p-registry. Fix: run that version or a newer one, or restore a backup made by ' +
        'this version.',
    );
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it('refuses a file that holds tables of something else', async () => {
    const path = join(tempDir(), 'foreign.db');
    const db = new DatabaseSync(path);
    db.exec('CREATE TABLE notes (text TEXT)');
    db.close();
    const err = await failureOf(openAt(path));
    expect(err.code).toBe('STORE_OPEN_FAILED');
    expect(err.message).toContain(path);
  });

  it('refuses a file that is not a database, in one line with the cause and the fix', async () => {
    const path = join(tempDir(), 'garbage.db');
    writeFileSync(
      path,
      'this is not an SQLite database, just a text file that is long enough to have a header'.repeat(20),
    );
    const err = await failureOf(openAt(path));
    expect(err.code).toBe('STORE_OPEN_FAILED');
    expect(err.message).toMatch(
      new RegExp(`^cannot open the claim database ${path}: .*\\(SQLITE_NOTADB\\)\\. Fix: .*restore a backup`),
    );
    expect(err.message).not.toContain('\n');
  });

  it('refuses a database in a folder that does not exist, naming the folder', async () => {
    const path = join(tempDir(), 'missing', 'registry.db');
    const err = await failureOf(openAt(path));
    expect(err.code).toBe('STORE_OPEN_FAILED');
    expect(err.message).toContain(`the folder ${join(path, '..')} does not exist`);
    expect(err.message).toContain('Fix: create');
  });

  it('refuses at open a database that cannot be written, instead of failing the first registration', async () => {
    const path = join(tempDir(), 'unwritable.db');
    await (await openAt(path)).close();
    refuseFileWrites();
    let err: RegistryError;
    try {
      err = await failureOf(openAt(path));
    } finally {
      allowFileWrites();
    }
    expect(err.code).toBe('STORE_OPEN_FAILED');
    expect(err.message).toMatch(
      new RegExp(`^cannot open the claim database ${path}: disk I/O error \\(SQLITE_IOERR\\)\\. Fix: check the disk`),
    );
  });

  it(
    "opens read-only (SQLite's read-only flag) for the operators' reads: beside a running server, they work where " +
      'no write can, and it writes nothing',
    async () => {
      const path = join(tempDir(), 'read-only.db');
      const server = await openAt(path);
      await server.claim(request(newKey(), 'alice', newAddress()));
      const before = [readFileSync(path), readFileSync(`${path}-wal`)];
      refuseFileWrites();
      let reader: SqliteClaimStore;
      let listed: string[];
      let shown: string | undefined;
      try {
        reader = await openAt(path, { readOnly: true });
        listed = (await reader.list()).claims.map((claim) => claim.nickname);
        shown = (await reader.getByNickname('ALICE'))?.nickname;
      } finally {
        allowFileWrites();
      }
      expect(listed).toEqual(['alice']);
      expect(shown).toBe('alice');
      expect((await failureOf(reader.claim(request(newKey(), 'bob', newAddress())))).message).toContain('readonly');
      await reader.close();
      expect([readFileSync(path), readFileSync(`${path}-wal`)]).toEqual(before);
    },
  );

  it('opened read-only, runs no checkpoint timer: it never commits, so it has no WAL of its own to copy', async () => {
    const path = join(tempDir(), 'idle.db');
    const writer = await openAt(path);
    await writer.close();
    let reader: SqliteClaimStore | undefined;
    const left = await timersLeftBy(
      async () => {
        reader = await openAt(path, { readOnly: true });
      },
      { unrefToo: true },
    );
    await reader?.close();
    expect(left).toBe(0);
  });

  it(
    'opened read-only, refuses a file at an older schema version rather than read it unmigrated, saying ' +
      'what to do',
    async () => {
      const path = join(tempDir(), 'old.db');
      const db = new DatabaseSync(path);
      migrate(db, path, 1);
      db.close();
      const err = await failureOf(openAt(path, { readOnly: true }));
      expect(err.code).toBe('STORE_OPEN_FAILED');
      expect(err.message).toBe(
        `cannot read the claim database ${path}: it is at schema version 1, older than this registry's ` +
          `${SCHEMA_VERSION}. Fix: start the server once (it migrates the file), or run this command with ` +
          `write access.`,
      );
      expect(schemaVersionOf(new DatabaseSync(path, { readOnly: true }))).toBe(1);
      const newer = new DatabaseSync(path);
      newer.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
      newer.close();
      expect((await failureOf(openAt(path, { readOnly: true }))).code).toBe('STORE_SCHEMA_NEWER');
    },
  );

  it('answers UNAVAILABLE to writes while the disk refuses them, changes nothing, and recovers by itself', async () => {
    const path = join(tempDir(), 'failing.db');
    const store = await openAt(path);
    expect((await store.claim(request(newKey(), 'before', newAddress()))).kind).toBe('claimed');
    const alice = newKey();
    const address = newAddress();

    refuseFileWrites();
    let failures: PromiseSettledResult<unknown>[];
    try {
      failures = await Promise.allSettled([
        store.claim(request(alice, 'alice', address)),
        store.releaseNickname('before'),
        store.touch([alice.keyId]),
      ]);
    } finally {
      allowFileWrites();
    }
    for (const failure of failures) {
      expect(failure.status).toBe('rejected');
      const reason = (failure as PromiseRejectedResult).reason as unknown;
      expect(isStoreError(reason, 'STORE_UNAVAILABLE')).toBe(true);
      const err = reason as RegistryError;
      expect(err.retryAfterMs).toBe(1_000);
      expect(err.message).toContain(
        `the claim database ${path} cannot be written: disk I/O error (SQLITE_IOERR). Nothing was changed.`,
      );
    }
    // Nothing half-written: the claim is absent and the released one still there, for this
    // connection and for a fresh one.
    expect(await store.getByNickname('alice')).toBeNull();
    expect(await store.getByNickname('before')).not.toBeNull();
    expect(countClaims(path)).toBe(1);

    expect((await store.claim(request(alice, 'alice', address))).kind).toBe('claimed');
    expect(countClaims(path)).toBe(2);
    expect(store.stats().failedCommits).toBe(1);
  });

  it('answers UNAVAILABLE while another process holds the write lock past the busy timeout, and recovers', async () => {
    const path = join(tempDir(), 'locked.db');
    const store = await openAt(path, { busyTimeoutMs: 50 });
    const other = new DatabaseSync(path);
    other.exec('BEGIN EXCLUSIVE');
    const err = await failureOf(store.claim(request(newKey(), 'alice', newAddress())));
    other.exec('ROLLBACK');
    other.close();
    expect(err.code).toBe('STORE_UNAVAILABLE');
    expect(err.message).toContain('(SQLITE_BUSY)');
    expect((await store.claim(request(newKey(), 'alice', newAddress()))).kind).toBe('claimed');
  });

  it('commits the writes of one event-loop turn in one transaction', async () => {
    const store = await openAt(join(tempDir(), 'group.db'));
    const outcomes = await Promise.all(
      Array.from({ length: 100 }, (_, i) => store.claim(request(newKey(), `peer${i}`, newAddress()))),
    );
    expect(outcomes.every((o) => o.kind === 'claimed')).toBe(true);
    expect(store.stats()).toMatchObject({ writes: 100, commits: 1, failedCommits: 0 });
  });

  it('commits one transaction per write with maxBatch 1', async () => {
    const store = await openAt(join(tempDir(), 'single.db'), { maxBatch: 1 });
    await Promise.all(Array.from({ length: 10 }, (_, i) => store.claim(request(newKey(), `peer${i}`, newAddress()))));
    expect(store.stats()).toMatchObject({ writes: 10, commits: 10, failedCommits: 0 });
  });

  it('undoes alone a write that fails in a batch, commits the others, and names a row it cannot read', async () => {
    const path = join(tempDir(), 'partial.db');
    const store = await openAt(path);
    // A row edited by hand into something the schema allows but the protocol does not.
    const address = newAddress();
    const key = newKey();
    const other = new DatabaseSync(path);
    other
      .prepare(
        `INSERT INTO claims (key_id, public_key, nickname, nickname_key, address, address_verified, claimed_at,
          last_seen_at, expires_at)
       VALUES (?, ?, 'not valid!', 'not valid!', ?, 0, 0, 0, ?)`,
      )
      .run(key.keyId, key.publicKeyDer, address, Date.now() + MS_PER_DAY);
    other.close();
    const good = store.claim(request(newKey(), 'good', newAddress()));
    const bad = store.claim(request(newKey(), 'bad', address));
    const err = await failureOf(bad);
    expect(err.code).toBe('STORE_CORRUPT');
    expect(err.message).toBe(
      `the claim database ${path} holds a claim this version cannot read (nickname is not valid). Fix: restore a ` +
        `backup, or release that claim.`,
    );
    expect((await good).kind).toBe('claimed');
    expect(await store.getByNickname('bad')).toBeNull();
    expect(store.stats()).toMatchObject({ commits: 1, failedCommits: 0 });
  });

  it('keeps every resolved claim across close and reopen, with the injected clock deciding expiry', async () => {
    const path = join(tempDir(), 'reopen.db');
    const clock = new ManualClock();
    const first = await openAt(path, { now: clock.now });
    await first.claim(request(newKey(), 'alice', newAddress()));
    await first.close();
    const second = await openAt(path, { now: clock.now });
    expect(await second.getByNickname('alice')).not.toBeNull();
    clock.advanceDays(CLAIM_DAYS);
    expect(await second.getByNickname('alice')).toBeNull();
    expect(await second.purgeExpired()).toBe(1);
  });

  it('purges more expired claims than one chunk holds', async () => {
    const clock = new ManualClock();
    const store = await openAt(join(tempDir(), 'purge.db'), { now: clock.now });
    await Promise.all(Array.from({ length: 2_500 }, (_, i) => store.claim(request(newKey(), `old${i}`, newAddress()))));
    clock.advanceDays(CLAIM_DAYS + 1);
    expect(await store.purgeExpired()).toBe(2_500);
  });

  it('touches many keys in slices of 500, each its own transaction, serving the event loop between them', async () => {
    const store = await openAt(join(tempDir(), 'touch.db'));
    const keys = Array.from({ length: 1_800 }, () => newKey());
    await Promise.all(keys.map((key, i) => store.claim(request(key, `peer${i}`, newAddress()))));
    const before = store.stats().commits;
    // A callback of every event-loop turn, noting how many slices had committed when it ran.
    const seen = new Set<number>();
    let touching = true;
    const everyTurn = (): void => {
      seen.add(store.stats().commits - before);
      if (touching) setImmediate(everyTurn);
    };
    setImmediate(everyTurn);
    const touched = await store.touch(keys.map((key) => key.keyId));
    touching = false;
    expect(touched).toBe(1_800);
    expect(store.stats().commits - before).toBe(4);
    // The event loop ran after each of the first three slices, before the next one.
    expect([1, 2, 3].every((slices) => seen.has(slices))).toBe(true);
  });

  it('leaves the WAL to the checkpointer: no commit checkpoints on the main thread', async () => {
    const path = join(tempDir(), 'no-autocheckpoint.db');
    // A checkpointer that does not come round during the test.
    const store = await openAt(path, { checkpointIntervalMs: 600_000 });
    const key = newKey();
    await store.claim(request(key, 'alice', newAddress()));
    // Past the 10,000 WAL frames at which a commit would have checkpointed by itself (SQLite's
    // wal_autocheckpoint): a touch commit writes one.
    for (let i = 0; i < 12_000; i += 1) await store.touch([key.keyId]);
    const other = new DatabaseSync(path);
    const wal = other.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number };
    other.close();
    expect(wal.log).toBeGreaterThan(12_000);
  });

  it('checkpoints the WAL on a timer, off the main thread, and says so in its stats', async () => {
    const path = join(tempDir(), 'checkpointed.db');
    const store = await openAt(path, { checkpointIntervalMs: 20 });
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.claim(request(newKey(), `peer${i}`, newAddress()))));
    await waitUntil('a checkpoint', () => store.stats().checkpoints > 0, { timeoutMs: 5_000 });
    // Everything in the WAL is in the database file: a checkpoint now has nothing left to copy.
    const other = new DatabaseSync(path);
    const wal = other.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number; checkpointed: number };
    other.close();
    expect(wal.log).toBeGreaterThan(0);
    expect(wal.checkpointed).toBe(wal.log);
  });

  it('backs up online to a consistent copy that opens as a store', async () => {
    const dir = tempDir();
    const store = await openAt(join(dir, 'live.db'));
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.claim(request(newKey(), `peer${i}`, newAddress()))));
    const during = Promise.all(
      Array.from({ length: 50 }, (_, i) => store.claim(request(newKey(), `late${i}`, newAddress()))),
    );
    await store.backup(join(dir, 'copy.db'));
    await during;
    const copy = await openAt(join(dir, 'copy.db'));
    const count = (await copy.list()).claims.length;
    // A snapshot: all 200 acknowledged before it, and either none or all of the batch in flight.
    expect([200, 250]).toContain(count);
  });

  it('refuses a backup to a folder that does not exist, and leaves no partial file', async () => {
    const dir = tempDir();
    const store = await openAt(join(dir, 'live.db'));
    const err = await failureOf(store.backup(join(dir, 'nowhere', 'copy.db')));
    expect(err.code).toBe('STORE_UNAVAILABLE');
    expect(err.message).toContain(`to ${join(dir, 'nowhere', 'copy.db')}`);
  });

  it('keeps every claim it acknowledged when it is killed with SIGKILL at random moments, over 20 rounds', async () => {
    const path = join(tempDir(), 'crash.db');
    const child = fileURLToPath(new URL('../../../../test/support/sqlite-store.crash-child.mjs', import.meta.url));
    const deadline = Date.now() + 20_000;
    let rounds = 0;
    let acknowledged = 0;
    while (rounds < 20 && Date.now() < deadline) {
      const printed = await runAndKill(child, path, 20 + Math.random() * 200);
      const db = new DatabaseSync(path, { readOnly: true });
      const find = db.prepare('SELECT nickname, address FROM claims WHERE key_id = ?');
      for (const line of printed) {
        const claim = JSON.parse(line) as { keyId: string; nickname: string; address: string };
        expect(find.get(claim.keyId)).toEqual({ nickname: claim.nickname, address: claim.address });
      }
      db.close();
      acknowledged += printed.length;
      rounds += 1;
    }
    expect(rounds).toBe(20);
    expect(acknowledged).toBeGreaterThan(100);
  }, 30_000);
});

/** Runs the child until it is ready, lets it claim for `ms`, kill -9s it, returns its printed claims. */
function runAndKill(script: string, path: string, ms: number): Promise<string[]> {
  return new Promise((resolvePrinted, reject) => {
    const proc = spawn(process.execPath, [script, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let errText = '';
    let timer: NodeJS.Timeout | undefined;
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (timer === undefined && out.startsWith('ready\n')) timer = setTimeout(() => proc.kill('SIGKILL'), ms);
    });
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (errText += chunk));
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL')
        return reject(new Error(`the crash child exited by itself (${String(code)}): ${errText}`));
      // The last line may be cut by the kill: only whole lines were acknowledged.
      const lines = out.split('\n');
      lines.pop();
      resolvePrinted(lines.filter((line) => line !== 'ready'));
    });
  });
}
