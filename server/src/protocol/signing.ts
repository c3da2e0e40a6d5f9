/** The exact bytes a peer signs (PROTOCOL.md "register", "Address proof"); server and client build them here only. */
import { createHash } from 'node:crypto';

export const ED25519_SIGNATURE_BYTES = 64;

/** base64 or base64url, as signatures may be sent. */
const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

/** The bytes of a signature sent as base64 (or base64url); undefined when the text is empty or not base64. */
export function decodeBase64(text: string): Buffer | undefined {
  return text.length === 0 || !BASE64.test(text) ? undefined : Buffer.from(text, 'base64');
}

/** The text of the message a peer signs to prove it holds its key (values exactly as sent). */
export function registrationPayload(challenge: string, nickname: string, address: string, port: number): string {
  return `p2p-tor-chat/register/v1\n${challenge}\n${nickname}\n${address}\n${String(port)}`;
}

/**
 * A key's digest: the lowercase hex SHA-256 of its DER (SubjectPublicKeyInfo). The address proof
 * signs it; the registry's claims are kept under it (their key id).
 */
export function keyDigest(publicKeyDer: Uint8Array): string {
  return createHash('sha256').update(publicKeyDer).digest('hex');
}

/**
 * The text the onion service's own key signs to prove the registrant runs `address` (revision 2):
 * the address exactly as sent, and the lowercase hex SHA-256 of the DER of the registering key.
 */
export function addressProofPayload(challenge: string, address: string, publicKeyDer: Uint8Array): string {
  return `p2p-tor-chat/address/v1\n${challenge}\n${address}\n${keyDigest(publicKeyDer)}`;
}
