import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { randomOnion, startTestServer } from '../../../test/support/registry-harness.js';
import { parseArgs } from './args.js';
import { main } from './main.js';
import { CLIENT_FLAGS, CLIENT_OPTIONS, runClientCommand, type ClientIo } from './client-commands.js';
import { createIdentity } from '../client/identity.js';
import { RegistryClient } from '../client/registry-client.js';
import { waitUntil } from '../../../test/support/wait.js';
import {
  addressProofVerifies,
  FakeRegistry,
  type FakeFrame,
  type FakeRegistryOptions,
} from '../../../test/support/fake-registry.js';
import { torOnionKey, writeTorOnionKey } from '../../../test/support/tor-onion-key.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'client-cli-test-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The real registry on 127.0.0.1:0; returns its ws:// URL. */
async function startRegistry(): Promise<string> {
  const registry = await startTestServer({ EventBatchMs: 0 });
  cleanups.push(() => registry.close());
  return registry.url;
}

async function registerPeer(url: string, nickname: string): Promise<RegistryClient> {
  const c = await RegistryClient.connect({ url, identity: createIdentity(), reconnect: false });
  cleanups.push(() => c.close());
  await c.register({ nickname, address: randomOnion(), port: 5050 });
  return c;
}

interface Run {
  readonly io: ClientIo;
  readonly out: () => string;
  readonly err: () => string;
  readonly stop: AbortController;
}

function captureIo(env: Record<string, string> = {}): Run {
  let out = '';
  let err = '';
  const stop = new AbortController();
  return {
    io: {
      stdout: { write: (text: string) => (out += text) },
      stderr: { write: (text: string) => (err += text) },
      env,
      signal: stop.signal,
    },
    out: () => out,
    err: () => err,
    stop,
  };
}

function args(argv: string[]): ReturnType<typeof parseArgs> {
  return parseArgs(argv, new Set(['config', ...CLIENT_OPTIONS]), new Set(['help', ...CLIENT_FLAGS]));
}

function run(argv: string[], io: ClientIo): Promise<number> {
  const parsed = args(argv);
  return runClientCommand(parsed.command ?? '', parsed, io);
}

/** Waits for the command's output (a command answers within a second or two). */
const waitFor = (condition: () => boolean, what: string): Promise<void> =>
  waitUntil(what, condition, { timeoutMs: 1_500 });

describe('p2p-registry peers', () => {
  it('prints one line per peer, in nickname order', async () => {
    const url = await startRegistry();
    await registerPeer(url, 'bob');
    await registerPeer(url, 'alice');
    const r = captureIo();
    expect(await run(['peers', '--registry', url], r.io)).toBe(0);
    const lines = r.out().trimEnd().split('\n');
    expect(lines.map((line) => line.split('\t')[0])).toEqual(['alice', 'bob']);
    expect(lines[0]).toMatch(/^alice\t[a-z2-7]{56}\.onion:5050\ted25519\t\d{4}-/);
  });

  it('prints a JSON array with --json, and takes the registry from P2P_REGISTRY_URL', async () => {
    const url = await startRegistry();
    await registerPeer(url, 'alice');
    const r = captureIo({ P2P_REGISTRY_URL: url });
    expect(await run(['peers', '--json'], r.io)).toBe(0);
    const peers = JSON.parse(r.out()) as Array<{ nickname: string; publicKey: string }>;
    expect(peers).toHaveLength(1);
    expect(peers[0]?.nickname).toBe('alice');
    expect(peers[0]?.publicKey).toContain('BEGIN PUBLIC KEY');
  });

  it('says so on stderr when nobody is online', async () => {
    const url = await startRegistry();
    const r = captureIo();
    expect(await run(['peers', '--registry', url], r.io)).toBe(0);
    expect(r.out()).toBe('');
    expect(r.err()).toContain('no peers online');
  });
});

describe('p2p-registry lookup', () => {
  it('prints the peer, and fails with exit 1 for an unknown nickname', async () => {
    const url = await startRegistry();
    await registerPeer(url, 'Alice');
    const found = captureIo();
    expect(await run(['lookup', 'alice', '--registry', url, '--json'], found.io)).toBe(0);
    expect(JSON.parse(found.out())).toMatchObject({ nickname: 'Alice', port: 5050 });
    const missing = captureIo();
    expect(await run(['lookup', 'nobody', '--registry', url], missing.io)).toBe(1);
    expect(missing.err()).toContain('no peer named "nobody" is online');
  });
});

describe('p2p-registry register', () => {
  it('makes a 0600 key, registers, stays connected until stopped, then leaves', async () => {
    const url = await startRegistry();
    const dir = await tempDir();
    const key = join(dir, 'peer-key.pem');
    const address = randomOnion();
    const r = captureIo();
    const exit = run(
      ['register', '--registry', url, '--nickname', 'alice', '--address', address, '--port', '5050', '--key', key],
      r.io,
    );
    await waitFor(() => r.out().includes('registered alice'), 'the registration');
    expect(r.err()).toContain(`created a new key in ${key}`);
    expect((await stat(key)).mode & 0o777).toBe(0o600);
    expect(await readFile(key, 'utf8')).toContain('BEGIN PRIVATE KEY');

    const reader = await RegistryClient.connect({ url, reconnect: false });
    cleanups.push(() => reader.close());
    expect((await reader.lookup('alice')).address).toBe(address);
    r.stop.abort();
    expect(await exit).toBe(0);
    let gone = false;
    await waitFor(() => {
      void reader.lookup('alice').catch((e: { code?: string }) => (gone ||= e.code === 'NOT_FOUND'));
      return gone;
    }, 'the peer to leave');
  });

  it('reuses the key file, and prints events as JSON lines with --watch', async () => {
    const url = await startRegistry();
    const key = join(await tempDir(), 'peer-key.pem');
    const first = captureIo();
    const firstExit = run(
      ['register', '--registry', url, '--nickname', 'alice', '--address', randomOnion(), '--port', '1', '--key', key],
      first.io,
    );
    await waitFor(() => first.out().includes('registered'), 'the first registration');
    first.stop.abort();
    await firstExit;

    const r = captureIo();
    const exit = run(
      [
        'register',
        '--registry',
        url,
        '--nickname',
        'alice',
        '--address',
        randomOnion(),
        '--port',
        '1',
        '--key',
        key,
        '--watch',
        '--json',
      ],
      r.io,
    );
    await waitFor(() => r.out().includes('"registered"'), 'the registration');
    expect(r.err()).toContain(`using the key in ${key}`);
    await registerPeer(url, 'bob');
    await waitFor(() => r.out().includes('peer_joined'), 'the event');
    const lines = r
      .out()
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; peer?: { nickname: string } });
    expect(lines.map((l) => l.type)).toEqual(['registered', 'peer_joined']);
    expect(lines[1]?.peer?.nickname).toBe('bob');
    r.stop.abort();
    expect(await exit).toBe(0);
  });

  it('explains a taken nickname and exits 1', async () => {
    const url = await startRegistry();
    await registerPeer(url, 'alice');
    const r = captureIo();
    const key = join(await tempDir(), 'k.pem');
    expect(
      await run(
        ['register', '--registry', url, '--nickname', 'alice', '--address', randomOnion(), '--port', '1', '--key', key],
        r.io,
      ),
    ).toBe(1);
    expect(r.err()).toContain('NICKNAME_TAKEN');
    expect(r.err()).toContain('choose another --nickname');
  });

  it('warns when the key file can be read by others', async () => {
    const url = await startRegistry();
    const key = join(await tempDir(), 'open.pem');
    await writeFile(key, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o644,
    });
    const r = captureIo();
    const exit = run(
      ['register', '--registry', url, '--nickname', 'a', '--address', randomOnion(), '--port', '1', '--key', key],
      r.io,
    );
    await waitFor(() => r.out().includes('registered'), 'the registration');
    expect(r.err()).toContain(`chmod 600 ${key}`);
    r.stop.abort();
    expect(await exit).toBe(0);
  });

  it('refuses a key file that is not an Ed25519 key', async () => {
    const url = await startRegistry();
    const key = join(await tempDir(), 'rsa.pem');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    await writeFile(key, rsa, { mode: 0o600 });
    const r = captureIo();
    expect(
      await run(
        ['register', '--registry', url, '--nickname', 'a', '--address', randomOnion(), '--port', '1', '--key', key],
        r.io,
      ),
    ).toBe(1);
    expect(r.err()).toContain('Ed25519');
  });
});

describe('p2p-registry watch', () => {
  it('prints peer_joined and peer_left as JSON lines until stopped', async () => {
    const url = await startRegistry();
    const r = captureIo();
    const exit = run(['watch', '--registry', url], r.io);
    await waitFor(() => r.err().includes('watching'), 'the subscription');
    const bob = await registerPeer(url, 'bob');
    await bob.close();
    await waitFor(() => r.out().includes('peer_left'), 'the events');
    const events = r
      .out()
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string });
    expect(events).toEqual([
      { type: 'peer_joined', peer: expect.objectContaining({ nickname: 'bob' }) },
      { type: 'peer_left', nickname: 'bob' },
    ]);
    r.stop.abort();
    expect(await exit).toBe(0);
  });
});

describe('p2p-registry client: usage and failures', () => {
  it.each([
    [['peers'], 'P2P_REGISTRY_URL'],
    [['peers', '--registry', 'http://x/'], 'ws://'],
    [['peers', '--registry', `ws://${randomOnion()}:80/`], '--socks'],
    [['peers', '--registry', 'ws://127.0.0.1:1/', '--socks', 'nonsense'], '--socks must be'],
    [['peers', '--registry', 'ws://127.0.0.1:1/', '--timeout', '-1'], '--timeout'],
    [['peers', '--registry', 'ws://127.0.0.1:1/', '--nickname', 'x'], 'does not apply'],
    [['lookup', '--registry', 'ws://127.0.0.1:1/'], 'one nickname'],
    [['register', '--registry', 'ws://127.0.0.1:1/', '--nickname', 'a'], '--address, --port'],
    [
      ['register', '--registry', 'ws://127.0.0.1:1/', '--nickname', 'a', '--address', 'abc.onion', '--port', '1'],
      'v3 onion',
    ],
    [
      ['register', '--registry', 'ws://127.0.0.1:1/', '--nickname', 'a', '--address', randomOnion(), '--port', '0'],
      '--port',
    ],
    [
      ['register', '--registry', 'ws://127.0.0.1:1/', '--nickname', '-a', '--address', randomOnion(), '--port', '1'],
      '--nickname',
    ],
  ])('%j is a usage error mentioning %s', async (argv, text) => {
    const r = captureIo();
    const failure = run(argv, r.io);
    await expect(failure).rejects.toMatchObject({ code: 'USAGE' });
    await expect(failure).rejects.toThrow(text);
  });

  it('never repeats SOCKS credentials in the usage error of a bad --socks (a password may hold @)', async () => {
    const r = captureIo();
    const failure = run(['peers', '--registry', 'ws://127.0.0.1:1/', '--socks', 'me:se@cret@127.0.0.1:99999'], r.io);
    await expect(failure).rejects.toThrow('got "<credentials>@127.0.0.1:99999"');
    await expect(failure).rejects.not.toThrow(/cret|se@/);
  });

  it('tells the user to check tor when the SOCKS proxy is not there (exit 1)', async () => {
    const free = createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => free.once('listening', resolve));
    const port = (free.address() as AddressInfo).port;
    await new Promise((resolve) => free.close(resolve));
    const r = captureIo({ P2P_SOCKS: `127.0.0.1:${port}` });
    expect(await run(['peers', '--registry', `ws://${randomOnion()}:80/`], r.io)).toBe(1);
    expect(r.err()).toContain('SOCKS_PROXY_UNREACHABLE');
    expect(r.err()).toContain('is tor running');
  });

  it('says the registry is not running when nothing listens (exit 1)', async () => {
    const r = captureIo();
    expect(await run(['peers', '--registry', 'ws://127.0.0.1:1/'], r.io)).toBe(1);
    expect(r.err()).toContain('CONNECT_FAILED');
  });

  it('exits 2 with the usage text from the p2p-registry entry point', async () => {
    let err = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((text: string | Uint8Array) => {
      err += String(text);
      return true;
    });
    const saved = process.env.P2P_REGISTRY_URL;
    delete process.env.P2P_REGISTRY_URL;
    cleanups.push(() => {
      if (saved !== undefined) process.env.P2P_REGISTRY_URL = saved;
    });
    expect(await main(['peers'])).toBe(2);
    expect(err).toContain('no registry given');
    expect(err).toContain('register --nickname <name>');
  });
});

// ---- revision 2: --onion-key, the claim, release (against the fake rev-2 registry) ----

async function startFake(options: FakeRegistryOptions = {}): Promise<FakeRegistry> {
  const fake = await FakeRegistry.start(options);
  cleanups.push(() => fake.close());
  return fake;
}

/** A tor-format onion key file in a temp dir. */
async function onionKeyFile(): Promise<{ path: string; address: string; dir: string }> {
  const dir = await tempDir();
  const key = torOnionKey();
  return { path: writeTorOnionKey(dir, key), address: key.address, dir };
}

describe('p2p-registry register, revision 2', () => {
  it(
    'proves the address with --onion-key, taking --address from the key, and shows the claim when ' + 'it is made',
    async () => {
      const fake = await startFake({ claimAfterSeconds: 600 });
      const onion = await onionKeyFile();
      const r = captureIo();
      const exit = run(
        [
          'register',
          '--registry',
          fake.url,
          '--nickname',
          'alice',
          '--port',
          '5050',
          '--onion-key',
          onion.path,
          '--key',
          join(onion.dir, 'k.pem'),
        ],
        r.io,
      );
      await waitFor(() => r.out().includes('no claim yet'), 'the registration');
      expect(r.err()).toContain(`using the onion service key in ${onion.path} (${onion.address})`);
      expect(r.out()).toBe(
        `registered alice at ${onion.address}:5050 (address verified)\nno claim yet (made after 600 s)\n`,
      );
      const [request] = fake.requestsOf('register');
      expect(request).toMatchObject({ address: onion.address });
      expect(addressProofVerifies(request as FakeFrame, fake.latest.challenge)).toBe(true);

      fake.send({ type: 'claimed', claim: { until: '2030-01-01T00:00:00.000Z' } });
      await waitFor(() => r.out().includes('claim until'), 'the claimed line');
      expect(r.out()).toContain('\nclaim until 2030-01-01T00:00:00.000Z\n');
      r.stop.abort();
      expect(await exit).toBe(0);
      expect(fake.requestsOf('unregister')).toEqual([]);
    },
  );

  it('prints the claim as JSON with --json: in the registered line, then a claimed line', async () => {
    const fake = await startFake();
    const r = captureIo();
    const exit = run(
      [
        'register',
        '--registry',
        fake.url,
        '--nickname',
        'alice',
        '--address',
        randomOnion(),
        '--port',
        '1',
        '--key',
        join(await tempDir(), 'k.pem'),
        '--json',
      ],
      r.io,
    );
    await waitFor(() => r.out().includes('"registered"'), 'the registration');
    fake.send({ type: 'claimed', claim: { until: '2030-01-01T00:00:00.000Z' } });
    await waitFor(() => r.out().includes('"claimed"'), 'the claimed line');
    const lines = r
      .out()
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({
      type: 'registered',
      claim: null,
      peer: { nickname: 'alice', addressVerified: false },
    });
    expect(lines[1]).toEqual({ type: 'claimed', claim: { until: '2030-01-01T00:00:00.000Z' } });
    r.stop.abort();
    expect(await exit).toBe(0);
  });

  it('says a revision-1 registry keeps no claims', async () => {
    const fake = await startFake({ revision: 1 });
    const r = captureIo();
    const exit = run(
      [
        'register',
        '--registry',
        fake.url,
        '--nickname',
        'alice',
        '--address',
        randomOnion(),
        '--port',
        '1',
        '--key',
        join(await tempDir(), 'k.pem'),
      ],
      r.io,
    );
    await waitFor(() => r.out().includes('no claim'), 'the registration');
    expect(r.out()).toContain('no claim: this registry keeps none (revision 1)');
    r.stop.abort();
    expect(await exit).toBe(0);
  });

  it('refuses an --onion-key that is not the key of --address, before registering (exit 1)', async () => {
    const fake = await startFake();
    const onion = await onionKeyFile();
    const other = randomOnion();
    const r = captureIo();
    expect(
      await run(
        [
          'register',
          '--registry',
          fake.url,
          '--nickname',
          'a',
          '--address',
          other,
          '--port',
          '1',
          '--onion-key',
          onion.path,
          '--key',
          join(onion.dir, 'k.pem'),
        ],
        r.io,
      ),
    ).toBe(1);
    expect(r.err()).toContain(`is the key of ${onion.address}, not of --address ${other}`);
    expect(fake.connections).toEqual([]);
  });

  it('says what to pass when --onion-key is not a tor key file (exit 1)', async () => {
    const dir = await tempDir();
    const path = join(dir, 'hs_ed25519_public_key');
    await writeFile(path, Buffer.alloc(64));
    const r = captureIo();
    expect(
      await run(
        ['register', '--registry', 'ws://127.0.0.1:1/', '--nickname', 'a', '--port', '1', '--onion-key', path],
        r.io,
      ),
    ).toBe(1);
    expect(r.err()).toContain("tor's hs_ed25519_secret_key has 96");
  });

  it('releases the claim on Ctrl-C with --release-on-exit', async () => {
    const fake = await startFake();
    const address = randomOnion();
    const r = captureIo();
    const exit = run(
      [
        'register',
        '--registry',
        fake.url,
        '--nickname',
        'alice',
        '--address',
        address,
        '--port',
        '1',
        '--key',
        join(await tempDir(), 'k.pem'),
        '--release-on-exit',
      ],
      r.io,
    );
    await waitFor(() => r.err().includes('release the claim'), 'the registration');
    r.stop.abort();
    expect(await exit).toBe(0);
    expect(fake.requestsOf('unregister')).toEqual([expect.objectContaining({ release: true })]);
    expect(r.out()).toContain(`released: this key's claim is deleted, alice and ${address} are free`);
  });

  it('explains UNAVAILABLE with how long to wait (exit 1)', async () => {
    const fake = await startFake();
    fake.responders.push((request) =>
      request.type === 'register'
        ? { type: 'error', code: 'UNAVAILABLE', message: 'the claim store is unreachable', retryAfterMs: 2100 }
        : undefined,
    );
    const r = captureIo();
    expect(
      await run(
        [
          'register',
          '--registry',
          fake.url,
          '--nickname',
          'a',
          '--address',
          randomOnion(),
          '--port',
          '1',
          '--key',
          join(await tempDir(), 'k.pem'),
        ],
        r.io,
      ),
    ).toBe(1);
    expect(r.err()).toContain('UNAVAILABLE: the claim store is unreachable: retry in 3 s');
  });
});

describe('p2p-registry release', () => {
  it('registers once, then leaves with release, and exits 0', async () => {
    const fake = await startFake();
    const onion = await onionKeyFile();
    const r = captureIo();
    expect(
      await run(
        [
          'release',
          '--registry',
          fake.url,
          '--nickname',
          'alice',
          '--port',
          '1',
          '--onion-key',
          onion.path,
          '--key',
          join(onion.dir, 'k.pem'),
        ],
        r.io,
      ),
    ).toBe(0);
    expect(fake.requestsOf('register')).toHaveLength(1);
    expect(fake.requestsOf('unregister')).toEqual([expect.objectContaining({ release: true })]);
    expect(r.out()).toContain(`released: this key's claim is deleted, alice and ${onion.address} are free`);
  });

  it('works against the real registry too', async () => {
    const url = await startRegistry();
    const r = captureIo();
    expect(
      await run(
        [
          'release',
          '--registry',
          url,
          '--nickname',
          'alice',
          '--address',
          randomOnion(),
          '--port',
          '1',
          '--key',
          join(await tempDir(), 'k.pem'),
          '--json',
        ],
        r.io,
      ),
    ).toBe(0);
    expect(JSON.parse(r.out().trimEnd().split('\n').at(-1) as string)).toMatchObject({
      type: 'released',
      nickname: 'alice',
    });
  });

  it.each([
    [['release', '--registry', 'ws://127.0.0.1:1/', '--nickname', 'a', '--port', '1'], '--address'],
    [
      [
        'release',
        '--registry',
        'ws://127.0.0.1:1/',
        '--nickname',
        'a',
        '--address',
        randomOnion(),
        '--port',
        '1',
        '--watch',
      ],
      'does not apply',
    ],
    [['peers', '--registry', 'ws://127.0.0.1:1/', '--release-on-exit'], 'does not apply'],
    [['peers', '--registry', 'ws://127.0.0.1:1/', '--onion-key', 'x'], 'does not apply'],
  ])('%j is a usage error mentioning %s', async (argv, text) => {
    const failure = run(argv, captureIo().io);
    await expect(failure).rejects.toMatchObject({ code: 'USAGE' });
    await expect(failure).rejects.toThrow(text);
  });
});
