/**
 * Property-based fuzzing of the protocol over real sockets. Hostile frames (mutated requests,
 * invalid UTF-8, deep nesting, huge numbers, prototype keys, wrong types, broken PEM, giant strings,
 * binary and fragmented messages, malformed WebSocket frames, garbage before and after the upgrade)
 * must never crash the server or leave an unhandled rejection; every frame gets the reply or close
 * code PROTOCOL.md gives it; and an honest peer registered on another connection is never touched.
 *
 * Bounded: each property has a run count and a time limit. FUZZ_SEED=<n> replays a run.
 */
import * as crypto from 'node:crypto';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parsePeerKey, decodeSignature, type PeerKey } from '../../server/src/protocol/peer-key.js';
import { parseOnionAddress } from '../../server/src/protocol/onion-address.js';
import { parseRequest } from '../../server/src/protocol/request-parser.js';
import { RegistryError } from '../../server/src/protocol/errors.js';
import {
  RawClient,
  ed25519Identity,
  randomNickname,
  signRegistration,
  startTestServer,
  type Frame,
  type TestServer,
} from '../support/registry-harness.js';
import { resultWithin } from '../support/wait.js';
import {
  SUCCESS_TYPES,
  anyFrame,
  expectedAnswer,
  fieldValue,
  fragment,
  paddedPing,
  transport,
  type Expected,
  type FramePlan,
  type HonestPeer,
  type RenderContext,
  type Transport,
} from './frame-arbitraries.js';
import {
  ABUSE_CLOSE_CODES,
  Opcode,
  RawSocketClient,
  SPEC_ERROR_CODES,
  encodeClientFrame,
  guardProcessErrors,
  upgradeRequest,
  type ProcessErrorGuard,
} from './hardening-support.js';

const MAX_MESSAGE_BYTES = 16_384;
const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const fcParams = (numRuns: number, timeLimitMs: number): fc.Parameters<unknown> => ({
  numRuns,
  ...(seed === undefined ? {} : { seed }),
  plugins: [fc.interruptAfterTimeLimit(timeLimitMs)],
});

let guard: ProcessErrorGuard;
let s: TestServer;
let honest: HonestPeer;
let honestClient: RawClient;
let honestPeerObject: unknown;
let observer: RawClient;
let watcher: RawClient;

beforeAll(async () => {
  guard = guardProcessErrors();
  // Budgets out of the way: this suite is about parsing, the abuse suite tests the budgets.
  s = await startTestServer({
    RateLimitPerSecond: 1_000_000,
    RateLimitBurst: 1_000_000,
    SignatureChecksPerSecond: 1_000_000,
    JsonContainersPerSecond: 1_000_000_000,
    EventBatchMs: 0,
  });
  honestClient = await RawClient.connect(s.url);
  const identity = ed25519Identity();
  const nickname = 'Honest.Peer';
  const port = 6000;
  const signature = signRegistration(identity, honestClient.challenge, nickname, identity.address, port);
  const registered = await honestClient.request({
    type: 'register',
    nickname,
    address: identity.address,
    port,
    publicKey: identity.publicKeyPem,
    signature,
  });
  expect(registered.type).toBe('registered');
  honestPeerObject = registered.peer;
  honest = { identity, nickname, port, signature };
  observer = await RawClient.connect(s.url);
  watcher = await RawClient.connect(s.url);
  expect((await watcher.request({ type: 'subscribe' })).type).toBe('subscribed');
});

afterEach(async () => {
  await expectHonestPeerUntouched();
  expect(guard.errors).toEqual([]);
});

afterAll(async () => {
  for (const c of [honestClient, observer, watcher]) c?.ws.terminate();
  await s?.close();
  guard?.dispose();
});

async function expectHonestPeerUntouched(): Promise<void> {
  expect(await observer.request({ type: 'lookup', nickname: honest.nickname })).toEqual({
    type: 'peer',
    id: expect.any(Number),
    peer: honestPeerObject,
  });
  expect(honestClient.ws.readyState).toBe(WebSocket.OPEN);
  expect(honestClient.frames.filter((f) => f.type === 'replaced')).toEqual([]);
  const aboutHonest = watcher
    .events()
    .filter((e) =>
      e.type === 'peer_left'
        ? String(e.nickname).toLowerCase() === honest.nickname.toLowerCase()
        : (e.peer as { nickname: string }).nickname.toLowerCase() === honest.nickname.toLowerCase() ||
          (e.peer as { address: string }).address === honest.identity.address,
    );
  expect(aboutHonest).toEqual([]);
  // Prototype pollution through parsed frames would show up here.
  expect(Object.keys(Object.prototype)).toEqual([]);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
}

const isEvent = (f: Frame): boolean => f.type === 'hello' || f.type === 'peer_joined' || f.type === 'peer_left';
const replies = (c: RawClient): Frame[] => c.frames.filter((f) => !isEvent(f));

type Outcome = { readonly reply: Frame } | { readonly closed: number };

/** The next reply after `from` replies, or the close code if the connection closes first. */
function nextOutcome(c: RawClient, from: number, timeoutMs = 5_000): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const got = replies(c)[from];
      if (got !== undefined) {
        done();
        resolve({ reply: got });
        return true;
      }
      return false;
    };
    const onClose = (code: number): void => {
      if (check()) return;
      done();
      resolve({ closed: code });
    };
    const timer = setTimeout(() => {
      done();
      reject(
        new Error(`no reply and no close within ${timeoutMs} ms; frames: ${JSON.stringify(c.frames).slice(0, 500)}`),
      );
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      c.ws.off('message', check);
      c.ws.off('close', onClose);
    };
    if (check()) return;
    if (c.ws.readyState === WebSocket.CLOSED) {
      void c.closed.then(({ code }) => onClose(code));
      return;
    }
    c.ws.on('message', check);
    c.ws.on('close', onClose);
  });
}

function send(c: RawClient, bytes: Buffer, how: Transport): void {
  if (how.kind === 'text' || how.kind === 'binary') {
    c.ws.send(bytes, { binary: how.kind === 'binary' });
    return;
  }
  const parts = fragment(bytes, how.cuts);
  parts.forEach((part, index) => {
    c.ws.send(part, { binary: how.kind === 'binary-fragments', fin: index === parts.length - 1 });
    if (how.kind === 'fragments' && how.pingBetween && index < parts.length - 1) c.ws.ping();
  });
}

function checkReply(reply: Frame, expected: Expected & { kind: 'reply' }, label: string): void {
  const what = reply.type === 'error' ? (reply.code as string) : reply.type;
  if (reply.type === 'error') {
    expect(SPEC_ERROR_CODES.has(what), `${label}: ${what} is not a spec'd error code`).toBe(true);
    expect(Object.keys(reply).sort(), label).toEqual(['code', 'id', 'message', 'type']);
    expect(typeof reply.message, label).toBe('string');
  } else {
    expect(SUCCESS_TYPES.has(what), `${label}: unexpected reply type ${what}`).toBe(true);
  }
  expect(expected.allowed.has(what), `${label}: got ${what}, spec allows ${[...expected.allowed].join('|')}`).toBe(
    true,
  );
  expect(
    reply.id === expected.id,
    `${label}: reply id ${JSON.stringify(reply.id)}, sent ${JSON.stringify(expected.id)}`,
  ).toBe(true);
}

/** Sends one frame and checks the server's answer against the spec; false once the connection is gone. */
const tally = new Map<string, number>();
function count(what: string): void {
  tally.set(what, (tally.get(what) ?? 0) + 1);
}

async function exchange(c: RawClient, bytes: Buffer, how: Transport, label: string): Promise<boolean> {
  const binary = how.kind === 'binary' || how.kind === 'binary-fragments';
  const expected = expectedAnswer(bytes, binary, MAX_MESSAGE_BYTES);
  const from = replies(c).length;
  send(c, bytes, how);
  const outcome = await nextOutcome(c, from);
  count(
    'closed' in outcome
      ? `close ${outcome.closed}`
      : outcome.reply.type === 'error'
        ? String(outcome.reply.code)
        : outcome.reply.type,
  );
  if (expected.kind === 'close') {
    expect(outcome, `${label}: expected close ${expected.code}`).toEqual({ closed: expected.code });
    return false;
  }
  if ('closed' in outcome) throw new Error(`${label}: connection closed with ${outcome.closed} instead of a reply`);
  checkReply(outcome.reply, expected, label);
  if (expected.thenClose !== undefined) {
    expect((await c.closed).code, label).toBe(expected.thenClose);
    return false;
  }
  return true;
}

async function contextFor(c: RawClient): Promise<RenderContext> {
  return { challenge: c.challenge, own: ed25519Identity(), ownNickname: randomNickname('fz'), honest };
}

describe('protocol fuzzing over a real connection', () => {
  it("answers every hostile frame with a spec'd reply or close code, one reply per frame", async () => {
    let frames = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(anyFrame, transport), { minLength: 1, maxLength: 8 }), async (actions) => {
        const c = await RawClient.connect(s.url);
        try {
          const ctx = await contextFor(c);
          let open = true;
          for (const [frame, how] of actions) {
            frames += 1;
            open = await exchange(c, frame.render(ctx), how, `${frame.label} via ${how.kind}`);
            if (!open) break;
          }
          if (open) {
            // Nothing extra was sent: the last reply is the pong to this ping, right after ours.
            const count = replies(c).length;
            expect(await c.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
            expect(replies(c).length).toBe(count + 1);
          }
        } finally {
          c.ws.terminate();
        }
        await expectHonestPeerUntouched();
      }),
      fcParams(1_200, 25_000),
    );
    console.log(`protocol fuzz: ${frames} frames:`, Object.fromEntries([...tally].sort((a, b) => b[1] - a[1])));
    expect(frames).toBeGreaterThan(100);
  }, 60_000);

  it('answers frames at the size limit and closes with 1009 just past it, whole or fragmented', async () => {
    for (const how of [{ kind: 'text' }, { kind: 'fragments', cuts: [0.1, 0.5, 0.9], pingBetween: true }] as const) {
      const c = await RawClient.connect(s.url);
      expect(await exchange(c, paddedPing(MAX_MESSAGE_BYTES), how, 'exactly the limit')).toBe(true);
      expect(await exchange(c, paddedPing(MAX_MESSAGE_BYTES + 1), how, 'one byte over')).toBe(false);
    }
  });

  it('answers a message split into a thousand one-byte fragments', async () => {
    const c = await RawClient.connect(s.url);
    const bytes = Buffer.from('{"type":"lookup","id":"frag","nickname":"honest.peer"}'.padEnd(1000, ' '));
    const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => (i + 1) / bytes.length);
    const from = replies(c).length;
    send(c, bytes, { kind: 'fragments', cuts, pingBetween: false });
    expect(await nextOutcome(c, from)).toEqual({ reply: { type: 'peer', id: 'frag', peer: honestPeerObject } });
    c.ws.terminate();
  });
});

describe('deep nesting with a large frame limit', () => {
  it('survives 10,000 and 500,000 nested arrays and objects in a 1 MiB frame', async () => {
    // Budgets large enough to pay for such frames (each costs one token per 256 containers).
    const big = await startTestServer({
      MaxMessageBytes: 1_048_576,
      RateLimitPerSecond: 1_000_000,
      RateLimitBurst: 1_000_000,
      JsonContainersPerSecond: 1_000_000_000,
    });
    try {
      const c = await RawClient.connect(big.url);
      const cases: Array<[string, string, string]> = [
        ['10k arrays', `${'['.repeat(10_000)}${']'.repeat(10_000)}`, 'BAD_JSON'],
        ['10k objects', `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`, 'BAD_REQUEST'],
        ['ping carrying 10k arrays', `{"type":"ping","id":1,"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`, 'pong'],
        ['500k arrays', `${'['.repeat(500_000)}${']'.repeat(500_000)}`, 'BAD_JSON'],
        [
          'ping carrying 170k objects',
          `{"type":"ping","id":2,"x":${'{"a":'.repeat(170_000)}1${'}'.repeat(170_000)}}`,
          'pong',
        ],
        ['500k unclosed arrays', '['.repeat(500_000), 'BAD_JSON'],
      ];
      for (const [label, text, answer] of cases) {
        expect(Buffer.byteLength(text)).toBeLessThanOrEqual(1_048_576);
        const from = replies(c).length;
        const started = performance.now();
        c.sendRaw(text);
        const outcome = await nextOutcome(c, from, 10_000);
        const ms = performance.now() - started;
        expect('reply' in outcome, label).toBe(true);
        const reply = (outcome as { reply: Frame }).reply;
        expect(reply.type === 'error' ? reply.code : reply.type, label).toBe(answer);
        expect(ms, `${label} took ${ms.toFixed(0)} ms`).toBeLessThan(2_000);
      }
      c.ws.terminate();
    } finally {
      await big.close();
    }
    expect(guard.errors).toEqual([]);
  }, 30_000);
});

/**
 * The code of the close frame the server reads in `stream`, if it reads one: frames are read in
 * order, and reading stops at the first close frame, at an incomplete frame, and at the first frame
 * the server rejects (unmasked, reserved bits or opcode, a bad control frame, a continuation out of
 * place, or more than `maxPayload` bytes).
 */
function closeCodeIn(stream: Buffer, maxPayload: number): number | undefined {
  let offset = 0;
  let inMessage = false;
  let messageBytes = 0;
  while (offset + 2 <= stream.length) {
    const first = stream[offset] as number;
    const second = stream[offset + 1] as number;
    const fin = (first & 0x80) !== 0;
    const opcode = first & 0x0f;
    const control = (opcode & 0x08) !== 0;
    if ((first & 0x70) !== 0 || (second & 0x80) === 0) return undefined;
    if (!(Object.values(Opcode) as number[]).includes(opcode)) return undefined;
    let length = second & 0x7f;
    let at = offset + 2;
    if (control && (!fin || length > 125)) return undefined;
    if (length === 126) {
      if (at + 2 > stream.length) return undefined;
      length = stream.readUInt16BE(at);
      at += 2;
    } else if (length === 127) {
      if (at + 8 > stream.length) return undefined;
      const declared = stream.readBigUInt64BE(at);
      if (declared > BigInt(maxPayload)) return undefined;
      length = Number(declared);
      at += 8;
    }
    if (length > maxPayload || at + 4 + length > stream.length) return undefined;
    const mask = stream.subarray(at, at + 4);
    at += 4;
    if (opcode === Opcode.CLOSE) {
      return length >= 2
        ? (((stream[at] as number) ^ (mask[0] as number)) << 8) | ((stream[at + 1] as number) ^ (mask[1] as number))
        : undefined;
    }
    if (!control) {
      if ((opcode === Opcode.CONTINUATION) !== inMessage) return undefined;
      messageBytes = (inMessage ? messageBytes : 0) + length;
      if (messageBytes > maxPayload) return undefined;
      inMessage = !fin;
    }
    offset = at + length;
  }
  return undefined;
}

describe('malformed WebSocket framing', () => {
  const closeFrame = fc
    .record({
      code: fc.oneof(
        fc.constantFrom(999, 1000, 1004, 1005, 1006, 1015, 1016, 2999, 3000, 4999, 5000),
        fc.integer({ min: 0, max: 65_535 }),
      ),
      reason: fc.uint8Array({ maxLength: 130 }),
    })
    .map(({ code, reason }) => {
      const payload = Buffer.alloc(2 + reason.length);
      payload.writeUInt16BE(code);
      Buffer.from(reason).copy(payload, 2);
      return { opcode: Opcode.CLOSE, payload, code };
    });
  const rawFrame = fc.oneof(
    fc.record({
      opcode: fc.oneof(fc.constantFrom(0, 1, 2, 8, 9, 10), fc.integer({ min: 0, max: 15 })),
      fin: fc.boolean(),
      rsv: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 7 }), weight: 1 }),
      masked: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
      payload: fc.oneof(
        fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
        fc
          .constantFrom(
            '{"type":"ping","id":"p"}',
            '{"type":"lookup","nickname":"Honest.Peer"}',
            '{"__proto__":{"polluted":1}}',
          )
          .map((t) => Buffer.from(t)),
      ),
      declaredLength: fc.option(
        fc.constantFrom(126n, 65_535n, 65_536n, 16_385n, 1n << 53n, 1n << 62n, 1n << 63n, (1n << 64n) - 1n),
        { nil: undefined },
      ),
    }),
    closeFrame,
  );
  const afterUpgrade = fc.array(
    fc.oneof(
      { arbitrary: rawFrame.map((spec) => ({ bytes: encodeClientFrame(spec) })), weight: 4 },
      { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 400 }).map((b) => ({ bytes: Buffer.from(b) })), weight: 1 },
    ),
    { minLength: 1, maxLength: 5 },
  );

  const rawTally = new Map<string, number>();
  it("closes with 1002/1003/1008/1009 (or echoes the peer's own close) and answers readable " +
    'frames per spec', async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(afterUpgrade, fc.boolean(), async (writes, together) => {
        runs += 1;
        const c = await RawSocketClient.connect(s.port);
        const probe = encodeClientFrame({ opcode: Opcode.TEXT, payload: Buffer.from('{"type":"ping","id":"probe"}') });
        if (together) c.write(Buffer.concat([...writes.map((w) => w.bytes), probe]));
        else for (const w of [...writes.map((x) => x.bytes), probe]) c.write(w);
        c.socket.end();
        const closed = await resultWithin(
          c.closed.then(() => true),
          4_000,
          false,
        );
        c.destroy();
        expect(closed, 'the server closes a connection whose peer has finished').toBe(true);
        // Random bytes can form a close frame too: read the codes the way the server's parser does.
        const peerCode = closeCodeIn(Buffer.concat(writes.map((w) => w.bytes)), MAX_MESSAGE_BYTES);
        const echoed = new Set<number>([1000, 1005, ...(peerCode === undefined ? [] : [peerCode])]);
        rawTally.set(`close ${String(c.closeCode)}`, (rawTally.get(`close ${String(c.closeCode)}`) ?? 0) + 1);
        if (c.closeCode !== undefined) {
          expect(ABUSE_CLOSE_CODES.has(c.closeCode) || echoed.has(c.closeCode), `close code ${c.closeCode}`).toBe(true);
        }
        for (const f of c.frames.slice(1)) {
          if (f.type === 'error') expect(SPEC_ERROR_CODES.has(f.code as string), JSON.stringify(f)).toBe(true);
          else
            expect(
              SUCCESS_TYPES.has(f.type) || f.type === 'peer_joined' || f.type === 'peer_left',
              JSON.stringify(f),
            ).toBe(true);
        }
      }),
      fcParams(500, 12_000),
    );
    console.log(`malformed framing: ${runs} runs:`, Object.fromEntries(rawTally));
    expect(runs).toBeGreaterThan(20);
  }, 40_000);

  const validRequest = (port: number): string => upgradeRequest(port);
  const requestDamage = fc.oneof(
    fc
      .uint8Array({ minLength: 1, maxLength: 2_048 })
      .map((b) => ({ label: `bytes(${b.length})`, make: (_port: number) => Buffer.from(b) })),
    fc
      .record({
        at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        insert: fc.uint8Array({ maxLength: 16 }),
        cut: fc.boolean(),
      })
      .map(({ at, insert, cut }) => ({
        label: `upgrade ${cut ? 'cut' : 'spliced'} at ${at.toFixed(2)}`,
        make: (port: number) => {
          const text = Buffer.from(validRequest(port));
          const i = Math.floor(at * text.length);
          return cut
            ? text.subarray(0, i)
            : Buffer.concat([text.subarray(0, i), Buffer.from(insert), text.subarray(i)]);
        },
      })),
    fc
      .constantFrom(
        (r: string) => r.replace('Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 12'),
        (r: string) => r.replace(/Sec-WebSocket-Key: [^\r]*\r\n/, ''),
        (r: string) => r.replace(/Sec-WebSocket-Key: [^\r]*/, 'Sec-WebSocket-Key: short'),
        (r: string) => r.replace('GET', 'POST'),
        (r: string) => r.replace('GET /', 'GET /healthz'),
        (r: string) => r.replace('GET /', 'GET /../../etc/passwd'),
        (r: string) => r.replace('Upgrade: websocket', 'Upgrade: h2c'),
        (r: string) => r.replace('HTTP/1.1', 'HTTP/1.0'),
        (r: string) => r.replace('\r\n\r\n', `\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
        (r: string) => r.replace('\r\n\r\n', '\r\nContent-Length: 5\r\n\r\nhello'),
        (r: string) => r.replace('\r\n\r\n', '\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'),
        (r: string) => r + r,
        (r: string) => r.replace(/\r\n/g, '\n'),
      )
      .map((edit) => ({
        label: `edited upgrade ${edit.toString().slice(10, 60)}`,
        make: (port: number) => Buffer.from(edit(validRequest(port))),
      })),
  );

  const httpTally = new Map<string, number>();
  it('answers garbage and broken upgrade requests on the TCP socket with an HTTP error or a close', async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(requestDamage, fc.uint8Array({ maxLength: 64 }), async (damage, trailing) => {
        runs += 1;
        const c = RawSocketClient.open(s.port, damage.make(s.port), Buffer.from(trailing));
        c.socket.end();
        const closed = await resultWithin(
          c.closed.then(() => true),
          4_000,
          false,
        );
        c.destroy();
        expect(closed, `${damage.label}: closed`).toBe(true);
        const status = c.httpResponse.slice(0, 12) || '(no response)';
        httpTally.set(status, (httpTally.get(status) ?? 0) + 1);
        if (c.httpResponse !== '') {
          expect(c.httpResponse, damage.label).toMatch(/^HTTP\/1\.1 (101|200|400|404|405|408|426|431|503) /);
        }
      }),
      fcParams(250, 10_000),
    );
    console.log(`garbage before the upgrade: ${runs} runs:`, Object.fromEntries(httpTally));
    expect(runs).toBeGreaterThan(20);
  }, 30_000);
});

describe('the boundary functions on arbitrary input', () => {
  it('parseRequest never throws and only answers BAD_JSON, BAD_REQUEST or UNKNOWN_TYPE', () => {
    const ctx: RenderContext = {
      challenge: 'c'.repeat(43),
      own: ed25519Identity(),
      ownNickname: 'me',
      honest: { identity: ed25519Identity(), nickname: 'h', port: 1, signature: 'AA' },
    };
    const inputs = fc.oneof(
      anyFrame.map((p: FramePlan) => p.render(ctx)),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    );
    fc.assert(
      fc.property(inputs, (bytes) => {
        const result = parseRequest(bytes);
        if (!result.ok) expect(['BAD_JSON', 'BAD_REQUEST', 'UNKNOWN_TYPE']).toContain(result.error.code);
        const expected = expectedAnswer(bytes, false, Number.POSITIVE_INFINITY);
        if (expected.kind === 'reply') expect(result.ok ? result.request.id : result.id).toBe(expected.id);
      }),
      fcParams(3_000, 5_000),
    );
  });

  it('parsePeerKey, decodeSignature and parseOnionAddress refuse garbage with their own codes, never a crash', () => {
    const ctx: RenderContext = {
      challenge: 'c',
      own: ed25519Identity(),
      ownNickname: 'me',
      honest: { identity: ed25519Identity(), nickname: 'h', port: 1, signature: 'AA' },
    };
    const ed = parsePeerKey(ctx.own.publicKeyPem);
    fc.assert(
      fc.property(fieldValue, fc.string({ unit: 'binary', maxLength: 100 }), (value, text) => {
        let asString: string;
        try {
          const parsed = JSON.parse(value.text(ctx)) as unknown;
          asString = typeof parsed === 'string' ? parsed : text;
        } catch {
          asString = text;
        }
        for (const input of [asString, text]) {
          expectOnlyProtocolError(() => parsePeerKey(input), 'INVALID_PUBLIC_KEY');
          expectOnlyProtocolError(() => decodeSignature(input, ed as PeerKey), 'BAD_SIGNATURE');
          expect(() => parseOnionAddress(input)).not.toThrow();
        }
      }),
      fcParams(1_500, 5_000),
    );
  });
});

describe('peer keys', () => {
  it('identifies a key by its canonical DER, whatever PEM layout it came in', () => {
    const { generateKeyPairSync, createPublicKey } = crypto;
    const keys = [
      ...Array.from({ length: 5 }, () => generateKeyPairSync('ed25519').publicKey),
      generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey,
      generateKeyPairSync('rsa', { modulusLength: 3072, publicExponent: 3 }).publicKey,
    ];
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.constantFrom('as is', 'crlf', 'padded', 'one line'), (key, layout) => {
        const pem = key.export({ type: 'spki', format: 'pem' }).toString();
        const [header, ...rest] = pem.trimEnd().split('\n');
        const footer = rest.pop();
        const sent =
          layout === 'crlf'
            ? pem.replace(/\n/g, '\r\n')
            : layout === 'padded'
              ? `  \n${pem}\n\n`
              : `${header}\n${rest.join('')}\n${footer}`;
        const parsed = parsePeerKey(sent);
        expect(parsed.der.equals(createPublicKey(pem).export({ type: 'spki', format: 'der' }))).toBe(true);
        expect(parsed.pem).toBe(pem.trimEnd());
      }),
      fcParams(200, 5_000),
    );
  });
});

function expectOnlyProtocolError(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).code).toBe(code);
  }
}
