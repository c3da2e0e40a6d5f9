/**
 * The one parser of what the registry sends to a client. Every frame from the registry is
 * `unknown` until it passes through here; past it, the client trusts the types. Pure: no I/O.
 *
 * Unknown message types and fields are ignored (PROTOCOL.md: later revisions add some).
 */
import { RegistryError, isErrorCode } from './errors.js';
import { frameBytes, isRecord, type FrameData } from './json-frame.js';
import type { PeerRecord } from './messages.js';

/** A decoded frame: some JSON object, not yet checked further. */
export type Frame = Record<string, unknown>;

/** The `limits` of a hello that this client reads (rev 2 sends them all; rev 1 only maxMessageBytes). */
export const HELLO_LIMITS = [
  'maxMessageBytes',
  'heartbeatSeconds',
  'requestsPerSecond',
  'requestBurst',
  'maxListLimit',
  'claimDays',
  'claimAfterSeconds',
] as const;
export type HelloLimits = Readonly<Partial<Record<(typeof HELLO_LIMITS)[number], number>>>;

/** What the client keeps of the registry's greeting. */
export interface Hello {
  readonly protocol: number;
  readonly challenge: string;
  /** The registry's own onion address, or null while it does not know it yet. */
  readonly onion: string | null;
  readonly maxMessageBytes: number;
  /** Rev 2: the optional parts the server implements (e.g. "claims", "address-proof"); empty from a rev-1 server. */
  readonly features: readonly string[];
  /** The limits the hello announced, those of them that are numbers; a limit left out is absent. */
  readonly limits: HelloLimits;
}

/** A peer object as the client reads it: rev 2's `addressVerified` is false when a rev-1 server leaves it out. */
export interface Peer extends PeerRecord {
  readonly addressVerified: boolean;
}

/** Rev 2: the claim a key holds on its nickname and address, until `until` (ISO 8601). */
export interface Claim {
  readonly until: string;
}

/** A `registered` reply: the peer, and the claim it holds already (null: none yet, or a rev-1 server). */
export interface Registered {
  readonly peer: Peer;
  readonly claim: Claim | null;
}

/** One page of a `list`: `next` is the nickname to pass as `after`, or null on the last page. */
export interface PeerPage {
  readonly peers: readonly Peer[];
  readonly next: string | null;
}

/** A message the registry sends unasked (not a reply to a request). */
export type RegistryEvent =
  | { readonly type: 'peer_joined'; readonly peer: Peer }
  | { readonly type: 'peer_left'; readonly nickname: string }
  | { readonly type: 'replaced' }
  /** Rev 2: the claim was made (or moved) on this connection after its `registered` reply. */
  | { readonly type: 'claimed'; readonly claim: Claim }
  /** Rev 2: the address's owner proved it; the registry closes this connection (4002). */
  | { readonly type: 'evicted'; readonly reason: string }
  /** Rev 3: the registry's operator blocked this registration; the registry closes this connection (4003). */
  | { readonly type: 'blocked'; readonly reason: string | null };

/** The frame limit a hello without `limits` (revision 1) implies. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16_384;

/** A text frame as a JSON object; undefined when it is not JSON or not an object. */
export function decodeFrame(data: FrameData): Frame | undefined {
  try {
    const value: unknown = JSON.parse(frameBytes(data).toString('utf8'));
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** A peer object; undefined when a field is missing or of the wrong type. */
export function readPeer(value: unknown): Peer | undefined {
  if (!isRecord(value)) return undefined;
  const { nickname, address, port, publicKey, keyType, registeredAt, addressVerified } = value;
  if (
    typeof nickname !== 'string' ||
    typeof address !== 'string' ||
    typeof port !== 'number' ||
    typeof publicKey !== 'string' ||
    (keyType !== 'ed25519' && keyType !== 'rsa') ||
    typeof registeredAt !== 'string' ||
    (addressVerified !== undefined && typeof addressVerified !== 'boolean')
  ) {
    return undefined;
  }
  return { nickname, address, port, publicKey, keyType, registeredAt, addressVerified: addressVerified === true };
}

/** A claim object; undefined when it is not one (`until` must be a date). */
export function readClaim(value: unknown): Claim | undefined {
  if (!isRecord(value) || typeof value.until !== 'string' || Number.isNaN(Date.parse(value.until))) return undefined;
  return { until: value.until };
}

function readLimits(limits: unknown): HelloLimits {
  const read: Partial<Record<(typeof HELLO_LIMITS)[number], number>> = {};
  if (!isRecord(limits)) return read;
  for (const name of HELLO_LIMITS) {
    const value = limits[name];
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) read[name] = value;
  }
  return read;
}

/** The greeting; undefined when the frame is not a registry hello. */
export function readHello(frame: Frame): Hello | undefined {
  const { type, protocol, challenge, onion, features } = frame;
  if (type !== 'hello' || typeof protocol !== 'number' || typeof challenge !== 'string') return undefined;
  if (onion !== null && typeof onion !== 'string') return undefined;
  const limits = readLimits(frame.limits);
  return {
    protocol,
    challenge,
    onion,
    maxMessageBytes: limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    // A feature name that is not a string is of no revision this client knows: left out.
    features: Array.isArray(features) ? features.filter((f): f is string => typeof f === 'string') : [],
    limits,
  };
}

/** An event; undefined for a malformed one and for types this client does not know. */
export function readEvent(frame: Frame): RegistryEvent | undefined {
  switch (frame.type) {
    case 'peer_joined': {
      const peer = readPeer(frame.peer);
      return peer === undefined ? undefined : { type: 'peer_joined', peer };
    }
    case 'peer_left':
      return typeof frame.nickname === 'string' ? { type: 'peer_left', nickname: frame.nickname } : undefined;
    case 'replaced':
      return { type: 'replaced' };
    case 'claimed': {
      const claim = readClaim(frame.claim);
      return claim === undefined ? undefined : { type: 'claimed', claim };
    }
    case 'evicted':
      // The close (4002) follows whatever the reason says: an evicted without one still counts.
      return { type: 'evicted', reason: typeof frame.reason === 'string' ? frame.reason : '' };
    case 'blocked':
      // The close (4003) follows whatever the reason says: a blocked without one still counts.
      return { type: 'blocked', reason: typeof frame.reason === 'string' ? frame.reason : null };
    default:
      return undefined;
  }
}

/** The error an `error` reply stands for. A code of a later revision is still a refusal, with its code in the text. */
export function readRefusal(frame: Frame): RegistryError {
  const message = typeof frame.message === 'string' ? frame.message : 'the registry refused the request';
  const { retryAfterMs } = frame;
  // Rev 2: RATE_LIMITED and UNAVAILABLE may say how long to wait; a bad value is ignored, not fatal.
  const options =
    typeof retryAfterMs === 'number' && Number.isFinite(retryAfterMs) && retryAfterMs >= 0
      ? { retryAfterMs: Math.ceil(retryAfterMs) }
      : {};
  return isErrorCode(frame.code)
    ? new RegistryError(frame.code, message, options)
    : new RegistryError(
        'BAD_RESPONSE',
        `the registry refused with code ${JSON.stringify(frame.code)}: ${message}`,
        options,
      );
}

/** The peer of a `registered` or `peer` reply; BAD_RESPONSE when it is malformed. */
export function expectPeer(value: unknown): Peer {
  const peer = readPeer(value);
  if (peer === undefined) throw new RegistryError('BAD_RESPONSE', 'the registry sent a malformed peer object');
  return peer;
}

/** A `registered` reply; BAD_RESPONSE when its peer, or its claim (rev 2) when present, is malformed. */
export function expectRegistered(frame: Frame): Registered {
  const peer = expectPeer(frame.peer);
  if (frame.claim === undefined || frame.claim === null) return { peer, claim: null };
  const claim = readClaim(frame.claim);
  if (claim === undefined)
    throw new RegistryError('BAD_RESPONSE', 'the registry sent a malformed claim in its "registered" reply');
  return { peer, claim };
}

/** The page of a `peers` reply; BAD_RESPONSE when it is malformed. */
export function expectPeerPage(frame: Frame): PeerPage {
  const { peers, next } = frame;
  if (!Array.isArray(peers) || (next !== null && typeof next !== 'string')) {
    throw new RegistryError('BAD_RESPONSE', 'the registry sent a malformed "peers" reply');
  }
  return { peers: peers.map(expectPeer), next };
}
