import { createHash } from 'node:crypto';
import { ed25519KeyProblem } from './ed25519-point.js';

/** A v3 onion address in canonical form: 56 lowercase base32 characters followed by `.onion`. */
export type OnionAddress = string & { readonly __brand: 'OnionAddress' };

const BASE32_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const V3_LENGTH = 56;
const V3_VERSION = 3;
const CHECKSUM_PREFIX = Buffer.from('.onion checksum', 'ascii');

export type OnionParseResult =
  | { readonly ok: true; readonly address: OnionAddress; readonly publicKey: Buffer }
  | { readonly ok: false; readonly reason: string };

/** The 2-byte checksum of a v3 address: SHA3-256(".onion checksum" | pubkey | version)[0..2]. */
function checksumOf(publicKey: Uint8Array): Buffer {
  return createHash('sha3-256')
    .update(CHECKSUM_PREFIX)
    .update(publicKey)
    .update(Buffer.of(V3_VERSION))
    .digest()
    .subarray(0, 2);
}

function base32Decode(text: string): Buffer | undefined {
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of text) {
    const index = BASE32_ALPHABET.indexOf(ch);
    if (index < 0) return undefined;
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/**
 * Checks a v3 onion address the way tor does: base32 of pubkey(32) | checksum(2) | version(1),
 * version 3, checksum = SHA3-256(".onion checksum" | pubkey | version)[0..2], and (erratum 1) a
 * key of Ed25519's prime-order subgroup. Accepts any case, with or without the `.onion` suffix.
 */
export function parseOnionAddress(input: string): OnionParseResult {
  const decoded = decodeOnionAddress(input);
  if (!decoded.ok) return decoded;
  return checkOnionKey(decoded);
}

/**
 * The key check of parseOnionAddress, apart: about a millisecond where the rest takes microseconds,
 * so the server makes it only once a registration has been granted its share of the server's budget.
 */
export function checkOnionKey(decoded: Extract<OnionParseResult, { ok: true }>): OnionParseResult {
  const problem = ed25519KeyProblem(decoded.publicKey);
  return problem === null ? decoded : { ok: false, reason: `the key of the address is refused: ${problem}` };
}

/** parseOnionAddress without the key check (checkOnionKey): length, base32, version and checksum. */
export function decodeOnionAddress(input: string): OnionParseResult {
  const lower = input.trim().toLowerCase();
  const label = lower.endsWith('.onion') ? lower.slice(0, -'.onion'.length) : lower;
  if (label.length !== V3_LENGTH) {
    return { ok: false, reason: `a v3 onion address has ${V3_LENGTH} base32 characters, got ${label.length}` };
  }
  const decoded = base32Decode(label);
  if (decoded === undefined || decoded.length !== 35) {
    return { ok: false, reason: 'not base32 (only a-z and 2-7 are allowed)' };
  }
  const publicKey = decoded.subarray(0, 32);
  const checksum = decoded.subarray(32, 34);
  const version = decoded[34];
  if (version !== V3_VERSION) {
    return { ok: false, reason: `version byte is ${String(version)}, expected 3` };
  }
  const expected = checksumOf(publicKey);
  if (!expected.equals(checksum)) {
    return { ok: false, reason: 'checksum does not match (a character was mistyped?)' };
  }
  return { ok: true, address: `${label}.onion` as OnionAddress, publicKey: Buffer.from(publicKey) };
}

/** Builds the v3 onion address of an Ed25519 public key (32 raw bytes). Used by clients and tests. */
export function onionAddressFromPublicKey(publicKey: Uint8Array): OnionAddress {
  if (publicKey.length !== 32) throw new RangeError('an Ed25519 public key has 32 bytes');
  const checksum = checksumOf(publicKey);
  const raw = Buffer.concat([publicKey, checksum, Buffer.of(V3_VERSION)]);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of raw) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32_ALPHABET[(value >>> bits) & 31];
    }
  }
  return `${out}.onion` as OnionAddress;
}

/**
 * Where peers reach a registry at `onion` (its own, or a cluster's frontend): the WebSocket URL
 * the server logs, `p2p-registry onion` prints and `status` shows. The port is the onion's virtual
 * port (`HiddenServicePort`), not the server's listen port.
 */
export function registryUrl(onion: string, port: number): string {
  return `ws://${onion}:${port}/`;
}
