import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeAddressProof, onionKeyObject, verifyAddressProof } from './address-proof.js';
import { onionAddressFromPublicKey, parseOnionAddress } from './onion-address.js';
import { addressProofPayload } from './signing.js';

function onion(): { address: string; sign: (payload: string) => Buffer } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    address: onionAddressFromPublicKey(publicKey.export({ format: 'der', type: 'spki' }).subarray(12)),
    sign: (payload) => sign(null, Buffer.from(payload), privateKey),
  };
}

describe('address proof', () => {
  it('builds the payload from the challenge, the address as sent and the hex SHA-256 of the key DER', () => {
    const der = Buffer.from('302a300506032b6570032100', 'hex');
    const hash = createHash('sha256').update(der).digest('hex');
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(addressProofPayload('CH', 'ABC.onion', der)).toBe(`p2p-tor-chat/address/v1\nCH\nABC.onion\n${hash}`);
  });

  it('verifies with the key the v3 address encodes, and rejects another address, payload or signature', async () => {
    const service = onion();
    const payload = addressProofPayload('CH', service.address, Buffer.from('key'));
    const proof = service.sign(payload);
    const key = (parseOnionAddress(service.address) as { publicKey: Buffer }).publicKey;
    expect(await verifyAddressProof(key, Buffer.from(payload), proof)).toBe(true);
    const other = (parseOnionAddress(onion().address) as { publicKey: Buffer }).publicKey;
    expect(await verifyAddressProof(other, Buffer.from(payload), proof)).toBe(false);
    expect(await verifyAddressProof(key, Buffer.from(`${payload}x`), proof)).toBe(false);
    expect(await verifyAddressProof(key, Buffer.from(payload), Buffer.alloc(64))).toBe(false);
    expect(onionKeyObject(Buffer.alloc(31))).toBeUndefined();
  });

  it('refuses an addressProof that is not base64 of 64 bytes with BAD_ADDRESS_PROOF', () => {
    for (const text of ['', 'not base64!', Buffer.alloc(63).toString('base64')]) {
      expect(() => decodeAddressProof(text)).toThrow(expect.objectContaining({ code: 'BAD_ADDRESS_PROOF' }));
    }
    expect(decodeAddressProof(Buffer.alloc(64, 1).toString('base64url'))).toHaveLength(64);
  });
});
