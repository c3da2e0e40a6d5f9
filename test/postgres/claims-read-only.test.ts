/**
 * The operators' `claims list` and `claims show` need no write access: on PostgreSQL they work for
 * a role that may only SELECT (an auditor's account, or a read-only replica's user), and `claims
 * release` needs more, as it should.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from '../hardening/built-server.js';
import { closeAdmin, freshDatabase, sql } from '../support/cluster.js';
import { newAddress, newKey, request } from '../support/claim-store.contract.js';
import { openPostgresClaimStore } from '../../server/src/store/postgres/postgres-open.js';

const run = promisify(execFile);
const dirs: string[] = [];

afterAll(async () => {
  await closeAdmin();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, NO_PRETTY: '1' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

/** A database the server made, with one claim, and a role `name` that may only read it. */
async function databaseWithReader(name: string): Promise<{ owner: string; reader: string }> {
  const owner = await freshDatabase('read_only');
  const store = await openPostgresClaimStore({ connectionString: owner, claimDays: 30 });
  await store.claim(request(newKey(), 'mallory', newAddress()));
  await store.close();
  await sql(owner, `DROP ROLE IF EXISTS ${name}`);
  await sql(owner, `CREATE ROLE ${name} LOGIN`);
  const database = decodeURIComponent(new URL(owner.replace('@/', '@localhost/')).pathname.slice(1));
  await sql(
    owner,
    `GRANT CONNECT ON DATABASE ${database} TO ${name}; GRANT USAGE ON SCHEMA public TO ${name}; GRANT SELECT ON ALL ` +
      `TABLES IN SCHEMA public TO ${name}`,
  );
  return { owner, reader: owner.replace(/^postgres:\/\/[^@]*@/, `postgres://${name}@`) };
}

function configFor(database: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'claims-read-only-'));
  dirs.push(dir);
  const path = join(dir, 'config.ini');
  writeFileSync(
    path,
    `[Host]\nHOST=127.0.0.1\nPORT=1\n[HiddenService]\nHiddenServiceDir=${dir}\nHiddenServicePort=80\n[Store]\n` +
      `Database=${database}\n`,
  );
  return path;
}

describe('claims list and show on PostgreSQL', () => {
  it('work for a role that may only SELECT', async () => {
    const { reader } = await databaseWithReader('claims_reader');
    const config = configFor(reader);
    const listed = await cli(['claims', 'list', '--json', '--config', config]);
    expect(listed.stderr).toBe('');
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ nickname: 'mallory' })]);
    expect(await cli(['claims', 'show', 'mallory', '--config', config])).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('mallory'),
    });
  });

  it(
    'while claims release, which writes, is refused to that role, naming the database without ' + 'a password',
    async () => {
      const { reader } = await databaseWithReader('claims_reader_release');
      const released = await cli(['claims', 'release', 'mallory', '--config', configFor(reader)]);
      expect(released.code).toBe(1);
      expect(released.stderr).toContain('claims_reader_release@');
      expect(released.stderr).toContain('(42501)');
    },
  );

  it('refuse a database at an older schema version rather than migrate it, saying what to do', async () => {
    const { owner, reader } = await databaseWithReader('claims_reader_old');
    await sql(owner, 'UPDATE schema_version SET version = 1');
    const listed = await cli(['claims', 'list', '--config', configFor(reader)]);
    expect(listed.code).toBe(1);
    expect(listed.stderr).toContain('is at schema version 1, older than this registry');
    expect(listed.stderr).toContain('Fix: start the server once');
    expect((await sql(owner, 'SELECT version FROM schema_version')).rows).toEqual([{ version: 1 }]);
  });
});
