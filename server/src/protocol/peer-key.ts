/**
 * Peer public keys (PEM SubjectPublicKeyInfo, Ed25519 or RSA 2048–8192) and the proof-of-possession
 * signature check of a registration.
 */
import { constants, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { ed25519KeyProblem } from './ed25519-point.js';
import { ErrorCode, RegistryError } from './errors.js';
import type { KeyType } from './messages.js';
import { decodeBase64, ED25519_SIGNATURE_BYTES } from './signing.js';

export const RSA_MIN_BITS = 2048;
export const RSA_MAX_BITS = 8192;
/**
 * A check costs in proportion to the exponent's bit length: OpenSSL allows an exponent as long as a
 * 3072-bit modulus, which makes one check ~70 times dearer than with 65537. Odd and 3 to 2^32-1
 * covers every real key (65537 is usual).
 */
const RSA_MIN_EXPONENT = 3n;
const RSA_MAX_EXPONENT = 0xffff_ffffn;
const PEM_HEADER = '-----BEGIN PUBLIC KEY-----';
const PEM_FOOTER = '-----END PUBLIC KEY-----';

export interface PeerKey {
  readonly type: KeyType;
  readonly object: KeyObject;
  /** Canonical PEM, the form returned to other peers. */
  readonly pem: string;
  /** DER of the SPKI: two keys are the same key exactly when these are equal. */
  readonly der: Buffer;
}

/** Every Ed25519 SPKI is these 12 DER bytes followed by the raw 32-byte key. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ED25519_SPKI_BYTES = 44;
const ED25519_PEM_BODY = /^[A-Za-z0-9+/]{59}=$/;

/** The base64 body and DER of a PEM in the one fixed Ed25519 SPKI layout, canonically encoded. */
function ed25519SpkiOf(text: string): { readonly body: string; readonly der: Buffer } | undefined {
  const body = text.slice(PEM_HEADER.length, text.length - PEM_FOOTER.length).replace(/\s+/g, '');
  if (!ED25519_PEM_BODY.test(body)) return undefined;
  const der = Buffer.alloc(ED25519_SPKI_BYTES); // not pooled: it lives as long as the registration
  if (der.write(body, 'base64') !== ED25519_SPKI_BYTES || der.toString('base64') !== body) return undefined;
  if (!der.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX)) return undefined;
  return { body, der };
}

/** A PEM key looked at without being read: what the server budgets for before it reads it. */
export interface PeekedKey {
  /** The PEM, trimmed. */
  readonly text: string;
  /** The base64 body and DER when the PEM holds an Ed25519 SPKI in the usual layout. */
  readonly spki: { readonly body: string; readonly der: Buffer } | undefined;
  /** The Ed25519 point of that SPKI; undefined for any other PEM, RSA keys among them. */
  readonly point: Uint8Array | undefined;
}

/**
 * A PEM key's layout and Ed25519 point, without reading the key (microseconds, for budgeting before
 * it is read); readPeerKey takes the result, so the PEM is decoded once.
 */
export function peekPeerKey(pem: string): PeekedKey {
  const text = pem.trim();
  const spki = text.startsWith(PEM_HEADER) && text.endsWith(PEM_FOOTER) ? ed25519SpkiOf(text) : undefined;
  return { text, spki, point: spki?.der.subarray(ED25519_SPKI_PREFIX.length) };
}

/**
 * The common case without OpenSSL's generic decoder: an Ed25519 SPKI has one fixed 44-byte layout,
 * so read it directly and import the raw key as JWK (about 15x cheaper than createPublicKey on PEM,
 * and no export round trips). Anything else, including a non-canonical encoding, returns undefined
 * and takes the general path, which decides.
 */
function parseEd25519Spki(spki: PeekedKey['spki']): PeerKey | undefined {
  if (spki === undefined) return undefined;
  const { body, der } = spki;
  const x = der.subarray(ED25519_SPKI_PREFIX.length).toString('base64url');
  let object: KeyObject;
  try {
    object = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  } catch {
    return undefined;
  }
  return { type: 'ed25519', object, pem: `${PEM_HEADER}\n${body}\n${PEM_FOOTER}`, der };
}

/**
 * Parses a PEM SPKI public key; anything but Ed25519 or RSA of an allowed size is
 * INVALID_PUBLIC_KEY, and so (erratum 1) is an Ed25519 key outside the prime-order subgroup.
 */
export function parsePeerKey(pem: string): PeerKey {
  const key = readPeerKey(pem);
  checkPeerKeyPoint(key);
  return key;
}

/** The raw 32-byte point of an Ed25519 key; null for RSA. */
export function ed25519PointOf(key: PeerKey): Uint8Array | null {
  return key.type === 'ed25519' ? key.der.subarray(ED25519_SPKI_PREFIX.length) : null;
}

/**
 * Erratum 1: an Ed25519 key of small order, or with a torsion component, is INVALID_PUBLIC_KEY.
 * Apart from readPeerKey because it costs as much as several key reads: the server charges it to
 * its budget first.
 */
export function checkPeerKeyPoint(key: PeerKey): void {
  const point = ed25519PointOf(key);
  const problem = point === null ? null : ed25519KeyProblem(point);
  if (problem !== null) throw new RegistryError(ErrorCode.INVALID_PUBLIC_KEY, `publicKey is refused: ${problem}`);
}

/** parsePeerKey without the point check (checkPeerKeyPoint); `peeked` is peekPeerKey(pem). */
export function readPeerKey(pem: string, peeked: PeekedKey = peekPeerKey(pem)): PeerKey {
  const { text } = peeked;
  if (!text.startsWith(PEM_HEADER) || !text.endsWith(PEM_FOOTER)) {
    throw new RegistryError(
      ErrorCode.INVALID_PUBLIC_KEY,
      'publicKey must be a PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----")',
    );
  }
  const fast = parseEd25519Spki(peeked.spki);
  if (fast !== undefined) return fast;
  let object: KeyObject;
  try {
    object = createPublicKey({ key: text, format: 'pem' });
  } catch {
    throw new RegistryError(ErrorCode.INVALID_PUBLIC_KEY, 'publicKey is not a readable PEM public key');
  }
  let type: KeyType;
  if (object.asymmetricKeyType === 'ed25519') {
    type = 'ed25519';
  } else if (object.asymmetricKeyType === 'rsa') {
    const bits = object.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
      throw new RegistryError(
        ErrorCode.INVALID_PUBLIC_KEY,
        `RSA keys must have ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits, got ${bits}`,
      );
    }
    const exponent = object.asymmetricKeyDetails?.publicExponent ?? 0n;
    if (exponent < RSA_MIN_EXPONENT || exponent > RSA_MAX_EXPONENT || exponent % 2n === 0n) {
      throw new RegistryError(
        ErrorCode.INVALID_PUBLIC_KEY,
        'RSA public exponent must be odd, from 3 to 2^32-1 (65537 is usual)',
      );
    }
    type = 'rsa';
  } else {
    throw new RegistryError(
      ErrorCode.INVALID_PUBLIC_KEY,
      `publicKey must be Ed25519 or RSA, got ${object.asymmetricKeyType ?? 'an unknown type'}`,
    );
  }
  const canonical = object.export({ type: 'spki', format: 'pem' }).toString().trimEnd();
  // The PEM is the base64 of the canonical DER: decoding it is far cheaper than a second export
  // through OpenSSL, which every registration would pay on the main thread.
  const der = Buffer.from(canonical.slice(PEM_HEADER.length, -PEM_FOOTER.length), 'base64');
  return { type, object, pem: canonical, der };
}

/** Decodes a base64 (or base64url) signature; malformed text is BAD_SIGNATURE. */
export function decodeSignature(text: string, key: PeerKey): Buffer {
  const bytes = decodeBase64(text);
  if (bytes === undefined) throw new RegistryError(ErrorCode.BAD_SIGNATURE, 'signature must be base64');
  if (key.type === 'ed25519' && bytes.length !== ED25519_SIGNATURE_BYTES) {
    throw new RegistryError(ErrorCode.BAD_SIGNATURE, `an Ed25519 signature has ${ED25519_SIGNATURE_BYTES} bytes`);
  }
  if (key.type === 'rsa' && bytes.length !== Math.ceil((key.object.asymmetricKeyDetails?.modulusLength ?? 0) / 8)) {
    throw new RegistryError(ErrorCode.BAD_SIGNATURE, 'an RSA signature is as long as the key modulus');
  }
  return bytes;
}

/**
 * Verifies a signature over `payload`. Runs on libuv's thread pool so that a burst of registrations
 * does not block the event loop (lookups keep flowing). Resolves false for any invalid signature.
 */
export function verifySignature(key: PeerKey, payload: Buffer, signature: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (err: Error | null, ok: boolean): void => resolve(err === null && ok);
    try {
      if (key.type === 'ed25519') {
        verify(null, payload, key.object, signature, done);
      } else {
        verify(
          'sha256',
          payload,
          { key: key.object, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
          signature,
          done,
        );
      }
    } catch {
      resolve(false);
    }
  });
}
