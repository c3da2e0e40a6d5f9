/**
 * The address proof a peer adds to `register` (PROTOCOL.md rev 2, "Address proof"): the onion
 * service's own key signs the challenge, the address and the digest of the registering key.
 */
import { createHash, createPublicKey } from 'node:crypto';
import type { OnionKey } from './onion-key.js';

/**
 * The text the onion service key signs (values exactly as sent). It MUST equal the server's
 * builder in protocol/signing.ts once both branches are merged; keep one of them then.
 */
export function addressProofPayload(challenge: string, address: string, publicKeySha256: string): string {
  return `p2p-tor-chat/address/v1\n${challenge}\n${address}\n${publicKeySha256}`;
}

/** Lowercase hex SHA-256 of the DER (SubjectPublicKeyInfo) of a PEM public key. */
export function publicKeyDigest(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex');
}

/** Base64 of the onion key's signature over the proof for this challenge, address and public key. */
export function signAddressProof(key: OnionKey, challenge: string, address: string, publicKeyPem: string): string {
  const payload = addressProofPayload(challenge, address, publicKeyDigest(publicKeyPem));
  return Buffer.from(key.sign(Buffer.from(payload, 'utf8'))).toString('base64');
}
