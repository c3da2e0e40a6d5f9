/**
 * Moderation decisions are security state (PROTOCOL.md revision 3, "Moderation"; issue 22): a
 * block or a reservation that the built CLI reported survives kill -9 of the built server that
 * was running beside it (SQLite), and the restarted server enforces it.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { keyIdOf } from '../support/moderation.contract.js';
import { ed25519Identity, randomNickname, randomOnion, RawClient, tempDir } from '../support/registry-harness.js';
import { CLI, freePort, startBuiltServer, stopBuiltServer } from './built-server.js';
import { crashTestScope } from './crash-test-scope.js';

const ROUNDS = 3;
const run = promisify(execFile);

const scope = crashTestScope();
const { running, clients } = scope;

/** The built CLI, as the operator runs it beside the server: its stdout (it must exit 0). */
async function operator(config: string, args: readonly string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args, '--config', config], {
    env: { ...process.env, NO_PRETTY: '1' },
  });
  return stdout;
}

async function connect(url: string): Promise<RawClient> {
  const client = await RawClient.connect(url);
  clients.push(client);
  return client;
}

describe('moderation decisions and kill -9', () => {
  it(`keep every block and reservation the CLI reported, the server killed right after each, over ` +
    `${ROUNDS} crashes`, async () => {
    scope.dir = tempDir('moderation-crash-');
    const port = await freePort();
    const url = `ws://127.0.0.1:${port}/`;
    const options = {
      dir: scope.dir,
      listen: { port },
      onion: randomOnion(),
      sections: { Store: { Database: join(scope.dir, 'registry.db') }, Claims: { ClaimAfterSeconds: 0 } },
    };
    const config = join(scope.dir, 'config.ini');
    const blocked: Array<{ identity: ReturnType<typeof ed25519Identity>; nickname: string }> = [];
    const reserved: string[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const server = await startBuiltServer(options);
      running.push(server);
      // A live peer, named by its nickname in the block: the CLI finds its key by its claim.
      const identity = ed25519Identity();
      const nickname = randomNickname('crash');
      expect((await (await connect(url)).register(identity, nickname)).type).toBe('registered');
      const block = await operator(config, ['block', 'key', nickname, '--reason', 'spam']);
      expect(block).toContain(`blocked key ${keyIdOf(identity)} (${nickname})`);
      const pattern = `reserved${round}`;
      expect(await operator(config, ['reserve', pattern])).toContain(`reserved ${pattern}`);
      // Killed the moment the CLI has reported: nothing of the server's closes or flushes.
      expect(await stopBuiltServer(server, 'SIGKILL')).toBe('SIGKILL');
      running.splice(running.indexOf(server), 1);
      blocked.push({ identity, nickname });
      reserved.push(pattern);
    }

    const server = await startBuiltServer(options);
    running.push(server);
    for (const { identity, nickname } of blocked) {
      const refused = await (await connect(url)).register(identity, nickname);
      expect(refused).toMatchObject({ type: 'error', code: 'BLOCKED' });
      expect(String(refused.message)).toContain('spam');
    }
    for (const pattern of reserved) {
      const look = pattern.toUpperCase().replace('S', '5'); // a look-alike spelling is covered too
      expect(await (await connect(url)).register(ed25519Identity(), look)).toMatchObject({
        type: 'error',
        code: 'NICKNAME_RESERVED',
      });
    }
    const list = JSON.parse(await operator(config, ['moderation', 'list', '--json'])) as {
      blocks: Array<{ target: string }>;
      reservations: Array<{ pattern: string }>;
    };
    expect(list.blocks.map((b) => b.target).sort()).toEqual(blocked.map((b) => keyIdOf(b.identity)).sort());
    expect(list.reservations.map((r) => r.pattern)).toEqual(reserved);
  }, 90_000);
});
