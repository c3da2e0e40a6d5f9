/**
 * The database password never reaches a log line or a message, wherever the operator put it: in
 * the URL of config.ini, in the URL of REGISTRY_STORE_DATABASE, in [Store] PasswordFile, or in
 * PGPASSWORD. The built server runs on the run's PostgreSQL (trust auth: the password is accepted
 * and not needed), logging at trace; every line it writes, and every line of the operators'
 * `claims list`, is searched for the password.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, freePort, startBuiltServer, stopBuiltServer, type BuiltServer } from '../hardening/built-server.js';
import { closeAdmin, freshDatabase } from '../support/cluster.js';
import { ed25519Identity, randomOnion, RawClient } from '../support/registry-harness.js';

const run = promisify(execFile);
// An @ inside: URL parsing (and the driver) end the user-info at the last @ of the host part.
const PASSWORD = 'Tr0ub4dor@Leak7Q';
const FRAGMENTS = ['Tr0ub4dor', 'Leak7Q'];

const dirs: string[] = [];
const running: BuiltServer[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => stopBuiltServer(server)));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
afterAll(closeAdmin);

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'no-secrets-'));
  dirs.push(dir);
  return dir;
}

/** `url` (postgres://user@/db?host=…) with the password after its user, as an operator writes it. */
function withPassword(url: string, password = PASSWORD): string {
  return url.replace(/^postgres:\/\/([^@]*)@/, `postgres://$1:${password}@`);
}

function expectNoSecret(text: string): void {
  expect(text.length).toBeGreaterThan(0);
  for (const fragment of FRAGMENTS) expect(text).not.toContain(fragment);
}

/** Starts the built server, registers a peer (a claim at once), lists the claims, stops: all its output. */
async function serveAndList(store: Record<string, string>, env: Record<string, string> = {}): Promise<string> {
  const dir = tempDir();
  const port = await freePort();
  const server = await startBuiltServer({
    dir,
    listen: { port },
    onion: randomOnion(),
    sections: { Store: store, Claims: { ClaimAfterSeconds: 0 } },
    env: { REGISTRY_LOG_LEVEL: 'trace', ...env },
  });
  running.push(server);
  const client = await RawClient.connect(`ws://127.0.0.1:${port}/`);
  expect(await client.register(ed25519Identity(), 'alice')).toMatchObject({
    type: 'registered',
    claim: expect.anything(),
  });
  client.close();
  const listed = await run(process.execPath, [CLI, 'claims', 'list', '--config', join(dir, 'config.ini')], {
    env: { ...process.env, NO_PRETTY: '1', ...env },
  });
  expect(listed.stdout).toContain('alice');
  running.splice(running.indexOf(server), 1);
  await stopBuiltServer(server);
  return `${readFileSync(server.logFile, 'utf8')}${listed.stdout}${listed.stderr}`;
}

describe('no database password in any log line or message', () => {
  it('a password in the URL of [Store] Database is in no line the server or claims list writes', async () => {
    const output = await serveAndList({ Database: withPassword(await freshDatabase('secret_ini')) });
    expect(output).toContain('starting p2p-registry');
    expectNoSecret(output);
  });

  it('a password in the URL of REGISTRY_STORE_DATABASE is in no line the server or claims list writes', async () => {
    const output = await serveAndList({}, { REGISTRY_STORE_DATABASE: withPassword(await freshDatabase('secret_env')) });
    expectNoSecret(output);
  });

  it('the contents of [Store] PasswordFile are in no line the server or claims list writes', async () => {
    const file = join(tempDir(), 'db-password');
    writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
    expectNoSecret(await serveAndList({ Database: await freshDatabase('secret_file'), PasswordFile: file }));
  });

  it('PGPASSWORD is in no line the server or claims list writes', async () => {
    expectNoSecret(
      await serveAndList({ Database: await freshDatabase('secret_pgpassword') }, { PGPASSWORD: PASSWORD }),
    );
  });

  it('a server that cannot reach its database names it without the password', async () => {
    const dir = tempDir();
    const database = withPassword(
      `postgres://registry@/claims?host=${encodeURIComponent(join(dir, 'no-socket-here'))}`,
    );
    const config = join(dir, 'config.ini');
    writeFileSync(
      config,
      `[Host]\nHOST=127.0.0.1\nPORT=0\n[HiddenService]\nHiddenServiceDir=${dir}\nHiddenServicePort=80\n[Store]\n` +
        `Database=${database}\n[Log]\nlevel=trace\n`,
    );
    const failed = await run(process.execPath, [CLI, 'serve', '--config', config], {
      env: { ...process.env, NO_PRETTY: '1' },
    }).then(
      () => {
        throw new Error('serve started without its database');
      },
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('cannot open the claim database postgres://registry@/claims');
    expectNoSecret(`${failed.stdout}${failed.stderr}`);
  });
});
