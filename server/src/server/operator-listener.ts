/**
 * The operator listener ([Host] OperatorSocket): a unix socket that tor does not forward, for what
 * only the operator may learn. GET /healthz answers the server's state: status, onion, peers,
 * uptime, and a cluster instance's own (cluster-roster.ts); GET /metrics the Prometheus exposition
 * (metrics/registry-metrics.ts), which the monitoring profile's forwarder carries to Prometheus. On the onion these
 * would tell anyone
 * when the server restarted, which helps deanonymise an onion service, and a cluster's internals
 * (SECURITY.md); the public listener answers plain HTTP with one line (http-admission.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ClusterStatus } from './cluster/cluster-roster.js';
import type { OnionAddress } from '../protocol/onion-address.js';
import { listenOn } from './connection/listen.js';
import type { Logger } from './logger.js';

/** The server's own user only: the container HEALTHCHECK runs as it; widening is the operator's choice. */
const SOCKET_MODE = 0o600;
/** Generous for a local health check, short enough that a stuck client does not hold a socket long. */
const REQUEST_TIMEOUT_MS = 5_000;

export interface HealthState {
  /** The registry's onion address, null while tor has not written it. */
  readonly onion: OnionAddress | null;
  readonly peers: number;
  readonly cluster?: ClusterStatus;
}

export interface OperatorListenerOptions {
  readonly logger: Logger;
  readonly health: () => HealthState;
  /** The Prometheus exposition (GET /metrics). */
  readonly metrics?: { readonly contentType: string; text(): Promise<string> };
}

export class OperatorListener {
  private readonly startedAt = Date.now();
  private readonly http: Server;

  constructor(private readonly options: OperatorListenerOptions) {
    this.http = createServer(
      { headersTimeout: REQUEST_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: REQUEST_TIMEOUT_MS },
      (req, res) => this.handle(req, res),
    );
    this.http.on('clientError', (_err: Error, socket) => socket.destroy());
  }

  /** Listens on `path` (a stale socket of a previous run is replaced; mode 600). */
  async listen(path: string): Promise<void> {
    await listenOn(this.http, { kind: 'unix', path }, { name: '[Host] OperatorSocket', socketMode: SOCKET_MODE });
    this.options.logger.info({ operatorSocket: path }, 'operator listener ready: GET /healthz, GET /metrics');
  }

  /** Stops listening and closes its connections (none outlives a health check). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const read = req.method === 'GET' || req.method === 'HEAD';
    if (read && path === '/metrics' && this.options.metrics !== undefined) {
      this.serveMetrics(req, res, this.options.metrics);
      return;
    }
    if (path !== '/healthz' || !read) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found: the operator listener serves GET /healthz and GET /metrics\n');
      return;
    }
    const { onion, peers, cluster } = this.options.health();
    const body = JSON.stringify({
      status: onion === null ? 'starting' : 'ok',
      onion,
      peers,
      uptimeSeconds: Math.floor((Date.now() - this.startedAt) / 1000),
      ...(cluster === undefined ? {} : { cluster }),
    });
    res.writeHead(onion === null ? 503 : 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private serveMetrics(
    req: IncomingMessage,
    res: ServerResponse,
    metrics: NonNullable<OperatorListenerOptions['metrics']>,
  ): void {
    metrics.text().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        this.options.logger.error({ err }, 'the metrics could not be collected');
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end('the metrics could not be collected: see the server log\n');
      },
    );
  }
}
