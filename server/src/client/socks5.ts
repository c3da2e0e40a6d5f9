/**
 * A SOCKS5 CONNECT client (RFC 1928), with no authentication or with a username and password
 * (RFC 1929). Destinations are always sent as a DOMAINNAME so that tor resolves them: an .onion
 * name must never reach a local resolver.
 *
 * To tor, a username and password are no secret but an isolation label: with IsolateSOCKSAuth (on
 * by default on every SocksPort), streams that gave other credentials never share a circuit. A
 * peer that gives its registry connection credentials of its own keeps it off the circuits of its
 * chats, so nobody who watches one circuit links the two.
 */
import { Agent, type AgentOptions, type ClientRequestArgs } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ERROR_CATALOG, RegistryError, type SocksErrorCode } from '../protocol/errors.js';

export interface SocksProxy {
  readonly host: string;
  readonly port: number;
  /** RFC 1929 username, 1-255 bytes; with `password`, or neither. */
  readonly username?: string;
  /** RFC 1929 password, 1-255 bytes. */
  readonly password?: string;
}

export interface SocksConnectOptions {
  readonly proxy: SocksProxy;
  /** Destination host name (an .onion name, a DNS name or an IP literal); the proxy resolves it. */
  readonly host: string;
  readonly port: number;
  /** Covers reaching the proxy and the whole handshake. Default 60 s (first onion connects are slow). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export const DEFAULT_SOCKS_TIMEOUT_MS = 60_000;

const VERSION = 0x05;
const NO_AUTH = 0x00;
const USERNAME_PASSWORD = 0x02;
/** RFC 1929's sub-negotiation version, and the status of success. */
const AUTH_VERSION = 0x01;
const AUTH_OK = 0x00;
/** RFC 1929's limit on a username and on a password. */
export const MAX_CREDENTIAL_BYTES = 255;
const NO_ACCEPTABLE_METHOD = 0xff;
const CMD_CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;
const MAX_DOMAIN_BYTES = 255;
/** VER REP RSV ATYP and the first byte of BND.ADDR (a DOMAINNAME's length). */
const REPLY_HEAD_BYTES = 5;

/**
 * Reply codes of RFC 1928 §6 and tor's extended codes (SocksPort ... ExtendedErrors), with what a
 * person can do about each. Tor answers 0x04 when it cannot reach an onion service at all.
 */
const REPLIES: ReadonlyMap<number, SocksErrorCode> = new Map([
  [0x01, 'SOCKS_GENERAL_FAILURE'],
  [0x02, 'SOCKS_NOT_ALLOWED'],
  [0x03, 'SOCKS_NETWORK_UNREACHABLE'],
  [0x04, 'SOCKS_HOST_UNREACHABLE'],
  [0x05, 'SOCKS_CONNECTION_REFUSED'],
  [0x06, 'SOCKS_TTL_EXPIRED'],
  [0x07, 'SOCKS_COMMAND_NOT_SUPPORTED'],
  [0x08, 'SOCKS_ADDRESS_TYPE_NOT_SUPPORTED'],
  [0xf0, 'SOCKS_ONION_DESCRIPTOR_NOT_FOUND'],
  [0xf1, 'SOCKS_ONION_DESCRIPTOR_INVALID'],
  [0xf2, 'SOCKS_ONION_INTRO_FAILED'],
  [0xf3, 'SOCKS_ONION_REND_FAILED'],
  [0xf4, 'SOCKS_ONION_AUTH_MISSING'],
  [0xf5, 'SOCKS_ONION_AUTH_WRONG'],
  [0xf6, 'SOCKS_ONION_BAD_ADDRESS'],
  [0xf7, 'SOCKS_ONION_INTRO_TIMEOUT'],
]);

function describeProxy(proxy: SocksProxy): string {
  return proxy.host.includes(':') ? `[${proxy.host}]:${proxy.port}` : `${proxy.host}:${proxy.port}`;
}

/** The CONNECT request for `host:port` as a DOMAINNAME. */
function connectRequest(host: string, port: number): Buffer {
  const name = Buffer.from(host, 'utf8');
  const request = Buffer.alloc(7 + name.length);
  request.set([VERSION, CMD_CONNECT, 0x00, ATYP_DOMAIN, name.length]);
  name.copy(request, 5);
  request.writeUInt16BE(port, 5 + name.length);
  return request;
}

/** Length of BND.ADDR for an address type, given the first byte after ATYP; undefined when unknown. */
function boundAddressLength(atyp: number, firstByte: number): number | undefined {
  if (atyp === ATYP_IPV4) return 4;
  if (atyp === ATYP_IPV6) return 16;
  if (atyp === ATYP_DOMAIN) return 1 + firstByte;
  return undefined;
}

/** Why the proxy cannot be asked for `host:port`; undefined when it can. */
function destinationError(host: string, port: number): RegistryError | undefined {
  const hostBytes = Buffer.byteLength(host, 'utf8');
  if (hostBytes === 0 || hostBytes > MAX_DOMAIN_BYTES) {
    return new RegistryError('SOCKS_BAD_DESTINATION', `destination host must be 1-${MAX_DOMAIN_BYTES} bytes`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    return new RegistryError('SOCKS_BAD_DESTINATION', `destination port must be 1-65535, got ${String(port)}`);
  }
  return undefined;
}

interface Credentials {
  readonly username: Buffer;
  readonly password: Buffer;
}

/** The proxy's credentials as bytes (null: none), or why they cannot be sent. */
function credentialsOf(proxy: SocksProxy): Credentials | null | RegistryError {
  if (proxy.username === undefined && proxy.password === undefined) return null;
  const username = Buffer.from(proxy.username ?? '', 'utf8');
  const password = Buffer.from(proxy.password ?? '', 'utf8');
  const fits = (bytes: Buffer): boolean => bytes.length >= 1 && bytes.length <= MAX_CREDENTIAL_BYTES;
  if (!fits(username) || !fits(password)) {
    return new RegistryError(
      'SOCKS_BAD_CREDENTIALS',
      `a SOCKS username and password go together, each 1-${MAX_CREDENTIAL_BYTES} bytes (got ${username.length} and ${password.length})`,
    );
  }
  return { username, password };
}

/** SOCKS_BAD_CREDENTIALS when the proxy's username and password cannot be sent, else undefined. */
export function socksProxyError(proxy: SocksProxy): RegistryError | undefined {
  const credentials = credentialsOf(proxy);
  return credentials instanceof RegistryError ? credentials : undefined;
}

/** RFC 1929's request: version, the username and the password, each after its length. */
function authRequest({ username, password }: Credentials): Buffer {
  return Buffer.concat([Buffer.of(AUTH_VERSION, username.length), username, Buffer.of(password.length), password]);
}

/** The proxy's method selection (2 bytes): undefined when it chose the one method offered, else why not. */
function methodReplyError(reply: Buffer, where: string, offered: number): RegistryError | undefined {
  if (reply[0] !== VERSION) {
    return new RegistryError(
      'SOCKS_NOT_SOCKS5',
      `${where} is not a SOCKS5 proxy (it answered version byte ${String(reply[0])}): point --socks at tor's SocksPort`,
    );
  }
  if (reply[1] === NO_ACCEPTABLE_METHOD) {
    return offered === NO_AUTH
      ? new RegistryError(
          'SOCKS_AUTH_REQUIRED',
          `the proxy at ${where} requires a username and password: give them (--socks <user>:<password>@${where})`,
        )
      : new RegistryError(
          'SOCKS_AUTH_FAILED',
          `the proxy at ${where} takes no username and password: leave them out (--socks ${where})`,
        );
  }
  if (reply[1] !== offered) {
    return new RegistryError(
      'SOCKS_BAD_REPLY',
      `the proxy at ${where} chose method ${String(reply[1])}, which was not offered`,
    );
  }
  return undefined;
}

/** RFC 1929's answer (2 bytes): undefined when the proxy took the credentials, else why not. */
function authReplyError(reply: Buffer, where: string): RegistryError | undefined {
  if (reply[0] !== AUTH_VERSION)
    return new RegistryError(
      'SOCKS_BAD_REPLY',
      `the proxy at ${where} answered the username and password with version byte ${String(reply[0])}`,
    );
  if (reply[1] !== AUTH_OK)
    return new RegistryError(
      'SOCKS_AUTH_FAILED',
      `the proxy at ${where} refused the SOCKS username and password (status ${String(reply[1])}): check them, or leave them out`,
    );
  return undefined;
}

/** The refusal a CONNECT reply code stands for, with what to do about it. */
function replyCodeError(rep: number, host: string, port: number): RegistryError {
  const known = REPLIES.get(rep);
  const hex = `0x${rep.toString(16).padStart(2, '0')}`;
  return known === undefined
    ? new RegistryError(
        'SOCKS_UNKNOWN_REPLY',
        `the proxy refused to connect to ${host}:${port} with reply code ${hex}`,
        { replyCode: rep },
      )
    : new RegistryError(known, `${ERROR_CATALOG[known].message} (${host}:${port}, SOCKS reply ${hex})`, {
        replyCode: rep,
      });
}

/**
 * The head of the CONNECT reply (REPLY_HEAD_BYTES): the bytes of it still to read (the rest of
 * BND.ADDR, then BND.PORT) when the proxy connected, else why it did not.
 */
function connectReplyRest(head: Buffer, where: string, host: string, port: number): number | RegistryError {
  const [version, rep = 0, , atyp = 0, first = 0] = head;
  if (version !== VERSION)
    return new RegistryError(
      'SOCKS_BAD_REPLY',
      `the proxy at ${where} answered CONNECT with version byte ${String(version)}`,
    );
  if (rep !== 0x00) return replyCodeError(rep, host, port);
  const length = boundAddressLength(atyp, first);
  if (length === undefined)
    return new RegistryError(
      'SOCKS_BAD_REPLY',
      `the proxy at ${where} answered with unknown address type ${String(atyp)}`,
    );
  return length - 1 + 2;
}

/**
 * The client's side of the SOCKS5 handshake, one step per reply. Paused mode with read(n): exactly
 * the handshake's bytes are taken, what the destination sent after them stays for the caller.
 */
class Handshake {
  private step: 'method' | 'auth' | 'reply-head' | 'reply-address' = 'method';
  private addressLength = 0;
  private readonly method: number;

  constructor(
    private readonly where: string,
    private readonly host: string,
    private readonly port: number,
    private readonly credentials: Credentials | null,
  ) {
    this.method = credentials === null ? NO_AUTH : USERNAME_PASSWORD;
  }

  /** The first bytes: the one method offered. */
  greeting(): Buffer {
    return Buffer.of(VERSION, 1, this.method);
  }

  /** Takes what replies have arrived and answers them: null while more bytes are needed. */
  advance(socket: Socket): 'connected' | RegistryError | null {
    for (;;) {
      if (this.step === 'method') {
        const reply = this.take(socket, 2);
        if (reply === null || reply instanceof RegistryError) return reply;
        const refused = methodReplyError(reply, this.where, this.method);
        if (refused !== undefined) return refused;
        if (this.credentials === null) this.sendConnect(socket);
        else {
          socket.write(authRequest(this.credentials));
          this.step = 'auth';
        }
      } else if (this.step === 'auth') {
        const reply = this.take(socket, 2);
        if (reply === null || reply instanceof RegistryError) return reply;
        const refused = authReplyError(reply, this.where);
        if (refused !== undefined) return refused;
        this.sendConnect(socket);
      } else if (this.step === 'reply-head') {
        const head = this.take(socket, REPLY_HEAD_BYTES);
        if (head === null || head instanceof RegistryError) return head;
        const rest = connectReplyRest(head, this.where, this.host, this.port);
        if (rest instanceof RegistryError) return rest;
        this.addressLength = rest;
        this.step = 'reply-address';
      } else {
        const rest = this.take(socket, this.addressLength);
        return rest === null || rest instanceof RegistryError ? rest : 'connected';
      }
    }
  }

  /**
   * `count` bytes of the reply, null until they are there; once the proxy has ended its side,
   * read() hands over what is left even when it is less, and that is a reply cut short.
   */
  private take(socket: Socket, count: number): Buffer | RegistryError | null {
    const bytes = socket.read(count) as Buffer | null;
    if (bytes === null || bytes.length === count) return bytes;
    return new RegistryError(
      'SOCKS_PROXY_CLOSED',
      `the proxy at ${this.where} closed the connection in the middle of its SOCKS5 reply: is it tor's SocksPort?`,
    );
  }

  private sendConnect(socket: Socket): void {
    socket.write(connectRequest(this.host, this.port));
    this.step = 'reply-head';
  }
}

/**
 * Opens a TCP connection to the proxy and asks it to CONNECT to `host:port`. Resolves with the socket,
 * ready to carry the destination's bytes; rejects with a RegistryError whose `code` says what failed.
 */
export function socksConnect(options: SocksConnectOptions): Promise<Socket> {
  const { proxy, host, port } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_SOCKS_TIMEOUT_MS;
  const badDestination = destinationError(host, port);
  if (badDestination !== undefined) return Promise.reject(badDestination);
  const credentials = credentialsOf(proxy);
  if (credentials instanceof RegistryError) return Promise.reject(credentials);
  if (options.signal?.aborted === true) {
    return Promise.reject(new RegistryError('SOCKS_ABORTED', 'the connection attempt was cancelled'));
  }
  const where = describeProxy(proxy);

  return new Promise<Socket>((resolve, reject) => {
    const socket = netConnect({ host: proxy.host, port: proxy.port });
    socket.setNoDelay(true);
    const handshake = new Handshake(where, host, port, credentials);
    let settled = false;

    const finish = (err: RegistryError | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('readable', onReadable);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      if (err === null) {
        resolve(socket);
      } else {
        socket.on('error', () => undefined);
        socket.destroy();
        reject(err);
      }
    };

    const onConnect = (): void => {
      socket.write(handshake.greeting());
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      const why = err.code ?? err.message;
      finish(
        new RegistryError(
          'SOCKS_PROXY_UNREACHABLE',
          `cannot reach the SOCKS5 proxy at ${where} (${why}): is tor running with SocksPort ${where}?`,
          { cause: err },
        ),
      );
    };
    const onEnd = (): void => {
      finish(
        new RegistryError(
          'SOCKS_PROXY_CLOSED',
          `the proxy at ${where} closed the connection during the SOCKS5 handshake: is it tor's SocksPort?`,
        ),
      );
    };
    const onAbort = (): void => finish(new RegistryError('SOCKS_ABORTED', 'the connection attempt was cancelled'));

    const onReadable = (): void => {
      if (settled) return;
      const outcome = handshake.advance(socket);
      if (outcome !== null) finish(outcome === 'connected' ? null : outcome);
    };

    const timer = setTimeout(() => {
      finish(
        new RegistryError(
          'SOCKS_TIMEOUT',
          `no connection to ${host}:${port} through the proxy at ${where} within ${timeoutMs} ms: retry, or raise the timeout`,
        ),
      );
    }, timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', onConnect);
    socket.on('readable', onReadable);
    socket.on('error', onError);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

export interface SocksAgentOptions extends AgentOptions {
  /** Handshake timeout for each connection, default 60 s. */
  readonly socksTimeoutMs?: number;
}

/**
 * An http.Agent that opens each connection through a SOCKS5 proxy. `ws` takes it as `agent` and
 * hands it to http.request; the agent answers asynchronously through the callback once the proxy
 * has connected. `destroy()` also cancels handshakes still in progress.
 */
export class SocksAgent extends Agent {
  private readonly aborter = new AbortController();
  private readonly socksTimeoutMs: number;

  constructor(
    readonly proxy: SocksProxy,
    options: SocksAgentOptions = {},
  ) {
    const { socksTimeoutMs, ...agentOptions } = options;
    super({ ...agentOptions, keepAlive: false });
    this.socksTimeoutMs = socksTimeoutMs ?? DEFAULT_SOCKS_TIMEOUT_MS;
  }

  override createConnection(
    options: ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const host = options.hostname ?? options.host ?? 'localhost';
    const port = Number(options.port ?? options.defaultPort ?? 80);
    socksConnect({ proxy: this.proxy, host, port, timeoutMs: this.socksTimeoutMs, signal: this.aborter.signal }).then(
      (socket) => callback?.(null, socket),
      (err: unknown) => callback?.(err as Error, undefined as unknown as Duplex),
    );
    return undefined;
  }

  override destroy(): void {
    this.aborter.abort();
    super.destroy();
  }
}

/**
 * Parses `host:port` or `[ipv6]:port`, optionally after `<username>:<password>@` (the username
 * without a colon, each 1-255 bytes); undefined when it is not one.
 */
export function parseSocksAddress(text: string): SocksProxy | undefined {
  const trimmed = text.trim();
  const at = trimmed.lastIndexOf('@');
  const address = at === -1 ? trimmed : trimmed.slice(at + 1);
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s@]+)):(\d{1,5})$/.exec(address);
  if (match === null) return undefined;
  const host = match[1] ?? match[2];
  const port = Number(match[3]);
  if (host === undefined || port < 1 || port > 65_535) return undefined;
  if (at === -1) return { host, port };
  const userinfo = trimmed.slice(0, at);
  const colon = userinfo.indexOf(':');
  if (colon === -1) return undefined;
  const proxy = { host, port, username: userinfo.slice(0, colon), password: userinfo.slice(colon + 1) };
  return credentialsOf(proxy) instanceof RegistryError ? undefined : proxy;
}
