/**
 * The built server as a process (`node server/dist/cli.js serve`):
 *  - an unexpected promise rejection (a bug) is logged with its stack, and the server keeps
 *    serving: /healthz answers on the operator listener and a client still gets its pong; an uncaught exception is
 * logged at
 *    fatal with its stack and the process exits with 70, for its supervisor to restart it;
 *  - a flood of 10,000 refused connections writes fewer than 100 log lines at the default level:
 *    refusals are counted and logged as summary lines of counts by reason;
 *  - config.ini is read by one parser with one set of rules: a section or key it does not know stops
 *    the start with one line naming it and the nearest valid name (exit 78), as the tor container's
 *    one-shot (`tor-settings`, the same parser) does.
 */
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { RawClient, randomOnion, tempDir } from '../support/registry-harness.js';
import { waitUntil } from '../support/wait.js';
import { CLI, freePort, startBuiltServer, stopBuiltServer, type BuiltServer } from './built-server.js';

const running: BuiltServer[] = [];
const cleanups: Array<() => void> = [];

afterEach(async () => {
  for (const s of running.splice(0)) await stopBuiltServer(s, 'SIGKILL');
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function start(
  options: { registry?: Record<string, string | number>; nodeArgs?: string[] } = {},
): Promise<{ server: BuiltServer; port: number; dir: string }> {
  const dir = tempDir('built-process-');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const server = await startBuiltServer({ dir, listen: { port }, onion: randomOnion(), ...options });
  running.push(server);
  return { server, port, dir };
}

async function pong(port: number): Promise<string> {
  const c = await RawClient.connect(`ws://127.0.0.1:${port}/`);
  try {
    return (await c.request({ type: 'ping' })).type;
  } finally {
    c.ws.terminate();
  }
}

/** A preload module (node --import) that runs `onSignal` in the server process on each SIGUSR2. */
function signalPreload(onSignal: string): string {
  const preloadDir = tempDir('preload-');
  cleanups.push(() => rmSync(preloadDir, { recursive: true, force: true }));
  const preload = join(preloadDir, 'escape.mjs');
  writeFileSync(preload, `process.on('SIGUSR2', () => {\n  ${onSignal}\n});\n`);
  return pathToFileURL(preload).href;
}

function loggedError(server: BuiltServer, text: string): Record<string, unknown> | undefined {
  return server.logs().find((l) => String((l.err as { message?: string } | undefined)?.message).includes(text));
}

describe('a bug that escapes its handler', () => {
  it('an unhandled rejection is logged with its stack, and the server keeps serving', async () => {
    // Nothing but a test's preload can send it: a signal, not anything from the network.
    const { server, port } = await start({
      nodeArgs: ['--import', signalPreload("Promise.reject(new Error('deliberate rejection from the preload'));")],
    });
    expect(await pong(port)).toBe('pong');
    server.child.kill('SIGUSR2');
    await waitUntil('the rejection to be logged', () => loggedError(server, 'deliberate rejection') !== undefined, {
      timeoutMs: 5_000,
    });
    const rejection = loggedError(server, 'deliberate rejection') as Record<string, unknown>;
    expect(rejection.level).toBe(50);
    expect(rejection.msg).toMatch(/unhandled promise rejection/);
    expect((rejection.err as { stack: string }).stack).toMatch(/escape\.mjs/);
    expect((await server.health()).status).toBe(200);
    expect(await pong(port)).toBe('pong');
    expect(server.child.exitCode).toBeNull();
  });

  it(
    'an uncaught exception is logged at fatal with its stack, and the process exits with 70: its state ' + 'is unknown',
    async () => {
      const { server, port } = await start({
        nodeArgs: ['--import', signalPreload("throw new Error('deliberate exception from the preload');")],
      });
      expect(await pong(port)).toBe('pong');
      server.child.kill('SIGUSR2');
      const exit = await Promise.race([
        server.exited,
        new Promise((resolve) => setTimeout(() => resolve('still running after 5 s'), 5_000)),
      ]);
      expect(exit).toBe(70);
      const exception = loggedError(server, 'deliberate exception') as Record<string, unknown>;
      expect(exception.level).toBe(60);
      expect(exception.msg).toMatch(/uncaught exception/);
      expect(exception.origin).toBe('uncaughtException');
      expect((exception.err as { stack: string }).stack).toMatch(/escape\.mjs/);
    },
  );
});

/** One refused attempt: a WebSocket upgrade on a raw socket; resolves with the status line's code. */
function refusedUpgrade(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let head = '';
    const done = (outcome: string): void => {
      socket.destroy();
      resolve(outcome);
    };
    socket.setTimeout(5_000, () => done('timeout'));
    socket.on('error', () => done('error'));
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (status !== null) done(status[1] as string);
    });
    socket.on('close', () => done('closed'));
    socket.write(
      'GET / HTTP/1.1\r\nHost: registry\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: ' +
        '13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
  });
}

describe('logs under a flood of refused connections', () => {
  const ATTEMPTS = 10_000;
  const CONCURRENCY = 32;
  const TIME_LIMIT_MS = 40_000;

  it(`writes fewer than 100 lines for ${ATTEMPTS} refused connections, and its summary lines count every one ` +
    `by reason`, async () => {
    const { server, port } = await start({ registry: { MaxConnections: 4 } });
    const held = await Promise.all(Array.from({ length: 4 }, () => RawClient.connect(`ws://127.0.0.1:${port}/`)));
    cleanups.push(() => {
      for (const c of held) c.ws.terminate();
    });
    const outcomes = new Map<string, number>();
    let started = 0;
    const deadline = performance.now() + TIME_LIMIT_MS;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (started < ATTEMPTS && performance.now() < deadline) {
          started += 1;
          const outcome = await refusedUpgrade(port);
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        }
      }),
    );
    expect(started, 'attempts made within the time limit').toBe(ATTEMPTS);
    const refused = outcomes.get('503') ?? 0;
    expect(refused, JSON.stringify(Object.fromEntries(outcomes))).toBe(ATTEMPTS);
    expect(await pong(port).catch(() => 'refused: the 4 held connections fill MaxConnections')).not.toBe('pong');
    // The default interval is 60 s: a clean stop logs the counts not yet written.
    await stopBuiltServer(server, 'SIGTERM');
    const lines = server.logs();
    expect(
      lines.length,
      lines
        .slice(0, 5)
        .map((l) => JSON.stringify(l))
        .join('\n'),
    ).toBeLessThan(100);
    const counted = lines
      .filter((l) => typeof l.connections === 'object' && l.connections !== null)
      .reduce((sum, l) => sum + ((l.connections as Record<string, number>).maxConnections ?? 0), 0);
    // Every 503 is counted: the flood's, and the one of the pong attempt above.
    expect(counted).toBe(refused + 1);
  }, 90_000);
});

describe('config.ini, one parser', () => {
  /** Runs the built command and resolves with its exit code and stderr. */
  function run(args: string[]): Promise<{ code: number; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args], (err, _stdout, stderr) =>
        resolve({ code: err === null ? 0 : Number(err.code), stderr }),
      );
    });
  }

  const cases: Array<[string, string, string]> = [
    [
      'a section spelt in another case',
      '[hiddenservice]\nHiddenServiceDir = /hs\nHiddenServicePort = 80\n',
      'unknown section [hiddenservice]: did you mean [HiddenService]?',
    ],
    [
      'a misspelt key',
      '[HiddenService]\nHiddenServiceDir = /hs\nHiddenServicePrt = 80\n',
      'unknown key [HiddenService] HiddenServicePrt: did you mean HiddenServicePort?',
    ],
  ];
  it.each(cases)('stops serve and tor-settings alike on %s, with one line naming it', async (_what, body, message) => {
    const dir = tempDir('one-parser-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, 'config.ini');
    writeFileSync(config, `[Host]\nHOST = 127.0.0.1\nPORT = 5000\n${body}`);
    for (const args of [
      ['serve', '--config', config],
      ['tor-settings', '--config', config, '--out', join(dir, 'tor.env')],
    ]) {
      const out = await run(args);
      expect(out.code, args[0]).toBe(78);
      expect(out.stderr.trim().split('\n'), args[0]).toHaveLength(1);
      expect(out.stderr, args[0]).toContain(message);
    }
  });
});
