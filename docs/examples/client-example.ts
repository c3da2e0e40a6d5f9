/**
 * A peer app's side of the registry, complete: connect through tor, register with an address
 * proof, look a friend up, keep a list of who is online, and carry on across reconnects.
 * docs/CLIENT.md explains it; test/unit/client-example.test.ts runs it against a real registry.
 *
 * In your app, import from 'p2p-tor-chat-registry/client' (the package's `./client` entry). This
 * file imports the same entry from the repository's source, so that the tests compile it.
 */
import {
  loadOnionKey,
  loadOrCreateIdentity,
  RegistryClient,
  RegistryError,
  type OnionKey,
  type Peer,
  type ReconnectOptions,
  type RegisteredPeer,
  type RegistryEvent,
  type SocksProxy,
} from '../../server/src/client/index.js';

export interface ExampleOptions {
  /** The registry's URL as its operator publishes it: ws://<registry onion>:80/ */
  readonly url: string;
  /** Tor's SocksPort, e.g. { host: '127.0.0.1', port: 9050 }; required for an .onion URL. */
  readonly socks?: SocksProxy;
  /** This peer's signing key (Ed25519, PEM, mode 0600); made on first use. */
  readonly keyFile: string;
  /** Your onion service's `hs_ed25519_secret_key` (in its HiddenServiceDir): proves you run the address. */
  readonly onionKeyFile: string;
  readonly nickname: string;
  /** The port your chat service listens on behind your onion address. */
  readonly port: number;
  /** A nickname to look up once registered. */
  readonly friend: string;
  /** Reconnection tuning; the defaults (full-jitter backoff from 5 s up to 60 s) suit the Tor network. */
  readonly reconnect?: Partial<ReconnectOptions>;
  /** Where the example says what happens, one line each; console.log by default. */
  readonly log?: (line: string) => void;
}

export interface RunningPeer {
  readonly client: RegistryClient;
  readonly registered: RegisteredPeer;
  /** The friend as `lookup` found them; null when they were not online. */
  readonly friend: Peer | null;
  readonly directory: PeerDirectory;
  /** Leaves the registry and closes the connection. The claim stays: the nickname remains yours. */
  stop(): Promise<void>;
}

/**
 * Everyone online, kept equal to the registry's `list`: subscribe, list every page, then apply the
 * events in order (PROTOCOL.md, "subscribe and events"). After a reconnect, list again: events
 * were missed meanwhile.
 */
export class PeerDirectory {
  readonly #peers = new Map<string, Peer>();
  /** Events that arrive while a list is under way: applied after it, in order. */
  #held: RegistryEvent[] | null = null;
  #refreshing: Promise<void> = Promise.resolve();

  /** Keyed by nickname in lower case (nicknames are unique regardless of case). */
  get peers(): ReadonlyMap<string, Peer> {
    return this.#peers;
  }

  apply(event: RegistryEvent): void {
    if (this.#held !== null) {
      this.#held.push(event);
    } else if (event.type === 'peer_joined') {
      this.#peers.set(event.peer.nickname.toLowerCase(), event.peer);
    } else if (event.type === 'peer_left') {
      this.#peers.delete(event.nickname.toLowerCase());
    }
  }

  /** Lists every peer and replaces the view; one refresh at a time. */
  refresh(client: RegistryClient): Promise<void> {
    const next = this.#refreshing.then(() => this.#relist(client));
    this.#refreshing = next.catch(() => undefined);
    return next;
  }

  async #relist(client: RegistryClient): Promise<void> {
    this.#held = [];
    try {
      const peers = await client.list();
      this.#peers.clear();
      for (const peer of peers) this.#peers.set(peer.nickname.toLowerCase(), peer);
    } finally {
      // Re-applying an event the list already reflects changes nothing: the last event wins.
      const held = this.#held;
      this.#held = null;
      for (const event of held) this.apply(event);
    }
  }
}

/** Connects, registers, looks the friend up and follows the registry until `stop()`. */
export async function main(options: ExampleOptions): Promise<RunningPeer> {
  const log = options.log ?? ((line: string) => console.log(line));
  const { identity, warning } = await loadOrCreateIdentity(options.keyFile);
  if (warning !== null) log(warning);
  const onionKey = await loadOnionKey(options.onionKeyFile);
  const client = await RegistryClient.connect({
    url: options.url,
    identity,
    ...(options.socks === undefined ? {} : { socks: options.socks }),
    ...(options.reconnect === undefined ? {} : { reconnect: options.reconnect }),
  });
  try {
    return await follow(client, onionKey, options, log);
  } catch (err) {
    await client.close();
    throw err;
  }
}

async function follow(
  client: RegistryClient,
  onionKey: OnionKey,
  options: ExampleOptions,
  log: (line: string) => void,
): Promise<RunningPeer> {
  const directory = new PeerDirectory();
  watch(client, directory, log);
  // The onion key signs an address proof for this connection's challenge: the registry marks the
  // registration addressVerified, and an unproven squatter of the address gives way.
  const registered = await client.register({
    nickname: options.nickname,
    address: onionKey.address,
    port: options.port,
    onionKey,
  });
  const claim =
    registered.claim === null
      ? `no claim yet (after ${client.hello?.limits.claimAfterSeconds ?? '?'} s registered)`
      : `claim until ${registered.claim.until}`;
  log(
    `registered as ${registered.nickname} at ${registered.address}:${registered.port}, address verified: ` +
      `${registered.addressVerified}, ${claim}`,
  );
  await client.subscribe();
  await directory.refresh(client);
  log(`${directory.peers.size} peers online`);
  const friend = await lookUp(client, options.friend);
  log(
    friend === null ? `${options.friend} is not online` : `${friend.nickname} is at ${friend.address}:${friend.port}`,
  );
  return {
    client,
    registered,
    friend,
    directory,
    async stop() {
      // unregister({ release: true }) would also give the nickname and address up at once.
      if (client.state === 'open') await client.unregister().catch(() => undefined);
      await client.close();
    },
  };
}

/** The peer, or null when nobody holds that nickname now (NOT_FOUND). */
async function lookUp(client: RegistryClient, nickname: string): Promise<Peer | null> {
  try {
    return await client.lookup(nickname);
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NOT_FOUND') return null;
    throw err;
  }
}

/** The client reconnects by itself, registering and subscribing again; the app lists again. */
function watch(client: RegistryClient, directory: PeerDirectory, log: (line: string) => void): void {
  client.on('event', (event) => directory.apply(event));
  client.on('peer_joined', (peer) => log(`joined: ${peer.nickname}`));
  client.on('peer_left', (nickname) => log(`left: ${nickname}`));
  client.on('claimed', (claim) => log(`claimed until ${claim.until}`));
  client.on('disconnected', ({ code, willReconnect }) =>
    log(`disconnected (${code})${willReconnect ? '' : ' for good'}`),
  );
  client.on('reconnecting', ({ attempt, delayMs }) => log(`reconnecting: attempt ${attempt} in ${delayMs} ms`));
  client.on('reconnected', ({ registered }) => {
    log(registered === null ? 'reconnected, not registered' : `reconnected as ${registered.nickname}`);
    directory.refresh(client).catch((err: unknown) => log(`could not list the peers again: ${String(err)}`));
  });
  // Another key holds the nickname now (e.g. NICKNAME_TAKEN): pick another and register again.
  client.on('registration_lost', (err) => log(`registration lost: ${err.code}: ${err.message}`));
  // REPLACED (our key registered elsewhere), EVICTED (the address's owner proved it) or
  // RECONNECT_FAILED end the client for good; null after stop().
  client.on('closed', (err) => log(err === null ? 'closed' : `closed for good: ${err.code}: ${err.message}`));
}
