/**
 * The registry server: HTTP (/healthz) and the protocol v1 WebSocket on one listener, heartbeats,
 * limits, and the wiring between connections, the peer table and the event hub.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { ChallengeSource } from './challenges.js';
import type { Config, Listen } from './config.js';
import { CloseCode, ERROR_CATALOG, ErrorCode, RegistryError, isProtocolCode } from '../protocol/errors.js';
import { EventHub, type Subscriber } from './event-hub.js';
import type { Logger } from './logger.js';
import { parseOnionAddress, type OnionAddress } from '../protocol/onion-address.js';
import { OnionWatcher } from './onion-watcher.js';
import { decodeSignature, parsePeerKey, verifySignature } from '../protocol/peer-key.js';
import { frameBytes } from '../protocol/json-frame.js';
import {
  NICKNAME_PATTERN,
  PROTOCOL_VERSION,
  type PeerRecord,
  type RegisterRequest,
  type Request,
  type RequestId,
  type ServerMessage,
} from '../protocol/messages.js';
import { MAX_JSON_CONTAINERS, parseRequest, requestCost, type ParseResult } from '../protocol/request-parser.js';
import { registrationPayload } from '../protocol/signing.js';
import { nicknameKey, Registry, type Registration } from './peer-table.js';
import { TokenBucket } from './token-bucket.js';

const MAX_BACKLOG = 64;
/**
 * Each connection's share of an event-loop turn, in CPU time (round robin). Past it, the rest of its
 * frames wait for a later turn with its socket paused, so a flood queued on a few sockets cannot make
 * an honest request wait for all of it. Honest lookups cost microseconds: a connection's pipelined
 * requests are still answered in one turn (and their replies share one write), while expensive
 * frames (deep nesting, 0.3-0.5 ms each) yield after one or two.
 */
const TURN_BUDGET_MS = 0.5;
const TERMINATE_AFTER_CLOSE_MS = 2_000;
const SHUTDOWN_GRACE_MS = 3_000;
const SOCKET_MODE = 0o660;

export interface RegistryStats {
  readonly connections: number;
  readonly pending: number;
  readonly peers: number;
  readonly subscribers: number;
}

export interface RegistryServer {
  /** The TCP address (tests use port 0) or the unix socket path. */
  readonly address: AddressInfo | string;
  readonly onion: OnionAddress | null;
  /** `ws://<onion>:<HiddenServicePort>/` once the onion address is known. */
  readonly url: string | null;
  stats(): RegistryStats;
  /** Closes every connection with 1001 and stops listening. */
  close(): Promise<void>;
}

/**
 * Log calls of one connection, tagged with its id. Not a pino child: a child per connection costs
 * an allocation on every accept (and memory for every held peer) even when its level is off.
 */
class ConnectionLog {
  constructor(
    private readonly logger: Logger,
    private readonly connId: number,
  ) {}

  info(fields: object, message: string): void {
    if (this.logger.isLevelEnabled('info')) this.logger.info({ connId: this.connId, ...fields }, message);
  }

  debug(fields: object, message: string): void {
    if (this.logger.isLevelEnabled('debug')) this.logger.debug({ connId: this.connId, ...fields }, message);
  }

  warn(fields: object, message: string): void {
    this.logger.warn({ connId: this.connId, ...fields }, message);
  }

  error(fields: object, message: string): void {
    this.logger.error({ connId: this.connId, ...fields }, message);
  }
}

/** One WebSocket connection and what it has done so far. */
class Connection implements Subscriber {
  /** True until the first valid request (slow-loris accounting). */
  pending = true;
  /** Set while a registration's signature is being checked: later frames wait in `backlog`. */
  busy = false;
  readonly backlog: Array<[RawData, boolean]> = [];
  /** Milliseconds spent on this connection's frames in the current turn (TURN_BUDGET_MS). */
  turnMs = 0;
  missedPongs = 0;
  strikes = 0;
  /** Refused requests by error code, logged once when the connection closes. */
  readonly refused: Partial<Record<ErrorCode, number>> = {};
  closing = false;
  idleTimer: NodeJS.Timeout | undefined;

  /** True while the replies of this tick are being gathered into one write (see sendText). */
  private corked = false;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    private readonly socket: Duplex,
    readonly challenge: string,
    readonly bucket: TokenBucket,
    readonly log: ConnectionLog,
    private readonly maxBufferedBytes: number,
  ) {}

  send(message: ServerMessage): void {
    this.sendText(JSON.stringify(message));
  }

  /** Sends a frame already serialised as JSON text (the hot paths build replies from cached JSON). */
  sendText(text: string | Buffer): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (!this.corked) {
      // Every frame sent to this connection in this tick (replies to a burst of requests, a batch
      // of events) leaves in one writev when the tick ends, not one syscall per frame.
      this.corked = true;
      this.socket.cork();
      process.nextTick(uncork, this);
    }
    this.ws.send(text, { binary: false });
    this.checkBuffered();
  }

  uncork(): void {
    this.corked = false;
    this.socket.uncork();
  }

  deliver(frame: Buffer): void {
    this.sendText(frame);
  }

  reply(id: RequestId, error: RegistryError): void {
    // One info line per refused frame would let a flood write the disk full: count, log at close.
    // Only protocol codes go on the wire; anything else reaching here is a bug, answered generically.
    const code = isProtocolCode(error.code) ? error.code : ErrorCode.INTERNAL;
    this.log.debug({ code }, 'request refused');
    this.refused[code] = (this.refused[code] ?? 0) + 1;
    this.send({ type: 'error', id, code, message: code === error.code ? error.message : ERROR_CATALOG.INTERNAL.message });
  }

  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.log.info({ closeCode: code, reason }, 'closing connection');
    this.ws.close(code, reason);
    // A peer that does not read cannot receive the close frame: cut it off after a moment.
    setTimeout(() => this.ws.terminate(), TERMINATE_AFTER_CLOSE_MS).unref();
  }

  /** A reader that lets frames pile up is dropped, not buffered forever. */
  private checkBuffered(): void {
    if (this.ws.bufferedAmount > this.maxBufferedBytes) {
      this.close(CloseCode.POLICY_VIOLATION, 'not reading fast enough');
    }
  }
}

function uncork(conn: Connection): void {
  conn.uncork();
}

function listenOn(server: Server, listen: Listen): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (listen.kind === 'unix') server.listen(listen.path, done);
    else server.listen(listen.port, listen.host, done);
  });
}

/** Removes a socket file left by a previous run; refuses to delete anything that is not a socket. */
async function clearStaleSocket(path: string): Promise<void> {
  try {
    const info = await lstat(path);
    if (!info.isSocket()) {
      throw new Error(`${path} exists and is not a socket: remove it or choose another [Host] HOST unix: path`);
    }
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function rejectUpgrade(socket: Duplex, status: number, text: string): void {
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

export async function startServer(config: Config, logger: Logger): Promise<RegistryServer> {
  const limits = config.limits;
  const startedAt = Date.now();
  const registry = new Registry<Connection>(limits.maxPeers);
  const hub = new EventHub(limits.eventBatchMs);
  const connections = new Set<Connection>();
  const challenges = new ChallengeSource();
  /** Server-wide parsing budget for frames of many arrays and objects, in requestCost tokens. */
  const containerTokensPerSecond = limits.jsonContainersPerSecond / MAX_JSON_CONTAINERS;
  const containerBudget = new TokenBucket(containerTokensPerSecond, containerTokensPerSecond);
  const signatureBudget = new TokenBucket(limits.signatureChecksPerSecond, limits.signatureChecksPerSecond);
  let pendingCount = 0;
  /** TCP connections still in the HTTP handshake: slow-loris sockets count toward the pending cap too. */
  const handshaking = new Set<Duplex>();
  let nextConnId = 1;
  const watcher = new OnionWatcher({ dir: config.hiddenServiceDir, timeoutSeconds: config.hostnameTimeoutSeconds, logger: logger.child({ module: 'onion-watcher' }) });
  const onionUrl = (): string | null =>
    watcher.address === null ? null : `ws://${watcher.address}:${config.hiddenServicePort}/`;
  watcher.on('address', () => logger.info({ url: onionUrl() }, `registry reachable at ${String(onionUrl())}`));

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxMessageBytes,
    // UTF-8 is checked by the parser, which answers BAD_JSON instead of closing with 1007.
    skipUTF8Validation: true,
    perMessageDeflate: false,
    clientTracking: false,
  });

  const http = createServer(
    {
      headersTimeout: limits.handshakeTimeoutSeconds * 1000,
      requestTimeout: limits.handshakeTimeoutSeconds * 1000,
      connectionsCheckingInterval: Math.min(1000, limits.handshakeTimeoutSeconds * 500),
      keepAliveTimeout: 5_000,
    },
    (req, res) => handleHttp(req, res),
  );

  function handleHttp(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      const onion = watcher.address;
      const body = JSON.stringify({
        status: onion === null ? 'starting' : 'ok',
        onion,
        peers: registry.size,
        uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000),
      });
      res.writeHead(onion === null ? 503 : 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found: the registry speaks WebSocket on / (see PROTOCOL.md); health is at /healthz\n');
  }

  http.on('connection', (socket: Socket) => {
    if (handshaking.size >= limits.maxPendingConnections) {
      logger.warn({ code: 'MAX_PENDING', limit: limits.maxPendingConnections }, 'connection dropped: too many unfinished handshakes');
      socket.destroy();
      return;
    }
    handshaking.add(socket);
    socket.once('close', () => handshaking.delete(socket));
  });

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    handshaking.delete(socket);
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/') return rejectUpgrade(socket, 404, 'Not Found');
    if (connections.size >= limits.maxConnections) {
      logger.warn({ code: 'MAX_CONNECTIONS', limit: limits.maxConnections }, 'connection refused: too many connections');
      return rejectUpgrade(socket, 503, 'Service Unavailable');
    }
    if (pendingCount + handshaking.size >= limits.maxPendingConnections) {
      logger.warn({ code: 'MAX_PENDING', limit: limits.maxPendingConnections }, 'connection refused: too many idle new connections');
      return rejectUpgrade(socket, 503, 'Service Unavailable');
    }
    // The 101 response and the hello leave in one write (one syscall, one wake-up of the peer).
    socket.cork();
    try {
      wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, socket));
    } finally {
      socket.uncork();
    }
  });
  http.on('clientError', (_err, socket: Duplex) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  function onConnection(ws: WebSocket, socket: Duplex): void {
    const id = nextConnId++;
    const challenge = challenges.next();
    const conn = new Connection(
      id,
      ws,
      socket,
      challenge,
      new TokenBucket(limits.rateLimitPerSecond, limits.rateLimitBurst),
      new ConnectionLog(logger, id),
      limits.maxBufferedBytes,
    );
    connections.add(conn);
    pendingCount += 1;
    conn.idleTimer = setTimeout(() => conn.close(CloseCode.POLICY_VIOLATION, 'no valid request in time'), limits.idleTimeoutSeconds * 1000);
    conn.log.info({ connections: connections.size }, 'connection opened');

    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the socket itself with the matching close code (1009 too big, 1002 protocol).
      conn.log.info({ code: err.code }, 'connection error');
    });
    ws.on('pong', () => {
      conn.missedPongs = 0;
    });
    ws.on('message', (data, isBinary) => {
      if (conn.busy || conn.backlog.length > 0 || conn.turnMs >= TURN_BUDGET_MS) {
        if (conn.backlog.length >= MAX_BACKLOG) conn.close(CloseCode.POLICY_VIOLATION, 'too many requests in flight');
        else hold(conn, data, isBinary);
        return;
      }
      handleFrame(conn, data, isBinary);
    });
    ws.on('close', (code) => onClose(conn, code));
    conn.send({ type: 'hello', protocol: PROTOCOL_VERSION, challenge, onion: watcher.address, limits: { maxMessageBytes: limits.maxMessageBytes } });
  }

  function markActive(conn: Connection): void {
    if (!conn.pending) return;
    conn.pending = false;
    pendingCount -= 1;
    clearTimeout(conn.idleTimer);
    conn.idleTimer = undefined;
  }

  function onClose(conn: Connection, code: number): void {
    if (!connections.delete(conn)) return;
    if (conn.pending) pendingCount -= 1;
    clearTimeout(conn.idleTimer);
    hub.unsubscribe(conn);
    const reg = registry.removeOwner(conn);
    if (reg !== undefined) hub.publish(conn, { type: 'peer_left', nickname: reg.peer.nickname });
    conn.log.info({ closeCode: code, connections: connections.size, refused: conn.refused }, 'connection closed');
  }

  function onFrame(conn: Connection, data: RawData, isBinary: boolean): void {
    if (conn.closing) return;
    if (isBinary) {
      conn.reply(null, new RegistryError(ErrorCode.BINARY_NOT_SUPPORTED, 'send text frames holding JSON'));
      conn.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not supported');
      return;
    }
    const bytes = frameBytes(data);
    // A plain request is parsed first, so that even its RATE_LIMITED reply carries its id. A frame
    // of many arrays and objects is paid for first (the connection's budget, then the server's);
    // one that either cannot cover is not read at all.
    const cost = requestCost(bytes);
    let parsed: ParseResult;
    if (cost === 1) {
      parsed = parseRequest(bytes);
      if (!conn.bucket.take()) {
        refuseOverBudget(conn, parsed.ok ? parsed.request.id : parsed.id, `too many requests: at most ${limits.rateLimitPerSecond} per second`);
        return;
      }
    } else {
      if (!conn.bucket.take(Math.min(cost, limits.rateLimitBurst))) {
        refuseOverBudget(conn, null, `too many requests: at most ${limits.rateLimitPerSecond} per second (this frame holds so many JSON arrays and objects that it counts as ${cost}; it was not read)`);
        return;
      }
      // Like the signature budget: shared by everyone, so refusing here adds no strike.
      if (!containerBudget.take(Math.min(cost, containerTokensPerSecond))) {
        conn.reply(null, new RegistryError(ErrorCode.RATE_LIMITED, 'the server is busy with frames of many JSON arrays and objects: send fewer, or retry in a second (this one was not read)'));
        return;
      }
      parsed = parseRequest(bytes);
    }
    const id = parsed.ok ? parsed.request.id : parsed.id;
    // One request that finds a token takes back one strike, not all: a steady flood above the rate
    // gets a token now and then and would otherwise never be closed.
    if (conn.strikes > 0) conn.strikes -= 1;
    if (!parsed.ok) {
      conn.reply(parsed.id, parsed.error);
      return;
    }
    markActive(conn);
    try {
      dispatch(conn, parsed.request);
    } catch (err) {
      if (err instanceof RegistryError) conn.reply(id, err);
      else {
        conn.log.error({ err }, 'request failed');
        conn.reply(id, new RegistryError(ErrorCode.INTERNAL, 'internal error'));
      }
    }
  }

  function refuseOverBudget(conn: Connection, id: RequestId, message: string): void {
    conn.strikes += 1;
    if (conn.strikes >= limits.rateLimitStrikes) {
      conn.reply(id, new RegistryError(ErrorCode.RATE_LIMITED, 'too many requests: closing'));
      conn.close(CloseCode.POLICY_VIOLATION, 'request budget exceeded repeatedly');
      return;
    }
    conn.reply(id, new RegistryError(ErrorCode.RATE_LIMITED, message));
  }

  function dispatch(conn: Connection, request: Request): void {
    switch (request.type) {
      case 'ping':
        conn.send({ type: 'pong', id: request.id });
        return;
      case 'lookup': {
        const found = NICKNAME_PATTERN.test(request.nickname) ? registry.lookup(request.nickname) : undefined;
        if (found === undefined) throw new RegistryError(ErrorCode.NOT_FOUND, 'no peer with that nickname is online');
        conn.sendText(`{"type":"peer","id":${JSON.stringify(request.id)},"peer":${found.json}}`);
        return;
      }
      case 'list': {
        const page = registry.list(request.after, request.limit);
        const peers = page.entries.map((entry) => entry.json).join(',');
        conn.sendText(`{"type":"peers","id":${JSON.stringify(request.id)},"peers":[${peers}],"next":${JSON.stringify(page.next)}}`);
        return;
      }
      case 'subscribe':
        if (!hub.has(conn) && hub.subscriberCount >= limits.maxSubscribers) {
          throw new RegistryError(ErrorCode.RATE_LIMITED, 'too many subscribers: try again later');
        }
        hub.subscribe(conn);
        conn.send({ type: 'subscribed', id: request.id });
        return;
      case 'unregister': {
        const reg = registry.removeOwner(conn);
        if (reg === undefined) throw new RegistryError(ErrorCode.NOT_REGISTERED, 'this connection has not registered');
        hub.publish(conn, { type: 'peer_left', nickname: reg.peer.nickname });
        conn.send({ type: 'unregistered', id: request.id });
        return;
      }
      case 'register':
        register(conn, request);
        return;
    }
  }

  /** Checks cheap things first, the signature last (on the thread pool), then admits the peer. */
  function register(conn: Connection, request: RegisterRequest): void {
    if (registry.registrationOf(conn) !== undefined) {
      throw new RegistryError(ErrorCode.ALREADY_REGISTERED, 'this connection has registered already: one registration per connection');
    }
    if (!NICKNAME_PATTERN.test(request.nickname)) {
      throw new RegistryError(ErrorCode.INVALID_NICKNAME, 'nickname must be 1-32 of A-Z a-z 0-9 _ . - and start with a letter or digit');
    }
    const address = parseOnionAddress(request.address);
    if (!address.ok) throw new RegistryError(ErrorCode.INVALID_ADDRESS, `address is not a v3 onion address: ${address.reason}`);
    if (!Number.isInteger(request.port) || request.port < 1 || request.port > 65_535) {
      throw new RegistryError(ErrorCode.INVALID_PORT, 'port must be an integer from 1 to 65535');
    }
    // Reading the key is most of the main thread's cost of a registration: the budget covers it.
    if (!signatureBudget.take()) {
      throw new RegistryError(ErrorCode.RATE_LIMITED, 'the server is busy checking signatures: retry in a second');
    }
    const key = parsePeerKey(request.publicKey);
    const signature = decodeSignature(request.signature, key);
    const peer: PeerRecord = {
      nickname: request.nickname,
      address: address.address,
      port: request.port,
      publicKey: key.pem,
      keyType: key.type,
      registeredAt: new Date().toISOString(),
    };
    const candidate: Registration<Connection> = { owner: conn, peer, keyDer: key.der, json: JSON.stringify(peer) };
    registry.admit(candidate);
    const payload = Buffer.from(registrationPayload(conn.challenge, request.nickname, request.address, request.port), 'utf8');
    conn.busy = true;
    void verifySignature(key, payload, signature).then((valid) => {
      conn.busy = false;
      if (connections.has(conn) && !conn.closing) completeRegistration(conn, request.id, candidate, valid);
      drainBacklog(conn);
    });
  }

  function completeRegistration(conn: Connection, id: RequestId, candidate: Registration<Connection>, valid: boolean): void {
    if (!valid) {
      conn.reply(id, new RegistryError(ErrorCode.BAD_SIGNATURE, 'signature does not verify for this connection\'s challenge'));
      return;
    }
    let replaced: Registration<Connection>[];
    try {
      replaced = registry.add(candidate);
    } catch (err) {
      if (err instanceof RegistryError) return conn.reply(id, err);
      throw err;
    }
    conn.send({ type: 'registered', id, peer: candidate.peer });
    for (const old of replaced) {
      old.owner.send({ type: 'replaced' });
      old.owner.close(CloseCode.REPLACED, 'replaced by a new connection with the same key');
      if (nicknameKey(old.peer.nickname) !== nicknameKey(candidate.peer.nickname)) {
        hub.publish(old.owner, { type: 'peer_left', nickname: old.peer.nickname });
      }
    }
    hub.publish(conn, { type: 'peer_joined', peer: candidate.peer });
    conn.log.info({ replaced: replaced.length }, 'peer registered');
    conn.log.debug({ nickname: candidate.peer.nickname, address: candidate.peer.address }, 'peer registered (details)');
  }

  /** Connections with frames held for a later turn, and those that used some of this turn. */
  const waiting = new Set<Connection>();
  const spent = new Set<Connection>();
  let turnScheduled = false;

  function scheduleTurn(): void {
    if (turnScheduled) return;
    turnScheduled = true;
    setImmediate(nextTurn);
  }

  /** A new turn: every connection gets its share again, held frames first. */
  function nextTurn(): void {
    turnScheduled = false;
    for (const conn of spent) conn.turnMs = 0;
    spent.clear();
    const held = [...waiting];
    waiting.clear();
    for (const conn of held) drainBacklog(conn);
  }

  /** Keeps a frame, in order, for later; the socket is not read meanwhile (TCP pushes back). */
  function hold(conn: Connection, data: RawData, isBinary: boolean): void {
    conn.backlog.push([data, isBinary]);
    if (conn.busy) return; // the signature check's completion drains the backlog
    conn.ws.pause();
    waiting.add(conn);
    scheduleTurn();
  }

  function handleFrame(conn: Connection, data: RawData, isBinary: boolean): void {
    spent.add(conn);
    scheduleTurn();
    const started = performance.now();
    onFrame(conn, data, isBinary);
    conn.turnMs += performance.now() - started;
  }

  function drainBacklog(conn: Connection): void {
    if (!connections.has(conn)) {
      conn.backlog.length = 0;
      return;
    }
    while (!conn.busy && conn.backlog.length > 0 && conn.turnMs < TURN_BUDGET_MS) {
      const [data, isBinary] = conn.backlog.shift() as [RawData, boolean];
      handleFrame(conn, data, isBinary);
    }
    if (conn.busy) return;
    if (conn.backlog.length > 0) {
      conn.ws.pause();
      waiting.add(conn);
      scheduleTurn();
    } else if (conn.ws.isPaused) conn.ws.resume();
  }

  const heartbeat = setInterval(() => {
    for (const conn of connections) {
      if (conn.missedPongs >= 2) {
        conn.log.info({ missedPongs: conn.missedPongs }, 'heartbeat missed twice: dropping connection');
        conn.ws.terminate();
        continue;
      }
      conn.missedPongs += 1;
      conn.ws.ping();
    }
  }, limits.heartbeatSeconds * 1000);

  if (config.listen.kind === 'unix') await clearStaleSocket(config.listen.path);
  await listenOn(http, config.listen);
  if (config.listen.kind === 'unix') await chmod(config.listen.path, SOCKET_MODE);
  const address = http.address() as AddressInfo | string;
  logger.info({ listen: typeof address === 'string' ? `unix:${address}` : `${address.address}:${address.port}` }, 'listening');
  await watcher.start();

  let closing: Promise<void> | undefined;
  return {
    address,
    get onion() {
      return watcher.address;
    },
    get url() {
      return onionUrl();
    },
    stats: () => ({ connections: connections.size, pending: pendingCount, peers: registry.size, subscribers: hub.subscriberCount }),
    close() {
      closing ??= (async () => {
        clearInterval(heartbeat);
        hub.close();
        await watcher.close();
        const closed = new Promise<void>((resolve) => http.close(() => resolve()));
        for (const conn of connections) conn.close(CloseCode.GOING_AWAY, 'server shutting down');
        const grace = setTimeout(() => {
          for (const conn of connections) conn.ws.terminate();
          http.closeAllConnections();
        }, SHUTDOWN_GRACE_MS);
        await closed;
        clearTimeout(grace);
      })();
      return closing;
    },
  };
}
