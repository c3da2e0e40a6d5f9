/**
 * A peer's signing identity: an Ed25519 key kept in a PEM PKCS#8 file (mode 0600), made on first use.
 * The registry sees only the public half and a signature over its per-connection challenge.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  type KeyObject,
} from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { RegistryError } from '../protocol/errors.js';
import { registrationPayload } from '../protocol/signing.js';

const KEY_FILE_MODE = 0o600;

export interface PeerIdentity {
  /** PEM SubjectPublicKeyInfo, as sent in `register`. */
  readonly publicKeyPem: string;
  /** Base64 Ed25519 signature over PROTOCOL.md's registration payload; values exactly as sent. */
  sign(challenge: string, nickname: string, address: string, port: number): string;
}

export interface LoadedIdentity {
  readonly identity: PeerIdentity;
  readonly path: string;
  /** True when the key file did not exist and was made now. */
  readonly created: boolean;
  /** Set when the key file can be read by others than its owner. */
  readonly warning: string | null;
}

class Ed25519Identity implements PeerIdentity {
  readonly publicKeyPem: string;

  constructor(private readonly privateKey: KeyObject) {
    this.publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  }

  sign(challenge: string, nickname: string, address: string, port: number): string {
    const payload = Buffer.from(registrationPayload(challenge, nickname, address, port), 'utf8');
    return cryptoSign(null, payload, this.privateKey).toString('base64');
  }
}

/** A fresh identity that lives only in memory (tests, one-off checks). */
export function createIdentity(): PeerIdentity {
  return new Ed25519Identity(generateKeyPairSync('ed25519').privateKey);
}

/** An identity from a PEM private key (PKCS#8); `source` names it in errors. */
export function identityFromPem(pem: string, source = 'the key'): PeerIdentity {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new RegistryError(
      'KEY_INVALID',
      `${source} is not a PEM private key: move it away (a new key is made when none exists) or pass another ` +
        `with --key`,
      { cause: err },
    );
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new RegistryError(
      'KEY_NOT_ED25519',
      `${source} is a ${key.asymmetricKeyType ?? 'unknown'} key; this client signs with Ed25519: pass an Ed25519 key ` +
        `with --key, or a new path to make one`,
    );
  }
  return new Ed25519Identity(key);
}

/** Loads the Ed25519 key at `path`, or makes one there (mode 0600) when the file does not exist. */
export async function loadOrCreateIdentity(path: string): Promise<LoadedIdentity> {
  for (;;) {
    let pem: string;
    try {
      pem = await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') {
        throw new RegistryError(
          'KEY_UNREADABLE',
          `cannot read the key file ${path} (${code ?? (err as Error).message}): fix its permissions or pass another ` +
            `with --key`,
          {
            cause: err,
          },
        );
      }
      const created = await createKeyFile(path);
      if (created !== undefined) return { identity: created, path, created: true, warning: null };
      continue; // another process made it first: load that one
    }
    const identity = identityFromPem(pem, `the key file ${path}`);
    const mode = (await stat(path)).mode & 0o777;
    const warning =
      (mode & 0o077) === 0
        ? null
        : `the key file ${path} can be read by others (mode ${mode.toString(8)}): run chmod 600 ${path}`;
    return { identity, path, created: false, warning };
  }
}

/** Writes a new key with O_EXCL; undefined when the file appeared in the meantime. */
async function createKeyFile(path: string): Promise<PeerIdentity | undefined> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  try {
    await writeFile(path, pem, { mode: KEY_FILE_MODE, flag: 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return undefined;
    throw new RegistryError(
      'KEY_WRITE_FAILED',
      `cannot create the key file ${path} (${code ?? (err as Error).message}): pass a writable path with --key`,
      {
        cause: err,
      },
    );
  }
  return new Ed25519Identity(privateKey);
}
