/**
 * Peer identities for the load generator: Ed25519 keys, their v3 onion addresses, and signed
 * register requests, built with the server's own helpers (server/dist, so run `npm run build` first).
 */
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { onionAddressFromPublicKey } from '../../server/dist/protocol/onion-address.js';
import { registrationPayload } from '../../server/dist/protocol/signing.js';

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
export const PEER_PORT = 5050;

/**
 * A fresh Ed25519 identity. `nickname` must be unique among the live ones.
 * The keys come out of generateKeyPairSync already encoded as JWK: on Node 20.20, calling
 * `export({ format: 'jwk' })` on a just-generated Ed25519 KeyObject can deadlock the thread when a
 * GC runs during the export and finalises the key's generation job (seen here with gdb:
 * ExportJWKEdKey holds the key's mutex, ~KeyGenJob waits for it).
 */
export function makeIdentity(nickname) {
  const { publicKey: publicJwk, privateKey: privateJwk } = generateKeyPairSync('ed25519', {
    publicKeyEncoding: { format: 'jwk' },
    privateKeyEncoding: { format: 'jwk' },
  });
  const privateKey = createPrivateKey({ key: privateJwk, format: 'jwk' });
  const raw = Buffer.from(publicJwk.x, 'base64url');
  const der = Buffer.concat([ED25519_SPKI_PREFIX, raw]);
  const pem = `-----BEGIN PUBLIC KEY-----\n${der.toString('base64')}\n-----END PUBLIC KEY-----\n`;
  return { nickname, address: onionAddressFromPublicKey(raw), publicKeyPem: pem, privateKey };
}

/** The register request for this connection's challenge, signed as PROTOCOL.md says. */
export function registerRequest(identity, challenge, id = 1) {
  const payload = Buffer.from(registrationPayload(challenge, identity.nickname, identity.address, PEER_PORT), 'utf8');
  return {
    type: 'register',
    id,
    nickname: identity.nickname,
    address: identity.address,
    port: PEER_PORT,
    publicKey: identity.publicKeyPem,
    signature: sign(null, payload, identity.privateKey).toString('base64'),
  };
}

/** A peer object shaped exactly like the server's, for sizing the echo baseline's reply. */
export function peerRecordLike(identity) {
  return {
    nickname: identity.nickname,
    address: identity.address,
    port: PEER_PORT,
    publicKey: identity.publicKeyPem.trimEnd(),
    keyType: 'ed25519',
    registeredAt: new Date().toISOString(),
  };
}
