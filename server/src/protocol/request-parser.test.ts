import { describe, expect, it } from 'vitest';
import { MAX_JSON_CONTAINERS, parseRequest, requestCost } from './request-parser.js';
import { registrationPayload } from './signing.js';

const frame = (value: unknown): Buffer => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

describe('request parser', () => {
  it('turns each request type into a typed request', () => {
    expect(parseRequest(frame({ type: 'ping', id: 1 }))).toEqual({ ok: true, request: { type: 'ping', id: 1 } });
    expect(parseRequest(frame({ type: 'lookup', nickname: 'a' }))).toEqual({
      ok: true,
      request: { type: 'lookup', id: null, nickname: 'a' },
    });
    expect(parseRequest(frame({ type: 'list' }))).toEqual({
      ok: true,
      request: { type: 'list', id: null, after: null, limit: 1000 },
    });
    expect(parseRequest(frame({ type: 'list', after: 'b', limit: 3 }))).toMatchObject({
      request: { after: 'b', limit: 3 },
    });
  });

  it('does not see inherited or __proto__ properties as fields', () => {
    const result = parseRequest(frame('{"__proto__":{"type":"ping"},"id":1}'));
    expect(result).toMatchObject({ ok: false, id: 1, error: { code: 'BAD_REQUEST' } });
    const viaConstructor = parseRequest(frame('{"type":"lookup","constructor":{"nickname":"x"}}'));
    expect(viaConstructor).toMatchObject({
      ok: false,
      error: { code: 'BAD_REQUEST', message: 'missing field "nickname"' },
    });
  });

  it('keeps the id of a request whose fields are wrong', () => {
    expect(parseRequest(frame({ type: 'lookup', id: 'q1', nickname: 5 }))).toMatchObject({
      ok: false,
      id: 'q1',
      error: { code: 'BAD_REQUEST' },
    });
  });

  it('refuses an unsafe integer id', () => {
    expect(parseRequest(frame('{"type":"ping","id":1e300}'))).toMatchObject({
      ok: false,
      id: null,
      error: { code: 'BAD_REQUEST' },
    });
  });

  it('answers bytes that are not UTF-8 with BAD_JSON and no id', () => {
    const result = parseRequest(
      Buffer.concat([frame('{"type":"ping","id":"x"'), Buffer.from([0xc3, 0x28]), frame('}')]),
    );
    expect(result).toMatchObject({
      ok: false,
      id: null,
      error: { code: 'BAD_JSON', message: 'frame is not valid UTF-8' },
    });
  });

  it('reads a frame that starts with a UTF-8 byte order mark as if it had none', () => {
    const withMark = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), frame({ type: 'ping', id: 'bom' })]);
    expect(parseRequest(withMark)).toEqual({ ok: true, request: { type: 'ping', id: 'bom' } });
  });

  it('reads a request split over several fragments', () => {
    expect(parseRequest([frame('{"type":"pi'), frame('ng","id":7}')])).toEqual({
      ok: true,
      request: { type: 'ping', id: 7 },
    });
  });

  it('refuses without capturing a stack: a refusal is an answer, not a bug', () => {
    const result = parseRequest(frame({ type: 'lookup', nickname: 5 }));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.stack?.split('\n')).toHaveLength(1);
  });

  it(`reads a request whatever its unknown fields hold, ${MAX_JSON_CONTAINERS} arrays deep or more`, () => {
    const nested = `{"type":"ping","id":1,"x":${'['.repeat(7_000)}${']'.repeat(7_000)}}`;
    expect(parseRequest(frame(nested))).toEqual({ ok: true, request: { type: 'ping', id: 1 } });
  });

  it('reads brackets inside strings as text', () => {
    const result = parseRequest(frame({ type: 'lookup', id: 7, nickname: '['.repeat(300) }));
    expect(result).toEqual({ ok: true, request: { type: 'lookup', id: 7, nickname: '['.repeat(300) } });
  });

  it('builds the signed payload from the values exactly as sent', () => {
    expect(registrationPayload('CH', 'Alice', 'ABC.onion', 5050)).toBe(
      'p2p-tor-chat/register/v1\nCH\nAlice\nABC.onion\n5050',
    );
  });
});

describe('request cost', () => {
  it(`is one token for any frame with up to ${MAX_JSON_CONTAINERS} arrays and objects`, () => {
    expect(
      requestCost(frame({ type: 'register', nickname: 'a', address: 'b', port: 1, publicKey: 'k', signature: 's' })),
    ).toBe(1);
    expect(
      requestCost(
        frame(`{"type":"ping","x":[${Array.from({ length: MAX_JSON_CONTAINERS - 2 }, () => '[]').join(',')}]}`),
      ),
    ).toBe(1);
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    expect(requestCost(frame({ type: 'lookup', nickname: '[{'.repeat(4_000) }))).toBe(1);
    expect(requestCost(frame({ type: 'lookup', nickname: `\\"${'['.repeat(4_000)}` }))).toBe(1);
  });

  it(`is one token per ${MAX_JSON_CONTAINERS} arrays and objects past that, nested or side by side`, () => {
    expect(requestCost(frame(`{"type":"ping","x":${'['.repeat(7_000)}${']'.repeat(7_000)}}`))).toBe(
      Math.ceil(7_001 / MAX_JSON_CONTAINERS),
    );
    expect(
      requestCost(frame(`{"type":"ping","x":[${Array.from({ length: MAX_JSON_CONTAINERS }, () => '{}').join(',')}]}`)),
    ).toBe(2);
  });
});
