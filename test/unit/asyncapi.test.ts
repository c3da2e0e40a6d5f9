import { verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { ErrorCode } from '../../server/src/protocol/errors.js';
import {
  ASYNCAPI_PATH,
  checkClientMessage,
  checkServerMessage,
  messageSchemas,
  resolveRef,
} from '../support/message-schemas.js';
import {
  RawClient,
  ed25519Identity,
  startTestServer,
  type Frame,
  type TestServer,
} from '../support/registry-harness.js';

const REQUESTS = ['register', 'lookup', 'list', 'subscribe', 'unregister', 'ping'];
const SERVER_MESSAGES = [
  'hello',
  'error',
  'registered',
  'peer',
  'peers',
  'subscribed',
  'unregistered',
  'pong',
  'replaced',
  'peer_joined',
  'peer_left',
  'claimed',
  'evicted',
  'blocked',
];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value at a path of plain keys, failing the test when a step is missing. */
function at(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (!isRecord(current) || !Object.hasOwn(current, key)) throw new Error(`no ${path.join('.')} in the document`);
    current = current[key];
  }
  return current;
}

function refsIn(value: unknown, found: string[] = []): string[] {
  if (Array.isArray(value)) for (const item of value) refsIn(item, found);
  else if (isRecord(value)) {
    for (const [key, inner] of Object.entries(value)) {
      if (key === '$ref' && typeof inner === 'string') found.push(inner);
      else refsIn(inner, found);
    }
  }
  return found;
}

/** A valid server message with one change, for the rejection tests. */
function example(name: string, index = 0): Record<string, unknown> {
  const payload = messageSchemas().server.get(name)?.examples[index]?.payload;
  if (!isRecord(payload)) throw new Error(`no example ${index} of ${name}`);
  return structuredClone(payload);
}

describe('docs/asyncapi.yaml', () => {
  it('parses as YAML and is an AsyncAPI 3.0 document with one channel at /', () => {
    const { document } = messageSchemas();
    expect(document.asyncapi).toBe('3.0.0');
    const channels = at(document, 'channels');
    expect(Object.values(channels as object).map((channel: unknown) => at(channel, 'address'))).toEqual(['/']);
  });

  it('has no reference that points at nothing', () => {
    const { document } = messageSchemas();
    const refs = refsIn(document);
    expect(refs.length).toBeGreaterThan(50);
    for (const ref of refs) expect(() => resolveRef(document, ref), ref).not.toThrow();
  });

  it('compiles every component schema with ajv in strict mode', () => {
    const { document, compile } = messageSchemas();
    for (const name of Object.keys(at(document, 'components', 'schemas') as object)) {
      expect(() => compile({ $ref: `#/components/schemas/${name}` }), name).not.toThrow();
    }
  });

  it('describes every request as received and every server message as sent, each one way only', () => {
    const { client, server } = messageSchemas();
    expect([...client.keys()].sort()).toEqual([...REQUESTS].sort());
    expect([...server.keys()].sort()).toEqual([...SERVER_MESSAGES].sort());
  });

  it('gives every message an example, and every example matches its message schema and its type', () => {
    const { client, server } = messageSchemas();
    for (const message of [...client.values(), ...server.values()]) {
      expect(message.examples.length, message.name).toBeGreaterThan(0);
      for (const { name, payload } of message.examples) {
        expect(
          message.validate(payload),
          `${message.name} example "${name}": ${JSON.stringify(message.validate.errors)}`,
        ).toBe(true);
        expect(at(payload, 'type'), `${message.name} example "${name}"`).toBe(message.name);
      }
    }
  });

  it("lists exactly the server's error codes plus the revision-2 codes it marks as planned", () => {
    const { document } = messageSchemas();
    const codes = at(document, 'components', 'schemas', 'ErrorCode', 'enum') as string[];
    const planned = at(document, 'components', 'schemas', 'ErrorCode', 'x-planned') as string[];
    expect(new Set(codes).size).toBe(codes.length);
    const serverCodes = Object.values(ErrorCode) as string[];
    expect([...codes].sort()).toEqual([...serverCodes, ...planned].sort());
    // A planned code the server has since implemented means the docs still call it planned.
    expect(planned.filter((code) => serverCodes.includes(code))).toEqual([]);
  });

  it(
    "carries a register example signed over the hello example's challenge, a test vector that " + 'PROTOCOL.md repeats',
    () => {
      const hello = example('hello');
      const register = messageSchemas().client.get('register')?.examples[0]?.payload;
      const [nickname, address, port, publicKey, signature] = [
        'nickname',
        'address',
        'port',
        'publicKey',
        'signature',
      ].map((name) => String(at(register, name)));
      if (
        nickname === undefined ||
        address === undefined ||
        port === undefined ||
        publicKey === undefined ||
        signature === undefined
      )
        throw new Error('incomplete register example');
      const payload = `p2p-tor-chat/register/v1\n${String(hello.challenge)}\n${nickname}\n${address}\n${port}`;
      expect(verify(null, Buffer.from(payload, 'utf8'), publicKey, Buffer.from(signature, 'base64'))).toBe(true);
      const prose = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');
      for (const value of [String(hello.challenge), address, signature]) expect(prose).toContain(value);
    },
  );
});

describe('checkServerMessage', () => {
  it('rejects a hello without a challenge, naming the type and the missing field', () => {
    const hello = example('hello');
    delete hello.challenge;
    expect(() => checkServerMessage(hello)).toThrow(/"hello".*challenge/);
  });

  it('rejects a peer whose address is not a lowercase v3 onion address', () => {
    for (const address of ['bob.onion', `${'A'.repeat(56)}.onion`, 'a'.repeat(56)]) {
      const reply = example('peer');
      (reply.peer as Record<string, unknown>).address = address;
      expect(() => checkServerMessage(reply), address).toThrow(/"peer".*address/);
    }
  });

  it('rejects an error code outside the catalog, a port out of range and a field of no revision', () => {
    expect(() => checkServerMessage({ ...example('error'), code: 'TEAPOT' })).toThrow(/"error"/);
    const joined = example('peer_joined');
    (joined.peer as Record<string, unknown>).port = 70_000;
    expect(() => checkServerMessage(joined)).toThrow(/"peer_joined".*port/);
    expect(() => checkServerMessage({ type: 'pong', id: 1, extra: true })).toThrow(/additional properties/);
  });

  it('rejects a frame that is not an object, has no type, or has a type the document does not know', () => {
    expect(() => checkServerMessage([1, 2])).toThrow(/not a JSON object/);
    expect(() => checkServerMessage({ id: 1 })).toThrow(/no string "type"/);
    expect(() => checkServerMessage({ type: 'teleported' })).toThrow(/"teleported" is not in docs\/asyncapi.yaml/);
  });

  it('accepts the revision-2 fields: features, every limit, retryAfterMs, addressVerified, claim', () => {
    expect(() => checkServerMessage(example('hello', 1))).not.toThrow();
    expect(() => checkServerMessage(example('error', 2))).not.toThrow();
    expect(() => checkServerMessage(example('registered', 1))).not.toThrow();
    expect(() =>
      checkServerMessage({ ...example('registered'), claim: { until: '2027-01-01T00:00:00.000Z' } }),
    ).not.toThrow();
  });

  it('requires the revision-2 fields this server always sends: features, every limit, addressVerified, claim', () => {
    const hello = example('hello');
    delete hello.features;
    expect(() => checkServerMessage(hello)).toThrow(/"hello".*features/);
    const limited = example('hello');
    delete (limited.limits as Record<string, unknown>).claimAfterSeconds;
    expect(() => checkServerMessage(limited)).toThrow(/"hello".*claimAfterSeconds/);
    const registered = example('registered');
    delete registered.claim;
    expect(() => checkServerMessage(registered)).toThrow(/"registered".*claim/);
    const joined = example('peer_joined');
    delete (joined.peer as Record<string, unknown>).addressVerified;
    expect(() => checkServerMessage(joined)).toThrow(/"peer_joined".*addressVerified/);
    expect(() => checkServerMessage({ type: 'claimed', claim: { until: 'tomorrow' } })).toThrow(/"claimed"/);
    expect(() => checkServerMessage({ type: 'evicted' })).toThrow(/"evicted".*reason/);
  });
});

describe('checkClientMessage', () => {
  it('accepts unknown fields in a request, as the server ignores them', () => {
    expect(() => checkClientMessage({ type: 'ping', id: 'x', extra: { deep: [1] } })).not.toThrow();
  });

  it('rejects a request of an unknown type, an id too long, and a list limit out of range', () => {
    expect(() => checkClientMessage({ type: 'teleport' })).toThrow(/"teleport"/);
    expect(() => checkClientMessage({ type: 'ping', id: 'x'.repeat(65) })).toThrow(/"ping"/);
    expect(() => checkClientMessage({ type: 'list', limit: 1001 })).toThrow(/"list".*limit/);
  });
});

describe('a real server against the schemas', () => {
  let s: TestServer | undefined;
  let clients: RawClient[] = [];
  let fake: WebSocketServer | undefined;

  afterEach(async () => {
    for (const c of clients) c.ws.terminate();
    clients = [];
    await s?.close();
    s = undefined;
    if (fake !== undefined) {
      for (const socket of fake.clients) socket.terminate();
      await new Promise((resolve) => fake?.close(resolve));
      fake = undefined;
    }
  });

  async function connect(server: TestServer): Promise<RawClient> {
    const c = await RawClient.connect(server.url);
    clients.push(c);
    return c;
  }

  /** Sends a request that is itself checked against its schema first. */
  function request(c: RawClient, body: Record<string, unknown>): Promise<Frame> {
    checkClientMessage(body);
    return c.request(body);
  }

  it('sends a hello and replies to every request, and events, that all match the schemas', async () => {
    s = await startTestServer({ EventBatchMs: 0 });
    const peer = await connect(s);
    const watcher = await connect(s);
    expect(await request(watcher, { type: 'subscribe' })).toMatchObject({ type: 'subscribed' });
    expect(await request(peer, { type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(await request(peer, { type: 'lookup', nickname: 'nobody-here' })).toMatchObject({
      type: 'error',
      code: 'NOT_FOUND',
    });
    expect(await request(peer, { type: 'list', limit: 10 })).toMatchObject({ type: 'peers', peers: [], next: null });

    const identity = ed25519Identity();
    expect(await peer.register(identity, 'Schema.Alice')).toMatchObject({
      type: 'registered',
      peer: { nickname: 'Schema.Alice' },
    });
    expect(await request(watcher, { type: 'lookup', nickname: 'schema.alice' })).toMatchObject({ type: 'peer' });
    expect(await request(watcher, { type: 'list', after: null })).toMatchObject({ type: 'peers', next: null });
    expect(await request(peer, { type: 'unregister' })).toMatchObject({ type: 'unregistered' });
    expect(await request(peer, { type: 'unregister' })).toMatchObject({ type: 'error', code: 'NOT_REGISTERED' });
    await watcher.waitFor((f) => f.type === 'peer_left');

    // The same key on a new connection takes the registration over: `replaced`, then 4001.
    expect(await peer.register(identity, 'Schema.Alice', 5051)).toMatchObject({ type: 'registered' });
    const successor = await connect(s);
    expect(await successor.register(identity, 'Schema.Alice', 5052)).toMatchObject({ type: 'registered' });
    expect((await peer.closed).code).toBe(4001);

    successor.sendRaw('[1]');
    expect(await successor.waitFor((f) => f.type === 'error')).toMatchObject({ code: 'BAD_JSON', id: null });

    const seen = [peer, watcher, successor].flatMap((c) => c.frames);
    expect(new Set(seen.map((f) => f.type))).toEqual(
      new Set([
        'hello',
        'subscribed',
        'pong',
        'error',
        'peers',
        'registered',
        'peer',
        'unregistered',
        'peer_joined',
        'peer_left',
        'replaced',
      ]),
    );
    for (const frame of seen) expect(() => checkServerMessage(frame)).not.toThrow();
    for (const c of [peer, watcher, successor]) expect(c.schemaErrors).toEqual([]);
  });

  it('says onion null in the hello while the registry does not know its address, within the schema', async () => {
    s = await startTestServer({}, { hostname: null });
    const c = await connect(s);
    expect(c.hello.onion).toBeNull();
    expect(c.schemaErrors).toEqual([]);
  });

  it('makes a test using the harness fail when a server sends a frame off the schema', async () => {
    fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(fake, 'listening');
    fake.on('connection', (socket) => {
      socket.send(JSON.stringify({ type: 'hello', protocol: 1, onion: null, limits: { maxMessageBytes: 16384 } }));
      socket.send('not json');
    });
    const c = new RawClient(`ws://127.0.0.1:${(fake.address() as AddressInfo).port}/`);
    clients.push(c);
    await c.opened;
    await expect(c.waitFor((f) => f.type === 'hello')).rejects.toThrow(/"hello".*challenge/);
    await expect.poll(() => c.schemaErrors.length).toBe(2);
    expect(c.schemaErrors[1]?.message).toMatch(/not JSON/);
    expect(ASYNCAPI_PATH).toMatch(/docs\/asyncapi\.yaml$/);
  });
});
