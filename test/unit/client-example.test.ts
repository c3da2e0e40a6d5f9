/**
 * docs/CLIENT.md's example (docs/examples/client-example.ts) runs as written, against a real
 * registry on loopback: through a SOCKS5 proxy that stands in for tor, and directly for the
 * reconnect. The page shows the file verbatim, so the example cannot drift from what is tested.
 */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main, type ExampleOptions, type RunningPeer } from '../../docs/examples/client-example.js';
import { createIdentity, RegistryClient } from '../../server/src/client/index.js';
import { cleanupsAfterEach } from '../support/cleanups.js';
import { startFakeSocksProxy } from '../support/fake-socks-proxy.js';
import {
  randomOnion,
  startTestServer,
  tempDir,
  type TestServer,
  type TestServerOptions,
} from '../support/registry-harness.js';
import { torOnionKey, writeTorOnionKey } from '../support/tor-onion-key.js';
import { waitUntil } from '../support/wait.js';

const ROOT = join(import.meta.dirname, '../..');
const defer = cleanupsAfterEach();

async function registry(options: TestServerOptions = {}): Promise<TestServer> {
  const server = await startTestServer({ EventBatchMs: 0 }, { claims: { ClaimAfterSeconds: 0 }, ...options });
  defer(() => server.close());
  return server;
}

/** A peer of the test: connected and registered as `nickname`. */
async function otherPeer(url: string, nickname: string): Promise<RegistryClient> {
  const client = await RegistryClient.connect({ url, identity: createIdentity(), reconnect: false });
  defer(() => client.close());
  await client.register({ nickname, address: randomOnion(), port: 1 });
  return client;
}

/** The example's files (a fresh peer key, an onion key as tor writes it) and its log. */
function exampleFiles(): {
  readonly options: Pick<ExampleOptions, 'keyFile' | 'onionKeyFile' | 'log'>;
  readonly address: string;
  readonly lines: string[];
} {
  const dir = tempDir('client-example-');
  defer(() => rm(dir, { recursive: true, force: true }));
  const onionKey = torOnionKey();
  const lines: string[] = [];
  const log = (line: string): void => void lines.push(line);
  return {
    options: { keyFile: join(dir, 'peer-key.pem'), onionKeyFile: writeTorOnionKey(dir, onionKey), log },
    address: onionKey.address,
    lines,
  };
}

async function run(options: ExampleOptions): Promise<RunningPeer> {
  const peer = await main(options);
  defer(() => peer.stop());
  return peer;
}

describe('the client example (docs/examples/client-example.ts)', () => {
  it(
    'registers through a SOCKS5 proxy with a proven address, finds its friend, and follows joins ' + 'and leaves',
    async () => {
      const server = await registry();
      const proxy = await startFakeSocksProxy({ route: () => server.port, accepts: 'any' });
      defer(() => proxy.close());
      const bob = await otherPeer(server.url, 'bob');
      const files = exampleFiles();
      const alice = await run({
        ...files.options,
        url: `ws://${server.onion ?? ''}:80/`,
        socks: { host: '127.0.0.1', port: proxy.port, username: 'registry', password: 'example' },
        nickname: 'alice',
        port: 5050,
        friend: 'bob',
      });

      expect(proxy.requests[0]).toMatchObject({ host: server.onion, port: 80 });
      expect(alice.registered).toMatchObject({
        nickname: 'alice',
        address: files.address,
        port: 5050,
        addressVerified: true,
      });
      expect(alice.registered.claim).not.toBeNull();
      expect(alice.friend?.address).toBe(bob.registration?.address);
      expect([...alice.directory.peers.keys()].sort()).toEqual(['alice', 'bob']);

      const carol = await otherPeer(server.url, 'Carol');
      await waitUntil('carol is listed', () => alice.directory.peers.has('carol'));
      await carol.close();
      await waitUntil('carol is gone', () => !alice.directory.peers.has('carol'));
      expect(files.lines).toEqual(expect.arrayContaining(['2 peers online', 'joined: Carol', 'left: Carol']));
    },
  );

  it('says when the friend is not online', async () => {
    const server = await registry();
    const files = exampleFiles();
    const alice = await run({ ...files.options, url: server.url, nickname: 'alice', port: 5050, friend: 'bob' });
    expect(alice.friend).toBeNull();
    expect(files.lines).toContain('bob is not online');
  });

  it('comes back after the registry restarts: registered again, and the list taken again', async () => {
    const first = await registry();
    const files = exampleFiles();
    const alice = await run({
      ...files.options,
      url: first.url,
      nickname: 'alice',
      port: 5050,
      friend: 'bob',
      reconnect: { initialDelayMs: 20, maxDelayMs: 100, jitter: 0 },
    });
    await first.close();
    await waitUntil('alice is disconnected', () => alice.client.state === 'reconnecting');
    const second = await registry({ port: first.port, database: first.database });
    const bob = await otherPeer(second.url, 'bob');
    await waitUntil(
      'alice reconnected and listed bob',
      () => alice.directory.peers.has('bob') && alice.client.state === 'open',
    );
    expect((await bob.lookup('alice')).address).toBe(files.address);
    expect(files.lines).toContain('reconnected as alice');
  });
});

describe('docs/CLIENT.md', () => {
  it('shows the example file verbatim', () => {
    const example = readFileSync(join(ROOT, 'docs/examples/client-example.ts'), 'utf8');
    const page = readFileSync(join(ROOT, 'docs/CLIENT.md'), 'utf8');
    expect(page).toContain(`\`\`\`ts\n${example}\`\`\``);
  });
});
