/**
 * The address proof of revision 2 (PROTOCOL.md "Address proof"): a pure Ed25519 signature by the
 * onion service's identity key, the 32-byte key a v3 address encodes, over addressProofPayload.
 * Pure: the key comes from the address itself, so nothing but the request is needed to check it.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { ErrorCode, RegistryError } from './errors.js';
import { decodeBase64, ED25519_SIGNATURE_BYTES } from './signing.js';

const ED25519_PUBLIC_KEY_BYTES = 32;

/** Decodes an `addressProof` (base64 or base64url); malformed text or a wrong length is BAD_ADDRESS_PROOF. */
export function decodeAddressProof(text: string): Buffer {
  const bytes = decodeBase64(text);
  if (bytes === undefined) throw new RegistryError(ErrorCode.BAD_ADDRESS_PROOF, 'addressProof must be base64');
  if (bytes.length !== ED25519_SIGNATURE_BYTES) {
    throw new RegistryError(
      ErrorCode.BAD_ADDRESS_PROOF,
      `addressProof must be an Ed25519 signature of ${ED25519_SIGNATURE_BYTES} bytes`,
    );
  }
  return bytes;
}

/** The onion's identity key (the 32 bytes decoded from a v3 address) as a KeyObject; undefined if unusable. */
export function onionKeyObject(onionPublicKey: Uint8Array): KeyObject | undefined {
  if (onionPublicKey.length !== ED25519_PUBLIC_KEY_BYTES) return undefined;
  try {
    return createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(onionPublicKey).toString('base64url') },
      format: 'jwk',
    });
  } catch {
    return undefined;
  }
}

/**
 * Verifies an address proof over `payload` (addressProofPayload) with the onion's 32-byte key, on
 * libuv's thread pool like the registration signature. Resolves false for anything that does not verify.
 */
export function verifyAddressProof(onionPublicKey: Uint8Array, payload: Buffer, proof: Buffer): Promise<boolean> {
  const key = onionKeyObject(onionPublicKey);
  if (key === undefined) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      verify(null, payload, key, proof, (err, ok) => resolve(err === null && ok));
    } catch {
      resolve(false);
    }
  });
}
