/**
 * No lock-outs (PROTOCOL.md "Heartbeats and limits"): the caps an attacker can fill do not keep
 * honest peers out, every pipelined request is answered, server-wide budgets are shared fairly,
 * subscribing is not capped, and refusals carry retryAfterMs, which the peer client honours. Each
 * test reproduces a lock-out found against the server, over real sockets.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RegistryError } from '../../server/src/protocol/errors.js';
import { RegistryClient } from '../../server/src/client/registry-client.js';
import { createIdentity } from '../../server/src/client/identity.js';
import { buildConfig } from '../../server/src/server/config/config.js';
import {
  ed25519Identity,
  randomNickname,
  randomOnion,
  RawClient,
  signRegistration,
  startTestServer,
  type Frame,
  type TestServer,
} from '../support/registry-harness.js';

let servers: TestServer[] = [];
let clients: RawClient[] = [];
let sockets: Socket[] = [];
let peers: RegistryClient[] = [];

afterEach(async () => {
  for (const c of clients) c.ws.terminate();
  for (const s of sockets) s.destroy();
  await Promise.all(peers.map((p) => p.close()));
  for (const s of servers) await s.close();
  clients = [];
  sockets = [];
  servers = [];
  peers = [];
});

async function server(registry: Record<string, string | number>): Promise<TestServer> {
  const s = await startTestServer(registry);
  servers.push(s);
  return s;
}

async function client(url: string): Promise<RawClient> {
  const c = await RawClient.connect(url);
  clients.push(c);
  return c;
}

function openTcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
    sockets.push(socket);
  });
}

function registerFrame(c: RawClient, id: string | number, signature?: string): string {
  const identity = ed25519Identity();
  const nickname = randomNickname();
  return JSON.stringify({
    type: 'register',
    id,
    nickname,
    address: identity.address,
    port: 5050,
    publicKey: identity.publicKeyPem,
    signature: signature ?? signRegistration(identity, c.challenge, nickname, identity.address, 5050),
  });
}

/** Sends the frames in one write: they reach the server in one read, so its queue fills at once. */
function sendInOneWrite(c: RawClient, frames: readonly string[]): void {
  const socket = (c.ws as unknown as { _socket: Socket })._socket;
  socket.cork();
  for (const frame of frames) c.sendRaw(frame);
  socket.uncork();
}

describe('requests pipelined past the queue', () => {
  it(
    'are each answered in order, the excess with RATE_LIMITED and retryAfterMs, and the connection ' + 'stays open',
    async () => {
      // The queue's length is the connection's burst (RateLimitBurst).
      const s = await server({ RateLimitBurst: 64, RateLimitPerSecond: 500 });
      const c = await client(s.url);
      const from = c.frames.length;
      // The register takes a signature check; the pings queue behind it (in one write, so the queue
      // fills whatever the speed of the check).
      sendInOneWrite(c, [
        registerFrame(c, 'reg'),
        ...Array.from({ length: 70 }, (_, i) => JSON.stringify({ type: 'ping', id: i })),
      ]);
      await c.waitUntil(() => c.frames.length - from >= 71, 10_000);
      const replies = c.frames.slice(from);
      expect(replies[0]).toMatchObject({ type: 'registered', id: 'reg' });
      const rest = replies.slice(1, 71);
      const pongs = rest.filter((f) => f.type === 'pong');
      const limited = rest.filter((f) => f.type === 'error');
      expect(pongs.length + limited.length).toBe(70);
      expect(pongs.length).toBeGreaterThanOrEqual(60);
      expect(limited.length, 'the queue (RateLimitBurst, 64) was passed').toBeGreaterThan(0);
      for (const refusal of limited) {
        expect(refusal).toMatchObject({ code: 'RATE_LIMITED' });
        expect(refusal.retryAfterMs).toEqual(expect.any(Number));
        expect(Number.isInteger(refusal.retryAfterMs)).toBe(true);
      }
      // Replies keep the order of the requests that were read.
      const ids = pongs.map((f) => f.id as number);
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
      // In order: no refusal comes before a pong of a request sent earlier than the refused ones.
      const firstRefusal = rest.findIndex((f) => f.type === 'error');
      if (firstRefusal >= 0) expect(rest.slice(firstRefusal).every((f) => f.type === 'error')).toBe(true);
      expect((await c.request({ type: 'ping' })).type).toBe('pong');
    },
  );

  it('closes 1008 only by the strike rule, after answering every request read so far', async () => {
    const s = await server({ RateLimitBurst: 64, RateLimitPerSecond: 5_000, RateLimitStrikes: 20 });
    const c = await client(s.url);
    const from = c.frames.length;
    sendInOneWrite(c, [
      registerFrame(c, 'reg'),
      ...Array.from({ length: 200 }, (_, i) => JSON.stringify({ type: 'ping', id: i })),
    ]);
    const { code } = await c.closed;
    expect(code).toBe(1008);
    const replies = c.frames.slice(from);
    expect(replies[0]).toMatchObject({ type: 'registered' });
    expect(replies.filter((f) => f.type === 'pong').length).toBeGreaterThanOrEqual(60);
    expect(replies.at(-1)).toMatchObject({ type: 'error', code: 'RATE_LIMITED' });
  });
});

describe('the pending-connection cap', () => {
  it('closes the oldest idle new connection to admit a newcomer', async () => {
    const s = await server({ MaxPendingConnections: 10 });
    const idle: RawClient[] = [];
    for (let i = 0; i < 10; i += 1) idle.push(await client(s.url));
    const honest = await client(s.url);
    const reply = await honest.register(ed25519Identity(), randomNickname());
    expect(reply.type).toBe('registered');
    const first = await (idle[0] as RawClient).closed;
    expect(first.code).toBe(1008);
    expect(first.reason).toMatch(/oldest/);
    expect((idle[9] as RawClient).ws.readyState).toBe(WebSocket.OPEN);
  });

  it('admits a newcomer while half-open sockets fill the handshake cap', async () => {
    const s = await server({ MaxPendingConnections: 10 });
    for (let i = 0; i < 10; i += 1) await openTcp(s.port);
    const honest = await client(s.url);
    expect((await honest.register(ed25519Identity(), randomNickname())).type).toBe('registered');
  });

  it('keeps admitting honest newcomers while an attacker opens idle connections in a loop', async () => {
    const s = await server({ MaxPendingConnections: 20 });
    let stop = false;
    const attacker = (async () => {
      const deadline = Date.now() + 4_000;
      while (!stop && Date.now() < deadline) {
        await openTcp(s.port).catch(() => undefined);
        const c = new RawClient(s.url);
        clients.push(c);
        await c.opened.catch(() => undefined);
      }
    })();
    const results: Frame[] = [];
    for (let i = 0; i < 10; i += 1) {
      const honest = await client(s.url);
      results.push(await honest.register(ed25519Identity(), randomNickname()));
    }
    stop = true;
    await attacker;
    expect(results.map((r) => r.type)).toEqual(Array(10).fill('registered'));
  });
});

describe('server-wide budgets', () => {
  it(
    'share the signature checks fairly: flooders on many connections cannot take all of them from an ' + 'honest one',
    async () => {
      // 360 units: 40 registrations of fresh keys and addresses, each 1 + two subgroup checks of 4 (erratum 1).
      const s = await server({
        SignatureChecksPerSecond: 360,
        RateLimitPerSecond: 1_000,
        RateLimitBurst: 1_000,
        RateLimitStrikes: 1_000_000,
      });
      const flooders = await Promise.all(Array.from({ length: 10 }, () => client(s.url)));
      // Each flooder keeps far more registrations (with bad signatures) coming than the whole budget.
      const flood = setInterval(() => {
        for (const f of flooders)
          for (let i = 0; i < 10; i += 1) f.sendRaw(registerFrame(f, null as unknown as number, 'AAAA'));
      }, 5);
      try {
        await new Promise((r) => setTimeout(r, 1_200));
        const honest = await client(s.url);
        const refusals: Frame[] = [];
        let reply = await honest.register(ed25519Identity(), randomNickname());
        // At most one retry, after retryAfterMs: the next second's share counts the honest one in.
        for (let attempt = 0; attempt < 1 && reply.type === 'error'; attempt += 1) {
          refusals.push(reply);
          expect(reply).toMatchObject({ code: 'RATE_LIMITED' });
          expect(Number.isInteger(reply.retryAfterMs)).toBe(true);
          await new Promise((r) => setTimeout(r, reply.retryAfterMs as number));
          reply = await honest.register(ed25519Identity(), randomNickname());
        }
        expect(reply.type, `refused ${refusals.length} times first`).toBe('registered');
        // Refusals from a server-wide budget are no strikes: the flooders are still connected.
        expect(flooders.every((f) => f.ws.readyState === WebSocket.OPEN)).toBe(true);
      } finally {
        clearInterval(flood);
      }
    },
  );
});

describe('subscribing is not a scarce first-come resource', () => {
  it('stops the start of a config that still sets MaxSubscribers, saying it was removed, why, and what to do', () => {
    const sections = {
      Host: { HOST: '127.0.0.1', PORT: '0' },
      HiddenService: { HiddenServiceDir: '/tmp/hs', HiddenServicePort: '80' },
      Registry: { MaxSubscribers: '5000' },
    };
    expect(() => buildConfig(sections, {})).toThrow(
      /MaxSubscribers was removed: subscribing is no longer a scarce first-come resource.*delete the line/,
    );
    expect(() => buildConfig({ ...sections, Registry: {} }, { REGISTRY_REGISTRY_MAXSUBSCRIBERS: '1' })).toThrow(
      /REGISTRY_REGISTRY_MAXSUBSCRIBERS.*was removed/,
    );
  });
});

describe('the peer client and retryAfterMs', () => {
  it('retries a lookup refused with retryAfterMs once after that wait, and gets the answer', async () => {
    const s = await server({ RateLimitPerSecond: 4, RateLimitBurst: 2 });
    const peer = await RegistryClient.connect({ url: s.url, reconnect: false });
    peers.push(peer);
    const started = performance.now();
    const answers = await Promise.allSettled([peer.ping(), peer.ping(), peer.lookup('nobody-here')]);
    expect(answers.map((a) => a.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    // The lookup was refused RATE_LIMITED at first, retried after retryAfterMs, and then answered.
    expect(((answers[2] as PromiseRejectedResult).reason as RegistryError).code).toBe('NOT_FOUND');
    expect(performance.now() - started).toBeGreaterThanOrEqual(100);
  });

  it('surfaces a register refused by the signature budget with retryAfterMs on the RegistryError', async () => {
    const s = await server({ SignatureChecksPerSecond: 1 });
    const first = await RegistryClient.connect({ url: s.url, identity: createIdentity(), reconnect: false });
    const second = await RegistryClient.connect({ url: s.url, identity: createIdentity(), reconnect: false });
    peers.push(first, second);
    await first.register({ nickname: randomNickname(), address: randomOnion(), port: 5050 });
    const refused = await second
      .register({ nickname: randomNickname(), address: randomOnion(), port: 5050 })
      .catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RegistryError);
    expect(refused).toMatchObject({ code: 'RATE_LIMITED' });
    const retryAfterMs = (refused as RegistryError).retryAfterMs as number;
    expect(Number.isInteger(retryAfterMs)).toBe(true);
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(1_000);
    await new Promise((r) => setTimeout(r, retryAfterMs));
    expect((await second.register({ nickname: randomNickname(), address: randomOnion(), port: 5050 })).port).toBe(5050);
  });
});
