import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { randomOnion, startTestServer, type TestServer } from '../../../test/support/registry-harness.js';
import { createIdentity, type PeerIdentity } from './identity.js';
import type { PeerRecord } from '../protocol/messages.js';
import {
  backoffDelay,
  DEFAULT_RECONNECT,
  RegistryClient,
  type RegistryClientOptions,
  type RegistryEvent,
} from './index.js';
import { RegistryError } from '../protocol/errors.js';
import { delay, nextEvent } from '../../../test/support/wait.js';

// ---- fixtures: the real registry on 127.0.0.1 ----

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The real registry on 127.0.0.1 (a free port by default), events sent without batching. */
async function startRegistry(port = 0): Promise<TestServer> {
  const registry = await startTestServer({ EventBatchMs: 0 }, { port });
  cleanups.push(() => registry.close());
  return registry;
}

async function client(options: RegistryClientOptions): Promise<RegistryClient> {
  const c = await RegistryClient.connect(options);
  cleanups.push(() => c.close());
  return c;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<RegistryError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected a RegistryError ${code}, got success`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RegistryError);
  expect((err as RegistryError).code).toBe(code);
  return err as RegistryError;
}

const FAST_RECONNECT = { initialDelayMs: 20, maxDelayMs: 100, jitter: 0 };

// ---- tests ----

describe('RegistryClient: requests', () => {
  it("reads the hello: a fresh challenge and the registry's onion address", async () => {
    const registry = await startRegistry();
    const a = await client({ url: registry.url });
    const b = await client({ url: registry.url });
    expect(a.state).toBe('open');
    expect(a.hello).toMatchObject({ protocol: 1, onion: registry.onion, maxMessageBytes: 16_384 });
    expect(a.hello?.challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.hello?.challenge).not.toBe(b.hello?.challenge);
  });

  it('registers with a signature over the challenge, and others look the peer up case-insensitively', async () => {
    const registry = await startRegistry();
    const alice = await client({ url: registry.url, identity: createIdentity() });
    const other = await client({ url: registry.url });
    const address = randomOnion().toUpperCase().replace('.ONION', '');
    const peer = await alice.register({ nickname: 'Alice', address, port: 5050 });
    expect(peer).toMatchObject({
      nickname: 'Alice',
      address: `${address.toLowerCase()}.onion`,
      port: 5050,
      keyType: 'ed25519',
    });
    expect(alice.registration).toEqual(peer);
    const { claim, ...registered } = peer;
    expect(claim).toBeNull();
    expect(await other.lookup('alice')).toEqual(registered);
  });

  it('lists every peer across pages, in nickname order', async () => {
    const registry = await startRegistry();
    for (const nickname of ['carol', 'Alice', 'bob']) {
      const c = await client({ url: registry.url, identity: createIdentity() });
      await c.register({ nickname, address: randomOnion(), port: 1 });
    }
    const reader = await client({ url: registry.url });
    const first = await reader.listPage({ limit: 2 });
    expect(first.peers.map((p) => p.nickname)).toEqual(['Alice', 'bob']);
    expect(first.next).toBe('bob');
    expect((await reader.list(1)).map((p) => p.nickname)).toEqual(['Alice', 'bob', 'carol']);
    expect((await reader.list()).length).toBe(3);
  });

  it("rejects refusals as RegistryError with the registry's code", async () => {
    const registry = await startRegistry();
    const alice = await client({ url: registry.url, identity: createIdentity() });
    const mallory = await client({ url: registry.url, identity: createIdentity() });
    await expectCode(alice.lookup('nobody'), 'NOT_FOUND');
    await expectCode(alice.unregister(), 'NOT_REGISTERED');
    await alice.register({ nickname: 'alice', address: randomOnion(), port: 5050 });
    await expectCode(alice.register({ nickname: 'alice2', address: randomOnion(), port: 5050 }), 'ALREADY_REGISTERED');
    const taken = await expectCode(
      mallory.register({ nickname: 'ALICE', address: randomOnion(), port: 5050 }),
      'NICKNAME_TAKEN',
    );
    expect(taken.fromServer).toBe(true);
    await expectCode(
      mallory.register({ nickname: 'bad nick', address: randomOnion(), port: 5050 }),
      'INVALID_NICKNAME',
    );
  });

  it("refuses a signature made for another connection's challenge", async () => {
    const registry = await startRegistry();
    const identity = createIdentity();
    const first = await client({ url: registry.url });
    // An identity that signs the other connection's challenge, whatever it is asked to sign.
    const replaying: PeerIdentity = {
      publicKeyPem: identity.publicKeyPem,
      sign: (_challenge, nickname, address, port) =>
        identity.sign(first.hello?.challenge ?? '', nickname, address, port),
    };
    const second = await client({ url: registry.url, identity: replaying });
    await expectCode(second.register({ nickname: 'eve', address: randomOnion(), port: 1 }), 'BAD_SIGNATURE');
  });

  it('unregisters, and the peer is gone', async () => {
    const registry = await startRegistry();
    const alice = await client({ url: registry.url, identity: createIdentity() });
    await alice.register({ nickname: 'alice', address: randomOnion(), port: 5050 });
    await alice.unregister();
    expect(alice.registration).toBeNull();
    await expectCode(alice.lookup('alice'), 'NOT_FOUND');
  });

  it('needs an identity to register', async () => {
    const registry = await startRegistry();
    const anonymous = await client({ url: registry.url });
    await expectCode(anonymous.register({ nickname: 'alice', address: randomOnion(), port: 1 }), 'NO_IDENTITY');
  });

  it('answers ping with the round-trip time', async () => {
    const registry = await startRegistry();
    const c = await client({ url: registry.url });
    expect(await c.ping()).toBeGreaterThanOrEqual(0);
  });
});

describe('RegistryClient: events', () => {
  it('delivers peer_joined and peer_left to subscribers, as events and through events()', async () => {
    const registry = await startRegistry();
    const watcher = await client({ url: registry.url });
    await watcher.subscribe();
    const iterator = watcher.events();
    const joined = nextEvent<[PeerRecord]>(watcher, 'peer_joined');
    const bob = await RegistryClient.connect({ url: registry.url, identity: createIdentity(), reconnect: false });
    await bob.register({ nickname: 'bob', address: randomOnion(), port: 7 });
    const [peer] = await joined;
    expect(peer.nickname).toBe('bob');
    await bob.close();
    const seen: RegistryEvent[] = [];
    for await (const event of iterator) {
      seen.push(event);
      if (seen.length === 2) break;
    }
    expect(seen).toEqual([
      { type: 'peer_joined', peer },
      { type: 'peer_left', nickname: 'bob' },
    ]);
  });

  it('ends events() when the client closes', async () => {
    const registry = await startRegistry();
    const c = await client({ url: registry.url });
    const iterator = c.events();
    const next = iterator.next();
    await c.close();
    expect(await next).toEqual({ done: true, value: undefined });
  });

  it('is told when another connection takes over its registration, and does not fight back', async () => {
    const registry = await startRegistry();
    const identity = createIdentity();
    const address = randomOnion();
    const old = await client({ url: registry.url, identity, reconnect: FAST_RECONNECT });
    await old.register({ nickname: 'alice', address, port: 1 });
    const replaced = nextEvent<[]>(old, 'replaced');
    const closed = nextEvent<[RegistryError | null]>(old, 'closed');
    const fresh = await client({ url: registry.url, identity });
    await fresh.register({ nickname: 'alice', address, port: 1 });
    await replaced;
    const [err] = await closed;
    expect(err?.code).toBe('REPLACED');
    expect(old.state).toBe('closed');
    expect((await fresh.lookup('alice')).address).toBe(address);
  });
});

describe('RegistryClient: failures', () => {
  it('refuses to resolve an .onion name without a SOCKS proxy, and a URL that is not ws://', () => {
    expect(() => new RegistryClient({ url: `ws://${randomOnion()}:80/` })).toThrow(
      expect.objectContaining({ code: 'SOCKS_REQUIRED' }),
    );
    expect(() => new RegistryClient({ url: 'http://127.0.0.1:1/' })).toThrow(
      expect.objectContaining({ code: 'BAD_URL' }),
    );
    expect(() => new RegistryClient({ url: 'nonsense' })).toThrow(expect.objectContaining({ code: 'BAD_URL' }));
  });

  it('refuses SOCKS credentials that cannot be sent before it connects, rather than at every attempt', () => {
    const socks = { host: '127.0.0.1', port: 9050, username: 'label' };
    expect(() => new RegistryClient({ url: `ws://${randomOnion()}:80/`, socks })).toThrow(
      expect.objectContaining({ code: 'SOCKS_BAD_CREDENTIALS' }),
    );
  });

  it('says what to check when nothing listens', async () => {
    const registry = await startRegistry();
    const url = registry.url;
    await registry.close();
    const err = await expectCode(RegistryClient.connect({ url }), 'CONNECT_FAILED');
    expect(err.message).toContain('is the registry running');
  });

  it('times out a request that gets no reply, and a server that sends no hello', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    await once(wss, 'listening');
    let greet = true;
    wss.on('connection', (ws) => {
      if (greet)
        ws.send(
          JSON.stringify({
            type: 'hello',
            protocol: 1,
            challenge: 'c',
            onion: null,
            limits: { maxMessageBytes: 16384 },
          }),
        );
      cleanups.push(() => ws.terminate());
    });
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
    const c = await client({ url, requestTimeoutMs: 50, reconnect: false });
    await expectCode(c.ping(), 'TIMEOUT');
    greet = false;
    await expectCode(RegistryClient.connect({ url, connectTimeoutMs: 50 }), 'TIMEOUT');
  });

  it('refuses a registry that speaks another protocol version', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    await once(wss, 'listening');
    wss.on('connection', (ws) =>
      ws.send(JSON.stringify({ type: 'hello', protocol: 2, challenge: 'c', onion: null, limits: {} })),
    );
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
    await expectCode(RegistryClient.connect({ url }), 'PROTOCOL_MISMATCH');
  });

  it('fails pending requests with CLOSED on close()', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    await once(wss, 'listening');
    wss.on('connection', (ws) =>
      ws.send(JSON.stringify({ type: 'hello', protocol: 1, challenge: 'c', onion: null, limits: {} })),
    );
    const c = await RegistryClient.connect({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/` });
    const pending = expectCode(c.ping(), 'CLOSED');
    await c.close();
    await pending;
    await expectCode(c.ping(), 'CLOSED');
    expect(c.state).toBe('closed');
  });
});

describe('RegistryClient: reconnection', () => {
  it('reconnects to a restarted registry and registers and subscribes again', async () => {
    const first = await startRegistry();
    const alice = await client({ url: first.url, identity: createIdentity(), reconnect: FAST_RECONNECT });
    const address = randomOnion();
    await alice.register({ nickname: 'alice', address, port: 5050 });
    await alice.subscribe();
    const disconnected = nextEvent<[{ code: number; willReconnect: boolean }]>(alice, 'disconnected');
    const reconnected = nextEvent<[{ registered: PeerRecord | null; subscribed: boolean }]>(alice, 'reconnected');
    await first.close();
    const [lost] = await disconnected;
    expect(lost).toMatchObject({ code: 1001, willReconnect: true });
    expect(alice.state).toBe('reconnecting');
    await expectCode(alice.ping(), 'NOT_CONNECTED');

    const second = await startRegistry(first.port);
    const [info] = await reconnected;
    expect(info.registered).toMatchObject({ nickname: 'alice', address });
    expect(info.subscribed).toBe(true);
    expect(alice.state).toBe('open');

    const other = await client({ url: second.url, identity: createIdentity() });
    expect((await other.lookup('alice')).address).toBe(address);
    const joined = nextEvent<[PeerRecord]>(alice, 'peer_joined');
    await other.register({ nickname: 'bob', address: randomOnion(), port: 1 });
    expect((await joined)[0].nickname).toBe('bob');
  });

  it('reports a registration it cannot restore', async () => {
    const first = await startRegistry();
    const alice = await client({
      url: first.url,
      identity: createIdentity(),
      reconnect: { initialDelayMs: 800, jitter: 0 },
    });
    await alice.register({ nickname: 'alice', address: randomOnion(), port: 1 });
    await first.close();
    const second = await startRegistry(first.port);
    const squatter = await client({ url: second.url, identity: createIdentity() });
    await squatter.register({ nickname: 'alice', address: randomOnion(), port: 1 });
    const lost = nextEvent<[RegistryError]>(alice, 'registration_lost');
    const reconnected = nextEvent<[{ registered: PeerRecord | null }]>(alice, 'reconnected');
    expect((await lost)[0].code).toBe('NICKNAME_TAKEN');
    expect((await reconnected)[0].registered).toBeNull();
  });

  it('gives up after maxAttempts', async () => {
    const registry = await startRegistry();
    const c = await client({ url: registry.url, reconnect: { ...FAST_RECONNECT, maxAttempts: 2 } });
    const attempts: number[] = [];
    c.on('reconnecting', ({ attempt }) => attempts.push(attempt));
    const closed = nextEvent<[RegistryError | null]>(c, 'closed');
    await registry.close();
    const [err] = await closed;
    expect(err?.code).toBe('RECONNECT_FAILED');
    expect(attempts).toEqual([1, 2]);
  });

  it('stays closed when reconnection is disabled', async () => {
    const registry = await startRegistry();
    const c = await client({ url: registry.url, reconnect: false });
    const closed = nextEvent<[RegistryError | null]>(c, 'closed');
    await registry.close();
    expect((await closed)[0]?.code).toBe('CONNECTION_CLOSED');
  });

  it('stops reconnecting when closed', async () => {
    const registry = await startRegistry();
    const c = await client({ url: registry.url, reconnect: { initialDelayMs: 10_000 } });
    const reconnecting = nextEvent(c, 'reconnecting');
    await registry.close();
    await reconnecting;
    await c.close();
    expect(c.state).toBe('closed');
  });

  it('drops a connection that shows no sign of life, and reconnects', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
    cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    await once(wss, 'listening');
    wss.on('connection', (ws) => {
      ws.send(JSON.stringify({ type: 'hello', protocol: 1, challenge: 'c', onion: null, limits: {} }));
      cleanups.push(() => ws.terminate());
    });
    const c = await client({
      url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`,
      livenessTimeoutMs: 60,
      reconnect: FAST_RECONNECT,
    });
    const [info] = await nextEvent<[{ code: number; willReconnect: boolean }]>(c, 'disconnected');
    expect(info).toMatchObject({ code: 1006, willReconnect: true });
    await nextEvent(c, 'reconnected');
  });

  it('keeps a quiet connection whose server answers its pings', async () => {
    const registry = await startRegistry();
    const c = await client({ url: registry.url, livenessTimeoutMs: 60 });
    let dropped = false;
    c.on('disconnected', () => {
      dropped = true;
    });
    await delay(250);
    expect(dropped).toBe(false);
    expect(c.state).toBe('open');
  });

  it('backs off exponentially up to the cap, with jitter below the nominal delay', () => {
    const options = { ...DEFAULT_RECONNECT, initialDelayMs: 100, maxDelayMs: 1000, jitter: 0.5 };
    expect([1, 2, 3, 4, 5, 10].map((n) => backoffDelay(n, options, () => 0))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(3, options, () => 1)).toBe(200);
    expect(() => new RegistryClient({ url: 'ws://127.0.0.1:1/', reconnect: { jitter: 2 } })).toThrow(/jitter/);
  });

  it("refuses a maxDelayMs past Node's longest timer, which would fire after 1 ms and retry at once", () => {
    for (const maxDelayMs of [2 ** 31, Number.POSITIVE_INFINITY]) {
      expect(
        () => new RegistryClient({ url: 'ws://127.0.0.1:1/', reconnect: { maxDelayMs } }),
        String(maxDelayMs),
      ).toThrow(/maxDelayMs must be <= 2147483647/);
    }
    expect(
      () => new RegistryClient({ url: 'ws://127.0.0.1:1/', reconnect: { maxDelayMs: 2 ** 31 - 1 } }),
    ).not.toThrow();
  });
});
