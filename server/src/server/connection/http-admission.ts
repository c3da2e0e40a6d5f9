/**
 * The HTTP side of the public listener, the one tor forwards the onion to: which sockets may
 * become WebSocket connections (MaxConnections; MaxPendingConnections counts sockets still in the
 * HTTP handshake, and at the cap the oldest pending one makes way: pending-line.ts). Refusals are
 * counted, not logged one by one. Plain HTTP gets one line saying to speak WebSocket and nothing
 * about the server (health is the operator listener's: operator-listener.ts). TCP or unix socket.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Listen, RegistryLimits } from '../config/config.js';
import { describeAddress, listenOn } from './listen.js';
import type { Logger } from '../logger.js';
import type { PendingLine } from './pending-line.js';
import type { SummaryLine } from '../summary-line.js';

/** The limits Admission reads: its slice of the configuration. */
export type AdmissionLimits = Pick<RegistryLimits, 'handshakeTimeoutSeconds' | 'maxConnections' | 'maxMessageBytes'>;

/** tor's group connects to the socket (compose.yaml runs the server with tor's gid). */
const SOCKET_MODE = 0o660;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/**
 * All that plain HTTP learns on the onion: no uptime (restart times help deanonymise an onion
 * service), no counts, no cluster instance (SECURITY.md).
 */
const SPEAK_WEBSOCKET = 'this is a p2p-registry: connect with WebSocket to / (see PROTOCOL.md)\n';

/** What admission needs to know of the open connections, and where admitted ones go. */
export interface ConnectionSink {
  readonly size: number;
  accept(ws: WebSocket, socket: Duplex): void;
}

export interface HttpAdmissionOptions {
  readonly limits: AdmissionLimits;
  readonly logger: Logger;
  readonly connections: ConnectionSink;
  /** Sockets and connections without a valid request yet, shared with the open connections. */
  readonly pendingLine: PendingLine;
  readonly refusals: SummaryLine;
}

export class HttpAdmission {
  private readonly http: Server;
  private readonly wss: WebSocketServer;

  constructor(private readonly options: HttpAdmissionOptions) {
    const { limits } = options;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.maxMessageBytes,
      // UTF-8 is checked by the parser, which answers BAD_JSON instead of closing with 1007.
      skipUTF8Validation: true,
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.http = createServer(
      {
        headersTimeout: limits.handshakeTimeoutSeconds * 1000,
        requestTimeout: limits.handshakeTimeoutSeconds * 1000,
        connectionsCheckingInterval: Math.min(1000, limits.handshakeTimeoutSeconds * 500),
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      },
      (req, res) => this.handleHttp(req, res),
    );
    this.http.on('connection', (socket: Socket) => this.onSocket(socket));
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      const reason = clientErrorReason(err.code);
      if (reason !== undefined) options.refusals.count('connections', reason);
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  /** Listens (a unix socket replaces a stale one and gets mode 660); returns the bound address. */
  async listen(listen: Listen): Promise<AddressInfo | string> {
    const address = await listenOn(this.http, listen, { name: '[Host] HOST', socketMode: SOCKET_MODE });
    this.options.logger.info({ listen: describeAddress(address) }, 'listening');
    return address;
  }

  /** Stops listening; resolves once every connection has closed. */
  close(): Promise<void> {
    return new Promise((resolve) => this.http.close(() => resolve()));
  }

  closeAllConnections(): void {
    this.http.closeAllConnections();
  }

  /** Any request that is not a WebSocket upgrade, whatever its path or method. */
  private handleHttp(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(426, {
      Upgrade: 'websocket',
      Connection: 'close',
      'Content-Type': 'text/plain',
      'Content-Length': Buffer.byteLength(SPEAK_WEBSOCKET),
    });
    res.end(req.method === 'HEAD' ? undefined : SPEAK_WEBSOCKET);
  }

  /** Every TCP socket joins the pending line (slow-loris sockets count toward the cap too). */
  private onSocket(socket: Socket): void {
    const { pendingLine, refusals } = this.options;
    pendingLine.join(socket, () => {
      refusals.count('connections', 'pendingEvictedInHandshake');
      socket.destroy();
    });
    socket.once('close', () => pendingLine.leave(socket));
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // The socket keeps its place in the pending line: accept() hands it to its connection.
    const { limits, connections } = this.options;
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/') return this.refuseUpgrade(socket, 'badPath', 404, 'Not Found');
    if (connections.size >= limits.maxConnections)
      return this.refuseUpgrade(socket, 'maxConnections', 503, 'Service Unavailable');
    // The 101 response and the hello leave in one write (one syscall, one wake-up of the peer).
    socket.cork();
    try {
      this.wss.handleUpgrade(req, socket, head, (ws) => connections.accept(ws, socket));
    } finally {
      socket.uncork();
    }
  }

  private refuseUpgrade(socket: Duplex, reason: string, status: number, text: string): void {
    this.options.pendingLine.leave(socket);
    this.options.refusals.count('connections', reason);
    rejectUpgrade(socket, status, text);
  }
}

/** The summary's reason for an HTTP client error; undefined for a plain reset (not a refusal). */
function clientErrorReason(code: string | undefined): string | undefined {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT') return 'handshakeTimeout';
  if (code?.startsWith('HPE_') === true) return 'badHttp';
  return undefined;
}

function rejectUpgrade(socket: Duplex, status: number, text: string): void {
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ` +
      `${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
