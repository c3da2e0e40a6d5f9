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
import { RegistryError } from '../protocol/errors.js';
import {
  authReplyError,
  authRequest,
  connectReplyRest,
  connectRequest,
  type Credentials,
  type SocksProxy,
  credentialsOf,
  describeProxy,
  destinationError,
  methodReplyError,
  NO_AUTH,
  REPLY_HEAD_BYTES,
  USERNAME_PASSWORD,
  VERSION,
} from './socks5-messages.js';

export type { SocksProxy } from './socks5-messages.js';

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
          `no connection to ${host}:${port} through the proxy at ${where} within ${timeoutMs} ms: retry, or raise ` +
            `the timeout`,
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
