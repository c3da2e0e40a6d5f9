/**
 * The built server (`node server/dist/cli.js serve`, dist from the global setup) as a child process:
 *  - under a bounded abuse load (100 abusive connections from another process, each replaced as
 *    soon as the server drops it) every honest lookup is answered, none starves (p99 under 250 ms)
 *    and the server's memory stays flat. The numbers assume the server gets a core: on a machine busy with other work
 * the
 *    test says how much CPU the server got, so a failure can be told from contention;
 *  - killed with SIGKILL under load and restarted on the same port or unix socket, it comes back
 *    clean and clients reconnect and re-register.
 */
import { spawn } from 'node:child_process';
import { existsSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { loadavg, setPriority } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createIdentity } from '../../server/src/client/identity.js';
import type { PeerRecord } from '../../server/src/protocol/messages.js';
import { RegistryClient } from '../../server/src/client/registry-client.js';
import { RawClient, ed25519Identity, randomOnion, tempDir, type Identity } from '../support/registry-harness.js';
import {
  freePort,
  processCpuSeconds,
  requireBuiltServer,
  startBuiltServer,
  stopBuiltServer,
  type BuiltServer,
} from './built-server.js';
import { delay, waitUntil } from '../support/wait.js';
import { guardProcessErrors, percentile, type ProcessErrorGuard } from './hardening-support.js';

const ABUSERS = 100;
/** Frames per second per abusive connection: ten times the default request budget. */
const ABUSE_RATE = 200;
const HONEST = 100;
const FLOOD_SECONDS = 14;
const MEASURE_FROM_MS = 2_000;
const LOOKUP_EVERY_MS = 100;
/**
 * A starvation guard, not a speed target (speed is `make bench`'s job). The flood keeps the server's
 * core saturated, so honest latency follows the machine: 15-40 ms at p99 on the project's noisy
 * 2-core VM, where a 50 ms bound failed now and then. A server that let a flood's queued work go
 * ahead of honest requests, or blocked its event loop, would be far past 250 ms.
 */
const P99_LIMIT_MS = 250;
/** Growth allowed between the first and the last third of the flood (a leak grows steadily). */
const RSS_DRIFT_LIMIT = 32 * 1024 * 1024;
/** Peak above the idle server with its 100 honest peers. */
const RSS_PEAK_LIMIT = 160 * 1024 * 1024;

let guard: ProcessErrorGuard;
let dir: string;
const running: BuiltServer[] = [];
let cleanups: Array<() => void | Promise<void>> = [];

beforeAll(() => {
  guard = guardProcessErrors();
  requireBuiltServer();
});

afterEach(async () => {
  for (const cleanup of cleanups) await cleanup();
  cleanups = [];
  for (const s of running.splice(0)) await stopBuiltServer(s, 'SIGKILL');
  expect(guard.errors).toEqual([]);
});

afterAll(() => guard.dispose());

async function start(options: Parameters<typeof startBuiltServer>[0]): Promise<BuiltServer> {
  const s = await startBuiltServer(options);
  running.push(s);
  return s;
}

describe('abuse load on the built server', () => {
  it(`keeps honest lookups under ${P99_LIMIT_MS} ms at p99 and memory flat while ${ABUSERS} ` +
    `connections attack`, async () => {
    dir = tempDir('abuse-load-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const server = await start({ dir, listen: { port }, onion: randomOnion() });
    const url = `ws://127.0.0.1:${port}/`;

    const honest: Array<{ client: RawClient; peer: PeerRecord }> = [];
    for (let i = 0; i < HONEST; i += 1) {
      const client = await RawClient.connect(url);
      cleanups.push(() => client.ws.terminate());
      const reply = await client.register(ed25519Identity(), `honest${i}`, 5000 + i);
      expect(reply.type).toBe('registered');
      if (i % 10 === 0) await client.request({ type: 'subscribe' });
      honest.push({ client, peer: reply.peer as PeerRecord });
    }
    await delay(500);
    const idleRss = server.rssBytes();

    const attacker = spawn(
      process.execPath,
      [
        new URL('./abuse-flood.mjs', import.meta.url).pathname,
        url,
        String(FLOOD_SECONDS),
        String(ABUSERS),
        String(ABUSE_RATE),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    cleanups.push(() => {
      attacker.kill('SIGKILL');
    });
    // The attackers stand in for remote machines: on this box they must not take the server's CPU.
    setPriority(attacker.pid as number, 19);
    let attackerOutput = '';
    attacker.stdout.on('data', (chunk: Buffer) => {
      attackerOutput += chunk.toString();
    });
    const attackerDone = new Promise<void>((resolve) => attacker.once('exit', () => resolve()));

    const started = performance.now();
    const serverCpuBefore = server.cpuSeconds();
    let attackerCpu = 0;
    const attackerCpuSampler = setInterval(() => {
      try {
        attackerCpu = processCpuSeconds(attacker.pid as number);
      } catch {
        // it has exited
      }
    }, 500);
    cleanups.push(() => clearInterval(attackerCpuSampler));
    const latencies: number[] = [];
    const wrong: string[] = [];
    const rss: Array<[number, number]> = [];
    const sampler = setInterval(() => rss.push([performance.now() - started, server.rssBytes()]), 250);
    cleanups.push(() => clearInterval(sampler));
    const until = started + FLOOD_SECONDS * 1000 - 500;
    await Promise.all(
      honest.map(async ({ client }, index) => {
        await delay((index * LOOKUP_EVERY_MS) / HONEST);
        while (performance.now() < until) {
          const target = honest[Math.floor(Math.random() * HONEST)] as (typeof honest)[number];
          const sent = performance.now();
          const reply = await client.request({ type: 'lookup', nickname: target.peer.nickname }, 10_000);
          const ms = performance.now() - sent;
          if (sent - started >= MEASURE_FROM_MS) latencies.push(ms);
          if (reply.type !== 'peer' || JSON.stringify(reply.peer) !== JSON.stringify(target.peer))
            wrong.push(JSON.stringify(reply));
          await delay(Math.max(0, LOOKUP_EVERY_MS - ms));
        }
      }),
    );
    clearInterval(sampler);
    const serverCpu = server.cpuSeconds() - serverCpuBefore;
    const wall = (performance.now() - started) / 1000;
    await attackerDone;
    clearInterval(attackerCpuSampler);
    const attack = JSON.parse(attackerOutput.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;

    const during = rss.filter(([t]) => t >= MEASURE_FROM_MS).map(([, bytes]) => bytes);
    const third = Math.max(1, Math.floor(during.length / 3));
    const firstThirdMax = Math.max(...during.slice(0, third));
    const lastThirdMax = Math.max(...during.slice(-third));
    const peak = Math.max(...during);
    const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    console.log(
      `abuse load: ${latencies.length} honest lookups, p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ` +
        `${Math.max(...latencies).toFixed(1)} ms; ` +
        `server RSS idle ${mb(idleRss)}, peak ${mb(peak)}, first third max ${mb(firstThirdMax)}, last third max ` +
        `${mb(lastThirdMax)}; ` +
        `CPU over ${wall.toFixed(1)} s: server ${serverCpu.toFixed(1)} s, attacker ${attackerCpu.toFixed(1)} s, ` +
        `load average ${loadavg()
          .map((l) => l.toFixed(1))
          .join(' ')}; ` +
        `attack: ${JSON.stringify(attack)}`,
    );

    expect(wrong).toEqual([]);
    expect(latencies.length).toBeGreaterThan(HONEST * 50);
    expect(
      p99,
      `server CPU ${serverCpu.toFixed(1)} s in ${wall.toFixed(1)} s, load average ${loadavg()[0]?.toFixed(1)}`,
    ).toBeLessThan(P99_LIMIT_MS);
    expect(lastThirdMax - firstThirdMax, 'RSS growth from the first to the last third of the flood').toBeLessThan(
      RSS_DRIFT_LIMIT,
    );
    expect(peak - idleRss).toBeLessThan(RSS_PEAK_LIMIT);
    expect(attack.connections as number).toBeGreaterThan(ABUSERS);

    // Afterwards: exactly the honest peers, unchanged, and the server still healthy.
    const check = await RawClient.connect(url);
    cleanups.push(() => check.ws.terminate());
    // The attackers' registrations go with their connections.
    let list = await check.request({ type: 'list' });
    for (let i = 0; i < 30 && (list.peers as PeerRecord[]).length !== HONEST; i += 1) {
      await delay(100);
      list = await check.request({ type: 'list' });
    }
    expect((list.peers as PeerRecord[]).filter((p) => !p.nickname.startsWith('honest'))).toEqual([]);
    expect(list.peers).toEqual(
      honest.map((h) => h.peer).sort((a, b) => (a.nickname.toLowerCase() < b.nickname.toLowerCase() ? -1 : 1)),
    );
    expect(server.logs().filter((l) => (l.level as number) >= 50)).toEqual([]);
  }, 60_000);
});

describe('kill -9 under load, then restart', () => {
  it('comes back on the same TCP port and RegistryClients reconnect and re-register by themselves', async () => {
    dir = tempDir('kill9-tcp-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const onion = randomOnion();
    const first = await start({ dir, listen: { port }, onion });
    const url = `ws://127.0.0.1:${port}/`;
    const reconnect = { initialDelayMs: 50, maxDelayMs: 500, factor: 2, jitter: 0.5 };

    const peers: Array<{ client: RegistryClient; record: PeerRecord }> = [];
    for (let i = 0; i < 20; i += 1) {
      const client = await RegistryClient.connect({ url, identity: createIdentity(), reconnect, livenessTimeoutMs: 0 });
      cleanups.push(() => client.close());
      const record = await client.register({ nickname: `survivor${i}`, address: randomOnion(), port: 7000 + i });
      peers.push({ client, record });
    }
    const watcher = await RegistryClient.connect({ url, reconnect, livenessTimeoutMs: 0 });
    cleanups.push(() => watcher.close());
    await watcher.subscribe();
    const disconnects: number[] = [];
    for (const { client } of peers) client.on('disconnected', (info) => disconnects.push(info.code));

    // Load while it dies: lookups and register/unregister churn on raw connections.
    const churn = await loadWhile(url, () => first.child.exitCode === null && first.child.signalCode === null);
    await delay(300);
    const killedAt = Date.now();
    expect(await stopBuiltServer(first, 'SIGKILL')).toBe('SIGKILL');
    await churn.done;
    await waitUntil('every RegistryClient to see the disconnect', () => disconnects.length === peers.length, {
      timeoutMs: 5_000,
      describe: () => `${disconnects.length} of ${peers.length} disconnected`,
    });
    expect(new Set(disconnects)).toEqual(new Set([1006]));

    const reconnected = peers.map(
      ({ client }) =>
        new Promise<PeerRecord | null>((resolve) => client.once('reconnected', (info) => resolve(info.registered))),
    );
    const watcherBack = new Promise<boolean>((resolve) =>
      watcher.once('reconnected', (info) => resolve(info.subscribed)),
    );
    await delay(200);
    const second = await start({ dir, listen: { port }, onion });

    const restored = await Promise.all(reconnected);
    expect(await watcherBack).toBe(true);
    for (const [i, record] of restored.entries()) {
      const before = (peers[i] as (typeof peers)[number]).record;
      expect(record).toEqual({ ...before, registeredAt: expect.any(String) });
      expect(Date.parse((record as PeerRecord).registeredAt)).toBeGreaterThanOrEqual(killedAt - 1_000);
    }
    await expectCleanRegistry(url, restored as PeerRecord[]);
    expect(second.logs().filter((l) => (l.level as number) >= 50)).toEqual([]);
    expect(await second.health()).toMatchObject({ status: 200, body: { status: 'ok', onion, peers: 20 } });
  }, 60_000);

  it('comes back on the same unix socket (the stale socket file does not block it) and peers ' +
    're-register by hand', async () => {
    dir = tempDir('kill9-unix-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const socket = join(dir, 'registry.sock');
    const onion = randomOnion();
    const first = await start({ dir, listen: { socket }, onion });
    const url = `ws+unix://${socket}:/`;

    const peers: Array<{ identity: Identity; nickname: string; record: PeerRecord; client: RawClient }> = [];
    for (let i = 0; i < 20; i += 1) {
      const client = await RawClient.connect(url);
      cleanups.push(() => client.ws.terminate());
      const identity = ed25519Identity();
      const reply = await client.register(identity, `unixpeer${i}`, 8000 + i);
      expect(reply.type).toBe('registered');
      peers.push({ identity, nickname: `unixpeer${i}`, record: reply.peer as PeerRecord, client });
    }
    const churn = await loadWhile(url, () => first.child.exitCode === null && first.child.signalCode === null);
    await delay(300);
    expect(await stopBuiltServer(first, 'SIGKILL')).toBe('SIGKILL');
    await churn.done;
    for (const p of peers) expect((await p.client.closed).code).toBe(1006);

    // SIGKILL leaves the socket file behind, and nothing answers on it.
    expect(statSync(socket).isSocket()).toBe(true);
    expect(await refused(socket)).toBe(true);

    const second = await start({ dir, listen: { socket }, onion });
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    const records: PeerRecord[] = [];
    for (const p of peers) {
      const client = await RawClient.connect(url);
      cleanups.push(() => client.ws.terminate());
      const reply = await client.register(p.identity, p.nickname, p.record.port);
      expect(reply).toMatchObject({ type: 'registered', peer: { ...p.record, registeredAt: expect.any(String) } });
      records.push(reply.peer as PeerRecord);
    }
    await expectCleanRegistry(url, records);
    expect(second.logs().filter((l) => (l.level as number) >= 50)).toEqual([]);
    expect(existsSync(socket)).toBe(true);
  }, 60_000);
});

/** Lookups and register/unregister churn from 5 connections until `alive()` turns false. */
async function loadWhile(url: string, alive: () => boolean): Promise<{ done: Promise<void> }> {
  const clients = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(url)));
  const workers = clients.map(async (c, w) => {
    cleanups.push(() => c.ws.terminate());
    const identity = ed25519Identity();
    for (let i = 0; alive() && c.ws.readyState === c.ws.OPEN; i += 1) {
      try {
        if (i % 2 === 0) await c.register(identity, `churn${w}`, 9000 + w);
        else await c.request({ type: 'unregister' });
        await c.request({ type: 'lookup', nickname: 'survivor0' });
      } catch {
        return; // the server died mid-request: that is the point
      }
      await delay(20);
    }
  });
  return { done: Promise.all(workers).then(() => undefined) };
}

/** A fresh connection sees exactly `expected` (sorted as list sorts), nothing left from before the kill. */
async function expectCleanRegistry(url: string, expected: PeerRecord[]): Promise<void> {
  const c = await RawClient.connect(url);
  cleanups.push(() => c.ws.terminate());
  const list = await c.request({ type: 'list' });
  // The peer objects as lookup and list carry them: a client's record of its own registration
  // also holds its claim, which is not part of the peer object.
  const peerObjects = expected.map((record) =>
    Object.fromEntries(Object.entries(record).filter(([key]) => key !== 'claim')),
  );
  const sorted = peerObjects.sort((a, b) =>
    String(a.nickname).toLowerCase() < String(b.nickname).toLowerCase() ? -1 : 1,
  );
  expect(list.peers).toEqual(sorted);
}

function refused(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}
