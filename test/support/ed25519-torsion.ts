/**
 * Ed25519 points that PROTOCOL.md erratum 1 refuses, for tests: the eight points of small order
 * (their canonical encodings, as libsodium's blocklist has them) and a real key plus a point of
 * order 8, which is of full order but not in the prime-order subgroup.
 */
import { generateKeyPairSync } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';

/** Canonical encodings of small-order points, by name. */
export const SMALL_ORDER_POINTS: Readonly<Record<string, string>> = {
  'the identity (order 1)': '0100000000000000000000000000000000000000000000000000000000000000',
  'order 2 (0, -1)': 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'order 4 (sqrt(-1), 0)': '0000000000000000000000000000000000000000000000000000000000000000',
  'order 4 (-sqrt(-1), 0)': '0000000000000000000000000000000000000000000000000000000000000080',
  'order 8': '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'order 8, negated x': '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  'order 8, other y': 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'order 8, other y, negated x': 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
};

/** 32 bytes that decode to no point of the curve (no x for this y). */
export const NOT_A_POINT = '0200000000000000000000000000000000000000000000000000000000000000';

/** The raw 32-byte public key of a fresh Ed25519 key pair. */
export function realRawKey(): Buffer {
  return generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
}

/** `raw` (a real key's point P) as P + T, T of order 8: a point with a torsion component. */
export function withTorsion(raw: Uint8Array): Buffer {
  const order8 = ed25519.Point.fromHex(SMALL_ORDER_POINTS['order 8'] as string);
  return Buffer.from(ed25519.Point.fromBytes(raw).add(order8).toBytes());
}

/** The PEM SubjectPublicKeyInfo of a raw 32-byte Ed25519 key, whatever its point. */
export function ed25519Pem(raw: Uint8Array): string {
  const der = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]);
  return `-----BEGIN PUBLIC KEY-----\n${der.toString('base64')}\n-----END PUBLIC KEY-----`;
}

/**
 * The PEM with its base64's unused last bits set: OpenSSL reads it as the same key, the server's
 * fixed-layout fast path for Ed25519 does not (the general path then decides).
 */
export function nonCanonicalBase64(pem: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const [header, body = '', footer] = pem.trim().split('\n');
  const last = alphabet.indexOf(body.at(-2) ?? '');
  return [header, `${body.slice(0, -2)}${alphabet[(last & ~3) | 1]}=`, footer].join('\n');
}
