/**
 * Event fan-out on the built server does not starve requests: while many subscribers that read get
 * every event of peers churning inside their own request budgets, an unrelated pinger is answered
 * promptly, and every subscriber ends with the same set as a fresh `list`, none cut off. The load
 * runs in child processes (bench/phases/fan-out-worker.mjs, the same load as `make bench`'s fan-out
 * phase), one per role, so that neither this process nor the subscribers' reading is what is measured.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { loadavg, setPriority } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { randomOnion, tempDir } from '../support/registry-harness.js';
import {
  ROOT,
  freePort,
  requireBuiltServer,
  startBuiltServer,
  stopBuiltServer,
  type BuiltServer,
} from './built-server.js';

const SUBSCRIBERS = 2_000;
/** 20 peers x 19 requests/s (inside the default 20/s budget), a join or a leave each: ~380 events/s. */
const CHURNERS = 20;
const CHURN_RPS = 19;
const CHURN_MS = 12_000;
/** 5 connections x 10 pings/s, measured after the fan-out is under way. */
const PINGERS = 5;
const PING_RPS = 10;
const PING_WARMUP_MS = 2_000;
const PING_MS = 9_000;
/**
 * A starvation guard, not a speed target (`make bench` reports the speed). Measured on the project's
 * 2-core VM while other work kept its load average at 5-12: with the sliced fan-out the pinger's p99
 * (pings clouded by the pinger's own stalls left out) was 10-55 ms; on the code before it (8ca4aca:
 * subscribers x events in one go, outside the fair turns) 190-480 ms, and the churn itself starved.
 */
const P99_LIMIT_MS = 120;

const WORKER = `${ROOT}/bench/phases/fan-out-worker.mjs`;
// A cleanup may be sync or async: its result is awaited.
let cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

interface Worker {
  call<T>(cmd: string, args: object, timeoutMs: number): Promise<T>;
}

/**
 * A fan-out worker process; killed after the test whatever happens. The subscribers and churners
 * stand in for remote machines: `nice` keeps them from taking the server's (or the pinger's) CPU.
 */
async function worker(nice = 0): Promise<Worker> {
  const child: ChildProcess = fork(WORKER, [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, FAN_OUT_WORKER_MAX_MS: '90000' },
  });
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  if (nice !== 0) setPriority(child.pid as number, nice);
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`fan-out worker exited (${String(code)})`)));
  });
  let next = 0;
  return {
    call<T>(cmd: string, args: object, timeoutMs: number): Promise<T> {
      const id = ++next;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${cmd} took over ${timeoutMs} ms`)), timeoutMs);
        const onMessage = (message: { id?: number; ok: boolean; result: T; error: string }): void => {
          if (message.id !== id) return;
          child.off('message', onMessage);
          clearTimeout(timer);
          if (message.ok) resolve(message.result);
          else reject(new Error(`${cmd}: ${message.error}`));
        };
        child.on('message', onMessage);
        child.send({ id, cmd, args });
      });
    },
  };
}

interface Percentiles {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}
interface PingResult extends Percentiles {
  sent: number;
  /** Without the pings in flight while the pinger's own process was stalled (a busy host). */
  clean: Percentiles;
  clouded: number;
  worst: Array<[number, number]>;
  ownStallMs: number;
  closed: number;
}
interface ChurnResult {
  joins: number;
  leaves: number;
  refused: number;
  errors: string[];
}
interface VerifyResult {
  subscribers: number;
  freshSize: number;
  mismatched: number;
  cutOff: number;
  closeCodes: Record<string, number>;
  events: number;
  minEvents: number;
}

describe('event fan-out on the built server', () => {
  it(`answers a pinger under ${P99_LIMIT_MS} ms at p99 while ${SUBSCRIBERS} subscribers that read get every event of ` +
    `${CHURNERS} churning peers`, async () => {
    requireBuiltServer();
    const dir = tempDir('fan-out-load-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const server: BuiltServer = await startBuiltServer({ dir, listen: { port }, onion: randomOnion() });
    cleanups.push(() => stopBuiltServer(server, 'SIGKILL'));
    const [subs, churners, pinger] = await Promise.all([worker(19), worker(19), worker()]);
    const local = ['127.0.0.1'];

    await subs.call('subscribe', { port, count: SUBSCRIBERS, localAddresses: local }, 30_000);
    const cpuBefore = server.cpuSeconds();
    const started = performance.now();
    const [churn, ping] = await Promise.all([
      churners.call<ChurnResult>(
        'churn',
        { port, peers: CHURNERS, perPeerRps: CHURN_RPS, durationMs: CHURN_MS, prefix: 'churn', localAddresses: local },
        CHURN_MS + 15_000,
      ),
      pinger.call<PingResult>(
        'ping',
        {
          port,
          conns: PINGERS,
          perConnRps: PING_RPS,
          warmupMs: PING_WARMUP_MS,
          durationMs: PING_MS,
          localAddresses: local,
        },
        PING_WARMUP_MS + PING_MS + 10_000,
      ),
    ]);
    const serverCpu = (server.cpuSeconds() - cpuBefore) / ((performance.now() - started) / 1000);
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // the last batch
    const views = await subs.call<VerifyResult>('verify', { port, localAddresses: local }, 20_000);
    const note =
      `pinger p50 ${ping.clean.p50Ms.toFixed(2)} ms, p99 ${ping.clean.p99Ms.toFixed(2)} ms over ` +
      `${ping.clean.samples} pings ` +
      `(all ${ping.samples}: p99 ${ping.p99Ms.toFixed(2)} ms, max ${ping.maxMs.toFixed(1)} ms, worst [ms, due at ` +
      `ms]: ${JSON.stringify(ping.worst)}; ` +
      `${ping.clouded} left out, in flight while the pinger itself stalled, longest ` +
      `${ping.ownStallMs.toFixed(0)} ms); ` +
      `churn ${churn.joins} joins, ${churn.leaves} leaves, ${churn.refused} refused; ${views.events} events to ` +
      `${views.subscribers} subscribers (fewest ${views.minEvents}); ` +
      `server ${(serverCpu * 100).toFixed(0)}% of a core, load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`;
    console.log(`fan-out load: ${note}`);

    // Starvation first: on the code before the sliced fan-out this is what failed.
    expect(ping.clean.p99Ms, note).toBeLessThan(P99_LIMIT_MS);
    expect(ping.closed).toBe(0);
    expect(ping.samples).toBeGreaterThan(PINGERS * PING_RPS * (PING_MS / 1000) * 0.9);
    expect(ping.clean.samples, 'pings not clouded by stalls of the pinger itself').toBeGreaterThan(ping.samples / 2);
    expect(views.subscribers).toBe(SUBSCRIBERS);
    expect(views.cutOff, JSON.stringify(views.closeCodes)).toBe(0);
    expect(views.mismatched, note).toBe(0);
    // Every join is followed by its leave: an unregister, or the close at the end of the churn.
    expect(views.minEvents).toBe(2 * churn.joins);
    expect(views.events).toBe(SUBSCRIBERS * 2 * churn.joins);
    expect(churn.errors).toEqual([]);
    expect(churn.refused).toBe(0); // inside their budgets
    expect(churn.joins, 'the churn was not starved').toBeGreaterThan(CHURNERS * CHURN_RPS * (CHURN_MS / 1000) * 0.4);
  }, 60_000);
});
