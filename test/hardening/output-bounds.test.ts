/**
 * Output the server holds for readers (PROTOCOL.md "lookup, list" and "Heartbeats and limits"): a
 * reply the client asked for reaches a reader that reads, whatever its size; a reader that leaves
 * more than MaxBufferedBytes unread beyond it is closed with 1008; and MaxOutputBytes bounds what
 * all connections together may hold, closing the connections with the most unread bytes first.
 */
import { rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildConfig } from '../../server/src/server/config/config.js';
import { createLogger } from '../../server/src/server/logger.js';
import { CLOSINGS } from '../../server/src/server/registry/refusals.js';
import { startServer, type RegistryServer } from '../../server/src/server/start-server.js';
import { ed25519Identity, randomNickname, randomOnion, RawClient, tempDir } from '../support/registry-harness.js';
import { delay, waitUntil } from '../support/wait.js';
import { logSink, RawSocketClient } from './hardening-support.js';

const UNLIMITED_RATES = {
  RateLimitPerSecond: 1_000_000,
  RateLimitBurst: 1_000_000,
  SignatureChecksPerSecond: 1_000_000,
};

interface LoggedServer {
  readonly server: RegistryServer;
  readonly port: number;
  readonly url: string;
  /** Every log line so far, parsed (level debug: per-connection lines may be debug). */
  readonly lines: Array<Record<string, unknown>>;
}

let cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

async function server(registry: Record<string, string | number>): Promise<LoggedServer> {
  const { sink, lines } = logSink();
  const hiddenServiceDir = tempDir('hs-');
  writeFileSync(join(hiddenServiceDir, 'hostname'), `${randomOnion()}\n`);
  const values = Object.fromEntries(Object.entries(registry).map(([k, v]) => [k, String(v)]));
  const config = buildConfig(
    {
      Host: { HOST: '127.0.0.1', PORT: '0' },
      HiddenService: { HiddenServiceDir: hiddenServiceDir, HiddenServicePort: '80' },
      Registry: values,
      Log: { level: 'debug' },
    },
    {},
  );
  const registryServer = await startServer(config, createLogger('debug', sink));
  cleanups.push(async () => {
    await registryServer.close();
    rmSync(hiddenServiceDir, { recursive: true, force: true });
  });
  const port = (registryServer.address as AddressInfo).port;
  return { server: registryServer, port, url: `ws://127.0.0.1:${port}/`, lines };
}

async function client(url: string): Promise<RawClient> {
  const c = await RawClient.connect(url);
  cleanups.push(() => c.ws.terminate());
  return c;
}

async function rawClient(port: number): Promise<RawSocketClient> {
  const c = await RawSocketClient.connect(port);
  cleanups.push(() => c.destroy());
  return c;
}

/** Registers `count` Ed25519 peers, each on its own connection (kept open: a registration lives with it). */
async function registerPeers(url: string, count: number): Promise<void> {
  for (let i = 0; i < count; i += 8) {
    await Promise.all(
      Array.from({ length: Math.min(8, count - i) }, async () => {
        const c = await client(url);
        expect((await c.register(ed25519Identity(), randomNickname())).type).toBe('registered');
      }),
    );
  }
}

/** The connId of the connection opened last (for telling connections apart in the log). */
function lastOpened(s: LoggedServer): number {
  return s.lines.filter((l) => l.msg === 'connection opened').at(-1)?.connId as number;
}

function closings(s: LoggedServer): Array<Record<string, unknown>> {
  return s.lines.filter((l) => l.msg === 'closing connection');
}

describe('a reply the client asked for', () => {
  it('reaches a reader that reads, even when the page is larger than MaxBufferedBytes', async () => {
    const s = await server({ MaxBufferedBytes: 16_384 });
    await registerPeers(s.url, 120);
    const reader = await client(s.url);
    const page = await reader.request({ type: 'list' }, 10_000);
    expect(page.type).toBe('peers');
    expect(page.peers as unknown[]).toHaveLength(120);
    expect(JSON.stringify(page).length).toBeGreaterThan(16_384);
    // Still open and answering.
    expect((await reader.request({ type: 'ping' })).type).toBe('pong');
  });

  it('reaches a reader that reads when a page of 1000 peers is 18 times MaxBufferedBytes, ' +
    'events included', async () => {
    // The rule counts bytes, whatever they hold: a page 18 times the limit here stands for the
    // 1.6 MB page of 1000 RSA-8192 peers against the default 1 MiB (1.6 times). Registering 1000
    // RSA-8192 peers takes ~36 ms of signing each; the unit test of UnreadMeter takes those sizes.
    const s = await server({ MaxBufferedBytes: 16_384, ...UNLIMITED_RATES });
    await registerPeers(s.url, 1000);
    const reader = await client(s.url);
    expect((await reader.request({ type: 'subscribe' })).type).toBe('subscribed');
    const page = await reader.request({ type: 'list', limit: 1000 }, 10_000);
    expect(page.peers as unknown[]).toHaveLength(1000);
    expect(JSON.stringify(page).length).toBeGreaterThan(18 * 16_384);
    await registerPeers(s.url, 8);
    await reader.waitUntil(() => reader.events().length === 8, 5_000);
    expect((await reader.request({ type: 'ping' })).type).toBe('pong');
    expect(closings(s)).toEqual([]);
  }, 60_000);
});

describe('a reader that does not read', () => {
  it('is closed with 1008 once it leaves more than MaxBufferedBytes unread beyond the reply', async () => {
    const s = await server({ MaxBufferedBytes: 16_384, ...UNLIMITED_RATES });
    await registerPeers(s.url, 120);
    const greedy = await rawClient(s.port);
    const id = lastOpened(s);
    greedy.stopReading();
    const started = performance.now();
    let sent = 0;
    // A few requests at a time, so that it is the unread replies that close it, not a request queue.
    while (!closings(s).some((l) => l.connId === id) && performance.now() - started < 15_000 && sent < 4_000) {
      for (let i = 0; i < 4; i += 1) greedy.sendText('{"type":"list"}');
      sent += 4;
      await delay(1);
    }
    expect(closings(s).find((l) => l.connId === id)).toMatchObject({
      closeCode: 1008,
      reason: CLOSINGS.notReading.reason,
    });
    // It reads again: everything queued, then the close frame with 1008.
    greedy.socket.resume();
    await waitUntil('the 1008 close frame behind the unread replies', () => greedy.closeCode !== undefined, {
      timeoutMs: 5_000,
    });
    expect(greedy.closeCode).toBe(1008);
    await waitUntil('its queue to be freed', () => s.server.stats().outputBytes === 0, { timeoutMs: 5_000 });
  }, 30_000);
});

describe('many connections that ask for pages and never read (MaxOutputBytes)', () => {
  it('stay within the bound, the ones with most unread are closed first, and an honest reader is served', async () => {
    const maxOutput = 4 * 1_048_576;
    const s = await server({ MaxOutputBytes: maxOutput, ...UNLIMITED_RATES });
    await registerPeers(s.url, 120);
    const honest = await client(s.url);
    const attackers: Array<{ c: RawSocketClient; id: number; heavy: boolean }> = [];
    for (let i = 0; i < 12; i += 1) {
      const c = await rawClient(s.port);
      c.stopReading();
      attackers.push({ c, id: lastOpened(s), heavy: i % 2 === 0 });
    }
    const outputFull = (): Array<Record<string, unknown>> =>
      closings(s).filter((l) => l.reason === CLOSINGS.outputFull.reason);
    let peak = 0;
    let pages = 0;
    const started = performance.now();
    // Heavy attackers ask for four pages a round, light ones for one; bounded in rounds and time.
    for (let round = 0; round < 2_000 && outputFull().length < 4 && performance.now() - started < 20_000; round += 1) {
      for (const a of attackers) for (let i = 0; i < (a.heavy ? 4 : 1); i += 1) a.c.sendText('{"type":"list"}');
      const page = await honest.request({ type: 'list' }, 5_000);
      expect(page.peers as unknown[]).toHaveLength(120);
      pages += 1;
      peak = Math.max(peak, s.server.stats().outputBytes);
      await delay(2);
    }
    const closed = closings(s).map((l) => attackers.find((a) => a.id === l.connId));
    const closedForBound = outputFull().map((l) => attackers.find((a) => a.id === l.connId));
    const heavyFirst = closed.map((a) => a?.heavy === true);
    console.log(
      `non-readers: ${outputFull().length} closed for the output bound, peak queued ${(peak / 2 ** 20).toFixed(1)} ` +
        `MiB of ${maxOutput / 2 ** 20} MiB, honest pages ${pages}; closed in order (heavy?): ${heavyFirst.join(' ')}`,
    );
    expect(outputFull().length).toBeGreaterThan(0);
    expect(
      closed.every((a) => a !== undefined),
      'only attackers were closed',
    ).toBe(true);
    // The most unread bytes go first: no light attacker is closed while a heavy one is open
    // (heavy ones may also pass their own MaxBufferedBytes first and be closed for that).
    expect(heavyFirst).toEqual([...heavyFirst].sort((a, b) => Number(b) - Number(a)));
    expect(closedForBound[0]?.heavy).toBe(true);
    // Open connections stay under the bound; closing ones may hold as much again for 2 s (+ a turn's pages).
    expect(peak).toBeLessThanOrEqual(2 * maxOutput + 1_048_576);
    expect((await honest.request({ type: 'ping' })).type).toBe('pong');
  }, 40_000);
});
