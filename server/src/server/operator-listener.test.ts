import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ed25519Identity,
  RawClient,
  startTestServer,
  tempDir,
  type TestServer,
} from '../../../test/support/registry-harness.js';
import { logSink } from '../../../test/support/log-sink.js';
import { buildConfig } from './config/config.js';
import { createLogger } from './logger.js';
import { OperatorListener } from './operator-listener.js';
import { startServer } from './start-server.js';

const servers: TestServer[] = [];
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const close of closers.splice(0)) await close();
});

async function server(options: Parameters<typeof startTestServer>[1] = {}): Promise<TestServer> {
  const s = await startTestServer({}, options);
  servers.push(s);
  return s;
}

/** Any request on a unix socket: its status and body. */
function ask(socketPath: string, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const silent = createLogger('silent');
const noHealth = () => ({ onion: null, peers: 0 });

describe('the operator listener', () => {
  it('serves /healthz 200 with status, onion, peers and uptime once the onion is known', async () => {
    const s = await server();
    const c = await RawClient.connect(s.url);
    await c.register(ed25519Identity(), 'rita');
    expect(await s.health()).toEqual({
      status: 200,
      body: { status: 'ok', onion: s.server.onion, peers: 1, uptimeSeconds: expect.any(Number) },
    });
    c.ws.terminate();
  });

  it('serves /healthz 503 before the onion address is known', async () => {
    const s = await server({ hostname: null });
    expect(await s.health()).toMatchObject({ status: 503, body: { status: 'starting', onion: null } });
  });

  it('answers 404 to any other path or method', async () => {
    const s = await server();
    for (const [path, method] of [
      ['/', 'GET'],
      ['/metrics', 'POST'],
      ['/healthz', 'POST'],
    ] as const) {
      expect(await ask(s.operatorSocket, path, method)).toEqual({
        status: 404,
        body: 'not found: the operator listener serves GET /healthz and GET /metrics\n',
      });
    }
  });

  it("is a socket only the server's own user may use (mode 0600)", async () => {
    const s = await server();
    expect(statSync(s.operatorSocket).mode & 0o777).toBe(0o600);
  });

  it('replaces a stale socket of a previous run', async () => {
    const path = join(tempDir('operator-'), 'operator.sock');
    // A killed server leaves its socket file behind (a clean close would remove it).
    const killed = spawnSync(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(killed.signal).toBe('SIGKILL');
    expect(statSync(path).isSocket()).toBe(true);
    const operator = new OperatorListener({ logger: silent, health: noHealth });
    closers.push(() => operator.close());
    await operator.listen(path);
    expect((await ask(path, '/healthz')).status).toBe(503);
  });

  it('refuses to replace a file that is not a socket, naming the setting', async () => {
    const path = join(tempDir('operator-'), 'operator.sock');
    writeFileSync(path, 'not a socket');
    const operator = new OperatorListener({ logger: silent, health: noHealth });
    await expect(operator.listen(path)).rejects.toThrow(
      `${path} exists and is not a socket: remove it or change [Host] OperatorSocket`,
    );
  });

  it('says what to do when its folder does not exist', async () => {
    const path = join(tempDir('operator-'), 'missing', 'operator.sock');
    const operator = new OperatorListener({ logger: silent, health: noHealth });
    await expect(operator.listen(path)).rejects.toThrow(
      new RegExp(
        `^cannot listen on ${path} \\(\\[Host\\] OperatorSocket\\): listen \\w+: .+: its folder must exist and be ` +
          `writable by the server's user: create it, or change \\[Host\\] OperatorSocket$`,
      ),
    );
  });
});

describe('a server start', () => {
  const config = (operatorSocket: string | null, port = 0) =>
    buildConfig(
      {
        Host: {
          HOST: '127.0.0.1',
          PORT: String(port),
          ...(operatorSocket === null ? {} : { OperatorSocket: operatorSocket }),
        },
        HiddenService: { HiddenServiceDir: tempDir('hs-'), HiddenServicePort: '80' },
        Store: { Database: join(tempDir('claims-'), 'registry.db') },
      },
      {},
    );

  it('says in its log that health is served nowhere when [Host] OperatorSocket is not set', async () => {
    const { sink, lines } = logSink();
    const registry = await startServer(config(null), createLogger('info', sink));
    closers.push(() => registry.close());
    expect(lines.map((l) => l.msg)).toContain(
      'no operator listener ([Host] OperatorSocket is not set): /healthz is served nowhere and `p2p-registry ' +
        'health` fails',
    );
  });

  it("stops with the public listener's failure and leaves no operator listener behind", async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => taken.close(() => resolve())));
    const port = (taken.address() as { port: number }).port;
    const operatorSocket = join(tempDir('operator-'), 'operator.sock');
    await expect(startServer(config(operatorSocket, port), silent)).rejects.toThrow(
      `cannot listen on 127.0.0.1:${port} ([Host] HOST): listen EADDRINUSE: address already in use ` +
        `127.0.0.1:${port}: another process listens there: stop it, or change [Host] HOST`,
    );
    await expect(ask(operatorSocket, '/healthz')).rejects.toThrow(/ENOENT|ECONNREFUSED/);
  });
});
