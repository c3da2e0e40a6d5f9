/**
 * `p2p-registry register` and `p2p-registry release`: a registration with the peer's key and, with
 * --onion-key, the address proof of its onion service (PROTOCOL.md rev 2); the claim it holds; and
 * the release of that claim (on exit with --release-on-exit, or at once with `release`).
 */
import type { ParsedArgs } from './args.js';
import { usageError } from './args.js';
import {
  clientOptions,
  json,
  readCommon,
  stayConnected,
  stringOption,
  type ClientIo,
  type Common,
} from './client-common.js';
import {
  loadOnionKey,
  loadOrCreateIdentity,
  NICKNAME_PATTERN,
  parseOnionAddress,
  RegistryClient,
  RegistryError,
  type Claim,
  type Hello,
  type OnionKey,
  type Registration,
} from '../client/index.js';

const DEFAULT_KEY_PATH = './peer-key.pem';
const REGISTER_SHAPE = 'p2p-registry register --nickname <name> --address <onion> --port <port> [--onion-key <path>]';

/** The registration the options ask for; `address` is absent when --onion-key is to supply it. */
function readRegistration(args: ParsedArgs): { nickname: string; address: string | undefined; port: number } {
  const nickname = stringOption(args, 'nickname');
  const address = stringOption(args, 'address');
  const portText = stringOption(args, 'port');
  const noAddress = address === undefined && stringOption(args, 'onion-key') === undefined;
  const missing = [
    nickname === undefined ? '--nickname' : '',
    noAddress ? '--address' : '',
    portText === undefined ? '--port' : '',
  ].filter(Boolean);
  if (missing.length > 0 || nickname === undefined || portText === undefined) {
    const keyNote = noAddress ? " (--address may be left out with --onion-key: it is then the key's address)" : '';
    throw usageError(`${args.command ?? 'register'} needs ${missing.join(', ')}${keyNote}: ${REGISTER_SHAPE}`);
  }
  if (!NICKNAME_PATTERN.test(nickname)) {
    throw usageError(`--nickname must be 1-32 of A-Z a-z 0-9 _ . - starting with a letter or digit, got "${nickname}"`);
  }
  if (address !== undefined) {
    const onion = parseOnionAddress(address);
    if (!onion.ok) throw usageError(`--address is not a v3 onion address: ${onion.reason}`);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65_535)
    throw usageError(`--port must be 1-65535, got "${portText}"`);
  return { nickname, address, port };
}

/** The onion key of --onion-key, checked against --address (or giving it). */
async function withOnionKey(
  args: ParsedArgs,
  io: ClientIo,
  wanted: ReturnType<typeof readRegistration>,
): Promise<Registration> {
  const { nickname, address, port } = wanted;
  const path = stringOption(args, 'onion-key');
  if (path === undefined) return { nickname, address: address as string, port };
  const onionKey: OnionKey = await loadOnionKey(path);
  io.stderr.write(`using the onion service key in ${path} (${onionKey.address})\n`);
  const given = address === undefined ? undefined : parseOnionAddress(address);
  if (given?.ok === true && given.address !== onionKey.address) {
    throw new RegistryError(
      'ONION_KEY_MISMATCH',
      `--onion-key ${path} is the key of ${onionKey.address}, not of --address ${given.address}: pass the ` +
        `hs_ed25519_secret_key of that onion service, or leave --address out to register the key's own address`,
    );
  }
  return { nickname, address: address ?? onionKey.address, port, onionKey };
}

/** Connects with the peer's key (--key) and registers; the client is closed again if that fails. */
async function connectAndRegister(args: ParsedArgs, io: ClientIo, common: Common): Promise<RegistryClient> {
  const registration = await withOnionKey(args, io, readRegistration(args));
  const loaded = await loadOrCreateIdentity(stringOption(args, 'key') ?? DEFAULT_KEY_PATH);
  io.stderr.write(`${loaded.created ? 'created a new key in' : 'using the key in'} ${loaded.path}\n`);
  if (loaded.warning !== null) io.stderr.write(`warning: ${loaded.warning}\n`);
  const client = await RegistryClient.connect(clientOptions(common, { identity: loaded.identity, reconnect: {} }));
  try {
    const peer = await client.register(registration);
    if (common.json) io.stdout.write(json({ type: 'registered', peer, claim: peer.claim }));
    else {
      const verified = peer.addressVerified ? ' (address verified)' : '';
      io.stdout.write(`registered ${peer.nickname} at ${peer.address}:${peer.port}${verified}\n`);
      io.stdout.write(`${claimLine(client.hello, peer.claim)}\n`);
    }
  } catch (err) {
    await client.close();
    throw err;
  }
  return client;
}

/** What the user is told about the claim: held until when, or when it will be made. */
export function claimLine(hello: Hello | null, claim: Claim | null): string {
  if (claim !== null) return `claim until ${claim.until}`;
  if (hello === null || !hello.features.includes('claims')) {
    return 'no claim: this registry keeps none (revision 1); the nickname is held only while connected';
  }
  const after = hello.limits.claimAfterSeconds;
  return after === undefined ? 'no claim yet' : `no claim yet (made after ${after} s)`;
}

/** Leaves the registry and deletes this key's claim; says what became of it. */
async function release(client: RegistryClient, io: ClientIo, common: Common): Promise<number> {
  const nickname = client.registration?.nickname ?? '';
  const address = client.registration?.address ?? '';
  await client.unregister({ release: true });
  const claims = client.hello?.features.includes('claims') === true;
  if (common.json) io.stdout.write(json({ type: 'released', nickname, address, claims }));
  else if (claims) io.stdout.write(`released: this key's claim is deleted, ${nickname} and ${address} are free\n`);
  else io.stdout.write(`left the registry (it keeps no claims: nothing to release)\n`);
  return 0;
}

export async function registerCommand(args: ParsedArgs, io: ClientIo): Promise<number> {
  if (args.positional.length > 0) throw usageError('register takes options only: --nickname, --address, --port');
  const common = readCommon(args, io.env);
  const watch = args.options.get('watch') === true;
  const releaseOnExit = args.options.get('release-on-exit') === true;
  const client = await connectAndRegister(args, io, common);
  client.on('claimed', (claim) => {
    // With --watch the claimed event is printed with the others.
    if (!common.json) io.stdout.write(`${claimLine(client.hello, claim)}\n`);
    else if (!watch) io.stdout.write(json({ type: 'claimed', claim }));
  });
  client.on('reconnected', ({ registered }) => {
    // Registered again on a new connection: its claim may differ (held now, or not yet).
    if (registered !== null && !common.json) io.stdout.write(`${claimLine(client.hello, registered.claim)}\n`);
  });
  if (watch) {
    try {
      await client.subscribe();
    } catch (err) {
      await client.close();
      throw err;
    }
  }
  const leave = releaseOnExit ? 'Ctrl-C to leave the registry and release the claim' : 'Ctrl-C to leave the registry';
  io.stderr.write(`staying connected${watch ? ', printing events as JSON lines' : ''} (${leave})\n`);
  return stayConnected(client, io, watch, releaseOnExit ? () => release(client, io, common) : undefined);
}

export async function releaseCommand(args: ParsedArgs, io: ClientIo): Promise<number> {
  if (args.positional.length > 0) throw usageError('release takes options only: --nickname, --address, --port');
  const common = readCommon(args, io.env);
  const client = await connectAndRegister(args, io, common);
  try {
    return await release(client, io, common);
  } finally {
    await client.close();
  }
}
