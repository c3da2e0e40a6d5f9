import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RegistryError } from '../protocol/errors.js';
import { onionAddressFromPublicKey, parseOnionAddress } from '../protocol/onion-address.js';
import { addressProofPayload } from '../protocol/signing.js';
import { publicKeyDigest, signAddressProof } from './address-proof.js';
import { torOnionKey as torKey } from '../../../test/support/tor-onion-key.js';
import { loadOnionKey, onionKeyFromBytes } from './onion-key.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function keyFile(bytes: Uint8Array): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'onion-key-test-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'hs_ed25519_secret_key');
  await writeFile(path, bytes, { mode: 0o600 });
  return path;
}

async function codeOf(promise: Promise<unknown>): Promise<RegistryError> {
  const err = await promise.then(
    () => new Error('expected a RegistryError, got a key'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RegistryError);
  return err as RegistryError;
}

describe('onion key: tor hs_ed25519_secret_key', () => {
  it('has the address of its public key', async () => {
    const { raw, file } = torKey();
    const key = await loadOnionKey(await keyFile(file));
    expect(Buffer.from(key.publicKey)).toEqual(raw);
    expect(key.address).toBe(onionAddressFromPublicKey(raw));
    expect(parseOnionAddress(key.address).ok).toBe(true);
  });

  it("signs what node:crypto verifies with the public key, byte for byte node's own signature", () => {
    const { privateKey, publicKey, file } = torKey();
    const key = onionKeyFromBytes(file);
    for (const message of [Buffer.alloc(0), Buffer.from('p2p-tor-chat/address/v1\nchallenge'), Buffer.alloc(5000, 7)]) {
      const signature = key.sign(message);
      expect(signature).toHaveLength(64);
      expect(verify(null, message, publicKey, signature)).toBe(true);
      expect(Buffer.from(signature)).toEqual(sign(null, message, privateKey));
    }
  });

  it(
    'signs the address proof of PROTOCOL.md over the challenge, the address and the DER digest of ' + 'the peer key',
    () => {
      const onion = torKey();
      const key = onionKeyFromBytes(onion.file);
      const peerPem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const der = createPublicKey(peerPem).export({ type: 'spki', format: 'der' });
      const digest = createHash('sha256').update(der).digest('hex');
      expect(publicKeyDigest(peerPem)).toBe(digest);
      const proof = signAddressProof(key, 'chal', key.address, peerPem);
      const payload = Buffer.from(`p2p-tor-chat/address/v1\nchal\n${key.address}\n${digest}`, 'utf8');
      expect(
        addressProofPayload('chal', key.address, createPublicKey(peerPem).export({ type: 'spki', format: 'der' })),
      ).toBe(payload.toString('utf8'));
      expect(verify(null, payload, onion.publicKey, Buffer.from(proof, 'base64'))).toBe(true);
    },
  );

  it('refuses a file of the wrong length, saying what file to pass', async () => {
    const { file } = torKey();
    for (const bytes of [file.subarray(0, 95), Buffer.concat([file, Buffer.of(0)]), Buffer.alloc(0)]) {
      const err = await codeOf(loadOnionKey(await keyFile(bytes)));
      expect(err.code).toBe('ONION_KEY_INVALID');
      expect(err.message).toMatch(/has \d+ bytes.*96.*hs_ed25519_secret_key/);
    }
  });

  it('refuses a file with another header (the public key file, say)', async () => {
    const { file } = torKey();
    const publicHeader = Buffer.alloc(32);
    publicHeader.write('== ed25519v1-public: type0 ==');
    const err = await codeOf(loadOnionKey(await keyFile(Buffer.concat([publicHeader, file.subarray(32)]))));
    expect(err.code).toBe('ONION_KEY_INVALID');
    expect(err.message).toContain('does not start with tor\'s header "== ed25519v1-secret: type0 =="');
  });

  it('refuses a key whose scalar is not clamped (a damaged file)', () => {
    const { file } = torKey();
    const damaged = Buffer.from(file);
    damaged[32] = (damaged[32] as number) | 1;
    expect(() => onionKeyFromBytes(damaged)).toThrow(
      expect.objectContaining({ code: 'ONION_KEY_INVALID', message: expect.stringContaining('damaged') }),
    );
  });

  it('reports a missing or unreadable file as ONION_KEY_UNREADABLE with what to do', async () => {
    const missing = await codeOf(loadOnionKey(join(tmpdir(), 'no-such-dir-4711', 'hs_ed25519_secret_key')));
    expect(missing.code).toBe('ONION_KEY_UNREADABLE');
    expect(missing.message).toContain('ENOENT');
    expect(missing.message).toContain('HiddenServiceDir');

    const folder = await codeOf(loadOnionKey(tmpdir()));
    expect(folder.code).toBe('ONION_KEY_UNREADABLE');
    expect(folder.message).toContain('EISDIR');
  });

  it("says to run as tor's user when the file may not be read", async () => {
    const path = await keyFile(torKey().file);
    await chmod(path, 0o000);
    // Root reads any file: as root, the built module is run as nobody, for whom the file is closed.
    const asRoot = process.getuid?.() === 0;
    const module = new URL('../../dist/client/onion-key.js', import.meta.url).href;
    const script =
      `import(${JSON.stringify(module)}).then((m) => m.loadOnionKey(process.argv[1])).then(() => ` +
      `process.stdout.write('{}'), (err) => process.stdout.write(JSON.stringify({ code: err.code, message: ` +
      `err.message })));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, path], {
      ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      encoding: 'utf8',
    });
    const denied = JSON.parse(out) as { code?: string; message?: string };
    expect(denied.code).toBe('ONION_KEY_UNREADABLE');
    expect(denied.message).toContain('the user tor runs as');
  });
});
