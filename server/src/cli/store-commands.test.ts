import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseArgs } from './args.js';
import { runStoreCommand, STORE_FLAGS, type StoreHandle } from './store-commands.js';
import { newAddress, newKey, request } from '../../../test/support/claim-store.contract.js';
import { openSqliteClaimStore } from '../store/sqlite/sqlite-store.js';

let dir: string;
let database: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'store-cli-'));
  database = join(dir, 'registry.db');
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

function open(): Promise<StoreHandle> {
  return openSqliteClaimStore({ path: database, claimDays: 30 }).then((store) => ({ store, database }));
}

async function seed(...nicknames: string[]): Promise<void> {
  const { store } = await open();
  for (const nickname of nicknames) await store.claim(request(newKey(), nickname, newAddress()));
  await store.close();
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const args = parseArgs(argv, new Set(), new Set(STORE_FLAGS));
  const code = await runStoreCommand(args.command ?? '', args, open, {
    stdout: { write: (t: string) => (out += t) },
    stderr: { write: (t: string) => (err += t) },
  });
  return { code, out, err };
}

describe('p2p-registry claims', () => {
  it('lists every live claim in nickname order, one per line', async () => {
    await seed('bob', 'Alice');
    const { code, out } = await run(['claims', 'list']);
    expect(code).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^Alice {2}[a-z2-7]{56}\.onion {2}address not proven {2}until \d{4}-/);
    expect(lines[1]).toMatch(/^bob /);
  });

  it('lists claims as JSON with --json', async () => {
    await seed('carol');
    const { out } = await run(['claims', 'list', '--json']);
    const claims = JSON.parse(out) as Array<Record<string, unknown>>;
    expect(claims).toEqual([
      expect.objectContaining({ nickname: 'carol', addressVerified: false, until: expect.any(String) }),
    ]);
  });

  it(
    'lists a store larger than one page without holding it: every claim once, in order, written ' + 'page by page',
    async () => {
      const nicknames = Array.from({ length: 2_345 }, (_, i) => `p${String(i).padStart(4, '0')}`);
      await seed(...nicknames);
      const text = await run(['claims', 'list']);
      expect(
        text.out
          .trim()
          .split('\n')
          .map((line) => line.split(' ')[0]),
      ).toEqual(nicknames);
      const writes: string[] = [];
      const args = parseArgs(['claims', 'list', '--json'], new Set(), new Set(STORE_FLAGS));
      await runStoreCommand('claims', args, open, {
        stdout: { write: (t: string) => writes.push(t) },
        stderr: { write: () => true },
      });
      expect(writes.length).toBeGreaterThanOrEqual(4); // '[', three pages of at most 1,000, ']'
      expect((JSON.parse(writes.join('')) as Array<{ nickname: string }>).map((c) => c.nickname)).toEqual(nicknames);
    },
  );

  it('lists an empty store as "no claims", and as [] with --json', async () => {
    const text = await run(['claims', 'list']);
    expect(text).toMatchObject({ code: 0, out: '', err: 'no claims\n' });
    expect(JSON.parse((await run(['claims', 'list', '--json'])).out)).toEqual([]);
  });

  it('shows one claim, case-insensitively, and exits 1 for a nickname nobody claims', async () => {
    await seed('dave');
    expect((await run(['claims', 'show', 'DAVE'])).out).toMatch(/^dave /);
    const missing = await run(['claims', 'show', 'erin']);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('no live claim on "erin"');
  });

  it('releases a claim so that the nickname is free at once', async () => {
    await seed('frank');
    const released = await run(['claims', 'release', 'frank']);
    expect(released.code).toBe(0);
    expect(released.out).toContain('released frank');
    expect((await run(['claims', 'show', 'frank'])).code).toBe(1);
    expect((await run(['claims', 'release', 'frank'])).code).toBe(1);
  });

  it('refuses a claims call without a known subcommand or with a missing nickname', async () => {
    await expect(run(['claims'])).rejects.toMatchObject({ code: 'USAGE' });
    await expect(run(['claims', 'drop', 'x'])).rejects.toMatchObject({ code: 'USAGE' });
    await expect(run(['claims', 'show'])).rejects.toMatchObject({ code: 'USAGE' });
    await expect(run(['claims', 'list', 'extra'])).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('p2p-registry backup', () => {
  it('writes a consistent copy that opens as a claim store with the same claims', async () => {
    await seed('gina', 'hank');
    const copy = join(dir, 'copy.db');
    const { code, out } = await run(['backup', copy]);
    expect(code).toBe(0);
    expect(out).toContain(`backed up ${database} to ${copy}`);
    const restored = await openSqliteClaimStore({ path: copy, claimDays: 30 });
    expect((await restored.list()).claims.map((c) => c.nickname)).toEqual(['gina', 'hank']);
    await restored.close();
  });

  it('needs exactly one file', async () => {
    await expect(run(['backup'])).rejects.toMatchObject({ code: 'USAGE' });
    expect(existsSync(join(dir, 'registry.db'))).toBe(false);
  });
});
