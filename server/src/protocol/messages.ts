/** Protocol v1 constants and message types, shared by the server and the client (PROTOCOL.md). */
import type { ErrorCode } from './errors.js';

export const PROTOCOL_VERSION = 1;
export const NICKNAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

/** The form nicknames are compared in (unique case-insensitively). Nicknames are ASCII, so this is exact. */
export function nicknameKey(nickname: string): string {
  return nickname.toLowerCase();
}
export const MAX_ID_LENGTH = 64;
export const MAX_LIST_LIMIT = 1000;
/** Revision 2: the optional parts of PROTOCOL.md this server implements, sent in the hello. */
export const FEATURES = ['claims', 'address-proof', 'moderation'] as const;
export type RequestId = string | number | null;
export type KeyType = 'ed25519' | 'rsa';

export interface PeerRecord {
  readonly nickname: string;
  readonly address: string;
  readonly port: number;
  readonly publicKey: string;
  readonly keyType: KeyType;
  readonly registeredAt: string;
  /** Revision 2: the registration carried a valid address proof. */
  readonly addressVerified: boolean;
}

/** Revision 2: how long a key's claim on its nickname and address lasts. */
export interface ClaimInfo {
  readonly until: string;
}

/** Revision 2: the values a client must live within (all configured, none constant). */
export interface HelloLimits {
  readonly maxMessageBytes: number;
  readonly heartbeatSeconds: number;
  readonly requestsPerSecond: number;
  readonly requestBurst: number;
  readonly maxListLimit: number;
  readonly claimDays: number;
  readonly claimAfterSeconds: number;
}

export interface RegisterRequest {
  readonly type: 'register';
  readonly id: RequestId;
  readonly nickname: string;
  readonly address: string;
  readonly port: number;
  readonly publicKey: string;
  readonly signature: string;
  /** Revision 2: base64 of the onion key's signature (PROTOCOL.md "Address proof"); null when absent. */
  readonly addressProof: string | null;
}
export interface LookupRequest {
  readonly type: 'lookup';
  readonly id: RequestId;
  readonly nickname: string;
}
export interface ListRequest {
  readonly type: 'list';
  readonly id: RequestId;
  readonly after: string | null;
  readonly limit: number;
}
export interface UnregisterRequest {
  readonly type: 'unregister';
  readonly id: RequestId;
  /** Revision 2: also delete the key's claim. */
  readonly release: boolean;
}
export interface SimpleRequest {
  readonly type: 'subscribe' | 'ping';
  readonly id: RequestId;
}
export type Request = RegisterRequest | LookupRequest | ListRequest | UnregisterRequest | SimpleRequest;

export type ServerMessage =
  | {
      type: 'hello';
      protocol: number;
      challenge: string;
      onion: string | null;
      features: readonly string[];
      limits: HelloLimits;
    }
  | { type: 'error'; id: RequestId; code: ErrorCode; message: string; retryAfterMs?: number }
  | { type: 'registered'; id: RequestId; peer: PeerRecord; claim: ClaimInfo | null }
  | { type: 'peer'; id: RequestId; peer: PeerRecord }
  | { type: 'peers'; id: RequestId; peers: PeerRecord[]; next: string | null }
  | { type: 'subscribed'; id: RequestId }
  | { type: 'unregistered'; id: RequestId }
  | { type: 'pong'; id: RequestId }
  | { type: 'replaced' }
  | { type: 'claimed'; claim: ClaimInfo }
  | { type: 'evicted'; reason: string }
  | { type: 'blocked'; reason: string | null }
  | { type: 'peer_joined'; peer: PeerRecord }
  | { type: 'peer_left'; nickname: string };
