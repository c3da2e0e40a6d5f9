/**
 * The address proof a peer adds to `register` (PROTOCOL.md rev 2, "Address proof"): the onion
 * service's own key signs the challenge, the address and the digest of the registering key.
 */
import { createPublicKey } from 'node:crypto';
import { addressProofPayload, keyDigest } from '../protocol/signing.js';
import type { OnionKey } from './onion-key.js';

/** Lowercase hex SHA-256 of the DER (SubjectPublicKeyInfo) of a PEM public key. */
export function publicKeyDigest(publicKeyPem: string): string {
  return keyDigest(createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' }));
}

/** Base64 of the onion key's signature over the proof for this challenge, address and public key. */
export function signAddressProof(key: OnionKey, challenge: string, address: string, publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  const payload = addressProofPayload(challenge, address, der);
  return Buffer.from(key.sign(Buffer.from(payload, 'utf8'))).toString('base64');
}
