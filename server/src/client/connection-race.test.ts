/**
 * Racing a slow connection (connection-race.ts), over real sockets: a fake SOCKS5 proxy that can
 * leave a CONNECT unanswered, as tor does while it waits on a dead introduction point, in front of
 * the fake registry; and the fake registry alone, for direct connections.
 */
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach } from '../../../test/support/cleanups.js';
import {
  deferredFakeRegistry,
  type FakeRegistry,
  type FakeRegistryOptions,
} from '../../../test/support/fake-registry.js';
import {
  startFakeSocksProxy,
  type FakeSocksProxy,
  type FakeSocksProxyOptions,
  type SocksRoute,
} from '../../../test/support/fake-socks-proxy.js';
import { randomOnion } from '../../../test/support/registry-harness.js';
import { delay, nextEvent, registryRejection as rejection, waitUntil } from '../../../test/support/wait.js';
import { MAX_RACING_ATTEMPTS } from './connection-race.js';
import { RegistryClient, type RegistryClientOptions, type RegistryEvent } from './index.js';

const defer = cleanupsAfterEach();
const fakeRegistry = (options: FakeRegistryOptions = {}): Promise<FakeRegistry> => deferredFakeRegistry(defer, options);

/** A fake SocksPort that, like tor, takes no login or any login. */
async function fakeProxy(options: FakeSocksProxyOptions): Promise<FakeSocksProxy> {
  const proxy = await startFakeSocksProxy({ accepts: 'any', ...options });
  defer(() => proxy.close());
  return proxy;
}

/** Routes the proxy's CONNECTs in turn: the nth takes routes[n], those past the list the last. */
function inTurn(...routes: SocksRoute[]): () => SocksRoute {
  let next = 0;
  return () => routes[Math.min(next++, routes.length - 1)] as SocksRoute;
}

async function client(options: RegistryClientOptions): Promise<RegistryClient> {
  const c = await RegistryClient.connect(options);
  defer(() => c.close());
  return c;
}

/** Options for a client of the onion behind `proxy`, racing after 100 ms. */
function throughProxy(proxy: FakeSocksProxy, more: Partial<RegistryClientOptions> = {}): RegistryClientOptions {
  return {
    url: `ws://${randomOnion()}:80/`,
    socks: { host: '127.0.0.1', port: proxy.port },
    raceDelayMs: 100,
    reconnect: false,
    ...more,
  };
}

describe('racing a slow connection through SOCKS', () => {
  it('overtakes a first attempt that hangs in the proxy with a second one, which greets and serves', async () => {
    const fake = await fakeRegistry();
    const proxy = await fakeProxy({ route: inTurn('stall', fake.port) });
    const c = await client(throughProxy(proxy, { connectTimeoutMs: 10_000 }));
    expect(c.state).toBe('open');
    expect(proxy.requests).toHaveLength(2);
    expect(c.hello?.challenge).toBe(fake.latest.challenge);
    expect(await c.ping()).toBeGreaterThanOrEqual(0);
  });

  it(
    'gives the second attempt SOCKS credentials of its own: the configured username with a random suffix, and a ' +
      'random password',
    async () => {
      const fake = await fakeRegistry();
      const proxy = await fakeProxy({ route: inTurn('stall', fake.port) });
      await client(
        throughProxy(proxy, { socks: { host: '127.0.0.1', port: proxy.port, username: 'registry', password: 'x' } }),
      );
      const [first, second] = proxy.logins;
      expect(first).toEqual({ methods: [0x02], username: 'registry', password: 'x' });
      expect(second?.username).toMatch(/^registry\+race-[0-9a-f]{16}$/);
      expect(second?.password).toMatch(/^[0-9a-f]{32}$/);
    },
  );

  it('gives the second attempt a label of its own when no credentials were configured', async () => {
    const fake = await fakeRegistry();
    const proxy = await fakeProxy({ route: inTurn('stall', fake.port) });
    await client(throughProxy(proxy));
    const [first, second] = proxy.logins;
    expect(first).toEqual({ methods: [0x00] });
    expect(second).toMatchObject({
      methods: [0x02],
      username: expect.stringMatching(/^p2p-registry\+race-[0-9a-f]{16}$/),
    });
  });

  it('closes the losing attempt: its socket to the proxy goes, and the client hears nothing of it', async () => {
    const fake = await fakeRegistry();
    const proxy = await fakeProxy({ route: inTurn('stall', fake.port) });
    const c = await client(throughProxy(proxy, { reconnect: { initialDelayMs: 20, jitter: 0 } }));
    const heard: string[] = [];
    for (const event of ['disconnected', 'reconnecting', 'reconnected', 'closed'] as const)
      c.on(event, () => heard.push(event));
    await waitUntil('the loser gone from the proxy', () => proxy.openSockets === 1);
    await delay(100);
    expect(heard).toEqual([]);
    expect(c.state).toBe('open');
  });

  it(
    'carries on with the first attempt alone when the proxy checks logins (not tor) and refuses the ' + "second one's",
    async () => {
      const fake = await fakeRegistry({ holdHello: (index) => index === 0 });
      const login = { username: 'registry', password: 'x' };
      const proxy = await fakeProxy({ route: () => fake.port, accepts: login });
      const c = new RegistryClient(throughProxy(proxy, { socks: { host: '127.0.0.1', port: proxy.port, ...login } }));
      defer(() => c.close());
      const connecting = c.connect();
      await waitUntil(
        "the second attempt's login refused",
        () => proxy.logins.length === 2 && fake.connections.length === 1,
      );
      fake.greet(fake.latest);
      await connecting;
      expect(c.hello?.challenge).toBe(fake.latest.challenge);
      expect(proxy.requests).toHaveLength(1);
    },
  );

  it('makes no second attempt when the first greets in time', async () => {
    const fake = await fakeRegistry();
    const proxy = await fakeProxy({ route: () => fake.port });
    await client(throughProxy(proxy));
    await delay(300); // three race delays
    expect(proxy.requests).toHaveLength(1);
    expect(proxy.logins).toHaveLength(1);
  });

  it("fails with the first attempt's error when both fail, even when the second failed first", async () => {
    const proxy = await fakeProxy({ route: inTurn({ reply: 0x04, afterMs: 400 }, { reply: 0xf2 }) });
    const err = await rejection(RegistryClient.connect(throughProxy(proxy)));
    expect(err.code).toBe('SOCKS_HOST_UNREACHABLE');
    expect(proxy.requests).toHaveLength(2);
  });

  it(
    `races no more than ${MAX_RACING_ATTEMPTS} attempts however long the first hangs, and closes them all when ` +
      `it gives up`,
    async () => {
      const proxy = await fakeProxy({ route: () => 'stall' });
      const err = await rejection(
        RegistryClient.connect(throughProxy(proxy, { raceDelayMs: 50, connectTimeoutMs: 800 })),
      );
      // The first attempt's timeout: it had the whole connectTimeoutMs, the second what was left.
      expect(err.code).toBe('SOCKS_TIMEOUT');
      expect(err.message).toContain('within 800 ms');
      expect(proxy.requests).toHaveLength(MAX_RACING_ATTEMPTS);
      await waitUntil('every attempt gone from the proxy', () => proxy.openSockets === 0);
    },
  );

  it('gives up within connectTimeoutMs, the second attempt included', async () => {
    const proxy = await fakeProxy({ route: () => 'stall' });
    const started = performance.now();
    await rejection(RegistryClient.connect(throughProxy(proxy, { raceDelayMs: 900, connectTimeoutMs: 1_000 })));
    const took = performance.now() - started;
    expect(proxy.requests).toHaveLength(2);
    // A second attempt with a connectTimeoutMs of its own would hold on until 1,900 ms.
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(1_600);
  });

  it(
    'sends no second attempt when racing is off (raceDelayMs 0), or the delay is not shorter than ' +
      'connectTimeoutMs',
    async () => {
      for (const raceDelayMs of [0, 300]) {
        const proxy = await fakeProxy({ route: () => 'stall' });
        await rejection(RegistryClient.connect(throughProxy(proxy, { raceDelayMs, connectTimeoutMs: 300 })));
        expect(proxy.requests, `raceDelayMs ${raceDelayMs}`).toHaveLength(1);
      }
    },
  );

  it('races every reconnect attempt too, each second attempt with a label of its own', async () => {
    const fake = await fakeRegistry();
    const proxy = await fakeProxy({ route: inTurn(fake.port, 'stall', fake.port, 'stall', fake.port) });
    const c = await client(throughProxy(proxy, { reconnect: { initialDelayMs: 20, jitter: 0 } }));
    for (let drop = 0; drop < 2; drop += 1) {
      const reconnected = nextEvent(c, 'reconnected');
      fake.latest.ws.terminate();
      await reconnected;
    }
    expect(proxy.requests).toHaveLength(5);
    const labels = proxy.logins.map((login) => login.username);
    expect(labels).toEqual([
      undefined,
      undefined,
      expect.stringMatching(/\+race-/),
      undefined,
      expect.stringMatching(/\+race-/),
    ]);
    expect(labels[2]).not.toBe(labels[4]);
  });

  it('closes attempts in flight when the client is closed, and connect() fails with CLOSED', async () => {
    const proxy = await fakeProxy({ route: () => 'stall' });
    const c = new RegistryClient(throughProxy(proxy, { raceDelayMs: 50 }));
    const connecting = c.connect();
    await waitUntil('both attempts at the proxy', () => proxy.requests.length === 2);
    await c.close();
    expect((await rejection(connecting)).code).toBe('CLOSED');
    await waitUntil('every attempt gone from the proxy', () => proxy.openSockets === 0);
  });

  it.each([
    ['negative', -1],
    ['not a number', Number.NaN],
    ['infinite', Number.POSITIVE_INFINITY],
    ["past Node's longest timer", 2 ** 31],
    ['a string', '5000' as unknown as number],
  ])('refuses a raceDelayMs that is %s', (_what, raceDelayMs) => {
    expect(() => new RegistryClient({ url: 'ws://127.0.0.1:1/', raceDelayMs })).toThrow(
      expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('raceDelayMs') }),
    );
  });
});

describe('racing a slow direct connection', () => {
  it('overtakes a connection the registry accepted but does not greet, and closes it with 1000', async () => {
    const fake = await fakeRegistry({ holdHello: (index) => index === 0 });
    const c = await client({ url: fake.url, raceDelayMs: 100 });
    expect(fake.connections).toHaveLength(2);
    expect(c.hello?.challenge).toBe(fake.connections[1]?.challenge);
    await waitUntil('the loser closed', () => fake.connections[0]?.closedWith !== null);
    expect(fake.connections[0]?.closedWith).toBe(1000);
  });

  it(
    'takes the first hello: what the other connection sends, even after a hello of its own, never reaches ' +
      'the client',
    async () => {
      const fake = await fakeRegistry({ holdHello: () => true });
      const c = new RegistryClient({ url: fake.url, raceDelayMs: 50, reconnect: false });
      defer(() => c.close());
      const events: RegistryEvent[] = [];
      c.on('event', (event) => events.push(event));
      const connecting = c.connect();
      await waitUntil('both connections at the registry', () => fake.connections.length === 2);
      // Both greet at once, each followed by an event that names it.
      fake.connections.forEach((connection, index) => {
        fake.greet(connection);
        fake.send({ type: 'peer_left', nickname: `from-${index}` }, connection);
      });
      await connecting;
      const winner = fake.connections.findIndex((connection) => connection.challenge === c.hello?.challenge);
      await waitUntil('the loser closed', () => fake.connections[1 - winner]?.closedWith !== null);
      await c.ping(); // the winner's frames before the pong have been read
      expect(events).toEqual([{ type: 'peer_left', nickname: `from-${winner}` }]);
    },
  );
});
