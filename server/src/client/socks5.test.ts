import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { randomOnion, startTestServer, type TestServer } from '../../../test/support/registry-harness.js';
import { createIdentity } from './identity.js';
import { RegistryError } from '../protocol/errors.js';
import { RegistryClient } from './registry-client.js';
import { parseSocksAddress, SocksAgent, socksConnect } from './socks5.js';
import { delay } from '../../../test/support/wait.js';
import {
  startFakeSocksProxy,
  type FakeSocksProxy,
  type FakeSocksProxyOptions,
} from '../../../test/support/fake-socks-proxy.js';

// ---- fixtures: real sockets only ----

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return portOf(server);
}

/** The real registry on 127.0.0.1 (a free port by default), with a HiddenServiceDir holding a valid hostname. */
async function startRegistry(port = 0): Promise<TestServer> {
  const registry = await startTestServer({}, { port });
  cleanups.push(() => registry.close());
  return registry;
}

/** The fake SOCKS5 proxy (test/support/fake-socks-proxy.ts), stopped after the test. */
async function startTestProxy(options: FakeSocksProxyOptions): Promise<FakeSocksProxy> {
  const proxy = await startFakeSocksProxy(options);
  cleanups.push(() => proxy.close());
  return proxy;
}

/** A TCP echo server. */
async function startEcho(): Promise<number> {
  return listen(createServer((socket) => socket.on('error', () => undefined).pipe(socket)));
}

async function readSome(socket: Socket): Promise<string> {
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  return chunk.toString('utf8');
}

// ---- tests ----

describe('socksConnect', () => {
  it('asks the proxy for the destination by DOMAINNAME and returns a socket that carries its bytes', async () => {
    const echo = await startEcho();
    const proxy = await startTestProxy({ route: () => echo });
    const onion = randomOnion();
    const socket = await socksConnect({ proxy: { host: '127.0.0.1', port: proxy.port }, host: onion, port: 80 });
    cleanups.push(() => void socket.destroy());
    expect(proxy.requests).toEqual([{ atyp: 3, host: onion, port: 80 }]);
    socket.write('ping');
    expect(await readSome(socket)).toBe('ping');
  });

  it('keeps bytes that arrive in the same packet as the reply for the caller', async () => {
    const echo = await startEcho();
    const proxy = await startTestProxy({ route: () => echo, early: Buffer.from('early bytes') });
    const socket = await socksConnect({
      proxy: { host: '127.0.0.1', port: proxy.port },
      host: 'example.test',
      port: 7,
    });
    cleanups.push(() => void socket.destroy());
    await delay(20);
    expect(await readSome(socket)).toBe('early bytes');
  });

  it(
    'maps tor\'s "host unreachable" (0x04) to SOCKS_HOST_UNREACHABLE: onion service not ' + 'reachable (yet?)',
    async () => {
      const proxy = await startTestProxy({ route: () => ({ reply: 0x04 }) });
      const attempt = socksConnect({ proxy: { host: '127.0.0.1', port: proxy.port }, host: randomOnion(), port: 80 });
      await expect(attempt).rejects.toSatisfy((err: RegistryError) => {
        expect(err).toBeInstanceOf(RegistryError);
        expect(err.code).toBe('SOCKS_HOST_UNREACHABLE');
        expect(err.replyCode).toBe(0x04);
        expect(err.message).toContain('onion service not reachable (yet?)');
        return true;
      });
    },
  );

  it.each([
    ['0x01', 0x01, 'SOCKS_GENERAL_FAILURE'],
    ['0x05', 0x05, 'SOCKS_CONNECTION_REFUSED'],
    ['0x06', 0x06, 'SOCKS_TTL_EXPIRED'],
    ['0xf0', 0xf0, 'SOCKS_ONION_DESCRIPTOR_NOT_FOUND'],
    ['0xf6', 0xf6, 'SOCKS_ONION_BAD_ADDRESS'],
    ['0x42', 0x42, 'SOCKS_UNKNOWN_REPLY'],
  ])('maps reply code %s to a coded error', async (_hex, reply, code) => {
    const proxy = await startTestProxy({ route: () => ({ reply }) });
    const attempt = socksConnect({ proxy: { host: '127.0.0.1', port: proxy.port }, host: 'x.onion', port: 80 });
    await expect(attempt).rejects.toMatchObject({ code, replyCode: reply });
  });

  it('says to start tor when nothing listens on the proxy port', async () => {
    const free = createServer();
    const port = await listen(free);
    await new Promise<void>((resolve) => free.close(() => resolve()));
    const attempt = socksConnect({ proxy: { host: '127.0.0.1', port }, host: 'x.onion', port: 80 });
    await expect(attempt).rejects.toMatchObject({
      code: 'SOCKS_PROXY_UNREACHABLE',
      message: expect.stringContaining('is tor running'),
    });
  });

  it('times out when the proxy never answers', async () => {
    const silent = await listen(createServer((socket) => socket.on('error', () => undefined)));
    const started = Date.now();
    const attempt = socksConnect({
      proxy: { host: '127.0.0.1', port: silent },
      host: 'x.onion',
      port: 80,
      timeoutMs: 100,
    });
    await expect(attempt).rejects.toMatchObject({ code: 'SOCKS_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('recognises a server that is not a SOCKS5 proxy', async () => {
    const http = await listen(
      createServer((socket) => socket.on('error', () => undefined).end('HTTP/1.1 400 Bad Request\r\n\r\n')),
    );
    const attempt = socksConnect({ proxy: { host: '127.0.0.1', port: http }, host: 'x.onion', port: 80 });
    await expect(attempt).rejects.toMatchObject({ code: 'SOCKS_NOT_SOCKS5' });
  });

  it('reports a proxy that requires authentication', async () => {
    const proxy = await startTestProxy({ route: () => 1, method: 0xff });
    const attempt = socksConnect({ proxy: { host: '127.0.0.1', port: proxy.port }, host: 'x.onion', port: 80 });
    await expect(attempt).rejects.toMatchObject({ code: 'SOCKS_AUTH_REQUIRED' });
  });

  it('offers no authentication without credentials', async () => {
    const echo = await startEcho();
    const proxy = await startTestProxy({ route: () => echo });
    const socket = await socksConnect({ proxy: { host: '127.0.0.1', port: proxy.port }, host: 'x.onion', port: 80 });
    socket.destroy();
    expect(proxy.logins).toEqual([{ methods: [0x00] }]);
  });

  it('logs in with a username and password (RFC 1929) when given them, then connects', async () => {
    const echo = await startEcho();
    const proxy = await startTestProxy({ route: () => echo, accepts: { username: 'registry-1', password: 'x' } });
    const socket = await socksConnect({
      proxy: { host: '127.0.0.1', port: proxy.port, username: 'registry-1', password: 'x' },
      host: 'x.onion',
      port: 80,
    });
    socket.write('through');
    expect(await readSome(socket)).toBe('through');
    socket.destroy();
    expect(proxy.logins).toEqual([{ methods: [0x02], username: 'registry-1', password: 'x' }]);
    expect(proxy.requests).toEqual([{ atyp: 3, host: 'x.onion', port: 80 }]);
  });

  it('reports a proxy that refuses the username and password', async () => {
    const proxy = await startTestProxy({ route: () => 1, accepts: { username: 'someone', password: 'else' } });
    const attempt = socksConnect({
      proxy: { host: '127.0.0.1', port: proxy.port, username: 'me', password: 'x' },
      host: 'x.onion',
      port: 80,
    });
    await expect(attempt).rejects.toMatchObject({
      code: 'SOCKS_AUTH_FAILED',
      message: expect.stringMatching(/refused the SOCKS username and password.*check them, or leave them out/),
    });
    expect(proxy.requests).toEqual([]);
  });

  it('reports a proxy that takes no username and password when given them', async () => {
    const proxy = await startTestProxy({ route: () => 1, method: 0xff });
    const attempt = socksConnect({
      proxy: { host: '127.0.0.1', port: proxy.port, username: 'me', password: 'x' },
      host: 'x.onion',
      port: 80,
    });
    await expect(attempt).rejects.toMatchObject({
      code: 'SOCKS_AUTH_FAILED',
      message: expect.stringMatching(/takes no username and password: leave them out/),
    });
  });

  it('reports a proxy that skips the login it was offered', async () => {
    const proxy = await startTestProxy({ route: () => 1, method: 0x00 });
    const attempt = socksConnect({
      proxy: { host: '127.0.0.1', port: proxy.port, username: 'me', password: 'x' },
      host: 'x.onion',
      port: 80,
    });
    await expect(attempt).rejects.toMatchObject({ code: 'SOCKS_BAD_REPLY' });
  });

  it.each([
    ['a username without a password', { username: 'me' }],
    ['a password without a username', { password: 'x' }],
    ['an empty username', { username: '', password: 'x' }],
    ['a password of 256 bytes', { username: 'me', password: 'p'.repeat(256) }],
  ])('refuses %s before it connects', async (_what, credentials) => {
    const attempt = socksConnect({ proxy: { host: '127.0.0.1', port: 9, ...credentials }, host: 'x.onion', port: 80 });
    await expect(attempt).rejects.toMatchObject({ code: 'SOCKS_BAD_CREDENTIALS' });
  });

  it(
    'reports a reply cut short by the proxy closing (after the method byte, after the login ' + 'status version)',
    async () => {
      for (const [credentials, cut] of [
        [{}, Buffer.of(5)],
        [{ username: 'me', password: 'x' }, Buffer.of(5, 2, 1)],
      ] as const) {
        const rude = await listen(
          createServer((socket) => socket.on('error', () => undefined).once('data', () => socket.end(cut))),
        );
        const attempt = socksConnect({
          proxy: { host: '127.0.0.1', port: rude, ...credentials },
          host: 'x.onion',
          port: 80,
        });
        await expect(attempt).rejects.toMatchObject({ code: 'SOCKS_PROXY_CLOSED' });
      }
    },
  );

  it('reports a proxy that hangs up during the handshake', async () => {
    const rude = await listen(createServer((socket) => socket.on('error', () => undefined).end()));
    const attempt = socksConnect({ proxy: { host: '127.0.0.1', port: rude }, host: 'x.onion', port: 80 });
    await expect(attempt).rejects.toMatchObject({ code: 'SOCKS_PROXY_CLOSED' });
  });

  it('stops when its AbortSignal fires', async () => {
    const silent = await listen(createServer((socket) => socket.on('error', () => undefined)));
    const controller = new AbortController();
    const attempt = socksConnect({
      proxy: { host: '127.0.0.1', port: silent },
      host: 'x.onion',
      port: 80,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 20);
    await expect(attempt).rejects.toMatchObject({ code: 'SOCKS_ABORTED' });
  });

  it('refuses a destination that does not fit in a SOCKS5 request', async () => {
    const proxy = { host: '127.0.0.1', port: 9 };
    await expect(socksConnect({ proxy, host: 'a'.repeat(256), port: 80 })).rejects.toMatchObject({
      code: 'SOCKS_BAD_DESTINATION',
    });
    await expect(socksConnect({ proxy, host: 'x.onion', port: 0 })).rejects.toMatchObject({
      code: 'SOCKS_BAD_DESTINATION',
    });
  });
});

describe('parseSocksAddress', () => {
  it('reads host:port and [ipv6]:port, and rejects anything else', () => {
    expect(parseSocksAddress('127.0.0.1:9050')).toEqual({ host: '127.0.0.1', port: 9050 });
    expect(parseSocksAddress('tor-client:9050')).toEqual({ host: 'tor-client', port: 9050 });
    expect(parseSocksAddress('[::1]:9050')).toEqual({ host: '::1', port: 9050 });
    for (const bad of ['127.0.0.1', ':9050', '127.0.0.1:0', '127.0.0.1:70000', '::1:9050', 'host:port', '']) {
      expect(parseSocksAddress(bad), bad).toBeUndefined();
    }
  });

  it(
    'reads <user>:<password>@ before the address (the password may hold : and @), and rejects incomplete ' +
      'credentials',
    () => {
      expect(parseSocksAddress('registry:x@127.0.0.1:9050')).toEqual({
        host: '127.0.0.1',
        port: 9050,
        username: 'registry',
        password: 'x',
      });
      expect(parseSocksAddress('me:a:b@c@[::1]:9050')).toEqual({
        host: '::1',
        port: 9050,
        username: 'me',
        password: 'a:b@c',
      });
      for (const bad of [
        'registry@127.0.0.1:9050',
        ':x@127.0.0.1:9050',
        'me:@127.0.0.1:9050',
        `me:${'p'.repeat(256)}@127.0.0.1:9050`,
        'me:x@127.0.0.1',
      ]) {
        expect(parseSocksAddress(bad), bad).toBeUndefined();
      }
    },
  );
});

describe('SocksAgent', () => {
  it('lets ws reach the registry by its onion name through the proxy', async () => {
    const registry = await startRegistry();
    const proxy = await startTestProxy({ route: () => registry.port });
    const agent = new SocksAgent({ host: '127.0.0.1', port: proxy.port });
    cleanups.push(() => agent.destroy());
    const ws = new WebSocket(`ws://${registry.onion}:80/`, { agent });
    cleanups.push(() => ws.terminate());
    const [data] = (await once(ws, 'message')) as [Buffer];
    const hello = JSON.parse(data.toString('utf8')) as { type: string; onion: string };
    expect(hello).toMatchObject({ type: 'hello', onion: registry.onion });
    expect(proxy.requests).toEqual([{ atyp: 3, host: registry.onion, port: 80 }]);
  });

  it('passes the SOCKS error to ws', async () => {
    const proxy = await startTestProxy({ route: () => ({ reply: 0x04 }) });
    const agent = new SocksAgent({ host: '127.0.0.1', port: proxy.port });
    cleanups.push(() => agent.destroy());
    const ws = new WebSocket(`ws://${randomOnion()}:80/`, { agent });
    const [err] = (await once(ws, 'error').catch((e: unknown) => [e])) as [RegistryError];
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.code).toBe('SOCKS_HOST_UNREACHABLE');
  });

  it('cancels handshakes in progress when destroyed', async () => {
    const silent = await listen(createServer((socket) => socket.on('error', () => undefined)));
    const agent = new SocksAgent({ host: '127.0.0.1', port: silent });
    const ws = new WebSocket(`ws://${randomOnion()}:80/`, { agent });
    const failed = once(ws, 'error').catch((e: unknown) => [e]) as Promise<[RegistryError]>;
    setTimeout(() => agent.destroy(), 20);
    const [err] = await failed;
    expect(err.code).toBe('SOCKS_ABORTED');
  });
});

describe('RegistryClient through SOCKS5', () => {
  it('registers and looks up through the proxy, which alone sees the onion name', async () => {
    const registry = await startRegistry();
    const proxy = await startTestProxy({
      route: (request) => (request.host === registry.onion ? registry.port : { reply: 0x04 }),
    });
    const client = await RegistryClient.connect({
      url: `ws://${registry.onion}:80/`,
      socks: { host: '127.0.0.1', port: proxy.port },
      identity: createIdentity(),
      reconnect: false,
    });
    cleanups.push(() => client.close());
    expect(client.hello?.onion).toBe(registry.onion);
    const address = randomOnion();
    const peer = await client.register({ nickname: 'alice', address, port: 5050 });
    expect(peer).toMatchObject({ nickname: 'alice', address, port: 5050, keyType: 'ed25519' });
    const { claim, ...registered } = peer;
    expect(claim).toBeNull();
    expect(await client.lookup('ALICE')).toEqual(registered);
    expect(proxy.requests.map((r) => r.host)).toEqual([registry.onion]);
  });

  it('reconnects through the proxy to a restarted registry and registers again', async () => {
    const first = await startRegistry();
    const proxy = await startTestProxy({ route: () => first.port });
    const client = await RegistryClient.connect({
      url: `ws://${first.onion}:80/`,
      socks: { host: '127.0.0.1', port: proxy.port },
      identity: createIdentity(),
      reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    });
    cleanups.push(() => client.close());
    await client.register({ nickname: 'alice', address: randomOnion(), port: 5050 });
    const reconnected = once(client, 'reconnected');
    await first.close();
    await startRegistry(first.port);
    const [info] = (await reconnected) as [{ registered: { nickname: string } | null }];
    expect(info.registered?.nickname).toBe('alice');
    expect(proxy.requests.length).toBeGreaterThanOrEqual(2);
  });

  it("fails to connect with the proxy's coded error when tor cannot reach the onion service", async () => {
    const proxy = await startTestProxy({ route: () => ({ reply: 0x04 }) });
    const attempt = RegistryClient.connect({
      url: `ws://${randomOnion()}:80/`,
      socks: { host: '127.0.0.1', port: proxy.port },
      reconnect: false,
    });
    await expect(attempt).rejects.toSatisfy((err: RegistryError) => {
      expect(err).toBeInstanceOf(RegistryError);
      expect(err.code).toBe('SOCKS_HOST_UNREACHABLE');
      expect(err.message).toContain('onion service not reachable (yet?)');
      return true;
    });
  });
});
