/** Protocol v1 constants and message types, shared by the server and the client (PROTOCOL.md). */
import type { ErrorCode } from './errors.js';

export const PROTOCOL_VERSION = 1;
export const NICKNAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
export const MAX_ID_LENGTH = 64;
export const MAX_LIST_LIMIT = 1000;
export type RequestId = string | number | null;
export type KeyType = 'ed25519' | 'rsa';

export interface PeerRecord {
  readonly nickname: string;
  readonly address: string;
  readonly port: number;
  readonly publicKey: string;
  readonly keyType: KeyType;
  readonly registeredAt: string;
}

export interface RegisterRequest {
  readonly type: 'register';
  readonly id: RequestId;
  readonly nickname: string;
  readonly address: string;
  readonly port: number;
  readonly publicKey: string;
  readonly signature: string;
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
export interface SimpleRequest {
  readonly type: 'subscribe' | 'unregister' | 'ping';
  readonly id: RequestId;
}
export type Request = RegisterRequest | LookupRequest | ListRequest | SimpleRequest;

export type ServerMessage =
  | { type: 'hello'; protocol: number; challenge: string; onion: string | null; limits: { maxMessageBytes: number } }
  | { type: 'error'; id: RequestId; code: ErrorCode; message: string; retryAfterMs?: number }
  | { type: 'registered'; id: RequestId; peer: PeerRecord }
  | { type: 'peer'; id: RequestId; peer: PeerRecord }
  | { type: 'peers'; id: RequestId; peers: PeerRecord[]; next: string | null }
  | { type: 'subscribed'; id: RequestId }
  | { type: 'unregistered'; id: RequestId }
  | { type: 'pong'; id: RequestId }
  | { type: 'replaced' }
  | { type: 'peer_joined'; peer: PeerRecord }
  | { type: 'peer_left'; nickname: string };
