/**
 * Test support: an onion service key as tor writes it (`hs_ed25519_secret_key`), made from a key
 * that node:crypto generates, so that tests can check signatures against node's own.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onionAddressFromPublicKey } from '../../server/src/protocol/onion-address.js';

export interface TorOnionKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The 32 raw bytes of the public key. */
  readonly raw: Buffer;
  readonly address: string;
  /** The file's 96 bytes: the header padded with NULs to 32, clamp(SHA-512(seed)[0..32]), SHA-512(seed)[32..64]. */
  readonly file: Buffer;
}

export function torOnionKey(): TorOnionKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  const expanded = createHash('sha512').update(seed).digest();
  expanded[0] = (expanded[0] as number) & 248;
  expanded[31] = ((expanded[31] as number) & 127) | 64;
  const header = Buffer.alloc(32);
  header.write('== ed25519v1-secret: type0 ==', 'ascii');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return {
    privateKey,
    publicKey,
    raw,
    address: onionAddressFromPublicKey(raw),
    file: Buffer.concat([header, expanded]),
  };
}

/** Writes the key's file as `hs_ed25519_secret_key` in `dir` (mode 0600); returns its path. */
export function writeTorOnionKey(dir: string, key: TorOnionKey): string {
  const path = join(dir, 'hs_ed25519_secret_key');
  writeFileSync(path, key.file, { mode: 0o600 });
  return path;
}
