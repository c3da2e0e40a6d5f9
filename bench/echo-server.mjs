/**
 * The transport baseline: a bare `ws` server (the same `ws` package the registry loads) that answers
 * every text frame with one fixed text frame, sized like the registry's reply it stands in for. It is
 * wired like the registry (node:http server, upgrade handed to a noServer WebSocketServer with the
 * registry's options), so the only difference from the registry is the registry's own work.
 *   node bench/echo-server.mjs <port>
 * Environment: BENCH_ECHO_REPLY (the reply text), BENCH_ECHO_HELLO (optional: sent first on every
 * connection, like the registry's hello), BENCH_ECHO_CORK=1 (optional: gather the replies of one
 * tick into one write, the way the registry can; reported separately, never as the baseline).
 */
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2]);
const reply = process.env.BENCH_ECHO_REPLY;
const hello = process.env.BENCH_ECHO_HELLO ?? '';
const cork = process.env.BENCH_ECHO_CORK === '1';
if (!Number.isInteger(port) || port <= 0 || reply === undefined || reply === '') {
  process.stderr.write('usage: BENCH_ECHO_REPLY=<text> node bench/echo-server.mjs <port>\n');
  process.exit(2);
}
const MAX_LIFETIME_MS = Number(process.env.BENCH_WORKER_MAX_MS ?? 240_000);
setTimeout(() => process.exit(3), MAX_LIFETIME_MS).unref();

const wss = new WebSocketServer({
  noServer: true,
  maxPayload: 16_384,
  skipUTF8Validation: true,
  perMessageDeflate: false,
  clientTracking: false,
});
const http = createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('echo\n');
});
http.on('upgrade', (req, socket, head) => {
  socket.on('error', () => socket.destroy());
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => {});
    if (cork) {
      let corked = false;
      const uncork = () => {
        corked = false;
        socket.uncork();
      };
      ws.on('message', () => {
        if (!corked) {
          corked = true;
          socket.cork();
          process.nextTick(uncork);
        }
        ws.send(reply);
      });
    } else {
      ws.on('message', () => ws.send(reply));
    }
    if (hello !== '') ws.send(hello);
  });
});
http.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
