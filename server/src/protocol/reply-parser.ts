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

/** What the client keeps of the registry's greeting. */
export interface Hello {
  readonly protocol: number;
  readonly challenge: string;
  /** The registry's own onion address, or null while it does not know it yet. */
  readonly onion: string | null;
  readonly maxMessageBytes: number;
}

/** One page of a `list`: `next` is the nickname to pass as `after`, or null on the last page. */
export interface PeerPage {
  readonly peers: readonly PeerRecord[];
  readonly next: string | null;
}

/** A message the registry sends unasked (not a reply to a request). */
export type RegistryEvent =
  | { readonly type: 'peer_joined'; readonly peer: PeerRecord }
  | { readonly type: 'peer_left'; readonly nickname: string }
  | { readonly type: 'replaced' };

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
export function readPeer(value: unknown): PeerRecord | undefined {
  if (!isRecord(value)) return undefined;
  const { nickname, address, port, publicKey, keyType, registeredAt } = value;
  if (
    typeof nickname !== 'string' ||
    typeof address !== 'string' ||
    typeof port !== 'number' ||
    typeof publicKey !== 'string' ||
    (keyType !== 'ed25519' && keyType !== 'rsa') ||
    typeof registeredAt !== 'string'
  ) {
    return undefined;
  }
  // Revision 2 always sends addressVerified; a revision-1 server's peers are unverified.
  return { nickname, address, port, publicKey, keyType, registeredAt, addressVerified: value.addressVerified === true };
}

/** The greeting; undefined when the frame is not a registry hello. */
export function readHello(frame: Frame): Hello | undefined {
  const { type, protocol, challenge, onion, limits } = frame;
  if (type !== 'hello' || typeof protocol !== 'number' || typeof challenge !== 'string') return undefined;
  if (onion !== null && typeof onion !== 'string') return undefined;
  const max = isRecord(limits) && typeof limits.maxMessageBytes === 'number' ? limits.maxMessageBytes : DEFAULT_MAX_MESSAGE_BYTES;
  return { protocol, challenge, onion, maxMessageBytes: max };
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
    default:
      return undefined;
  }
}

/** The error an `error` reply stands for. A code of a later revision is still a refusal, with its code in the text. */
export function readRefusal(frame: Frame): RegistryError {
  const message = typeof frame.message === 'string' ? frame.message : 'the registry refused the request';
  const retryAfterMs = frame.retryAfterMs;
  const options = Number.isSafeInteger(retryAfterMs) && (retryAfterMs as number) >= 0 ? { retryAfterMs: retryAfterMs as number } : {};
  return isErrorCode(frame.code)
    ? new RegistryError(frame.code, message, options)
    : new RegistryError('BAD_RESPONSE', `the registry refused with code ${JSON.stringify(frame.code)}: ${message}`);
}

/** The peer of a `registered` or `peer` reply; BAD_RESPONSE when it is malformed. */
export function expectPeer(value: unknown): PeerRecord {
  const peer = readPeer(value);
  if (peer === undefined) throw new RegistryError('BAD_RESPONSE', 'the registry sent a malformed peer object');
  return peer;
}

/** The page of a `peers` reply; BAD_RESPONSE when it is malformed. */
export function expectPeerPage(frame: Frame): PeerPage {
  const { peers, next } = frame;
  if (!Array.isArray(peers) || (next !== null && typeof next !== 'string')) {
    throw new RegistryError('BAD_RESPONSE', 'the registry sent a malformed "peers" reply');
  }
  return { peers: peers.map(expectPeer), next };
}
