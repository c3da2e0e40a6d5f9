import { describe, expect, it } from 'vitest';
import { REV2_LIMITS } from '../../../test/support/fake-registry.js';
import { randomOnion } from '../../../test/support/registry-harness.js';
import { RegistryError } from './errors.js';
import {
  decodeFrame,
  expectPeer,
  expectPeerPage,
  expectRegistered,
  readEvent,
  readHello,
  readPeer,
  readRefusal,
  type Frame,
} from './reply-parser.js';

const bytes = (value: unknown): Buffer => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

const peer = {
  nickname: 'alice',
  address: randomOnion(),
  port: 5050,
  publicKey: '-----BEGIN PUBLIC KEY-----\n…',
  keyType: 'ed25519',
  registeredAt: '2025-01-01T00:00:00.000Z',
  addressVerified: false,
} as const;
/** What the parser makes of `peer`, a peer object without rev 2's addressVerified. */
const parsed = { ...peer, addressVerified: false };

const hello = { type: 'hello', protocol: 1, challenge: 'c', onion: null, limits: { maxMessageBytes: 2048 } };

function thrown(fn: () => unknown): RegistryError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    return err as RegistryError;
  }
  throw new Error('expected a RegistryError, got none');
}

describe('reply parser: frames', () => {
  it('decodes a frame that is one JSON object, also from fragments and ArrayBuffers', () => {
    expect(decodeFrame(bytes({ type: 'pong', id: 1 }))).toEqual({ type: 'pong', id: 1 });
    expect(decodeFrame([bytes('{"type":'), bytes('"pong"}')])).toEqual({ type: 'pong' });
    expect(decodeFrame(new TextEncoder().encode('{"type":"pong"}').buffer)).toEqual({ type: 'pong' });
  });

  it('gives nothing for a frame that is not JSON, or not a JSON object', () => {
    for (const text of ['', 'not json', '{"type":', '[]', '[{"type":"pong"}]', 'null', '42', '"hello"']) {
      expect(decodeFrame(bytes(text))).toBeUndefined();
    }
  });
});

describe('reply parser: hello', () => {
  it('reads the greeting and its frame limit', () => {
    expect(readHello(hello)).toEqual({
      protocol: 1,
      challenge: 'c',
      onion: null,
      maxMessageBytes: 2048,
      features: [],
      limits: { maxMessageBytes: 2048 },
    });
    expect(readHello({ ...hello, onion: 'x.onion' })?.onion).toBe('x.onion');
  });

  it("reads a revision-2 hello's features and limits, ignoring limits and features it does not know", () => {
    const rev2 = readHello({
      ...hello,
      features: ['claims', 'address-proof', 7, 'later'],
      limits: { ...REV2_LIMITS, later: 1, claimDays: '30' },
    });
    expect(rev2?.features).toEqual(['claims', 'address-proof', 'later']);
    const { claimDays: _claimDays, ...known } = REV2_LIMITS;
    expect(rev2?.limits).toEqual(known);
    expect(rev2?.maxMessageBytes).toBe(16_384);
  });

  it('takes a hello without features (revision 1) as a server with none', () => {
    expect(readHello(hello)?.features).toEqual([]);
    expect(readHello({ ...hello, features: 'claims' })?.features).toEqual([]);
  });

  it('assumes the revision-1 limit when the hello has no limits', () => {
    const { limits: _limits, ...revision1 } = hello;
    expect(readHello(revision1)?.maxMessageBytes).toBe(16_384);
    expect(readHello(revision1)?.limits).toEqual({});
    expect(readHello({ ...hello, limits: { maxMessageBytes: '2048' } })?.maxMessageBytes).toBe(16_384);
  });

  it('gives nothing for a frame that is not a hello', () => {
    const notHellos: Frame[] = [
      { ...hello, type: 'pong' },
      { ...hello, protocol: '1' },
      { ...hello, challenge: undefined },
      { ...hello, onion: 5 },
    ];
    for (const frame of notHellos) expect(readHello(frame)).toBeUndefined();
  });
});

describe('reply parser: peers', () => {
  it('reads a peer object, ignoring fields it does not know', () => {
    expect(readPeer({ ...peer, addressVerified: true, later: 'x' })).toEqual({ ...peer, addressVerified: true });
    expect(readPeer({ ...peer, keyType: 'rsa' })?.keyType).toBe('rsa');
  });

  it('reads a revision-1 peer (no addressVerified) as not verified', () => {
    expect(readPeer(peer)).toEqual(parsed);
    expect(readPeer({ ...peer, addressVerified: 'yes' })).toBeUndefined();
  });

  it('gives nothing for a peer with a field missing or of the wrong type', () => {
    expect(readPeer(null)).toBeUndefined();
    expect(readPeer([peer])).toBeUndefined();
    expect(readPeer({ ...peer, port: '5050' })).toBeUndefined();
    expect(readPeer({ ...peer, keyType: 'dsa' })).toBeUndefined();
    const { registeredAt: _registeredAt, ...partial } = peer;
    expect(readPeer(partial)).toBeUndefined();
  });

  it('reads addressVerified (revision 2), and a revision-1 peer without it as unverified', () => {
    expect(readPeer({ ...peer, addressVerified: true })?.addressVerified).toBe(true);
    const { addressVerified: _addressVerified, ...revision1 } = peer;
    expect(readPeer(revision1)).toEqual(peer);
  });

  it('answers a malformed peer in a reply with BAD_RESPONSE', () => {
    expect(expectPeer(peer)).toEqual(parsed);
    expect(thrown(() => expectPeer({ ...peer, port: null })).code).toBe('BAD_RESPONSE');
  });

  it('reads a page of peers, and answers a malformed one with BAD_RESPONSE', () => {
    expect(expectPeerPage({ type: 'peers', peers: [peer], next: 'alice' })).toEqual({ peers: [parsed], next: 'alice' });
    expect(expectPeerPage({ type: 'peers', peers: [], next: null })).toEqual({ peers: [], next: null });
    expect(thrown(() => expectPeerPage({ type: 'peers', peers: {}, next: null })).message).toMatch(
      /malformed "peers" reply/,
    );
    expect(thrown(() => expectPeerPage({ type: 'peers', peers: [], next: 3 })).code).toBe('BAD_RESPONSE');
    expect(thrown(() => expectPeerPage({ type: 'peers', peers: [{ nickname: 'x' }], next: null })).message).toMatch(
      /malformed peer object/,
    );
  });
});

describe('reply parser: events', () => {
  it('reads each event type', () => {
    expect(readEvent({ type: 'peer_joined', peer })).toEqual({ type: 'peer_joined', peer: parsed });
    expect(readEvent({ type: 'peer_left', nickname: 'alice' })).toEqual({ type: 'peer_left', nickname: 'alice' });
    expect(readEvent({ type: 'replaced' })).toEqual({ type: 'replaced' });
    const until = '2025-02-01T00:00:00.000Z';
    expect(readEvent({ type: 'claimed', claim: { until, later: 1 } })).toEqual({ type: 'claimed', claim: { until } });
    expect(readEvent({ type: 'evicted', reason: 'address proven by its owner' })).toEqual({
      type: 'evicted',
      reason: 'address proven by its owner',
    });
  });

  it('gives nothing for a malformed event, but an evicted without a reason still evicts', () => {
    expect(readEvent({ type: 'peer_joined', peer: { ...peer, port: 'x' } })).toBeUndefined();
    expect(readEvent({ type: 'peer_left' })).toBeUndefined();
    expect(readEvent({ type: 'claimed' })).toBeUndefined();
    expect(readEvent({ type: 'claimed', claim: { until: 'not a date' } })).toBeUndefined();
    expect(readEvent({ type: 'evicted' })).toEqual({ type: 'evicted', reason: '' });
  });

  it('ignores message types it does not know (later revisions add some)', () => {
    for (const type of ['something_new', 5, undefined]) expect(readEvent({ type })).toBeUndefined();
  });
});

describe('reply parser: registered', () => {
  it('reads the claim of a revision-2 reply, and none from a revision-1 one', () => {
    const until = '2025-02-01T00:00:00.000Z';
    expect(expectRegistered({ type: 'registered', peer, claim: { until } })).toEqual({
      peer: parsed,
      claim: { until },
    });
    expect(expectRegistered({ type: 'registered', peer, claim: null })).toEqual({ peer: parsed, claim: null });
    expect(expectRegistered({ type: 'registered', peer })).toEqual({ peer: parsed, claim: null });
  });

  it('answers a malformed claim with BAD_RESPONSE', () => {
    expect(thrown(() => expectRegistered({ type: 'registered', peer, claim: { until: 5 } })).message).toMatch(
      /malformed claim/,
    );
    expect(thrown(() => expectRegistered({ type: 'registered', peer, claim: 'soon' })).code).toBe('BAD_RESPONSE');
  });
});

describe('reply parser: error replies', () => {
  it('turns an error reply into the RegistryError of its code, from the server', () => {
    const err = readRefusal({ type: 'error', id: 1, code: 'NICKNAME_TAKEN', message: 'taken' });
    expect(err).toMatchObject({ code: 'NICKNAME_TAKEN', message: 'taken', fromServer: true });
  });

  it('keeps a code it does not know in the text of a BAD_RESPONSE', () => {
    const err = readRefusal({ type: 'error', id: 1, code: 'FROM_REVISION_9', message: 'no' });
    expect(err.code).toBe('BAD_RESPONSE');
    expect(err.message).toContain('"FROM_REVISION_9"');
  });

  it('carries retryAfterMs (rev 2) when the reply has a usable one', () => {
    expect(readRefusal({ type: 'error', code: 'UNAVAILABLE', message: 'store', retryAfterMs: 1500 })).toMatchObject({
      code: 'UNAVAILABLE',
      retryAfterMs: 1500,
    });
    expect(readRefusal({ type: 'error', code: 'RATE_LIMITED', retryAfterMs: 2.2 }).retryAfterMs).toBe(3);
    for (const bad of [-1, '100', null, Number.NaN])
      expect(readRefusal({ type: 'error', code: 'RATE_LIMITED', retryAfterMs: bad }).retryAfterMs).toBeNull();
    expect(readRefusal({ type: 'error', code: 'NICKNAME_TAKEN' }).retryAfterMs).toBeNull();
  });

  it('gives a refusal without a message a default one', () => {
    expect(readRefusal({ type: 'error', code: 'RATE_LIMITED' }).message).toBe('the registry refused the request');
  });
});
