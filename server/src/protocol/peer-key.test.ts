import { constants, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  NOT_A_POINT,
  SMALL_ORDER_POINTS,
  ed25519Pem,
  nonCanonicalBase64,
  realRawKey,
  withTorsion,
} from '../../../test/support/ed25519-torsion.js';
import { RegistryError } from './errors.js';
import { decodeSignature, parsePeerKey, peekPeerKey, readPeerKey, verifySignature } from './peer-key.js';

function refusal(pem: string): RegistryError {
  try {
    parsePeerKey(pem);
  } catch (err) {
    if (err instanceof RegistryError) return err;
    throw err;
  }
  throw new Error('expected INVALID_PUBLIC_KEY, the key was accepted');
}

describe('peer keys', () => {
  it('reads an Ed25519 key (fast path) exactly as OpenSSL does: same canonical PEM and DER', () => {
    for (let i = 0; i < 20; i += 1) {
      const { publicKey } = generateKeyPairSync('ed25519');
      const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
      const key = parsePeerKey(pem);
      expect(key.type).toBe('ed25519');
      expect(key.pem).toBe(pem.trimEnd());
      expect(key.der.equals(publicKey.export({ format: 'der', type: 'spki' }))).toBe(true);
      expect(key.object.equals(publicKey)).toBe(true);
    }
  });

  it('reads an Ed25519 key written with other line breaks the same way', () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const body = pem.split('\n')[1] as string;
    const lines = ['-----BEGIN PUBLIC KEY-----', body.slice(0, 30), body.slice(30), '-----END PUBLIC KEY-----'];
    const wrapped = `${lines.join('\r\n')}\r\n`;
    expect(parsePeerKey(wrapped).der.equals(parsePeerKey(pem).der)).toBe(true);
  });

  it('verifies Ed25519 and RSA-PSS (any salt length) signatures, and refuses a wrong one', async () => {
    const payload = Buffer.from('p2p-tor-chat/register/v1\nchallenge\nalice\nx.onion\n5050');
    const ed = generateKeyPairSync('ed25519');
    const edKey = parsePeerKey(ed.publicKey.export({ format: 'pem', type: 'spki' }).toString());
    const edSig = sign(null, payload, ed.privateKey);
    expect(await verifySignature(edKey, payload, decodeSignature(edSig.toString('base64'), edKey))).toBe(true);
    expect(await verifySignature(edKey, Buffer.from('other'), edSig)).toBe(false);

    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaKey = parsePeerKey(rsa.publicKey.export({ format: 'pem', type: 'spki' }).toString());
    for (const saltLength of [constants.RSA_PSS_SALTLEN_MAX_SIGN, constants.RSA_PSS_SALTLEN_DIGEST, 0]) {
      const sig = sign('sha256', payload, {
        key: rsa.privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength,
      });
      expect(await verifySignature(rsaKey, payload, sig)).toBe(true);
    }
    const pkcs1v15 = sign('sha256', payload, rsa.privateKey);
    expect(await verifySignature(rsaKey, payload, pkcs1v15)).toBe(false);
  });

  it('accepts the Ed25519 keys of real key pairs, whose points are in the prime-order subgroup', () => {
    for (let i = 0; i < 20; i += 1) expect(parsePeerKey(ed25519Pem(realRawKey())).type).toBe('ed25519');
  });

  it(
    'refuses an Ed25519 key that is a point of small order, the identity among them, as INVALID_PUBLIC_KEY ' +
      '(erratum 1)',
    () => {
      for (const [name, hex] of Object.entries(SMALL_ORDER_POINTS)) {
        const err = refusal(ed25519Pem(Buffer.from(hex, 'hex')));
        expect(err.code, name).toBe('INVALID_PUBLIC_KEY');
        expect(err.message, name).toContain('small order');
      }
    },
  );

  it('refuses an Ed25519 key that is a real key plus a point of order 8 as INVALID_PUBLIC_KEY (erratum 1)', () => {
    const err = refusal(ed25519Pem(withTorsion(realRawKey())));
    expect(err.code).toBe('INVALID_PUBLIC_KEY');
    expect(err.message).toContain('torsion');
  });

  it('refuses such a key on the general path too (a PEM that the fast path leaves to OpenSSL)', () => {
    expect(refusal(nonCanonicalBase64(ed25519Pem(withTorsion(realRawKey())))).code).toBe('INVALID_PUBLIC_KEY');
    expect(parsePeerKey(nonCanonicalBase64(ed25519Pem(realRawKey()))).type).toBe('ed25519');
  });

  it('refuses 32 bytes that are no point of the curve as INVALID_PUBLIC_KEY', () => {
    expect(refusal(ed25519Pem(Buffer.from(NOT_A_POINT, 'hex'))).code).toBe('INVALID_PUBLIC_KEY');
  });
});

describe('a key peeked at before it is read (peekPeerKey)', () => {
  it("gives an Ed25519 key's raw point, and readPeerKey reads the same key from the peek", () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const peeked = peekPeerKey(pem);
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
    expect(Buffer.from(peeked.point as Uint8Array).equals(raw)).toBe(true);
    expect(readPeerKey(pem, peeked).der.equals(parsePeerKey(pem).der)).toBe(true);
  });

  it('gives no point for an RSA key or for text that is no PEM key', () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsa = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    expect(peekPeerKey(rsa).point).toBeUndefined();
    expect(readPeerKey(rsa, peekPeerKey(rsa)).type).toBe('rsa');
    expect(peekPeerKey('not a key').point).toBeUndefined();
    expect(() => readPeerKey('not a key', peekPeerKey('not a key'))).toThrow(RegistryError);
  });
});
