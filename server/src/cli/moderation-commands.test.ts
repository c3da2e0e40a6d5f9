/**
 * The operator's moderation commands (moderation-commands.ts; docs/OPERATIONS.md "Moderation") on a
 * real SQLite claim database: what each prints (text, and --json for moderation list and audit),
 * what it records in the audit trail, how a key is named, how a decision with --days lapses, and
 * the usage error of every malformed command line, which says what to type instead and opens no
 * database.
 */
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newAddress, newKey, request, type TestKey } from '../../../test/support/claim-store.contract.js';
import { tempDir } from '../../../test/support/registry-harness.js';
import { MS_PER_DAY } from '../store/claim-store.js';
import { ModerationRules } from '../server/moderation/moderation-rules.js';
import { openModerationStore } from '../store/moderation/open-moderation.js';
import { openSqliteClaimStore, type SqliteClaimStore } from '../store/sqlite/sqlite-store.js';
import { isUsageError, parseArgs } from './args.js';
import { CLIENT_FLAGS } from './client-commands.js';
import { MODERATION_OPTIONS, runModerationCommand } from './moderation-commands.js';
import { runStoreCommand } from './store-commands.js';

const START = Date.parse('2027-03-01T12:00:00.000Z');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly logged: Array<Record<string, unknown>>;
}

let database: string;
let claims: SqliteClaimStore;
/** The moderation store's clock: what "now" is to the commands. */
let clock: number;
let opened: number;

beforeEach(async () => {
  database = join(tempDir('moderation-cli-'), 'registry.db');
  claims = await openSqliteClaimStore({ path: database, claimDays: 30, now: () => clock });
  clock = START;
  opened = 0;
});

afterEach(async () => {
  await claims.close();
});

function argsOf(argv: readonly string[]): ReturnType<typeof parseArgs> {
  return parseArgs(argv, new Set(['config', 'out', ...MODERATION_OPTIONS]), new Set(['help', ...CLIENT_FLAGS]));
}

function sinks(): { io: Parameters<typeof runModerationCommand>[3]; out: () => Omit<Run, 'code'> } {
  let stdout = '';
  let stderr = '';
  const logged: Array<Record<string, unknown>> = [];
  const io = {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    log: { info: (fields: Record<string, unknown>) => logged.push(fields) },
  } as unknown as Parameters<typeof runModerationCommand>[3];
  return { io, out: () => ({ stdout, stderr, logged }) };
}

/** `p2p-registry <argv>` as the CLI runs it, on the test's database and clock. */
async function moderation(...argv: string[]): Promise<Run> {
  const args = argsOf(argv);
  const { io, out } = sinks();
  const code = await runModerationCommand(
    String(args.command),
    args,
    () => {
      opened += 1;
      return openModerationStore({ database, passwordFile: null }, { now: () => clock });
    },
    io,
  );
  return { code, ...out() };
}

/** The usage error a command line gets, checking that no database was opened for it. */
async function usageOf(...argv: string[]): Promise<string> {
  const failure = await moderation(...argv).then(
    () => {
      throw new Error(`p2p-registry ${argv.join(' ')} was accepted`);
    },
    (err: unknown) => err,
  );
  expect(isUsageError(failure), String(failure)).toBe(true);
  expect(opened).toBe(0);
  return (failure as Error).message;
}

async function claimFor(nickname: string): Promise<TestKey & { readonly address: string }> {
  const key = newKey();
  const address = newAddress();
  expect((await claims.claim(request(key, nickname, address))).kind).toBe('claimed');
  return { ...key, address };
}

interface Listed {
  blocks: Array<Record<string, unknown>>;
  reservations: Array<Record<string, unknown>>;
}

async function listed(): Promise<Listed> {
  const { stdout } = await moderation('moderation', 'list', '--json');
  return JSON.parse(stdout) as Listed;
}

async function auditJson(...extra: string[]): Promise<Array<Record<string, unknown>>> {
  const { stdout } = await moderation('audit', '--json', ...extra);
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('block', () => {
  it(
    'block key <key-id> stores the block until lifted, deletes its claim, says so and logs one ' + 'info line',
    async () => {
      const mallory = await claimFor('mallory');
      const run = await moderation('block', 'key', mallory.keyId, '--reason', 'impersonation', '--note', 'ticket 7');
      expect(run.code).toBe(0);
      expect(run.stdout).toBe(
        `blocked key ${mallory.keyId} until lifted: claims deleted: mallory; running servers close its live ` +
          `registration within a second\n`,
      );
      expect(run.logged).toEqual([
        { action: 'block', kind: 'key', target: mallory.keyId, label: null, by: expect.any(String) },
      ]);
      expect(await claims.getByNickname('mallory')).toBeNull();
      expect((await listed()).blocks).toEqual([
        expect.objectContaining({
          kind: 'key',
          target: mallory.keyId,
          reason: 'impersonation',
          note: 'ticket 7',
          until: null,
        }),
      ]);
    },
  );

  it(
    'block key <nickname> names the key by the claim that holds the nickname now, and records ' + 'the nickname',
    async () => {
      const mallory = await claimFor('Mallory');
      const run = await moderation('block', 'key', 'mallory', '--by', 'alice');
      expect(run.stdout).toContain(`blocked key ${mallory.keyId} (Mallory) until lifted: claims deleted: Mallory`);
      expect((await listed()).blocks).toEqual([
        expect.objectContaining({ target: mallory.keyId, label: 'Mallory', by: 'alice' }),
      ]);
    },
  );

  it('block key <nickname> that no key holds fails, saying how to name the key by its key id instead', async () => {
    await expect(moderation('block', 'key', 'nobody')).rejects.toThrow(
      /no key holds "nobody" now .*Fix: pass the key id: `p2p-registry claims list`/,
    );
    expect((await listed()).blocks).toEqual([]);
    expect(await auditJson()).toEqual([]);
  });

  it(
    'block address <onion> blocks the address (case folded, .onion optional as the parser allows) and deletes ' +
      'its claim',
    async () => {
      const mallory = await claimFor('mallory');
      const run = await moderation('block', 'address', mallory.address.toUpperCase());
      expect(run.stdout).toContain(`blocked address ${mallory.address} until lifted: claims deleted: mallory`);
      expect((await listed()).blocks).toEqual([expect.objectContaining({ kind: 'address', target: mallory.address })]);
    },
  );

  it('blocking the same target again renews it: (renewed), the new reason', async () => {
    const key = newKey();
    await moderation('block', 'key', key.keyId, '--reason', 'spam');
    const run = await moderation('block', 'key', key.keyId, '--reason', 'spam, again');
    expect(run.stdout).toContain('(renewed): no claim deleted');
    expect((await listed()).blocks).toEqual([expect.objectContaining({ reason: 'spam, again' })]);
  });
});

describe('unblock', () => {
  it('unblock key lifts a block named by its key id or by the nickname it was blocked by; audited', async () => {
    const a = await claimFor('alpha');
    const b = await claimFor('bravo');
    await moderation('block', 'key', 'alpha');
    await moderation('block', 'key', b.keyId);
    const byId = await moderation('unblock', 'key', a.keyId, '--reason', 'appeal granted');
    expect(byId).toMatchObject({ code: 0, stdout: `unblocked key ${a.keyId}: it may register again\n` });
    expect((await moderation('unblock', 'key', b.keyId)).code).toBe(0);
    const c = await claimFor('charlie');
    await moderation('block', 'key', 'charlie');
    expect((await moderation('unblock', 'key', 'CHARLIE')).stdout).toBe(
      `unblocked key ${c.keyId}: it may register again\n`,
    );
    expect((await listed()).blocks).toEqual([]);
    const unblocks = (await auditJson()).filter((e) => e.action === 'unblock');
    expect(unblocks.map((e) => e.target)).toEqual([`key ${a.keyId}`, `key ${b.keyId}`, `key ${c.keyId}`]);
    expect(unblocks[0]).toMatchObject({ reason: 'appeal granted' });
  });

  it('unblock address lifts an address block', async () => {
    const address = newAddress();
    await moderation('block', 'address', address);
    expect((await moderation('unblock', 'address', address)).stdout).toBe(
      `unblocked address ${address}: it may register again\n`,
    );
  });

  it('unblock of something not blocked exits 1 and points to moderation list, auditing nothing', async () => {
    const key = newKey();
    const run = await moderation('unblock', 'key', key.keyId);
    expect(run).toMatchObject({
      code: 1,
      stdout: '',
      stderr: `p2p-registry: no block of key ${key.keyId} to lift (see p2p-registry moderation list)\n`,
    });
    expect(await auditJson()).toEqual([]);
  });
});

describe('reserve and unreserve', () => {
  it('reserve <pattern> stores it lowercased and deletes the claims it covers, look-alikes included', async () => {
    await claimFor('adm1n');
    await claimFor('Admin-Bob');
    await claimFor('alice');
    const run = await moderation('reserve', 'ADMIN*', '--reason', 'staff only');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^reserved admin\* and its look-alikes until lifted: claims deleted: /);
    expect(run.stdout).toContain('adm1n');
    expect(run.stdout).toContain('Admin-Bob');
    expect(run.stdout).not.toContain('alice');
    expect(await claims.getByNickname('alice')).not.toBeNull();
    expect(run.logged).toEqual([expect.objectContaining({ action: 'reserve', target: 'admin*', forKeyId: null })]);
    expect((await listed()).reservations).toEqual([
      expect.objectContaining({ pattern: 'admin*', forKeyId: null, reason: 'staff only', until: null }),
    ]);
  });

  it("reserve --for <nickname> keeps that key's claim and names it; other holders' claims are deleted", async () => {
    const owner = await claimFor('projectlead');
    await claimFor('pr0jectlead-fake');
    const run = await moderation('reserve', 'projectlead*', '--for', 'projectlead');
    expect(run.stdout).toContain(`reserved projectlead* for key ${owner.keyId} and its look-alikes until lifted`);
    expect(run.stdout).toContain('claims deleted: pr0jectlead-fake');
    expect(await claims.getByNickname('projectlead')).not.toBeNull();
    expect((await listed()).reservations).toEqual([
      expect.objectContaining({ forKeyId: owner.keyId, forLabel: 'projectlead' }),
    ]);
    const text = await moderation('moderation', 'list');
    expect(text.stdout).toContain(`reserve projectlead* for key ${owner.keyId} (projectlead)`);
  });

  it('reserve --for a nickname no key holds fails with what to pass instead, and reserves nothing', async () => {
    await expect(moderation('reserve', 'admin', '--for', 'ghost')).rejects.toThrow(
      /no key holds "ghost" now \(--for names a key/,
    );
    expect((await listed()).reservations).toEqual([]);
  });

  it('unreserve lifts a reservation (named as reserved, any case); one not there exits 1', async () => {
    await moderation('reserve', 'admin');
    expect(await moderation('unreserve', 'ADMIN')).toMatchObject({
      code: 0,
      stdout: 'unreserved admin: it may be registered again\n',
    });
    expect(await moderation('unreserve', 'admin')).toMatchObject({
      code: 1,
      stderr: 'p2p-registry: no reservation of "admin" to lift (see p2p-registry moderation list)\n',
    });
  });
});

describe('moderation list', () => {
  it('prints one line per decision in force, with who, when, until when, the reason and the note', async () => {
    const key = newKey();
    await moderation('block', 'key', key.keyId, '--by', 'alice', '--reason', 'spam', '--note', 'see ticket');
    await moderation('reserve', 'root', '--by', 'bob', '--days', '2');
    const run = await moderation('moderation', 'list');
    expect(run.stdout).toBe(
      `block key ${key.keyId}  by alice at 2027-03-01T12:00:00.000Z  until lifted  reason "spam"  note "see ticket"\n` +
        'reserve root  by bob at 2027-03-01T12:00:00.000Z  until 2027-03-03T12:00:00.000Z\n',
    );
  });

  it('--json prints one object with the blocks and the reservations', async () => {
    const address = newAddress();
    await moderation('block', 'address', address, '--by', 'alice');
    expect(await listed()).toEqual({
      blocks: [
        {
          type: 'block',
          kind: 'address',
          target: address,
          label: null,
          reason: null,
          note: null,
          by: 'alice',
          at: '2027-03-01T12:00:00.000Z',
          until: null,
        },
      ],
      reservations: [],
    });
  });

  it('says on stderr that nothing is in force when nothing is (stdout empty; --json still one object)', async () => {
    expect(await moderation('moderation', 'list')).toMatchObject({
      code: 0,
      stdout: '',
      stderr: 'no blocks or reservations in force\n',
    });
    expect(await listed()).toEqual({ blocks: [], reservations: [] });
  });
});

describe('--days: a decision that ends by itself', () => {
  it('is in force until its time, then no longer listed nor enforced, while the audit keeps it', async () => {
    const key = newKey();
    const run = await moderation('block', 'key', key.keyId, '--days', '1.5');
    expect(run.stdout).toContain(`blocked key ${key.keyId} until 2027-03-03T00:00:00.000Z`);
    await moderation('reserve', 'admin', '--days', '1');
    const store = await openModerationStore({ database, passwordFile: null }, { now: () => clock });
    const rules = new ModerationRules(await store.decisions());
    await store.close();
    const blockedPeer = { keyId: key.keyId, peer: { nickname: 'someone', address: newAddress() } };
    const adminPeer = { keyId: newKey().keyId, peer: { nickname: 'adm1n', address: newAddress() } };
    expect(rules.hit(blockedPeer, clock)).toMatchObject({ kind: 'blocked' });
    expect(rules.hit(adminPeer, clock)).toMatchObject({ kind: 'reserved' });

    clock = START + MS_PER_DAY + 1; // the reservation has lapsed, the block not yet
    expect((await listed()).reservations).toEqual([]);
    expect((await listed()).blocks).toHaveLength(1);
    // A server that read them before applies the expiry by itself, without a new decision.
    expect(rules.hit(adminPeer, clock)).toBeNull();
    expect(rules.hit(blockedPeer, clock)).toMatchObject({ kind: 'blocked' });

    clock = START + 1.5 * MS_PER_DAY;
    expect(await listed()).toEqual({ blocks: [], reservations: [] });
    expect(rules.hit(blockedPeer, clock)).toBeNull();
    // Blocking it again is a new block, not a renewal; the audit has all three actions.
    expect((await moderation('block', 'key', key.keyId)).stdout).not.toContain('renewed');
    expect((await auditJson()).map((e) => e.action)).toEqual(['block', 'reserve', 'block']);
  });
});

describe('audit', () => {
  it('prints every action oldest first with its time, who, target, reason, note and what it deleted', async () => {
    const mallory = await claimFor('mallory');
    await moderation('block', 'key', 'mallory', '--by', 'alice', '--reason', 'spam', '--note', 'ticket 9');
    clock += 60_000;
    await moderation('unblock', 'key', 'mallory', '--by', 'bob');
    const run = await moderation('audit');
    expect(run.stdout).toBe(
      `2027-03-01T12:00:00.000Z  alice  block key ${mallory.keyId}  reason "spam"  note "ticket 9"  (mallory; claims ` +
        `deleted: mallory)\n` +
        `2027-03-01T12:01:00.000Z  bob  unblock key ${mallory.keyId}  (mallory)\n`,
    );
  });

  it('--json prints one object per action; --since leaves out what came before the date', async () => {
    await moderation('reserve', 'first');
    clock = Date.parse('2027-03-05T08:00:00.000Z');
    await moderation('reserve', 'second', '--by', 'carol');
    expect((await auditJson()).map((e) => e.target)).toEqual(['first', 'second']);
    expect(await auditJson('--since', '2027-03-02')).toEqual([
      {
        seq: 2,
        at: '2027-03-05T08:00:00.000Z',
        action: 'reserve',
        target: 'second',
        reason: null,
        note: null,
        actor: 'carol',
        detail: null,
      },
    ]);
    expect(await auditJson('--since', '2027-03-05T08:00:01Z')).toEqual([]);
  });

  it('says on stderr that nothing is recorded when nothing is', async () => {
    expect(await moderation('audit')).toMatchObject({ code: 0, stdout: '', stderr: 'no operator actions recorded\n' });
  });

  it('records claims release with who ran it, its reason and note, and the released address', async () => {
    const mallory = await claimFor('mallory');
    const args = argsOf(['claims', 'release', 'mallory', '--by', 'dave', '--reason', 'abuse', '--note', 'ticket 3']);
    const { io, out } = sinks();
    const code = await runStoreCommand(
      'claims',
      args,
      async () => ({
        store: await openSqliteClaimStore({ path: database, claimDays: 30 }),
        database,
        moderation: await openModerationStore({ database, passwordFile: null }, { now: () => clock }),
        decision: { by: 'dave', reason: 'abuse', note: 'ticket 3', expiresAt: null },
      }),
      io,
    );
    expect(code).toBe(0);
    expect(out().logged).toEqual([{ action: 'claims-release', target: 'mallory', by: 'dave' }]);
    expect(await auditJson()).toEqual([
      expect.objectContaining({
        action: 'claims-release',
        target: 'mallory',
        actor: 'dave',
        reason: 'abuse',
        note: 'ticket 3',
        detail: mallory.address,
      }),
    ]);
  });
});

describe('who ran it', () => {
  it('is --by when given, otherwise the OS user', async () => {
    await moderation('reserve', 'one', '--by', 'on-call: erin');
    await moderation('reserve', 'two');
    expect((await auditJson()).map((e) => e.actor)).toEqual(['on-call: erin', userInfo().username]);
    expect((await listed()).reservations.map((r) => r.by)).toEqual(['on-call: erin', userInfo().username]);
  });
});

describe('usage errors: each says what to type, and no database is opened', () => {
  const cases: Array<[string, string[], RegExp]> = [
    [
      'block without a kind',
      ['block'],
      /block takes key <key-id\|nickname> or address <onion>: p2p-registry block key <key-id>/,
    ],
    ['block of another kind', ['block', 'nickname', 'x'], /block takes key <key-id\|nickname> or address <onion>/],
    ['block key without a target', ['block', 'key'], /block takes key <key-id\|nickname> or address <onion>/],
    ['block with a second target', ['block', 'key', 'a', 'b'], /block takes key <key-id\|nickname> or address <onion>/],
    [
      'unblock without a kind',
      ['unblock'],
      /unblock takes key <key-id\|nickname> or address <onion>: p2p-registry unblock key/,
    ],
    ['reserve without a pattern', ['reserve'], /reserve takes one nickname or pattern: p2p-registry reserve 'admin\*'/],
    ['reserve with two patterns', ['reserve', 'a', 'b'], /reserve takes one nickname or pattern/],
    [
      'reserve of a pattern that covers everything',
      ['reserve', '*'],
      /reserve "\*": a pattern needs at least one letter or digit/,
    ],
    [
      'reserve of characters no nickname has',
      ['reserve', 'ad min'],
      /reserve "ad min": a reservation is a nickname or a glob of nickname characters/,
    ],
    ['unreserve without a pattern', ['unreserve'], /unreserve takes one nickname or pattern: p2p-registry unreserve/],
    ['moderation without list', ['moderation'], /moderation takes list: p2p-registry moderation list \[--json\]/],
    ['moderation with another word', ['moderation', 'show'], /moderation takes list/],
    ['audit with an argument', ['audit', 'today'], /audit takes options only: --since, --json/],
    [
      'audit --since that is no date',
      ['audit', '--since', 'yesterday'],
      /--since takes a date, e.g. 2027-01-31 or 2027-01-31T12:00:00Z, not "yesterday"/,
    ],
    [
      '--since on another command',
      ['moderation', 'list', '--since', '2027-01-01'],
      /--since goes with audit only: p2p-registry audit --since/,
    ],
    [
      '--for on block',
      ['block', 'key', 'mallory', '--for', 'x'],
      /--for goes with reserve only: p2p-registry reserve <nickname> --for/,
    ],
    [
      '--days of zero',
      ['reserve', 'admin', '--days', '0'],
      /--days takes a number of days above 0 \(up to 36500\), not "0"/,
    ],
    [
      '--days that is no number',
      ['block', 'key', 'mallory', '--days', 'week'],
      /--days takes a number of days above 0/,
    ],
    [
      '--days beyond a century',
      ['reserve', 'admin', '--days', '36501'],
      /--days takes a number of days above 0 \(up to 36500\)/,
    ],
    [
      '--days on unblock',
      ['unblock', 'key', 'mallory', '--days', '2'],
      /--days goes with block and reserve .*: unblock lifts it now/,
    ],
    [
      '--reason on a read',
      ['moderation', 'list', '--reason', 'x'],
      /--reason goes with block, unblock, reserve and unreserve: moderation only reads/,
    ],
    ['--by on audit', ['audit', '--by', 'x'], /--by goes with block, unblock, reserve and unreserve: audit only reads/],
    ['--json on a decision', ['block', 'key', 'mallory', '--json'], /--json goes with moderation list and audit/],
    [
      'a reason over 500 characters',
      ['block', 'key', 'mallory', '--reason', 'x'.repeat(501)],
      /--reason takes a text of at most 500 characters/,
    ],
  ];
  for (const [what, argv, message] of cases) {
    it(`${what}: p2p-registry ${argv.join(' ').slice(0, 60)}`, async () => {
      expect(await usageOf(...argv)).toMatch(message);
    });
  }

  it('block address of something that is no v3 onion address says what to pass', async () => {
    const message = await usageOf('block', 'address', 'example.com');
    expect(message).toMatch(/"example.com" is not a v3 onion address: .*Pass the address as the peer registered it/);
  });
});
