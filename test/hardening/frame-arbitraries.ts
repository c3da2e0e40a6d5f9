/**
 * fast-check arbitraries for hostile protocol frames, and the oracle that says, from PROTOCOL.md
 * alone, how the server must answer a frame.
 *
 * A frame is a plan rendered against the live connection (its challenge, its own identity, the
 * honest peer it may try to squat), so that mutations of a correctly signed request reach the deep
 * checks instead of stopping at the first one.
 */
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { signRegistration, type Identity } from '../support/registry-harness.js';

export interface HonestPeer {
  readonly identity: Identity;
  readonly nickname: string;
  readonly port: number;
  /** The signature the honest peer sent, over its own connection's challenge (replay material). */
  readonly signature: string;
}

export interface RenderContext {
  readonly challenge: string;
  /** This connection's own key: what a mutated but correctly signed registration is signed with. */
  readonly own: Identity;
  readonly ownNickname: string;
  readonly honest: HonestPeer;
}

export interface FramePlan {
  readonly label: string;
  render(ctx: RenderContext): Buffer;
}

type Text = (ctx: RenderContext) => string;

function plan(label: string, render: (ctx: RenderContext) => Buffer): FramePlan {
  return { label, render, [fc.toStringMethod]: () => label } as FramePlan;
}

const constant =
  (text: string): Text =>
  () =>
    text;

// ---------------------------------------------------------------------------------------------
// Field values, as JSON text (so that numbers JSON.stringify cannot write, like 1e400, are possible)

const hugeNumbers = fc
  .constantFrom(
    '1e400',
    '-1e400',
    '1e-400',
    '-0',
    '0.0',
    '9007199254740993',
    `1${'0'.repeat(400)}`,
    `-${'9'.repeat(300)}`,
    '5050.0',
    '5.05e3',
    '65535.0000000001',
    '1E5',
    '-1',
    '0',
    '65536',
    '4.9e-324',
    '1.7976931348623157e308',
  )
  .map((text) => ({ label: text.length > 24 ? `${text.slice(0, 8)}…(${text.length})` : text, text: constant(text) }));

const specialStrings = fc
  .constantFrom(
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u0000"',
    '"a\\u0000b"',
    '"__proto__"',
    '"constructor"',
    '"prototype"',
    '"toString"',
    '"hasOwnProperty"',
    '""',
    '" "',
    '"\\n"',
    '"-----BEGIN PUBLIC KEY-----"',
  )
  .map((text) => ({ label: text, text: constant(text) }));

/** Long strings: some fit in a frame, some push it over the limit. */
const giantStrings = fc
  .record({
    unit: fc.constantFrom('x', 'é', '\u{1F600}', '\\u0000', '\\\\', '\\"', 'A'),
    count: fc.integer({ min: 64, max: 16_500 }),
  })
  .map(({ unit, count }) => ({ label: `"${unit}"×${count}`, text: constant(`"${unit.repeat(count)}"`) }));

/** Deep nesting that fits the frame limit (or does not, at the top of the range). */
export const deepNesting = fc
  .record({ shape: fc.constantFrom('array', 'object', 'unclosed', 'mixed'), depth: fc.integer({ min: 1, max: 8_200 }) })
  .map(({ shape, depth }) => {
    let text: string;
    if (shape === 'array') text = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    else if (shape === 'object') text = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    else if (shape === 'unclosed') text = '['.repeat(depth);
    else text = `${'[{"__proto__":'.repeat(depth)}0${'}]'.repeat(depth)}`;
    return { label: `${shape}-nesting(${depth})`, text: constant(text) };
  });

const anyJson = fc
  .jsonValue({ maxDepth: 3 })
  .map((value) => JSON.stringify(value) ?? 'null')
  .map((text) => ({ label: text.length > 40 ? `${text.slice(0, 40)}…` : text, text: constant(text) }));

const unicodeStrings = fc
  .string({ unit: 'binary', maxLength: 48 })
  .map((s) => ({ label: JSON.stringify(s), text: constant(JSON.stringify(s)) }));

/** Fixed keys of other kinds, made once. */
const otherKeys = (() => {
  const spki = (key: ReturnType<typeof generateKeyPairSync>['publicKey']): string =>
    key.export({ format: 'pem', type: 'spki' }).toString();
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  const x25519 = generateKeyPairSync('x25519').publicKey;
  const rsaSmall = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
  return {
    ec: spki(ec),
    x25519: spki(x25519),
    rsa1024: spki(rsaSmall),
    pkcs1: rsaSmall.export({ format: 'pem', type: 'pkcs1' }).toString(),
  };
})();

/** PEM text, broken in the ways a careless or hostile client breaks it. */
const pems = fc
  .record({
    source: fc.constantFrom('own', 'honest', 'ec', 'x25519', 'rsa1024', 'pkcs1'),
    damage: fc.constantFrom(
      'none',
      'truncate',
      'corrupt',
      'noFooter',
      'crlf',
      'oneLine',
      'doubled',
      'trailingGarbage',
      'rsaHeader',
    ),
    at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
  })
  .map(({ source, damage, at }) => {
    const text: Text = (ctx) => {
      const base =
        source === 'own'
          ? ctx.own.publicKeyPem
          : source === 'honest'
            ? ctx.honest.identity.publicKeyPem
            : otherKeys[source as keyof typeof otherKeys];
      const cut = Math.floor(at * base.length);
      let pem = base;
      if (damage === 'truncate') pem = base.slice(0, cut);
      else if (damage === 'corrupt')
        pem = `${base.slice(0, cut)}${base[cut] === 'A' ? 'B' : 'A'}${base.slice(cut + 1)}`;
      else if (damage === 'noFooter') pem = base.replace(/-----END[^\n]*\n?$/, '');
      else if (damage === 'crlf') pem = base.replace(/\n/g, '\r\n');
      else if (damage === 'oneLine') pem = base.replace(/\n/g, '');
      else if (damage === 'doubled') pem = `${base}${base}`;
      else if (damage === 'trailingGarbage') pem = `${base}\u0000garbage`;
      else if (damage === 'rsaHeader') pem = base.replace(/PUBLIC KEY/g, 'RSA PUBLIC KEY');
      return JSON.stringify(pem);
    };
    return { label: `pem(${source},${damage},${at.toFixed(2)})`, text };
  });

/** Values taken from the honest peer: the squatter's material. */
const squatValues = fc.constantFrom(
  { label: 'honest.nickname', text: ((ctx) => JSON.stringify(ctx.honest.nickname)) as Text },
  { label: 'HONEST.NICKNAME', text: ((ctx) => JSON.stringify(ctx.honest.nickname.toUpperCase())) as Text },
  { label: 'honest.address', text: ((ctx) => JSON.stringify(ctx.honest.identity.address)) as Text },
  {
    label: 'HONEST.ADDRESS-no-suffix',
    text: ((ctx) => JSON.stringify(ctx.honest.identity.address.slice(0, 56).toUpperCase())) as Text,
  },
  { label: ' honest.address\\n', text: ((ctx) => JSON.stringify(` ${ctx.honest.identity.address}\n`)) as Text },
  { label: 'honest.publicKey', text: ((ctx) => JSON.stringify(ctx.honest.identity.publicKeyPem)) as Text },
  { label: 'honest.signature(replayed)', text: ((ctx) => JSON.stringify(ctx.honest.signature)) as Text },
  { label: 'honest.port', text: ((ctx) => String(ctx.honest.port)) as Text },
);

const wrongTypes = fc
  .constantFrom('null', 'true', 'false', '0', '1', '-1', '1.5', '[]', '{}', '[1]', '{"a":1}', '"5050"', '"1"')
  .map((text) => ({ label: text, text: constant(text) }));

export const fieldValue = fc.oneof(
  { arbitrary: wrongTypes, weight: 4 },
  { arbitrary: anyJson, weight: 3 },
  { arbitrary: hugeNumbers, weight: 3 },
  { arbitrary: specialStrings, weight: 3 },
  { arbitrary: unicodeStrings, weight: 2 },
  { arbitrary: pems, weight: 3 },
  { arbitrary: squatValues, weight: 3 },
  { arbitrary: giantStrings, weight: 1 },
  { arbitrary: deepNesting, weight: 1 },
);

// ---------------------------------------------------------------------------------------------
// Requests: a valid template per type, then field mutations, then (maybe) a fresh signature

export const REQUEST_TYPES = ['register', 'lookup', 'list', 'subscribe', 'unregister', 'ping'] as const;
const FIELD_NAMES = [
  'type',
  'id',
  'nickname',
  'address',
  'port',
  'publicKey',
  'signature',
  'after',
  'limit',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
] as const;

type Entry = [key: string, value: string];

function templateEntries(kind: (typeof REQUEST_TYPES)[number], ctx: RenderContext): Entry[] {
  switch (kind) {
    case 'register': {
      const port = 5050;
      const signature = signRegistration(ctx.own, ctx.challenge, ctx.ownNickname, ctx.own.address, port);
      return [
        ['type', '"register"'],
        ['id', '"r1"'],
        ['nickname', JSON.stringify(ctx.ownNickname)],
        ['address', JSON.stringify(ctx.own.address)],
        ['port', String(port)],
        ['publicKey', JSON.stringify(ctx.own.publicKeyPem)],
        ['signature', JSON.stringify(signature)],
      ];
    }
    case 'lookup':
      return [
        ['type', '"lookup"'],
        ['id', '7'],
        ['nickname', JSON.stringify(ctx.honest.nickname)],
      ];
    case 'list':
      return [
        ['type', '"list"'],
        ['id', '8'],
        ['after', 'null'],
        ['limit', '10'],
      ];
    default:
      return [
        ['type', JSON.stringify(kind)],
        ['id', '9'],
      ];
  }
}

type Mutation =
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'set'; readonly key: string; readonly value: { label: string; text: Text } }
  | { readonly op: 'append'; readonly key: string; readonly value: { label: string; text: Text } };

const fieldName = fc.oneof(
  { arbitrary: fc.constantFrom(...FIELD_NAMES), weight: 6 },
  { arbitrary: fc.string({ maxLength: 12 }), weight: 1 },
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), key: fieldName }),
  { arbitrary: fc.record({ op: fc.constant('set' as const), key: fieldName, value: fieldValue }), weight: 4 },
  fc.record({ op: fc.constant('append' as const), key: fieldName, value: fieldValue }),
);

function describeMutation(m: Mutation): string {
  return m.op === 'delete' ? `-${m.key}` : `${m.op === 'set' ? '' : '+'}${m.key}=${m.value.label}`;
}

/** Re-signs with the connection's own key over whatever nickname/address/port the frame now holds. */
function resign(entries: Entry[], ctx: RenderContext): void {
  const last = (key: string): unknown => {
    const found = entries.filter(([k]) => k === key).pop();
    if (found === undefined) return undefined;
    try {
      return JSON.parse(found[1]) as unknown;
    } catch {
      return undefined;
    }
  };
  const nickname = last('nickname');
  const address = last('address');
  const port = last('port');
  if (typeof nickname !== 'string' || typeof address !== 'string' || typeof port !== 'number') return;
  const signature = signRegistration(ctx.own, ctx.challenge, nickname, address, port);
  const at = entries.findIndex(([k]) => k === 'signature');
  if (at >= 0) entries[at] = ['signature', JSON.stringify(signature)];
}

function renderObject(entries: readonly Entry[]): string {
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}

export const mutatedRequest: fc.Arbitrary<FramePlan> = fc
  .record({
    kind: fc.constantFrom(...REQUEST_TYPES),
    mutations: fc.array(mutation, { maxLength: 4 }),
    resign: fc.boolean(),
  })
  .map(({ kind, mutations, resign: sign }) =>
    plan(`${kind}[${mutations.map(describeMutation).join(' ')}]${sign ? '+resigned' : ''}`, (ctx) => {
      const entries = templateEntries(kind, ctx);
      for (const m of mutations) {
        const at = entries.findIndex(([k]) => k === m.key);
        if (m.op === 'delete') {
          if (at >= 0) entries.splice(at, 1);
        } else if (m.op === 'set' && at >= 0) entries[at] = [m.key, m.value.text(ctx)];
        else entries.push([m.key, m.value.text(ctx)]);
      }
      if (sign && kind === 'register') resign(entries, ctx);
      return Buffer.from(renderObject(entries));
    }),
  );

const textValue = (label: string, text: Text): { label: string; text: Text } => ({ label, text });
const str = (value: string): { label: string; text: Text } =>
  textValue(JSON.stringify(value).slice(0, 40), constant(JSON.stringify(value)));

/** Type-correct but hostile values for one register field at a time, so the deep checks run. */
const registerFieldAttack = fc.oneof(
  fc.tuple(
    fc.constant('nickname'),
    fc.oneof(
      squatValues.filter((v) => v.label.toLowerCase().includes('nickname')),
      fc
        .constantFrom(
          'constructor',
          'prototype',
          '__proto__',
          'toString',
          'hasOwnProperty',
          'a'.repeat(32),
          'a'.repeat(33),
          'x\n',
          'Ａlice',
        )
        .map(str),
      fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/).map(str),
      unicodeStrings,
    ),
  ),
  fc.tuple(
    fc.constant('address'),
    fc.oneof(
      squatValues.filter((v) => v.label.toLowerCase().includes('address')),
      fc.constantFrom(
        textValue('OWN.ADDRESS', (ctx) => JSON.stringify(ctx.own.address.toUpperCase())),
        textValue('own-no-suffix', (ctx) => JSON.stringify(ctx.own.address.slice(0, 56))),
        textValue('own.onion.onion', (ctx) => JSON.stringify(`${ctx.own.address}.onion`)),
        textValue('own\t', (ctx) => JSON.stringify(`\t${ctx.own.address}\t`)),
      ),
      fc.stringMatching(/^[a-z2-7]{56}(\.onion)?$/).map(str),
      unicodeStrings,
    ),
  ),
  fc.tuple(
    fc.constant('port'),
    fc.oneof(
      hugeNumbers,
      squatValues.filter((v) => v.label.includes('port')),
    ),
  ),
  fc.tuple(fc.constant('publicKey'), pems),
  fc.tuple(
    fc.constant('signature'),
    fc.oneof(
      squatValues.filter((v) => v.label.includes('signature')),
      fc.uint8Array({ minLength: 0, maxLength: 600 }).map((b) => str(Buffer.from(b).toString('base64'))),
      fc.uint8Array({ minLength: 64, maxLength: 64 }).map((b) => str(Buffer.from(b).toString('base64url'))),
      fc.constantFrom('', '====', 'A', ' AAAA', 'AA\nAA', '-_-_').map(str),
      giantStrings,
    ),
  ),
);

/** A register whose fields are correct but one, re-signed by its own key unless the attack is on the signature. */
export const registerAttack: fc.Arbitrary<FramePlan> = fc
  .record({
    attacks: fc.array(registerFieldAttack, { minLength: 1, maxLength: 3 }),
    resign: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
  })
  .map(({ attacks, resign: sign }) =>
    plan(`register!{${attacks.map(([k, v]) => `${k}=${v.label}`).join(' ')}}${sign ? '+resigned' : ''}`, (ctx) => {
      const entries = templateEntries('register', ctx);
      for (const [key, value] of attacks) {
        const at = entries.findIndex(([k]) => k === key);
        entries[at] = [key, value.text(ctx)];
      }
      if (sign && !attacks.some(([k]) => k === 'signature')) resign(entries, ctx);
      return Buffer.from(renderObject(entries));
    }),
  );

/** The full takeover attempt: the honest peer's nickname, address and key, signed by someone else. */
export const takeoverAttempt: fc.Arbitrary<FramePlan> = fc
  .constantFrom('own-signature', 'replayed-signature')
  .map((how) =>
    plan(`takeover(${how})`, (ctx) => {
      const { identity, nickname, port } = ctx.honest;
      const signature =
        how === 'replayed-signature'
          ? ctx.honest.signature
          : signRegistration(ctx.own, ctx.challenge, nickname, identity.address, port);
      return Buffer.from(
        JSON.stringify({
          type: 'register',
          id: 'takeover',
          nickname,
          address: identity.address,
          port,
          publicKey: identity.publicKeyPem,
          signature,
        }),
      );
    }),
  );

/** A request-shaped object built from nothing: random type, id and fields. */
export const randomRequest: fc.Arbitrary<FramePlan> = fc
  .record({
    type: fc.option(
      fc.oneof(
        fc.constantFrom(...REQUEST_TYPES).map((t) => ({ label: t, text: constant(JSON.stringify(t)) })),
        fieldValue,
      ),
      { nil: undefined },
    ),
    fields: fc.array(fc.tuple(fieldName, fieldValue), { maxLength: 5 }),
  })
  .map(({ type, fields }) =>
    plan(`{type:${type?.label ?? '-'} ${fields.map(([k, v]) => `${k}=${v.label}`).join(' ')}}`, (ctx) => {
      const entries: Entry[] = fields.map(([k, v]) => [k, v.text(ctx)]);
      if (type !== undefined) entries.unshift(['type', type.text(ctx)]);
      return Buffer.from(renderObject(entries));
    }),
  );

/** Any JSON text, top-level nesting, or raw bytes (mostly invalid UTF-8). */
export const notARequest: fc.Arbitrary<FramePlan> = fc.oneof(
  anyJson.map((v) => plan(`json ${v.label}`, (ctx) => Buffer.from(v.text(ctx)))),
  deepNesting.map((v) => plan(v.label, (ctx) => Buffer.from(v.text(ctx)))),
  deepNesting.map((v) =>
    plan(`ping with ${v.label}`, (ctx) => Buffer.from(`{"type":"ping","id":"deep","x":${v.text(ctx)}}`)),
  ),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => plan(`bytes(${bytes.length})`, () => Buffer.from(bytes))),
  fc
    .record({ bytes: fc.integer({ min: 16_000, max: 16_500 }) })
    .map(({ bytes }) => plan(`ping padded to ${bytes} bytes`, () => paddedPing(bytes))),
);

/** `{"type":"ping",...}` of exactly `bytes` bytes (the frame-limit boundary). */
export function paddedPing(bytes: number): Buffer {
  const head = '{"type":"ping","id":"pad","pad":"';
  const tail = '"}';
  return Buffer.from(`${head}${'x'.repeat(Math.max(0, bytes - head.length - tail.length))}${tail}`);
}

// ---------------------------------------------------------------------------------------------
// Byte-level damage after rendering

const INVALID_UTF8 = [
  [0x80],
  [0xbf],
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xc3],
  [0xe2, 0x82],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xfe],
  [0xff],
  [0xef, 0xbb, 0xbf],
] as const;

type ByteDamage =
  | { readonly op: 'flip'; readonly at: number; readonly xor: number }
  | { readonly op: 'insert'; readonly at: number; readonly bytes: readonly number[] }
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'append'; readonly bytes: readonly number[] };

const position = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });
const byteDamage: fc.Arbitrary<ByteDamage> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: position, xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ op: fc.constant('insert' as const), at: position, bytes: fc.constantFrom(...INVALID_UTF8) }),
  fc.record({ op: fc.constant('truncate' as const), at: position }),
  fc.record({
    op: fc.constant('append' as const),
    bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }),
  }),
);

function applyDamage(bytes: Buffer, damage: ByteDamage): Buffer {
  if (damage.op === 'append') return Buffer.concat([bytes, Buffer.from(damage.bytes)]);
  const at = Math.floor(damage.at * bytes.length);
  if (damage.op === 'truncate') return bytes.subarray(0, at);
  if (damage.op === 'insert')
    return Buffer.concat([bytes.subarray(0, at), Buffer.from(damage.bytes), bytes.subarray(at)]);
  const copy = Buffer.from(bytes);
  if (copy.length > 0) copy[at] = (copy[at] as number) ^ damage.xor;
  return copy;
}

export const damagedRequest: fc.Arbitrary<FramePlan> = fc
  .record({ base: mutatedRequest, damage: fc.array(byteDamage, { minLength: 1, maxLength: 3 }) })
  .map(({ base, damage }) =>
    plan(`${base.label} ~${damage.map((d) => d.op).join(',')}`, (ctx) => damage.reduce(applyDamage, base.render(ctx))),
  );

export const anyFrame: fc.Arbitrary<FramePlan> = fc.oneof(
  { arbitrary: registerAttack, weight: 4 },
  { arbitrary: takeoverAttempt, weight: 1 },
  { arbitrary: mutatedRequest, weight: 5 },
  { arbitrary: randomRequest, weight: 2 },
  { arbitrary: damagedRequest, weight: 2 },
  { arbitrary: notARequest, weight: 2 },
);

// ---------------------------------------------------------------------------------------------
// How a frame travels

export type Transport =
  | { readonly kind: 'text' }
  | { readonly kind: 'fragments'; readonly cuts: readonly number[]; readonly pingBetween: boolean }
  | { readonly kind: 'binary' }
  | { readonly kind: 'binary-fragments'; readonly cuts: readonly number[] };

export const transport: fc.Arbitrary<Transport> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'text' as const }), weight: 8 },
  {
    arbitrary: fc.record({
      kind: fc.constant('fragments' as const),
      cuts: fc.array(position, { minLength: 1, maxLength: 6 }),
      pingBetween: fc.boolean(),
    }),
    weight: 3,
  },
  { arbitrary: fc.constant({ kind: 'binary' as const }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant('binary-fragments' as const),
      cuts: fc.array(position, { minLength: 1, maxLength: 3 }),
    }),
    weight: 1,
  },
);

/** Splits a payload at the given fractions into (possibly empty) fragments. */
export function fragment(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...cuts.map((c) => Math.floor(c * bytes.length)), bytes.length].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let start = 0;
  for (const end of points) {
    parts.push(bytes.subarray(start, end));
    start = end;
  }
  return parts;
}

// ---------------------------------------------------------------------------------------------
// The oracle: PROTOCOL.md's answer to a frame

export type RequestId = string | number | null;

export type Expected =
  | { readonly kind: 'close'; readonly code: number }
  | {
      readonly kind: 'reply';
      readonly id: RequestId;
      readonly allowed: ReadonlySet<string>;
      readonly thenClose?: number;
    };

const SUCCESS: Readonly<Record<(typeof REQUEST_TYPES)[number], string>> = {
  register: 'registered',
  lookup: 'peer',
  list: 'peers',
  subscribe: 'subscribed',
  unregister: 'unregistered',
  ping: 'pong',
};

/** The table's error codes per request; RATE_LIMITED applies to every request (the budget). */
const ERRORS: Readonly<Record<(typeof REQUEST_TYPES)[number], readonly string[]>> = {
  register: [
    'BAD_REQUEST',
    'INVALID_NICKNAME',
    'INVALID_ADDRESS',
    'INVALID_PORT',
    'INVALID_PUBLIC_KEY',
    'BAD_SIGNATURE',
    'NICKNAME_TAKEN',
    'ADDRESS_TAKEN',
    'ALREADY_REGISTERED',
    'REGISTRY_FULL',
  ],
  lookup: ['BAD_REQUEST', 'NOT_FOUND'],
  list: ['BAD_REQUEST'],
  subscribe: [],
  unregister: ['NOT_REGISTERED'],
  ping: [],
};

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function reply(id: RequestId, ...allowed: string[]): Expected {
  return { kind: 'reply', id, allowed: new Set([...allowed, 'RATE_LIMITED']) };
}

/** What the spec says must come back for `bytes` sent as a text (or binary) message. */
export function expectedAnswer(bytes: Buffer, binary: boolean, maxMessageBytes: number): Expected {
  if (bytes.length > maxMessageBytes) return { kind: 'close', code: 1009 };
  if (binary) return { kind: 'reply', id: null, allowed: new Set(['BINARY_NOT_SUPPORTED']), thenClose: 1003 };
  let body: unknown;
  try {
    body = JSON.parse(strictUtf8.decode(bytes));
  } catch {
    return reply(null, 'BAD_JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return reply(null, 'BAD_JSON');
  const record = body as Record<string, unknown>;
  const rawId = Object.hasOwn(record, 'id') ? record.id : undefined;
  let id: RequestId;
  // "string of at most 64 chars": counted in UTF-16 code units, as JavaScript and the server count.
  if (rawId === undefined || rawId === null) id = null;
  else if (typeof rawId === 'string' && rawId.length <= 64) id = rawId;
  else if (typeof rawId === 'number' && Number.isSafeInteger(rawId)) id = rawId;
  else return reply(null, 'BAD_REQUEST');
  const type = Object.hasOwn(record, 'type') ? record.type : undefined;
  if (typeof type !== 'string') return reply(id, 'BAD_REQUEST');
  if (!(REQUEST_TYPES as readonly string[]).includes(type)) return reply(id, 'UNKNOWN_TYPE');
  const known = type as (typeof REQUEST_TYPES)[number];
  return reply(id, SUCCESS[known], ...ERRORS[known]);
}

export const SUCCESS_TYPES: ReadonlySet<string> = new Set(Object.values(SUCCESS));
