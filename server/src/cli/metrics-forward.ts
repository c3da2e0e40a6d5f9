/**
 * `p2p-registry metrics-forward --socket <operator socket> --listen <address:port>`: the
 * monitoring profile's forwarder. Prometheus scrapes over TCP and cannot read a unix socket; the
 * registry has no network at all. This process shares the operator socket's volume with the
 * registry, sits on the internal `monitoring` network only, and answers GET /metrics there with
 * what the operator socket's /metrics answers: nothing else (not /healthz) is carried.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { usageError } from './args.js';

const UPSTREAM_TIMEOUT_MS = 5_000;

export interface ForwardAddress {
  readonly host: string;
  readonly port: number;
}

/** `host:port` (IPv4 or a name; port 0-65535, 0 any free port). */
export function parseListen(text: string): ForwardAddress {
  const match = /^([^:\s]+):(\d{1,5})$/.exec(text);
  const port = match === null ? Number.NaN : Number(match[2]);
  if (match === null || port > 65_535)
    throw usageError(`--listen ${JSON.stringify(text)} is not <address>:<port> (e.g. 0.0.0.0:9464)`);
  return { host: match[1] as string, port };
}

/** Starts the forwarder; resolves once it listens. */
export function startMetricsForward(socketPath: string, listen: ForwardAddress): Promise<Server> {
  const server = createServer({ requestTimeout: UPSTREAM_TIMEOUT_MS }, (req, res) => forward(socketPath, req, res));
  server.on('clientError', (_err, socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function forward(socketPath: string, req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/metrics' || req.method !== 'GET') {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found: this forwarder serves GET /metrics only\n');
    return;
  }
  const upstream = request({ socketPath, path: '/metrics', method: 'GET', timeout: UPSTREAM_TIMEOUT_MS }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, {
      'Content-Type': answer.headers['content-type'] ?? 'text/plain',
      'Cache-Control': 'no-store',
    });
    answer.pipe(res);
  });
  upstream.on('timeout', () => upstream.destroy(new Error(`no answer within ${UPSTREAM_TIMEOUT_MS} ms`)));
  upstream.on('error', (err) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(502, { 'Content-Type': 'text/plain' });
    res.end(`the registry's operator socket ${socketPath} did not answer: ${err.message}\n`);
  });
  upstream.end();
}

/** Runs until SIGTERM (the container's stop). */
export async function metricsForward(socketPath: string, listenText: string): Promise<number> {
  const server = await startMetricsForward(socketPath, parseListen(listenText));
  process.stdout.write(`metrics-forward: GET http://${listenText}/metrics -> ${socketPath}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      server.close(() => resolve());
      server.closeAllConnections();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}
