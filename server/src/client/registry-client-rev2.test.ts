/**
 * The client's side of PROTOCOL.md revision 2, over real sockets: against a fake registry that
 * speaks the rev-2 frames (test/support/fake-registry.ts), and against the real server of
 * test/support/registry-harness.ts (rev 1 until the server side lands; the tests hold for both).
 */
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach } from '../../../test/support/cleanups.js';
import {
  addressProofVerifies,
  deferredFakeRegistry,
  type FakeRegistry,
  REV2_LIMITS,
  type FakeFrame,
  type FakeRegistryOptions,
} from '../../../test/support/fake-registry.js';
import { randomOnion, startTestServer } from '../../../test/support/registry-harness.js';
import { torOnionKey } from '../../../test/support/tor-onion-key.js';
import { delay, nextEvent, registryRejection as rejection, waitUntil } from '../../../test/support/wait.js';
import type { RegistryError } from '../protocol/errors.js';
import { createIdentity } from './identity.js';
import { onionKeyFromBytes } from './onion-key.js';
import { MAX_RETRY_AFTER_MS } from './requests.js';
import {
  RegistryClient,
  type Claim,
  type DisconnectInfo,
  type ReconnectedInfo,
  type RegistryClientOptions,
  type RegistryEvent,
} from './index.js';

const defer = cleanupsAfterEach();
const fakeRegistry = (options: FakeRegistryOptions = {}): Promise<FakeRegistry> => deferredFakeRegistry(defer, options);

async function client(options: RegistryClientOptions): Promise<RegistryClient> {
  const c = await RegistryClient.connect({ identity: createIdentity(), ...options });
  defer(() => c.close());
  return c;
}

const FAST_RECONNECT = { initialDelayMs: 20, maxDelayMs: 100, jitter: 0 };

describe('RegistryClient, revision 2: hello', () => {
  it('reads the features and limits of a revision-2 hello', async () => {
    const fake = await fakeRegistry();
    const c = await client({ url: fake.url });
    expect(c.hello?.features).toEqual(['claims', 'address-proof']);
    expect(c.hello?.limits).toEqual(REV2_LIMITS);
  });

  it('sees no features in a revision-1 hello, and registers without a claim or a verified address', async () => {
    const fake = await fakeRegistry({ revision: 1 });
    const c = await client({ url: fake.url });
    expect(c.hello?.features).toEqual([]);
    const key = torOnionKey();
    const peer = await c.register({
      nickname: 'alice',
      address: key.address,
      port: 1,
      onionKey: onionKeyFromBytes(key.file),
    });
    expect(peer).toMatchObject({ addressVerified: false, claim: null });
    expect(c.claim).toBeNull();
  });
});

describe('RegistryClient, revision 2: address proof', () => {
  it(
    "adds an address proof signed by the onion key over this connection's challenge, and is " + 'addressVerified',
    async () => {
      const fake = await fakeRegistry();
      const key = torOnionKey();
      const c = await client({ url: fake.url });
      const peer = await c.register({
        nickname: 'alice',
        address: key.address,
        port: 5050,
        onionKey: onionKeyFromBytes(key.file),
      });
      const [request] = fake.requestsOf('register');
      expect(typeof request?.addressProof).toBe('string');
      expect(addressProofVerifies(request as FakeFrame, fake.latest.challenge)).toBe(true);
      expect(peer).toMatchObject({ nickname: 'alice', address: key.address, addressVerified: true, claim: null });
    },
  );

  it('sends no proof without an onion key', async () => {
    const fake = await fakeRegistry();
    const c = await client({ url: fake.url });
    const peer = await c.register({ nickname: 'alice', address: randomOnion(), port: 5050 });
    expect(fake.requestsOf('register')[0]).not.toHaveProperty('addressProof');
    expect(peer.addressVerified).toBe(false);
  });

  it('refuses an onion key of another address before sending anything (ONION_KEY_MISMATCH)', async () => {
    const fake = await fakeRegistry();
    const c = await client({ url: fake.url });
    const key = torOnionKey();
    const other = randomOnion();
    const err = await rejection(
      c.register({ nickname: 'alice', address: other, port: 1, onionKey: onionKeyFromBytes(key.file) }),
    );
    expect(err.code).toBe('ONION_KEY_MISMATCH');
    expect(err.message).toContain(key.address);
    expect(err.message).toContain(other);
    expect(fake.requestsOf('register')).toEqual([]);
  });

  it('proves the address again with the new challenge when it registers again after a reconnect', async () => {
    const fake = await fakeRegistry();
    const key = torOnionKey();
    const c = await client({ url: fake.url, reconnect: FAST_RECONNECT });
    await c.register({ nickname: 'alice', address: key.address, port: 1, onionKey: onionKeyFromBytes(key.file) });
    const reconnected = nextEvent<[ReconnectedInfo]>(c, 'reconnected');
    fake.latest.ws.terminate();
    const [info] = await reconnected;
    expect(info.registered?.addressVerified).toBe(true);
    const second = fake.requestsOf('register')[1] as FakeFrame;
    expect(addressProofVerifies(second, fake.latest.challenge)).toBe(true);
  });
});

describe('RegistryClient, revision 2: claims', () => {
  it('carries the claim of the registered reply', async () => {
    const fake = await fakeRegistry();
    const until = '2030-01-01T00:00:00.000Z';
    fake.responders.push((request) =>
      request.type === 'register'
        ? {
            type: 'registered',
            claim: { until },
            peer: {
              nickname: 'alice',
              address: request.address,
              port: 1,
              publicKey: request.publicKey,
              keyType: 'ed25519',
              registeredAt: until,
              addressVerified: false,
            },
          }
        : undefined,
    );
    const c = await client({ url: fake.url });
    const peer = await c.register({ nickname: 'alice', address: randomOnion(), port: 1 });
    expect(peer.claim).toEqual({ until });
    expect(c.claim).toEqual({ until });
  });

  it('takes the claim of a later claimed message, and emits it', async () => {
    const fake = await fakeRegistry();
    const c = await client({ url: fake.url });
    await c.register({ nickname: 'alice', address: randomOnion(), port: 1 });
    expect(c.claim).toBeNull();
    const events: RegistryEvent[] = [];
    c.on('event', (event) => events.push(event));
    const claimed = nextEvent<[Claim]>(c, 'claimed');
    const until = '2030-01-01T00:00:00.000Z';
    fake.send({ type: 'claimed', claim: { until } });
    expect(await claimed).toEqual([{ until }]);
    expect(c.claim).toEqual({ until });
    expect(c.registration?.claim).toEqual({ until });
    expect(events).toEqual([{ type: 'claimed', claim: { until } }]);
  });

  it('asks for release with unregister({ release: true }), and not otherwise', async () => {
    const fake = await fakeRegistry();
    const c = await client({ url: fake.url });
    await c.register({ nickname: 'alice', address: randomOnion(), port: 1 });
    await c.unregister();
    await c.register({ nickname: 'alice', address: randomOnion(), port: 1 });
    await c.unregister({ release: true });
    const [plain, release] = fake.requestsOf('unregister');
    expect(plain).not.toHaveProperty('release');
    expect(release).toMatchObject({ release: true });
    expect(c.registration).toBeNull();
  });
});

describe('RegistryClient, revision 2: eviction', () => {
  it('closes with EVICTED after evicted and 4002, and does not reconnect', async () => {
    const fake = await fakeRegistry();
    const c = await client({ url: fake.url, reconnect: FAST_RECONNECT });
    await c.register({ nickname: 'alice', address: randomOnion(), port: 1 });
    const evicted = nextEvent<[string]>(c, 'evicted');
    const disconnected = nextEvent<[DisconnectInfo]>(c, 'disconnected');
    const closed = nextEvent<[RegistryError | null]>(c, 'closed');
    fake.send({ type: 'evicted', reason: 'address proven by its owner' });
    fake.latest.ws.close(4002, 'evicted');
    expect(await evicted).toEqual(['address proven by its owner']);
    expect((await disconnected)[0]).toMatchObject({ code: 4002, willReconnect: false });
    const [error] = await closed;
    expect(error?.code).toBe('EVICTED');
    expect(error?.message).toContain('address proven by its owner');
    expect(error?.message).toContain('--onion-key');
    await delay(150); // several reconnect delays: none is tried
    expect(fake.connections).toHaveLength(1);
    expect(c.state).toBe('closed');
  });

  it('takes close code 4002 alone as an eviction too', async () => {
    const fake = await fakeRegistry();
    const c = await client({ url: fake.url, reconnect: FAST_RECONNECT });
    const closed = nextEvent<[RegistryError | null]>(c, 'closed');
    fake.latest.ws.close(4002, '');
    expect((await closed)[0]?.code).toBe('EVICTED');
    await delay(100);
    expect(fake.connections).toHaveLength(1);
  });
});

describe('RegistryClient, revision 2: retryAfterMs', () => {
  it('surfaces retryAfterMs of UNAVAILABLE and RATE_LIMITED on the RegistryError', async () => {
    const fake = await fakeRegistry();
    fake.responders.push((request) =>
      request.type === 'register'
        ? { type: 'error', code: 'UNAVAILABLE', message: 'store unreachable', retryAfterMs: 2500 }
        : undefined,
    );
    fake.responders.push((request) =>
      request.type === 'ping' ? { type: 'error', code: 'RATE_LIMITED', message: 'slow', retryAfterMs: 40 } : undefined,
    );
    const c = await client({ url: fake.url });
    const unavailable = await rejection(c.register({ nickname: 'alice', address: randomOnion(), port: 1 }));
    expect(unavailable).toMatchObject({ code: 'UNAVAILABLE', retryAfterMs: 2500, fromServer: true });
    expect(await rejection(c.ping())).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 40 });
  });

  it("waits at least retryAfterMs before a reconnect's register is tried again", async () => {
    const fake = await fakeRegistry();
    const c = await client({ url: fake.url, reconnect: FAST_RECONNECT });
    await c.register({ nickname: 'alice', address: randomOnion(), port: 1 });
    let refusals = 0;
    fake.responders.push((request) => {
      if (request.type !== 'register' || refusals >= 1) return undefined;
      refusals += 1;
      return { type: 'error', code: 'UNAVAILABLE', message: 'store unreachable', retryAfterMs: 400 };
    });
    const delays: number[] = [];
    c.on('reconnecting', ({ delayMs }) => delays.push(delayMs));
    const reconnected = nextEvent<[ReconnectedInfo]>(c, 'reconnected');
    fake.latest.ws.terminate();
    await waitUntil('the refused re-register', () => fake.requestsOf('register').length === 2);
    const refusedAt = performance.now();
    const [info] = await reconnected;
    expect(performance.now() - refusedAt).toBeGreaterThanOrEqual(390);
    expect(info.registered?.nickname).toBe('alice');
    expect(delays[0]).toBeLessThan(100);
    expect(delays[1]).toBeGreaterThanOrEqual(400);
  });

  it(
    "caps a reconnect's wait for a huge retryAfterMs, instead of overflowing the timer and " + 'retrying at once',
    async () => {
      const fake = await fakeRegistry();
      const c = await client({ url: fake.url, reconnect: FAST_RECONNECT });
      await c.register({ nickname: 'alice', address: randomOnion(), port: 1 });
      // Past Node's longest timer (2^31-1 ms), which then fires after 1 ms.
      fake.responders.push((request) =>
        request.type === 'register'
          ? { type: 'error', code: 'UNAVAILABLE', message: 'store unreachable', retryAfterMs: 2 ** 31 }
          : undefined,
      );
      const delays: number[] = [];
      c.on('reconnecting', ({ delayMs }) => delays.push(delayMs));
      fake.latest.ws.terminate();
      await waitUntil('the wait the refused re-register asked for', () => delays.length >= 2);
      expect(delays[1]).toBe(MAX_RETRY_AFTER_MS);
      await delay(200); // many times what an overflowed timer waits: no attempt is made
      expect(fake.connections).toHaveLength(2);
      expect(c.state).toBe('reconnecting');
    },
  );
});

describe('RegistryClient, revision 2: what it does not know', () => {
  it('ignores unknown message types and fields, and keeps working', async () => {
    const fake = await fakeRegistry();
    fake.responders.push((request) => (request.type === 'ping' ? { type: 'pong', later: { nested: [1] } } : undefined));
    const c = await client({ url: fake.url });
    const events: RegistryEvent[] = [];
    c.on('event', (event) => events.push(event));
    fake.send({ type: 'something_from_revision_3', peer: 'x' });
    fake.send({ type: 'peer_left', nickname: 'bob', later: true });
    expect(await c.ping()).toBeGreaterThanOrEqual(0);
    expect(events).toEqual([{ type: 'peer_left', nickname: 'bob' }]);
    expect(c.state).toBe('open');
  });
});

describe('RegistryClient, revision 2: against the real registry', () => {
  it(
    'registers with an onion key, verified exactly when the registry has the address-proof feature, ' + 'and releases',
    async () => {
      const registry = await startTestServer({ EventBatchMs: 0 });
      defer(() => registry.close());
      const c = await client({ url: registry.url });
      const key = torOnionKey();
      const peer = await c.register({
        nickname: 'alice',
        address: key.address,
        port: 5050,
        onionKey: onionKeyFromBytes(key.file),
      });
      const features = c.hello?.features ?? [];
      expect(peer.addressVerified).toBe(features.includes('address-proof'));
      expect((await c.lookup('alice')).addressVerified).toBe(peer.addressVerified);
      await c.unregister({ release: true });
      expect(c.registration).toBeNull();
      await expect(c.lookup('alice')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    },
  );
});
