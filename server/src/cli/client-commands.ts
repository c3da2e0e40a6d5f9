/** Peer client commands of `p2p-registry` (peers, lookup, register, watch). */
import type { ParsedArgs } from './args.js';
import { usageError } from './args.js';
import {
  loadOrCreateIdentity,
  NICKNAME_PATTERN,
  parseOnionAddress,
  parseSocksAddress,
  RegistryClient,
  RegistryError,
  type PeerRecord,
  type RegistryClientOptions,
  type RegistryEvent,
  type SocksProxy,
} from '../client/index.js';

export const CLIENT_COMMANDS: ReadonlySet<string> = new Set(['peers', 'lookup', 'register', 'watch']);
export const CLIENT_OPTIONS: readonly string[] = ['registry', 'socks', 'key', 'nickname', 'address', 'port', 'timeout'];
export const CLIENT_FLAGS: readonly string[] = ['json', 'watch'];

export const CLIENT_USAGE = `
peer client commands (through tor: --socks or P2P_SOCKS):
  peers    [--json]                    list every registered peer, one per line
  lookup   <nickname> [--json]         show one peer
  register --nickname <name> --address <onion> --port <port> [--key <path>] [--watch] [--json]
                                       register and stay connected until Ctrl-C (the registration
                                       lasts as long as the connection); --watch also prints events
  watch                                print peer_joined / peer_left events as JSON lines until Ctrl-C

client options:
  --registry ws://<onion>:<port>/      the registry (required, or env P2P_REGISTRY_URL)
  --socks <host>:<port>                tor's SocksPort, e.g. 127.0.0.1:9050 (or env P2P_SOCKS)
  --key <path>                         Ed25519 key file, made (mode 0600) if missing; default ./peer-key.pem
  --timeout <seconds>                  time to connect (default 60; a first onion connect takes ~20 s)

client exit codes: 0 ok, 1 failure (the message says what to do), 2 usage
`;

const DEFAULT_KEY_PATH = './peer-key.pem';
const DEFAULT_TIMEOUT_SECONDS = 60;
const COMMON_OPTIONS = ['registry', 'socks', 'timeout', 'json'];
const ALLOWED: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['peers', new Set(COMMON_OPTIONS)],
  ['lookup', new Set(COMMON_OPTIONS)],
  ['register', new Set([...COMMON_OPTIONS, 'key', 'nickname', 'address', 'port', 'watch'])],
  ['watch', new Set(['registry', 'socks', 'timeout'])],
]);

export interface TextSink {
  write(text: string): unknown;
}

/** Where a command reads its environment and writes; tests pass their own. */
export interface ClientIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Ends `register` and `watch`; by default Ctrl-C (SIGINT) or SIGTERM. */
  readonly signal?: AbortSignal;
}

interface Common {
  readonly url: string;
  readonly socks: SocksProxy | undefined;
  readonly timeoutMs: number;
  readonly json: boolean;
}

function stringOption(args: ParsedArgs, name: string): string | undefined {
  const value = args.options.get(name);
  return typeof value === 'string' ? value : undefined;
}

function checkOptions(command: string, args: ParsedArgs): void {
  const allowed = ALLOWED.get(command) ?? new Set<string>();
  for (const name of args.options.keys()) {
    if (name !== 'help' && !allowed.has(name)) throw usageError(`--${name} does not apply to "${command}"`);
  }
}

function readCommon(args: ParsedArgs, env: ClientIo['env']): Common {
  const url = stringOption(args, 'registry') ?? env.P2P_REGISTRY_URL;
  if (url === undefined || url.trim() === '') {
    throw usageError('no registry given: pass --registry ws://<onion>:<port>/ or set P2P_REGISTRY_URL (`p2p-registry onion` on the registry host prints it)');
  }
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw usageError(`--registry "${url}" is not a URL: use ws://<onion>:<port>/`);
  }
  if (parsed.protocol !== 'ws:') throw usageError(`--registry must be a ws:// URL, got "${url}"`);

  const socksText = stringOption(args, 'socks') ?? env.P2P_SOCKS;
  let socks: SocksProxy | undefined;
  if (socksText !== undefined && socksText.trim() !== '') {
    socks = parseSocksAddress(socksText);
    if (socks === undefined) throw usageError(`--socks must be <host>:<port>, e.g. 127.0.0.1:9050, got "${socksText}"`);
  }
  if (socks === undefined && parsed.hostname.toLowerCase().endsWith('.onion')) {
    throw usageError(`${parsed.hostname} is an onion address: pass --socks <host>:<port> (tor's SocksPort, e.g. 127.0.0.1:9050) or set P2P_SOCKS`);
  }

  const timeoutText = stringOption(args, 'timeout');
  let timeoutMs = DEFAULT_TIMEOUT_SECONDS * 1000;
  if (timeoutText !== undefined) {
    const seconds = Number(timeoutText);
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) {
      throw usageError(`--timeout must be a number of seconds from 0 to 3600, got "${timeoutText}"`);
    }
    timeoutMs = Math.round(seconds * 1000);
  }
  return { url: parsed.href, socks, timeoutMs, json: args.options.get('json') === true };
}

function clientOptions(common: Common, extra: Partial<RegistryClientOptions> = {}): RegistryClientOptions {
  return {
    url: common.url,
    ...(common.socks === undefined ? {} : { socks: common.socks }),
    connectTimeoutMs: common.timeoutMs,
    reconnect: false,
    ...extra,
  };
}

function peerLine(peer: PeerRecord): string {
  return `${peer.nickname}\t${peer.address}:${peer.port}\t${peer.keyType}\t${peer.registeredAt}\n`;
}

function json(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

/** The signal that ends a long-running command, and how to stop listening for it. */
function stopSignal(io: ClientIo): { readonly signal: AbortSignal; dispose(): void } {
  if (io.signal !== undefined) return { signal: io.signal, dispose: () => undefined };
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  // `once`: a second Ctrl-C falls through to the default handler and ends the process at once.
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}

/**
 * Keeps a client running until the signal fires (exit 0) or the client closes for good (exit 1).
 * Reports connection changes on stderr, and on stdout as JSON lines when `printEvents`.
 */
async function stayConnected(client: RegistryClient, io: ClientIo, printEvents: boolean): Promise<number> {
  const stop = stopSignal(io);
  client.on('disconnected', ({ code, willReconnect }) => {
    io.stderr.write(`connection to the registry lost (close code ${code})${willReconnect ? '' : ': not reconnecting'}\n`);
  });
  client.on('reconnecting', ({ attempt, delayMs, error }) => {
    const why = error === null ? '' : ` (last attempt: ${error.message})`;
    io.stderr.write(`reconnecting in ${(delayMs / 1000).toFixed(1)} s, attempt ${attempt}${why}\n`);
  });
  client.on('reconnected', ({ registered, subscribed }) => {
    const again = registered === null ? '' : `; registered again as ${registered.nickname}`;
    io.stderr.write(`reconnected${again}\n`);
    if (printEvents) io.stdout.write(json({ type: 'reconnected', registered: registered !== null, subscribed }));
  });
  if (printEvents) client.on('event', (event: RegistryEvent) => io.stdout.write(json(event)));

  try {
    return await new Promise<number>((resolve) => {
      if (stop.signal.aborted) {
        resolve(0);
        return;
      }
      stop.signal.addEventListener('abort', () => resolve(0), { once: true });
      client.on('registration_lost', (err) => {
        io.stderr.write(`p2p-registry: the registration could not be restored: ${err.code}: ${err.message}\n`);
        resolve(1);
      });
      client.on('closed', (err) => {
        if (err === null) resolve(0);
        else {
          const hint = err.code === 'REPLACED' ? ' (is another client running with the same --key?)' : '';
          io.stderr.write(`p2p-registry: ${err.code}: ${err.message}${hint}\n`);
          resolve(1);
        }
      });
    });
  } finally {
    stop.dispose();
    await client.close();
  }
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
  if (nickname === undefined || rest.length > 0) throw usageError('lookup takes one nickname: p2p-registry lookup <nickname>');
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

function readRegistration(args: ParsedArgs): { nickname: string; address: string; port: number } {
  const nickname = stringOption(args, 'nickname');
  const address = stringOption(args, 'address');
  const portText = stringOption(args, 'port');
  const missing = [nickname === undefined ? '--nickname' : '', address === undefined ? '--address' : '', portText === undefined ? '--port' : ''].filter(Boolean);
  if (missing.length > 0 || nickname === undefined || address === undefined || portText === undefined) {
    throw usageError(`register needs ${missing.join(', ')}: p2p-registry register --nickname <name> --address <onion> --port <port>`);
  }
  if (!NICKNAME_PATTERN.test(nickname)) {
    throw usageError(`--nickname must be 1-32 of A-Z a-z 0-9 _ . - starting with a letter or digit, got "${nickname}"`);
  }
  const onion = parseOnionAddress(address);
  if (!onion.ok) throw usageError(`--address is not a v3 onion address: ${onion.reason}`);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65_535) throw usageError(`--port must be 1-65535, got "${portText}"`);
  return { nickname, address, port };
}

async function registerCommand(args: ParsedArgs, io: ClientIo): Promise<number> {
  if (args.positional.length > 0) throw usageError('register takes options only: --nickname, --address, --port');
  const common = readCommon(args, io.env);
  const registration = readRegistration(args);
  const watch = args.options.get('watch') === true;
  const loaded = await loadOrCreateIdentity(stringOption(args, 'key') ?? DEFAULT_KEY_PATH);
  io.stderr.write(`${loaded.created ? 'created a new key in' : 'using the key in'} ${loaded.path}\n`);
  if (loaded.warning !== null) io.stderr.write(`warning: ${loaded.warning}\n`);

  const client = await RegistryClient.connect(clientOptions(common, { identity: loaded.identity, reconnect: {} }));
  try {
    const peer = await client.register(registration);
    if (common.json) io.stdout.write(json({ type: 'registered', peer }));
    else io.stdout.write(`registered ${peer.nickname} at ${peer.address}:${peer.port}\n`);
    if (watch) await client.subscribe();
  } catch (err) {
    await client.close();
    throw err;
  }
  io.stderr.write(`staying connected${watch ? ', printing events as JSON lines' : ''} (Ctrl-C to leave the registry)\n`);
  return stayConnected(client, io, watch);
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
  ['NICKNAME_TAKEN', 'choose another --nickname, or register with the --key that holds it'],
  ['ADDRESS_TAKEN', 'another key registered this onion address: use that --key, or check --address'],
  ['BAD_SIGNATURE', 'the key file may be damaged: try another --key'],
  ['RATE_LIMITED', 'retry in a few seconds'],
]);

/** One line that says what failed and what to do, for the errors the client knows. */
function describeFailure(err: unknown): string | undefined {
  if (!(err instanceof RegistryError) || err.source === 'usage') return undefined;
  if (err.source === 'identity') return err.message;
  const hint = HINTS.get(err.code);
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
    return await watchCommand(args, io);
  } catch (err) {
    const line = describeFailure(err);
    if (line === undefined) throw err;
    io.stderr.write(`p2p-registry: ${line}\n`);
    return 1;
  }
}
