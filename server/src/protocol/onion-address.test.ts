import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NOT_A_POINT, SMALL_ORDER_POINTS, withTorsion } from '../../../test/support/ed25519-torsion.js';
import { onionAddressFromPublicKey, parseOnionAddress, registryUrl } from './onion-address.js';

function rawKey(): Buffer {
  return generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
}

describe('v3 onion addresses', () => {
  it('accepts an address made from a key, and gives back the same key', () => {
    const key = rawKey();
    const address = onionAddressFromPublicKey(key);
    const parsed = parseOnionAddress(address);
    expect(parsed).toMatchObject({ ok: true, address });
    expect(parsed.ok && parsed.publicKey.equals(key)).toBe(true);
  });

  it('accepts any case, with or without .onion, and stores it lowercase with .onion', () => {
    const address = onionAddressFromPublicKey(rawKey());
    const bare = address.slice(0, 56).toUpperCase();
    expect(parseOnionAddress(bare)).toMatchObject({ ok: true, address });
    expect(parseOnionAddress(`${bare}.ONION`)).toMatchObject({ ok: true, address });
  });

  it('knows the Tor Project address (a real v3 address)', () => {
    expect(parseOnionAddress('2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion').ok).toBe(true);
  });

  it('refuses a mistyped character through the checksum', () => {
    const address = onionAddressFromPublicKey(rawKey());
    const typo = `${address.slice(0, 20)}${address[20] === 'q' ? 'r' : 'q'}${address.slice(21)}`;
    expect(parseOnionAddress(typo)).toMatchObject({ ok: false, reason: expect.stringContaining('checksum') });
  });

  it('refuses a version byte other than 3 even with a matching checksum', () => {
    const key = rawKey();
    const version = Buffer.of(2);
    const checksum = createHash('sha3-256')
      .update('.onion checksum')
      .update(key)
      .update(version)
      .digest()
      .subarray(0, 2);
    const raw = Buffer.concat([key, checksum, version]);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
    let bits = '';
    for (const byte of raw) bits += byte.toString(2).padStart(8, '0');
    let label = '';
    for (let i = 0; i < bits.length; i += 5) label += alphabet[parseInt(bits.slice(i, i + 5), 2)];
    expect(parseOnionAddress(label)).toMatchObject({ ok: false, reason: expect.stringContaining('version') });
  });

  it('refuses v2 addresses, wrong lengths and non-base32 characters', () => {
    expect(parseOnionAddress('expyuzz4wqqyqhjn.onion').ok).toBe(false);
    expect(parseOnionAddress('').ok).toBe(false);
    expect(parseOnionAddress(`${'a'.repeat(55)}1`)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('base32'),
    });
    expect(parseOnionAddress(`${'a'.repeat(57)}.onion`).ok).toBe(false);
  });

  it('accepts the addresses of real keys, whose points are in the prime-order subgroup', () => {
    for (let i = 0; i < 20; i += 1) expect(parseOnionAddress(onionAddressFromPublicKey(rawKey())).ok).toBe(true);
  });

  it('refuses an address whose key is a point of small order, the identity among them (erratum 1)', () => {
    for (const [name, hex] of Object.entries(SMALL_ORDER_POINTS)) {
      expect(parseOnionAddress(onionAddressFromPublicKey(Buffer.from(hex, 'hex'))), name).toEqual({
        ok: false,
        reason: expect.stringContaining('small order'),
      });
    }
  });

  it('refuses an address whose key is a real key plus a point of order 8 (erratum 1)', () => {
    expect(parseOnionAddress(onionAddressFromPublicKey(withTorsion(rawKey())))).toEqual({
      ok: false,
      reason: expect.stringContaining('torsion'),
    });
  });

  it('refuses an address whose 32 bytes are no point of the curve', () => {
    expect(parseOnionAddress(onionAddressFromPublicKey(Buffer.from(NOT_A_POINT, 'hex')))).toEqual({
      ok: false,
      reason: expect.stringContaining('not an Ed25519 point'),
    });
  });
});

describe('registryUrl', () => {
  it("is ws://<onion>:<the onion's virtual port>/", () => {
    const onion = onionAddressFromPublicKey(rawKey());
    expect(registryUrl(onion, 80)).toBe(`ws://${onion}:80/`);
  });
});
