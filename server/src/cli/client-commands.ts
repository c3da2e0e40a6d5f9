/** Peer client commands of `p2p-registry` (peers, lookup, register, release, watch). */
import type { ParsedArgs } from './args.js';
import { usageError } from './args.js';
import { clientOptions, json, readCommon, stayConnected, type ClientIo } from './client-common.js';
import { registerCommand, releaseCommand } from './register-command.js';
import { RegistryClient, RegistryError, type PeerRecord } from '../client/index.js';

export type { ClientIo, TextSink } from './client-common.js';

export const CLIENT_COMMANDS: ReadonlySet<string> = new Set(['peers', 'lookup', 'register', 'release', 'watch']);
export const CLIENT_OPTIONS: readonly string[] = [
  'registry',
  'socks',
  'key',
  'onion-key',
  'nickname',
  'address',
  'port',
  'timeout',
];
export const CLIENT_FLAGS: readonly string[] = ['json', 'watch', 'release-on-exit'];

export const CLIENT_USAGE = `
peer client commands (through tor: --socks or P2P_SOCKS):
  peers    [--json]                    list every registered peer, one per line
  lookup   <nickname> [--json]         show one peer
  register --nickname <name> --address <onion> --port <port> [--onion-key <path>] [--key <path>]
           [--release-on-exit] [--watch] [--json]
                                       register and stay connected until Ctrl-C. The live registration
                                       lasts as long as the connection; a registry with claims (rev 2)
                                       also binds the nickname and address to --key once it stayed
                                       registered a while, for days after it leaves: the claim it holds
                                       is printed ("claim until <time>", "no claim yet (made after N s)"),
                                       and again when it is made. --release-on-exit deletes the claim on
                                       Ctrl-C. --watch also prints events as JSON lines
  release  --nickname <name> --address <onion> --port <port> [--onion-key <path>] [--key <path>]
                                       register once, then leave and delete this key's claim (the
                                       nickname and address are free at once); a running register of
                                       the same --key is replaced. Operators: see claims release
  watch                                print peer_joined / peer_left events as JSON lines until Ctrl-C

client options:
  --registry ws://<onion>:<port>/      the registry (required, or env P2P_REGISTRY_URL)
  --socks <host>:<port>                tor's SocksPort, e.g. 127.0.0.1:9050 (or env P2P_SOCKS);
                                       <user>:<password>@<host>:<port> gives tor an isolation label:
                                       streams with other credentials never share its circuits
  --key <path>                         Ed25519 key file, made (mode 0600) if missing; default ./peer-key.pem
  --onion-key <path>                   tor's hs_ed25519_secret_key of the onion service at --address:
                                       adds an address proof (the peer is addressVerified, and takes
                                       its address from an unproven holder); --address must be its
                                       address, and may be left out to use it
  --timeout <seconds>                  time to connect (default 60; a first onion connect takes ~20 s)

client exit codes: 0 ok, 1 failure (the message says what to do), 2 usage
`;

const COMMON_OPTIONS = ['registry', 'socks', 'timeout', 'json'];
const ALLOWED: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['peers', new Set(COMMON_OPTIONS)],
  ['lookup', new Set(COMMON_OPTIONS)],
  [
    'register',
    new Set([...COMMON_OPTIONS, 'key', 'onion-key', 'nickname', 'address', 'port', 'watch', 'release-on-exit']),
  ],
  ['release', new Set([...COMMON_OPTIONS, 'key', 'onion-key', 'nickname', 'address', 'port'])],
  ['watch', new Set(['registry', 'socks', 'timeout'])],
]);

function checkOptions(command: string, args: ParsedArgs): void {
  const allowed = ALLOWED.get(command) ?? new Set<string>();
  for (const name of args.options.keys()) {
    if (name !== 'help' && !allowed.has(name)) throw usageError(`--${name} does not apply to "${command}"`);
  }
}

function peerLine(peer: PeerRecord): string {
  return `${peer.nickname}\t${peer.address}:${peer.port}\t${peer.keyType}\t${peer.registeredAt}\n`;
}

async function peersCommand(args: ParsedArgs, io: ClientIo): Promise<number> {
  if (args.positional.length > 0) throw usageError('peers takes no arguments');
  const common = readCommon(args, io.env);
  const client = await RegistryClient.connect(clientOptions(common));
  try {
    const peers = await client.list();
    if (common.json) io.stdout.write(json(peers));
    else if (peers.length === 0) io.stderr.write('no peers online\n');
    else for (const peer of peers) io.stdout.write(peerLine(peer));
    return 0;
  } finally {
    await client.close();
  }
}

async function lookupCommand(args: ParsedArgs, io: ClientIo): Promise<number> {
  const [nickname, ...rest] = args.positional;
  if (nickname === undefined || rest.length > 0)
    throw usageError('lookup takes one nickname: p2p-registry lookup <nickname>');
  const common = readCommon(args, io.env);
  const client = await RegistryClient.connect(clientOptions(common));
  try {
    const peer = await client.lookup(nickname);
    io.stdout.write(common.json ? json(peer) : peerLine(peer));
    return 0;
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NOT_FOUND') {
      io.stderr.write(`p2p-registry: no peer named "${nickname}" is online\n`);
      return 1;
    }
    throw err;
  } finally {
    await client.close();
  }
}

async function watchCommand(args: ParsedArgs, io: ClientIo): Promise<number> {
  if (args.positional.length > 0) throw usageError('watch takes no arguments');
  const common = readCommon(args, io.env);
  const client = await RegistryClient.connect(clientOptions(common, { reconnect: {} }));
  try {
    await client.subscribe();
  } catch (err) {
    await client.close();
    throw err;
  }
  io.stderr.write(`watching ${common.url}: events as JSON lines (Ctrl-C to stop)\n`);
  return stayConnected(client, io, true);
}

/** What to do about the registry's refusals whose message alone does not say it. */
const HINTS: ReadonlyMap<string, string> = new Map([
  ['NICKNAME_TAKEN', 'choose another --nickname, or register with the --key that holds it (online, or by its claim)'],
  [
    'ADDRESS_TAKEN',
    'another key holds this onion address: use that --key, check --address, or prove it is yours with --onion-key',
  ],
  ['BAD_SIGNATURE', 'the key file may be damaged: try another --key'],
  ['BAD_ADDRESS_PROOF', 'the --onion-key file may be damaged, or not the key of --address'],
  ['ADDRESS_PROOF_REQUIRED', "pass --onion-key with the onion service's hs_ed25519_secret_key"],
  ['RATE_LIMITED', 'retry in a few seconds'],
  ['UNAVAILABLE', 'retry in a few seconds'],
]);

/** One line that says what failed and what to do, for the errors the client knows. */
function describeFailure(err: unknown): string | undefined {
  if (!(err instanceof RegistryError) || err.source === 'usage') return undefined;
  if (err.source === 'identity') return err.message;
  const hint = err.retryAfterMs === null ? HINTS.get(err.code) : `retry in ${Math.ceil(err.retryAfterMs / 1000)} s`;
  return `${err.code}: ${err.message}${hint === undefined ? '' : `: ${hint}`}`;
}

const defaultIo: ClientIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };

/** Runs a client command; 0 ok, 1 failure. Usage problems throw USAGE errors (main.ts answers 2). */
export async function runClientCommand(command: string, args: ParsedArgs, io: ClientIo = defaultIo): Promise<number> {
  if (!CLIENT_COMMANDS.has(command)) throw usageError(`unknown command "${command}"`);
  checkOptions(command, args);
  try {
    if (command === 'peers') return await peersCommand(args, io);
    if (command === 'lookup') return await lookupCommand(args, io);
    if (command === 'register') return await registerCommand(args, io);
    if (command === 'release') return await releaseCommand(args, io);
    return await watchCommand(args, io);
  } catch (err) {
    const line = describeFailure(err);
    if (line === undefined) throw err;
    io.stderr.write(`p2p-registry: ${line}\n`);
    return 1;
  }
}
