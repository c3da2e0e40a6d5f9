/**
 * A SOCKS5 CONNECT client (RFC 1928, no authentication). Destinations are always sent as a
 * DOMAINNAME so that tor resolves them: an .onion name must never reach a local resolver.
 */
import { Agent, type AgentOptions, type ClientRequestArgs } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ERROR_CATALOG, RegistryError, type SocksErrorCode } from '../protocol/errors.js';

export interface SocksProxy {
  readonly host: string;
  readonly port: number;
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

/** The proxy's method selection (2 bytes): undefined when it accepts no authentication, else why not. */
function methodReplyError(reply: Buffer, where: string): RegistryError | undefined {
  if (reply[0] !== VERSION) {
    return new RegistryError('SOCKS_NOT_SOCKS5', `${where} is not a SOCKS5 proxy (it answered version byte ${String(reply[0])}): point --socks at tor's SocksPort`);
  }
  if (reply[1] === NO_ACCEPTABLE_METHOD) {
    return new RegistryError('SOCKS_AUTH_REQUIRED', `the proxy at ${where} requires authentication, which this client does not support`);
  }
  if (reply[1] !== NO_AUTH) {
    return new RegistryError('SOCKS_BAD_REPLY', `the proxy at ${where} chose method ${String(reply[1])}, which was not offered`);
  }
  return undefined;
}

/** The refusal a CONNECT reply code stands for, with what to do about it. */
function replyCodeError(rep: number, host: string, port: number): RegistryError {
  const known = REPLIES.get(rep);
  const hex = `0x${rep.toString(16).padStart(2, '0')}`;
  return known === undefined
    ? new RegistryError('SOCKS_UNKNOWN_REPLY', `the proxy refused to connect to ${host}:${port} with reply code ${hex}`, { replyCode: rep })
    : new RegistryError(known, `${ERROR_CATALOG[known].message} (${host}:${port}, SOCKS reply ${hex})`, { replyCode: rep });
}

/**
 * The head of the CONNECT reply (REPLY_HEAD_BYTES): the bytes of it still to read (the rest of
 * BND.ADDR, then BND.PORT) when the proxy connected, else why it did not.
 */
function connectReplyRest(head: Buffer, where: string, host: string, port: number): number | RegistryError {
  const [version, rep = 0, , atyp = 0, first = 0] = head;
  if (version !== VERSION) return new RegistryError('SOCKS_BAD_REPLY', `the proxy at ${where} answered CONNECT with version byte ${String(version)}`);
  if (rep !== 0x00) return replyCodeError(rep, host, port);
  const length = boundAddressLength(atyp, first);
  if (length === undefined) return new RegistryError('SOCKS_BAD_REPLY', `the proxy at ${where} answered with unknown address type ${String(atyp)}`);
  return length - 1 + 2;
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
  if (options.signal?.aborted === true) {
    return Promise.reject(new RegistryError('SOCKS_ABORTED', 'the connection attempt was cancelled'));
  }
  const where = describeProxy(proxy);

  return new Promise<Socket>((resolve, reject) => {
    const socket = netConnect({ host: proxy.host, port: proxy.port });
    socket.setNoDelay(true);
    // Paused mode with read(n): exactly the handshake's bytes are taken, the rest stays for the caller.
    let step: 'method' | 'reply-head' | 'reply-address' = 'method';
    let addressLength = 0;
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
      socket.write(Buffer.of(VERSION, 1, NO_AUTH));
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      const why = err.code ?? err.message;
      finish(new RegistryError('SOCKS_PROXY_UNREACHABLE', `cannot reach the SOCKS5 proxy at ${where} (${why}): is tor running with SocksPort ${where}?`, { cause: err }));
    };
    const onEnd = (): void => {
      finish(new RegistryError('SOCKS_PROXY_CLOSED', `the proxy at ${where} closed the connection during the SOCKS5 handshake: is it tor's SocksPort?`));
    };
    const onAbort = (): void => finish(new RegistryError('SOCKS_ABORTED', 'the connection attempt was cancelled'));

    const onReadable = (): void => {
      for (;;) {
        if (settled) return;
        if (step === 'method') {
          const reply = socket.read(2) as Buffer | null;
          if (reply === null) return;
          const refused = methodReplyError(reply, where);
          if (refused !== undefined) {
            finish(refused);
            return;
          }
          socket.write(connectRequest(host, port));
          step = 'reply-head';
        } else if (step === 'reply-head') {
          const head = socket.read(REPLY_HEAD_BYTES) as Buffer | null;
          if (head === null) return;
          const rest = connectReplyRest(head, where, host, port);
          if (rest instanceof RegistryError) {
            finish(rest);
            return;
          }
          addressLength = rest;
          step = 'reply-address';
        } else {
          const rest = socket.read(addressLength) as Buffer | null;
          if (rest === null) return;
          finish(null);
          return;
        }
      }
    };

    const timer = setTimeout(() => {
      finish(new RegistryError('SOCKS_TIMEOUT', `no connection to ${host}:${port} through the proxy at ${where} within ${timeoutMs} ms: retry, or raise the timeout`));
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

/** Parses `host:port` or `[ipv6]:port`; undefined when it is not one. */
export function parseSocksAddress(text: string): SocksProxy | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  if (match === null) return undefined;
  const host = match[1] ?? match[2];
  const port = Number(match[3]);
  if (host === undefined || port < 1 || port > 65_535) return undefined;
  return { host, port };
}
