import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import {
  RawClient,
  ed25519Identity,
  randomOnion,
  rsaIdentity,
  signRegistration,
  startTestServer,
  type TestServer,
} from '../../../test/support/registry-harness.js';
import type { Socket } from 'node:net';
import type { ClaimStore } from '../store/claim-store.js';
import { PeerTable } from './registry/peer-table.js';
import { onionAddressFromPublicKey } from '../protocol/onion-address.js';
import {
  SMALL_ORDER_POINTS,
  ed25519Pem,
  nonCanonicalBase64,
  realRawKey,
  withTorsion,
} from '../../../test/support/ed25519-torsion.js';
import { logSink } from '../../../test/support/log-sink.js';
import { TokenBucket } from './scheduling/token-bucket.js';
import { delay, waitUntil } from '../../../test/support/wait.js';

let servers: TestServer[] = [];
let clients: RawClient[] = [];

async function server(
  registry: Record<string, string | number> = {},
  options: Parameters<typeof startTestServer>[1] = {},
): Promise<TestServer> {
  const s = await startTestServer(registry, options);
  servers.push(s);
  return s;
}

async function client(s: TestServer): Promise<RawClient> {
  const c = await RawClient.connect(s.url);
  clients.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clients) c.ws.terminate();
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  clients = [];
});

describe('greeting', () => {
  it(
    'sends hello first with protocol 1, a 32-byte base64url challenge, the onion, the features and every ' +
      'configured limit',
    async () => {
      const s = await server();
      const c = await client(s);
      const hello = c.frames[0];
      expect(hello).toEqual({
        type: 'hello',
        protocol: 1,
        challenge: c.challenge,
        onion: s.server.onion,
        features: ['claims', 'address-proof', 'moderation'],
        limits: {
          maxMessageBytes: 16384,
          heartbeatSeconds: 30,
          requestsPerSecond: 20,
          requestBurst: 40,
          maxListLimit: 1000,
          claimDays: 30,
          claimAfterSeconds: 600,
        },
      });
      expect(Buffer.from(c.challenge, 'base64url')).toHaveLength(32);
      expect(c.challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    },
  );

  it('gives every connection a fresh challenge', async () => {
    const s = await server();
    const challenges = new Set<string>();
    for (let i = 0; i < 5; i += 1) challenges.add((await client(s)).challenge);
    expect(challenges.size).toBe(5);
  });

  it('says onion null while the hostname file is not there yet', async () => {
    const s = await server({}, { hostname: null });
    const c = await client(s);
    expect(c.hello.onion).toBeNull();
  });
});

describe('framing', () => {
  it('answers BAD_JSON to a frame that is not JSON and keeps the connection open', async () => {
    const s = await server();
    const c = await client(s);
    c.sendRaw('{not json');
    expect(await c.waitFor((f) => f.type === 'error')).toMatchObject({ code: 'BAD_JSON', id: null });
    expect((await c.request({ type: 'ping' })).type).toBe('pong');
  });

  it('answers BAD_JSON to JSON that is not an object', async () => {
    const s = await server();
    const c = await client(s);
    for (const text of ['[1,2]', '"ping"', '42', 'null']) {
      const from = c.frames.length;
      c.sendRaw(text);
      expect(await c.waitFor((f) => f.type === 'error', 5000, from)).toMatchObject({ code: 'BAD_JSON' });
    }
  });

  it('answers BAD_JSON to a text frame that is not valid UTF-8', async () => {
    const s = await server();
    const c = await client(s);
    c.sendRaw(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    expect(await c.waitFor((f) => f.type === 'error')).toMatchObject({ code: 'BAD_JSON' });
  });

  it('answers BINARY_NOT_SUPPORTED to a binary frame and closes with 1003', async () => {
    const s = await server();
    const c = await client(s);
    c.sendRaw(Buffer.from('{"type":"ping"}'), true);
    expect(await c.waitFor((f) => f.type === 'error')).toMatchObject({ code: 'BINARY_NOT_SUPPORTED', id: null });
    expect((await c.closed).code).toBe(1003);
  });

  it('closes with 1009 a frame larger than the configured limit', async () => {
    const s = await server({ MaxMessageBytes: 2048 });
    const c = await client(s);
    expect(c.hello.limits).toMatchObject({ maxMessageBytes: 2048 });
    c.sendRaw(JSON.stringify({ type: 'ping', pad: 'x'.repeat(3000) }));
    expect((await c.closed).code).toBe(1009);
  });

  it('echoes the request id, string or integer, and null when there was none', async () => {
    const s = await server();
    const c = await client(s);
    c.sendRaw(JSON.stringify({ type: 'ping', id: 'abc' }));
    c.sendRaw(JSON.stringify({ type: 'ping', id: 7 }));
    c.sendRaw(JSON.stringify({ type: 'ping' }));
    await c.waitFor((f) => f.type === 'pong' && f.id === null);
    expect(c.frames.filter((f) => f.type === 'pong').map((f) => f.id)).toEqual(['abc', 7, null]);
  });

  it('refuses an id that is too long or of the wrong type with BAD_REQUEST', async () => {
    const s = await server();
    const c = await client(s);
    c.sendRaw(JSON.stringify({ type: 'ping', id: 'x'.repeat(65) }));
    c.sendRaw(JSON.stringify({ type: 'ping', id: { a: 1 } }));
    c.sendRaw(JSON.stringify({ type: 'ping', id: 1.5 }));
    await c.waitUntil(() => c.frames.filter((f) => f.type === 'error').length === 3);
    for (const f of c.frames.filter((f) => f.type === 'error'))
      expect(f).toMatchObject({ code: 'BAD_REQUEST', id: null });
  });

  it('ignores unknown top-level fields', async () => {
    const s = await server();
    const c = await client(s);
    expect((await c.request({ type: 'ping', extra: { deep: [1, 2] } })).type).toBe('pong');
  });

  it('answers UNKNOWN_TYPE to a type it does not know, and BAD_REQUEST to a missing or non-string type', async () => {
    const s = await server();
    const c = await client(s);
    expect(await c.request({ type: 'teleport' })).toMatchObject({ type: 'error', code: 'UNKNOWN_TYPE' });
    expect(await c.request({})).toMatchObject({ type: 'error', code: 'BAD_REQUEST' });
    expect(await c.request({ type: 5 })).toMatchObject({ type: 'error', code: 'BAD_REQUEST' });
  });

  it('answers pong to ping', async () => {
    const s = await server();
    const c = await client(s);
    expect(await c.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });
});

describe('register', () => {
  it('registers an Ed25519 peer and returns the stored peer object', async () => {
    const s = await server();
    const c = await client(s);
    const id = ed25519Identity();
    const reply = await c.register(id, 'Alice', 5050, id.address.toUpperCase().replace('.ONION', ''));
    expect(reply).toMatchObject({
      type: 'registered',
      peer: { nickname: 'Alice', address: id.address, port: 5050, keyType: 'ed25519' },
    });
    const peer = reply.peer as Record<string, string>;
    expect(peer.publicKey).toContain('-----BEGIN PUBLIC KEY-----');
    expect(new Date(peer.registeredAt as string).toISOString()).toBe(peer.registeredAt);
  });

  it('registers an RSA peer signed with PSS and the maximum salt, as the Python client does', async () => {
    const s = await server();
    const c = await client(s);
    const reply = await c.register(rsaIdentity(2048), 'bob');
    expect(reply).toMatchObject({ type: 'registered', peer: { nickname: 'bob', keyType: 'rsa' } });
  });

  it("refuses a signature made for another connection's challenge with BAD_SIGNATURE", async () => {
    const s = await server();
    const a = await client(s);
    const b = await client(s);
    const id = ed25519Identity();
    const signature = signRegistration(id, a.challenge, 'carol', id.address, 5050);
    const reply = await b.request({
      type: 'register',
      nickname: 'carol',
      address: id.address,
      port: 5050,
      publicKey: id.publicKeyPem,
      signature,
    });
    expect(reply).toMatchObject({ type: 'error', code: 'BAD_SIGNATURE' });
    expect(await b.request({ type: 'lookup', nickname: 'carol' })).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('refuses a signature by another key, or over other values, with BAD_SIGNATURE', async () => {
    const s = await server();
    const c = await client(s);
    const id = ed25519Identity();
    const other = ed25519Identity();
    const base = { type: 'register', nickname: 'dave', address: id.address, port: 5050, publicKey: id.publicKeyPem };
    expect(
      await c.request({ ...base, signature: signRegistration(other, c.challenge, 'dave', id.address, 5050) }),
    ).toMatchObject({ code: 'BAD_SIGNATURE' });
    expect(
      await c.request({ ...base, signature: signRegistration(id, c.challenge, 'dave', id.address, 5051) }),
    ).toMatchObject({ code: 'BAD_SIGNATURE' });
    expect(await c.request({ ...base, signature: 'not base64!' })).toMatchObject({ code: 'BAD_SIGNATURE' });
    expect(await c.request({ ...base, signature: Buffer.alloc(10).toString('base64') })).toMatchObject({
      code: 'BAD_SIGNATURE',
    });
  });

  it.each([
    ['', 'INVALID_NICKNAME'],
    ['-starts-with-dash', 'INVALID_NICKNAME'],
    ['x'.repeat(33), 'INVALID_NICKNAME'],
    ['has space', 'INVALID_NICKNAME'],
    ['ünïcode', 'INVALID_NICKNAME'],
  ])('refuses nickname %j with %s', async (nickname, code) => {
    const s = await server();
    const c = await client(s);
    expect(await c.register(ed25519Identity(), nickname)).toMatchObject({ type: 'error', code });
  });

  it('accepts a 32-character nickname with dots, dashes and underscores', async () => {
    const s = await server();
    const c = await client(s);
    expect(await c.register(ed25519Identity(), `a${'b._-'.repeat(7)}xyz`)).toMatchObject({ type: 'registered' });
  });

  it('refuses an address that fails the v3 checks with INVALID_ADDRESS', async () => {
    const s = await server();
    const c = await client(s);
    const id = ed25519Identity();
    const good = id.address.slice(0, 56);
    const flipped = `${good.slice(0, 10)}${good[10] === 'a' ? 'b' : 'a'}${good.slice(11)}.onion`;
    for (const address of [
      flipped,
      'short.onion',
      `${'a'.repeat(56)}.onion`,
      `${good.slice(0, 55)}1.onion`,
      'expyuzz4wqqyqhjn.onion',
    ]) {
      expect(await c.register(id, 'eve', 5050, address)).toMatchObject({ type: 'error', code: 'INVALID_ADDRESS' });
    }
  });

  it(
    'refuses an address whose key is of small order or has a torsion component with INVALID_ADDRESS, though signed ' +
      '(erratum 1)',
    async () => {
      const s = await server();
      const c = await client(s);
      const id = ed25519Identity();
      const refused = [
        ...Object.values(SMALL_ORDER_POINTS).map((hex) => Buffer.from(hex, 'hex')),
        withTorsion(realRawKey()),
      ];
      for (const key of refused) {
        const reply = await c.register(id, 'eve', 5050, onionAddressFromPublicKey(key));
        expect(reply).toMatchObject({ type: 'error', code: 'INVALID_ADDRESS' });
      }
      expect(await c.register(id, 'eve')).toMatchObject({ type: 'registered' });
    },
  );

  it(
    'refuses an Ed25519 key of small order or with a torsion component with INVALID_PUBLIC_KEY, before its ' +
      'signature (erratum 1)',
    async () => {
      const s = await server();
      const c = await client(s);
      const address = randomOnion();
      for (const key of [
        Buffer.from(SMALL_ORDER_POINTS['the identity (order 1)'] as string, 'hex'),
        withTorsion(realRawKey()),
      ]) {
        const reply = await c.request({
          type: 'register',
          nickname: 'eve',
          address,
          port: 5050,
          publicKey: ed25519Pem(key),
          signature: Buffer.alloc(64).toString('base64'),
        });
        expect(reply).toMatchObject({ type: 'error', code: 'INVALID_PUBLIC_KEY' });
      }
    },
  );

  it(
    "checks the key of an address within the server's signature budget: over it, RATE_LIMITED " + 'comes first',
    async () => {
      const s = await server({ SignatureChecksPerSecond: 1 });
      expect(await (await client(s)).register(ed25519Identity(), 'first')).toMatchObject({ type: 'registered' });
      const c = await client(s);
      const reply = await c.register(
        ed25519Identity(),
        'second',
        5050,
        onionAddressFromPublicKey(withTorsion(realRawKey())),
      );
      expect(reply).toMatchObject({ type: 'error', code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) });
    },
  );

  it(
    'charges the subgroup checks of keys and addresses not checked lately to the signature budget ' + '(erratum 1)',
    async () => {
      // 9 units: one registration of a fresh key and address (1 + 2 checks of 4) takes a whole window.
      const s = await server({ SignatureChecksPerSecond: 9 });
      const started = performance.now();
      const replies = [];
      for (let i = 0; i < 6; i += 1) replies.push(await (await client(s)).register(ed25519Identity(), `fresh${i}`));
      const windows = Math.floor((performance.now() - started) / 1_000) + 1;
      const registered = replies.filter((r) => r.type === 'registered').length;
      expect(registered).toBeGreaterThanOrEqual(1);
      expect(registered).toBeLessThanOrEqual(windows);
      expect(replies.filter((r) => r.code === 'RATE_LIMITED')).toHaveLength(6 - registered);
    },
  );

  it(
    'takes the check of an Ed25519 key in an unusual layout from the budget once it is read: past it, ' +
      'RATE_LIMITED',
    async () => {
      const unusual = (): ReturnType<typeof ed25519Identity> => {
        const id = ed25519Identity();
        return { ...id, publicKeyPem: nonCanonicalBase64(id.publicKeyPem) };
      };
      const roomy = await server();
      expect(await (await client(roomy)).register(unusual(), 'unusual')).toMatchObject({ type: 'registered' });
      // 5 units: the key read and the address's check, not the key's, which only reading it shows.
      const s = await server({ SignatureChecksPerSecond: 5 });
      expect(await (await client(s)).register(unusual(), 'unusual')).toMatchObject({
        type: 'error',
        code: 'RATE_LIMITED',
        retryAfterMs: expect.any(Number),
      });
    },
  );

  it.each([0, 65536, -1, 1.5])('refuses port %j with INVALID_PORT', async (port) => {
    const s = await server();
    const c = await client(s);
    expect(await c.register(ed25519Identity(), 'frank', port)).toMatchObject({ type: 'error', code: 'INVALID_PORT' });
  });

  it('refuses a field of the wrong JSON type with BAD_REQUEST', async () => {
    const s = await server();
    const c = await client(s);
    const id = ed25519Identity();
    expect(
      await c.request({
        type: 'register',
        nickname: 'x',
        address: id.address,
        port: '5050',
        publicKey: id.publicKeyPem,
        signature: 'AA',
      }),
    ).toMatchObject({ code: 'BAD_REQUEST' });
    expect(
      await c.request({
        type: 'register',
        nickname: ['x'],
        address: id.address,
        port: 1,
        publicKey: id.publicKeyPem,
        signature: 'AA',
      }),
    ).toMatchObject({ code: 'BAD_REQUEST' });
    expect(await c.request({ type: 'register', nickname: 'x' })).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('refuses keys that are not Ed25519 or RSA 2048-8192 in SPKI PEM with INVALID_PUBLIC_KEY', async () => {
    const s = await server();
    const c = await client(s);
    const { generateKeyPairSync } = await import('node:crypto');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .publicKey.export({ format: 'pem', type: 'spki' })
      .toString();
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 })
      .publicKey.export({ format: 'pem', type: 'spki' })
      .toString();
    const pkcs1 = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .publicKey.export({ format: 'pem', type: 'pkcs1' })
      .toString();
    const good = ed25519Identity().publicKeyPem;
    const truncated = `${good.slice(0, 40)}\n-----END PUBLIC KEY-----`;
    const id = ed25519Identity();
    for (const publicKey of [ec, small, pkcs1, truncated, 'hello', '']) {
      const reply = await c.request({
        type: 'register',
        nickname: 'gina',
        address: id.address,
        port: 5050,
        publicKey,
        signature: 'AAAA',
      });
      expect(reply).toMatchObject({ type: 'error', code: 'INVALID_PUBLIC_KEY' });
    }
  });

  it('refuses a second registration on the same connection with ALREADY_REGISTERED', async () => {
    const s = await server();
    const c = await client(s);
    await c.register(ed25519Identity(), 'hank');
    expect(await c.register(ed25519Identity(), 'hank2')).toMatchObject({ code: 'ALREADY_REGISTERED' });
  });

  it('keeps nicknames unique case-insensitively: NICKNAME_TAKEN for another key', async () => {
    const s = await server();
    const a = await client(s);
    const b = await client(s);
    await a.register(ed25519Identity(), 'Ivy');
    expect(await b.register(ed25519Identity(), 'IVY')).toMatchObject({ code: 'NICKNAME_TAKEN' });
  });

  it('keeps addresses unique: ADDRESS_TAKEN for another key', async () => {
    const s = await server();
    const a = await client(s);
    const b = await client(s);
    const first = ed25519Identity();
    await a.register(first, 'jack');
    expect(await b.register(ed25519Identity(first.address), 'jill')).toMatchObject({ code: 'ADDRESS_TAKEN' });
  });

  it('answers REGISTRY_FULL when the configured peer limit is reached', async () => {
    const s = await server({ MaxPeers: 2 });
    await (await client(s)).register(ed25519Identity(), 'p1');
    await (await client(s)).register(ed25519Identity(), 'p2');
    expect(await (await client(s)).register(ed25519Identity(), 'p3')).toMatchObject({ code: 'REGISTRY_FULL' });
  });

  it('lets the same key take over from its stale connection: old one gets replaced and 4001', async () => {
    const s = await server();
    const old = await client(s);
    const watcher = await client(s);
    await watcher.request({ type: 'subscribe' });
    const id = ed25519Identity();
    await old.register(id, 'kate');
    await watcher.waitFor((f) => f.type === 'peer_joined');
    const fresh = await client(s);
    expect(await fresh.register(id, 'kate', 6060)).toMatchObject({ type: 'registered', peer: { port: 6060 } });
    await old.waitFor((f) => f.type === 'replaced');
    expect((await old.closed).code).toBe(4001);
    expect(await watcher.request({ type: 'lookup', nickname: 'kate' })).toMatchObject({ peer: { port: 6060 } });
    await watcher.waitUntil(() => watcher.events().length >= 2);
    await delay(150);
    expect(watcher.events().map((e) => [e.type, (e.peer as { port?: number } | undefined)?.port])).toEqual([
      ['peer_joined', 5050],
      ['peer_joined', 6060],
    ]);
  });

  it('a replaced connection closing later does not remove the new registration', async () => {
    const s = await server();
    const old = await client(s);
    const id = ed25519Identity();
    await old.register(id, 'liam');
    const fresh = await client(s);
    await fresh.register(id, 'liam');
    await old.closed;
    expect(await fresh.request({ type: 'lookup', nickname: 'liam' })).toMatchObject({ type: 'peer' });
  });
  it(
    'answers INTERNAL when completing a verified registration fails unexpectedly, and closes that connection alone ' +
      'with 1011',
    async () => {
      const s = await server();
      const c = await client(s);
      const other = await client(s);
      const add = vi.spyOn(PeerTable.prototype, 'add').mockImplementationOnce(() => {
        throw new Error('simulated bug');
      });
      try {
        const id = ed25519Identity();
        const signature = signRegistration(id, c.challenge, 'dave', id.address, 5050);
        c.sendRaw(
          JSON.stringify({
            type: 'register',
            id: 'r',
            nickname: 'dave',
            address: id.address,
            port: 5050,
            publicKey: id.publicKeyPem,
            signature,
          }),
        );
        c.sendRaw(JSON.stringify({ type: 'ping', id: 'p' })); // held while the signature is checked
        expect(await c.closed).toEqual({ code: 1011, reason: 'internal error: this connection is closed, reconnect' });
        expect(c.frames.filter((f) => f.id === 'r' || f.id === 'p')).toMatchObject([
          { type: 'error', id: 'r', code: 'INTERNAL', message: 'internal error' },
        ]);
        expect(await other.request({ type: 'lookup', nickname: 'dave' })).toMatchObject({ code: 'NOT_FOUND' });
      } finally {
        add.mockRestore();
      }
    },
  );

  it(
    'answers INTERNAL to a request whose handler fails unexpectedly, and closes that connection alone ' + 'with 1011',
    async () => {
      const s = await server();
      const c = await client(s);
      const other = await client(s);
      const lookup = vi.spyOn(PeerTable.prototype, 'lookup').mockImplementationOnce(() => {
        throw new Error('simulated bug');
      });
      try {
        expect(await c.request({ type: 'lookup', nickname: 'erin' })).toMatchObject({
          type: 'error',
          code: 'INTERNAL',
          message: 'internal error',
        });
        expect((await c.closed).code).toBe(1011);
        expect((await other.request({ type: 'ping' })).type).toBe('pong');
      } finally {
        lookup.mockRestore();
      }
    },
  );

  it(
    'answers INTERNAL with id null when a frame fails before its request is read, and closes that connection alone ' +
      'with 1011',
    async () => {
      const s = await server();
      const c = await client(s);
      const other = await client(s);
      const take = vi.spyOn(TokenBucket.prototype, 'take').mockImplementationOnce(() => {
        throw new Error('simulated bug');
      });
      try {
        c.sendRaw(JSON.stringify({ type: 'ping', id: 'p' }));
        expect(await c.waitFor((f) => f.type === 'error')).toMatchObject({ id: null, code: 'INTERNAL' });
        expect((await c.closed).code).toBe(1011);
        expect((await other.request({ type: 'ping' })).type).toBe('pong');
      } finally {
        take.mockRestore();
      }
    },
  );
});

/** A claim store that never answers: a database that has stopped responding. */
function storeThatNeverAnswers(): ClaimStore {
  const never = <T>(): Promise<T> => new Promise<T>(() => {});
  return {
    findForRegistration: never,
    claim: never,
    touch: never,
    revert: never,
    releaseClaim: never,
    releaseKey: never,
    releaseNickname: never,
    getByNickname: never,
    list: never,
    purgeExpired: never,
    backup: never,
    close: async () => {},
  };
}

function registerFrame(c: RawClient, nickname: string, id: string): string {
  const identity = ed25519Identity();
  const signature = signRegistration(identity, c.challenge, nickname, identity.address, 5050);
  return JSON.stringify({
    type: 'register',
    id,
    nickname,
    address: identity.address,
    port: 5050,
    publicKey: identity.publicKeyPem,
    signature,
  });
}

/** Sends the frames in one write: they reach the server in one read. */
function sendInOneWrite(c: RawClient, frames: readonly string[]): void {
  const socket = (c.ws as unknown as { _socket: Socket })._socket;
  socket.cork();
  for (const frame of frames) c.sendRaw(frame);
  socket.uncork();
}

describe('requests queued on a connection', () => {
  it(
    'are not read while its registration waits on the store: the sender is pushed back, however ' + 'much it sends',
    async () => {
      const s = await server({}, { openStore: async () => storeThatNeverAnswers() });
      const c = await client(s);
      c.sendRaw(registerFrame(c, 'held', 'reg'));
      const frame = JSON.stringify({ type: 'ping', pad: 'x'.repeat(16_000) });
      const sent = 2_048 * Buffer.byteLength(frame);
      for (let i = 0; i < 2_048; i += 1) c.sendRaw(frame);
      // Whatever the server reads leaves the client's queue; wait until the queue stops moving.
      let last = -1;
      let still = 0;
      await waitUntil(
        "the client's queue to settle",
        () => {
          const queued = c.ws.bufferedAmount;
          still = queued === last ? still + 1 : 0;
          last = queued;
          return queued === 0 || still >= 5;
        },
        { timeoutMs: 10_000, intervalMs: 50 },
      );
      // Only what the kernel's socket buffers hold has left the client (a few MiB on loopback).
      expect(c.ws.bufferedAmount).toBeGreaterThan(sent / 2);
      expect(c.frames.map((f) => f.type)).toEqual(['hello']);
    },
  );

  it('are refused unread past RateLimitBurst waiting, each with RATE_LIMITED and id null, in order', async () => {
    const s = await server({ RateLimitBurst: 5 });
    const c = await client(s);
    const from = c.frames.length;
    sendInOneWrite(c, [
      registerFrame(c, 'queued', 'reg'),
      ...Array.from({ length: 8 }, (_, i) => JSON.stringify({ type: 'ping', id: i })),
    ]);
    await c.waitUntil(() => c.frames.length - from >= 9);
    const replies = c.frames.slice(from);
    expect(replies[0]).toMatchObject({ type: 'registered', id: 'reg' });
    // The five held ran in order (the last over the request budget, which the register took one of).
    expect(replies.slice(1, 6).map((f) => f.id)).toEqual([0, 1, 2, 3, 4]);
    const unread = replies.slice(6);
    expect(unread).toHaveLength(3);
    for (const refusal of unread) {
      expect(refusal).toMatchObject({ type: 'error', id: null, code: 'RATE_LIMITED' });
      expect(refusal.message).toContain('at most 5 are queued');
    }
  });
});

describe('lookup and list', () => {
  it('looks up case-insensitively, before registering, and answers NOT_FOUND for unknown names', async () => {
    const s = await server();
    const a = await client(s);
    await a.register(ed25519Identity(), 'Mallory');
    const b = await client(s);
    expect(await b.request({ type: 'lookup', nickname: 'mALLORY' })).toMatchObject({
      type: 'peer',
      peer: { nickname: 'Mallory' },
    });
    expect(await b.request({ type: 'lookup', nickname: 'nobody' })).toMatchObject({ type: 'error', code: 'NOT_FOUND' });
    expect(await b.request({ type: 'lookup', nickname: 'not a valid name' })).toMatchObject({ code: 'NOT_FOUND' });
    expect(await b.request({ type: 'lookup' })).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('lists in case-insensitive order in pages, with next for the following page', async () => {
    const s = await server();
    const names = ['delta', 'Alpha', 'charlie', 'Bravo', 'echo'];
    for (const name of names) await (await client(s)).register(ed25519Identity(), name);
    const c = await client(s);
    const first = await c.request({ type: 'list', limit: 2 });
    expect((first.peers as Array<{ nickname: string }>).map((p) => p.nickname)).toEqual(['Alpha', 'Bravo']);
    expect(first.next).toBe('Bravo');
    const second = await c.request({ type: 'list', limit: 2, after: first.next });
    expect((second.peers as Array<{ nickname: string }>).map((p) => p.nickname)).toEqual(['charlie', 'delta']);
    const third = await c.request({ type: 'list', limit: 2, after: 'DELTA' });
    expect(third).toMatchObject({ next: null });
    expect((third.peers as Array<{ nickname: string }>).map((p) => p.nickname)).toEqual(['echo']);
    const all = await c.request({ type: 'list' });
    expect((all.peers as unknown[]).length).toBe(5);
    expect(all.next).toBeNull();
  });

  it('refuses a list limit outside 1-1000 or a non-string after with BAD_REQUEST', async () => {
    const s = await server();
    const c = await client(s);
    for (const body of [{ limit: 0 }, { limit: 1001 }, { limit: 2.5 }, { limit: '5' }, { after: 5 }]) {
      expect(await c.request({ type: 'list', ...body })).toMatchObject({ code: 'BAD_REQUEST' });
    }
  });
});

describe('subscribe and unregister', () => {
  it('sends peer_joined and peer_left for changes after subscribing, never for the subscriber itself', async () => {
    const s = await server({ EventBatchMs: 10 });
    const early = await client(s);
    await early.register(ed25519Identity(), 'early');
    const sub = await client(s);
    expect(await sub.request({ type: 'subscribe' })).toMatchObject({ type: 'subscribed' });
    await sub.register(ed25519Identity(), 'self');
    const other = await client(s);
    await other.register(ed25519Identity(), 'other');
    other.close();
    await sub.waitFor((f) => f.type === 'peer_left');
    expect(sub.events()).toEqual([
      expect.objectContaining({ type: 'peer_joined', peer: expect.objectContaining({ nickname: 'other' }) }),
      { type: 'peer_left', nickname: 'other' },
    ]);
  });

  it('unregister removes the peer, tells subscribers, and keeps the connection open', async () => {
    const s = await server({ EventBatchMs: 0 });
    const sub = await client(s);
    await sub.request({ type: 'subscribe' });
    const c = await client(s);
    await c.register(ed25519Identity(), 'nina');
    expect(await c.request({ type: 'unregister' })).toMatchObject({ type: 'unregistered' });
    expect(await c.request({ type: 'lookup', nickname: 'nina' })).toMatchObject({ code: 'NOT_FOUND' });
    await sub.waitFor((f) => f.type === 'peer_left' && f.nickname === 'nina');
    expect(await c.register(ed25519Identity(), 'nina-again')).toMatchObject({ type: 'registered' });
  });

  it('answers NOT_REGISTERED to unregister without a registration', async () => {
    const s = await server();
    const c = await client(s);
    expect(await c.request({ type: 'unregister' })).toMatchObject({ code: 'NOT_REGISTERED' });
  });

  it('removes a peer whose connection closes and tells subscribers', async () => {
    const s = await server({ EventBatchMs: 0 });
    const sub = await client(s);
    await sub.request({ type: 'subscribe' });
    const c = await client(s);
    await c.register(ed25519Identity(), 'oscar');
    c.ws.terminate();
    await sub.waitFor((f) => f.type === 'peer_left' && f.nickname === 'oscar');
    expect(await sub.request({ type: 'lookup', nickname: 'oscar' })).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('lets every connection subscribe: there is no subscriber cap', async () => {
    const s = await server({});
    for (let i = 0; i < 5; i += 1)
      expect(await (await client(s)).request({ type: 'subscribe' })).toMatchObject({ type: 'subscribed' });
    expect(s.server.stats().subscribers).toBe(5);
  });

  it('a subscriber that applies events to a list taken after subscribing ends with a fresh list', async () => {
    const s = await server({ EventBatchMs: 20 });
    const peers: RawClient[] = [];
    for (let i = 0; i < 5; i += 1) {
      const p = await client(s);
      await p.register(ed25519Identity(), `before${i}`);
      peers.push(p);
    }
    const sub = await client(s);
    await sub.request({ type: 'subscribe' });
    const snapshot = await sub.request({ type: 'list' });
    const view = new Map((snapshot.peers as Array<{ nickname: string }>).map((p) => [p.nickname.toLowerCase(), p]));
    for (let i = 0; i < 5; i += 1) {
      const p = await client(s);
      await p.register(ed25519Identity(), `after${i}`);
      if (i % 2 === 0) peers[i]?.ws.terminate();
    }
    await delay(200);
    for (const e of sub.events()) {
      if (e.type === 'peer_joined')
        view.set((e.peer as { nickname: string }).nickname.toLowerCase(), e.peer as { nickname: string });
      else view.delete((e.nickname as string).toLowerCase());
    }
    const fresh = await sub.request({ type: 'list' });
    expect([...view.keys()].sort()).toEqual(
      (fresh.peers as Array<{ nickname: string }>).map((p) => p.nickname.toLowerCase()),
    );
  });
});

describe('heartbeats, budgets and shutdown', () => {
  it('terminates a connection that misses two pings and removes its peer', async () => {
    const s = await server({ HeartbeatSeconds: 1 });
    const silent = new RawClient(s.url, { autoPong: false });
    clients.push(silent);
    await silent.opened;
    await silent.waitFor((f) => f.type === 'hello');
    await silent.register(ed25519Identity(), 'sleepy');
    const alive = await client(s);
    const closed = await silent.closed;
    expect(closed.code).toBe(1006);
    expect(await alive.request({ type: 'lookup', nickname: 'sleepy' })).toMatchObject({ code: 'NOT_FOUND' });
    expect(alive.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('answers RATE_LIMITED over the request budget, then closes with 1008 when it keeps going', async () => {
    const s = await server({ RateLimitPerSecond: 1, RateLimitBurst: 3, RateLimitStrikes: 5 });
    const c = await client(s);
    for (let i = 0; i < 10; i += 1) c.sendRaw(JSON.stringify({ type: 'ping', id: i }));
    const closed = await c.closed;
    expect(c.frames.filter((f) => f.type === 'pong')).toHaveLength(3);
    expect(c.frames.filter((f) => f.type === 'error' && f.code === 'RATE_LIMITED').length).toBeGreaterThanOrEqual(5);
    expect(closed.code).toBe(1008);
  });

  it('closes with 1008 a connection that sends no valid request in time', async () => {
    const s = await server({ IdleTimeoutSeconds: 1 });
    const c = await client(s);
    expect((await c.closed).code).toBe(1008);
  });

  it('closes every connection with 1001 on shutdown', async () => {
    const s = await server();
    const a = await client(s);
    const b = await client(s);
    await a.register(ed25519Identity(), 'quinn');
    await s.server.close();
    expect((await a.closed).code).toBe(1001);
    expect((await b.closed).code).toBe(1001);
  });

  it('refuses new connections past MaxConnections with HTTP 503', async () => {
    const s = await server({ MaxConnections: 1 });
    await client(s);
    const extra = new RawClient(s.url);
    clients.push(extra);
    await expect(extra.opened).rejects.toThrow('HTTP 503');
  });
});

describe('http', () => {
  it(
    'answers plain HTTP on the public listener, /healthz included, with 426 and one line: nothing of uptime, peers ' +
      'or instance',
    async () => {
      const s = await server();
      await (await client(s)).register(ed25519Identity(), 'rita');
      for (const path of ['/healthz', '/', '/peers']) {
        const res = await fetch(`http://127.0.0.1:${s.port}${path}`);
        expect(res.status).toBe(426);
        expect(res.headers.get('upgrade')).toBe('websocket');
        expect(res.headers.get('connection')).toBe('close');
        expect(res.headers.has('peerconnection')).toBe(false);
        const body = await res.text();
        expect(body).toBe('this is a p2p-registry: connect with WebSocket to / (see PROTOCOL.md)\n');
        expect(body).not.toMatch(/uptime|peers|instance|onion|status/i);
      }
      expect((await fetch(`http://127.0.0.1:${s.port}/healthz`, { method: 'HEAD' })).status).toBe(426);
    },
  );

  it('answers a WebSocket upgrade elsewhere than / with 404', async () => {
    const s = await server();
    const c = new RawClient(`ws://127.0.0.1:${s.port}/other`);
    clients.push(c);
    await expect(c.opened).rejects.toThrow('HTTP 404');
  });

  it('reports the onion URL with the configured virtual port', async () => {
    const onion = randomOnion();
    const s = await server({}, { hostname: onion, hiddenService: { HiddenServicePort: 8080 } });
    expect(s.server.url).toBe(`ws://${onion}:8080/`);
  });
});

describe('logs', () => {
  it('counts registrations in the periodic summary line and writes no line per registration at info', async () => {
    const { sink, lines } = logSink();
    const s = await server({}, { logLevel: 'info', logDestination: sink, logSummarySeconds: 1 });
    for (const nickname of ['alice', 'bob', 'carol'])
      expect(await (await client(s)).register(ed25519Identity(), nickname)).toMatchObject({ type: 'registered' });
    await expect.poll(() => lines.some((l) => typeof l.registrations === 'number'), { timeout: 3_000 }).toBe(true);
    await s.close(); // logs what the last interval counted
    expect(lines.filter((l) => String(l.msg).startsWith('peer registered'))).toEqual([]);
    const summaries = lines.filter((l) => typeof l.registrations === 'number');
    expect(summaries[0]).toMatchObject({ level: 30, intervalSeconds: 1, msg: 'summary of the last 1 s' });
    expect(summaries.reduce((sum, l) => sum + (l.registrations as number), 0)).toBe(3);
  });

  it('logs each registration at debug, with its nickname and address only there', async () => {
    const { sink, lines } = logSink();
    const s = await server({}, { logLevel: 'debug', logDestination: sink });
    const id = ed25519Identity();
    expect(await (await client(s)).register(id, 'alice')).toMatchObject({ type: 'registered' });
    await expect
      .poll(() => lines.find((l) => l.msg === 'peer registered'))
      .toMatchObject({ level: 20, nickname: 'alice', address: id.address });
  });
});
