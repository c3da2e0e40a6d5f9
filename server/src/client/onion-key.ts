/**
 * The onion service's own identity key, read from tor's `hs_ed25519_secret_key`: the key that the
 * v3 address encodes, used to sign the address proof (PROTOCOL.md rev 2, "Address proof").
 *
 * Tor keeps no seed, only the expanded secret key (clamped scalar a || prefix), so node:crypto
 * cannot load it. Signing is RFC 8032's 5.1.6 from step 2 on, composed from @noble/curves' point
 * and scalar-field arithmetic; nothing of the curve is computed here.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { RegistryError } from '../protocol/errors.js';
import { onionAddressFromPublicKey, type OnionAddress } from '../protocol/onion-address.js';

/** Tor's header: the text, padded with NULs to 32 bytes. */
const HEADER_TEXT = '== ed25519v1-secret: type0 ==';
const HEADER_BYTES = 32;
const EXPANDED_KEY_BYTES = 64;
export const ONION_KEY_FILE_BYTES = HEADER_BYTES + EXPANDED_KEY_BYTES;

const { Point } = ed25519;
const Fn = Point.Fn;

export interface OnionKey {
  /** The v3 address of this key (lowercase, with `.onion`). */
  readonly address: OnionAddress;
  /** The 32-byte Ed25519 public key (A). */
  readonly publicKey: Uint8Array;
  /** A pure Ed25519 signature (64 bytes) over `message`, as any Ed25519 verifier checks it. */
  sign(message: Uint8Array): Uint8Array;
}

/** The file's header as tor writes it. */
const HEADER = Buffer.alloc(HEADER_BYTES);
HEADER.write(HEADER_TEXT, 'ascii');

function sha512Scalar(...parts: Uint8Array[]): bigint {
  const hash = createHash('sha512');
  for (const part of parts) hash.update(part);
  return Fn.create(bytesToNumberLE(hash.digest()));
}

/** RFC 8032 clamping: low 3 bits clear, bit 255 clear, bit 254 set. Tor writes it so. */
function isClamped(scalar: Uint8Array): boolean {
  const first = scalar[0] as number;
  const last = scalar[31] as number;
  return (first & 0b111) === 0 && (last & 0x80) === 0 && (last & 0x40) !== 0;
}

class ExpandedEd25519Key implements OnionKey {
  readonly address: OnionAddress;
  readonly publicKey: Uint8Array;
  private readonly scalar: bigint;
  private readonly prefix: Uint8Array;

  /** `expanded`: clamped scalar (32, little-endian) || prefix (32); checked by the caller. */
  constructor(expanded: Uint8Array) {
    this.scalar = Fn.create(bytesToNumberLE(expanded.subarray(0, 32)));
    this.prefix = Uint8Array.from(expanded.subarray(32, 64));
    this.publicKey = Point.BASE.multiply(this.scalar).toBytes();
    this.address = onionAddressFromPublicKey(this.publicKey);
  }

  sign(message: Uint8Array): Uint8Array {
    const r = sha512Scalar(this.prefix, message);
    const R = Point.BASE.multiply(r).toBytes();
    const k = sha512Scalar(R, this.publicKey, message);
    const S = Fn.add(r, Fn.mul(k, this.scalar));
    return Buffer.concat([R, Fn.toBytes(S)]);
  }
}

/** The key in the bytes of an `hs_ed25519_secret_key` file; `source` names the file in errors. */
export function onionKeyFromBytes(bytes: Uint8Array, source = 'the onion key'): OnionKey {
  const what = `pass the hs_ed25519_secret_key file from the onion service's HiddenServiceDir`;
  if (bytes.length !== ONION_KEY_FILE_BYTES) {
    throw new RegistryError(
      'ONION_KEY_INVALID',
      `${source} has ${bytes.length} bytes, tor's hs_ed25519_secret_key has ${ONION_KEY_FILE_BYTES}: ${what}`,
    );
  }
  if (!Buffer.from(bytes.subarray(0, HEADER_BYTES)).equals(HEADER)) {
    throw new RegistryError(
      'ONION_KEY_INVALID',
      `${source} does not start with tor's header "${HEADER_TEXT}": ${what} (not hs_ed25519_public_key or a PEM key)`,
    );
  }
  const expanded = bytes.subarray(HEADER_BYTES);
  if (!isClamped(expanded.subarray(0, 32))) {
    throw new RegistryError(
      'ONION_KEY_INVALID',
      `${source} holds no valid Ed25519 expanded key (its scalar is not clamped): the file is damaged; ${what}`,
    );
  }
  try {
    return new ExpandedEd25519Key(expanded);
  } catch (err) {
    throw new RegistryError(
      'ONION_KEY_INVALID',
      `${source} holds no usable Ed25519 key: the file is damaged; ${what}`,
      { cause: err },
    );
  }
}

/** Reads tor's `hs_ed25519_secret_key` at `path`. */
export async function loadOnionKey(path: string): Promise<OnionKey> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === 'EACCES'
        ? "tor's HiddenServiceDir is readable only by the user tor runs as: run as that user, or copy the file " +
          'somewhere this user may read it (mode 0600)'
        : code === 'ENOENT'
          ? 'no such file: it is hs_ed25519_secret_key in the HiddenServiceDir of the onion service whose address ' +
            'you register'
          : 'check the path and its permissions';
    throw new RegistryError(
      'ONION_KEY_UNREADABLE',
      `cannot read the onion service key ${path} (${code ?? (err as Error).message}): ${hint}`,
      { cause: err },
    );
  }
  return onionKeyFromBytes(bytes, `the onion service key ${path}`);
}
