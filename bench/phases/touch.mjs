/**
 * Bench phase `touch`: the longest event-loop stall of a single-host registry (SQLite) holding
 * 20,000 registered peers, all with claims, while the claim keeper writes every live key's
 * last-seen (the periodic touch: every 5 minutes as shipped, one write of 20,000 keys).
 *
 * The server is bench/phases/touch-server.mjs: `p2p-registry serve` with the touch every
 * `touchIntervalMs` (StartOptions.touchIntervalMs) and its own event loop measured
 * (monitorEventLoopDelay, 1 ms resolution), on the server CPU. Heartbeats are off (HeartbeatSeconds
 * 3600: pinging 20,000 connections is a stall of its own) and ClaimAfterSeconds is 1, so every
 * peer's key holds a claim a second after it registered and the touch really writes every row.
 * Once the claims are all there, the phase reads the database (from this process, read-only) to
 * see each touch complete (every row's last_seen_at past a moment), and measures windows between
 * the touches: a quiet one (no touch, for the floor) and `rounds` that each hold one whole touch.
 * The metric is the longest stall in the touch window during which other work on the host took the
 * least CPU (`touchStallAllMaxMs`: over all of them). `--server` may name another build:
 * the config has no key that build might not know, and the server says it is ready over IPC.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeIdentity } from '../lib/identities.mjs';
import { cpuSeconds, machineCpu, openFilesLimit, spawnNode, stopChild } from '../lib/procs.mjs';
import { IMAGE_NODE_FLAGS } from '../lib/registry.mjs';

const SERVER_SCRIPT = fileURLToPath(new URL('./touch-server.mjs', import.meta.url));
/** fds kept free on the server (its own files, the database, a margin). */
const FD_RESERVE = 16;
const POLL_MS = 50;

const PLANS = {
  full: {
    peers: 20_000,
    touchIntervalMs: 4_000,
    quietMs: 1_500,
    rounds: 2,
    holdConcurrency: 128,
    holdTimeoutMs: 60_000,
    claimsTimeoutMs: 30_000,
  },
  smoke: {
    peers: 1_500,
    touchIntervalMs: 1_500,
    quietMs: 500,
    rounds: 1,
    holdConcurrency: 64,
    holdTimeoutMs: 10_000,
    claimsTimeoutMs: 10_000,
  },
};

/** A config.ini only with keys every build of the registry knows (no OperatorSocket: `--server` may be older). */
function writeConfig(dir, port) {
  const hsDir = join(dir, 'hs');
  mkdirSync(hsDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(hsDir, 'hostname'), `${makeIdentity('registry').address}\n`);
  const ini = `; written by bench/phases/touch.mjs
[Host]
HOST = 127.0.0.1
PORT = ${port}

[HiddenService]
HiddenServiceDir = ${hsDir}
HiddenServicePort = 80

[Registry]
MaxPeers = 100000
MaxConnections = 100000
MaxPendingConnections = 100000
HeartbeatSeconds = 3600
RateLimitPerSecond = 1000000
RateLimitBurst = 1000000
SignatureChecksPerSecond = 1000000

[Store]
Database = ${join(dir, 'registry.db')}

[Claims]
ClaimAfterSeconds = 1

[Log]
level = warn
`;
  writeFileSync(join(dir, 'config.ini'), ini);
  return join(dir, 'config.ini');
}

/** The touch server's IPC: ready, then one command at a time ({id, cmd} -> {id, ok, result}). */
async function ipcOf(child, name) {
  let next = 0;
  const pending = new Map();
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${child.lines.join('\n')}`)), 15_000);
    child.proc.on('message', (message) => {
      if (message.ready) {
        clearTimeout(timer);
        resolve(message.pid);
        return;
      }
      pending.get(message.id)?.(message.result);
      pending.delete(message.id);
    });
    child.exited.then((code) => reject(new Error(`${name} exited (${code}): ${child.lines.slice(-10).join('\n')}`)));
  });
  const pid = await ready;
  return {
    pid,
    call(cmd) {
      const id = ++next;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} ${cmd}: no answer in 5 s`)), 5_000);
        pending.set(id, (result) => {
          clearTimeout(timer);
          resolve(result);
        });
        child.proc.send({ id, cmd });
      });
    },
  };
}

/** Polls the database until `test(db)` holds; throws after `timeoutMs`. */
async function waitForDb(path, what, timeoutMs, test) {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (test(db)) return;
      if (performance.now() > deadline) throw new Error(`touch phase: ${what} took over ${timeoutMs} ms`);
      await sleep(POLL_MS);
    }
  } finally {
    db.close();
  }
}

/** Waits until a touch that began after now has written every one of `claims` rows. */
function nextTouchDone(path, claims, timeoutMs) {
  const since = Date.now();
  return waitForDb(
    path,
    'a touch of every key',
    timeoutMs,
    (db) => db.prepare('SELECT count(*) AS n FROM claims WHERE last_seen_at >= ?').get(since).n >= claims,
  );
}

/** Registers `target` peers over the two load workers and keeps them. */
async function holdPeers(ctx, port, target, plan) {
  const half = Math.floor(target / 2);
  await Promise.all([
    ctx.w0.call('prepareHold', { count: half, prefix: 'ta-' }, plan.holdTimeoutMs),
    ctx.w1.call('prepareHold', { count: target - half, prefix: 'tb-' }, plan.holdTimeoutMs),
  ]);
  const t0 = performance.now();
  const hold = (w, count, prefix, from) =>
    w.call(
      'hold',
      {
        port,
        count,
        concurrency: plan.holdConcurrency,
        prefix,
        localAddresses: ctx.addresses(from, 10),
        timeoutMs: plan.holdTimeoutMs,
      },
      plan.holdTimeoutMs + 30_000,
    );
  const [a, b] = await Promise.all([hold(ctx.w0, half, 'ta-', 30), hold(ctx.w1, target - half, 'tb-', 40)]);
  return { held: a.held + b.held, failed: a.failed + b.failed, seconds: (performance.now() - t0) / 1000 };
}

/**
 * The server's event loop over one window (`reset`, then `until()`, then `read`), with the CPU the
 * server used and what the rest of the host used meanwhile, in cores (a busy host makes stalls).
 */
async function loopOver(server, until) {
  await server.call('reset');
  const t0 = performance.now();
  const machine0 = machineCpu();
  const server0 = cpuSeconds(server.pid);
  await until();
  const loop = await server.call('read');
  const seconds = (performance.now() - t0) / 1000;
  const serverCores = (cpuSeconds(server.pid) - server0) / seconds;
  const otherCores = (machineCpu().busy - machine0.busy) / seconds - serverCores;
  return {
    ...loop,
    windowMs: Math.round(seconds * 1000),
    serverCores: Number(serverCores.toFixed(2)),
    otherCores: Number(otherCores.toFixed(2)),
  };
}

/** The quiet window and the touch windows, each between two touches. */
async function measureWindows(server, dbPath, claims, plan) {
  const wait = plan.touchIntervalMs * 3;
  await nextTouchDone(dbPath, claims, wait);
  const quiet = await loopOver(server, () => sleep(plan.quietMs));
  const touches = [];
  for (let round = 0; round < plan.rounds; round += 1) {
    touches.push(
      await loopOver(server, async () => {
        await nextTouchDone(dbPath, claims, wait);
        await sleep(100); // the stall of the last slice is recorded when the loop's timer next runs
      }),
    );
  }
  return { quiet, touches };
}

/**
 * Runs the phase; returns the metrics to merge. `ctx`: { mode, server (cli.js), tempRoot,
 * serverCpu, nofile, lifetimeSeconds, w0, w1, addresses, log }.
 */
export async function touchPhase(ctx) {
  const plan = PLANS[ctx.mode] ?? PLANS.full;
  const dir = join(ctx.tempRoot, 'touch');
  mkdirSync(dir, { recursive: true });
  const port = await ctx.freePort();
  const dbPath = join(dir, 'registry.db');
  const child = spawnNode({
    script: SERVER_SCRIPT,
    args: [
      '--server',
      ctx.server,
      '--config',
      writeConfig(dir, port),
      '--touch-interval-ms',
      String(plan.touchIntervalMs),
    ],
    nodeArgs: IMAGE_NODE_FLAGS,
    env: { NODE_ENV: 'production', NO_PRETTY: '1' },
    cpu: ctx.serverCpu,
    nofile: ctx.nofile,
    lifetimeSeconds: ctx.lifetimeSeconds,
    ipc: true,
    name: 'registry-touch',
  });
  try {
    const server = await ipcOf(child, 'registry-touch');
    // One fd per connection: stay under the server's limit (see the capacity phase).
    const room = openFilesLimit(server.pid) - readdirSync(`/proc/${server.pid}/fd`).length - FD_RESERVE;
    const target = Math.min(plan.peers, room);
    const hold = await holdPeers(ctx, port, target, plan);
    // Every key holds its claim (ClaimAfterSeconds 1): the touch then writes every row.
    await waitForDb(
      dbPath,
      `${hold.held} claims`,
      plan.claimsTimeoutMs,
      (db) => db.prepare('SELECT count(*) AS n FROM claims').get().n >= hold.held,
    );
    const { quiet, touches } = await measureWindows(server, dbPath, hold.held, plan);
    // As elsewhere in the bench, the window in which other work on the host took least is reported.
    const cleanest = touches.reduce((best, t) => (t.otherCores < best.otherCores ? t : best));
    const metrics = {
      touchStallMaxMs: cleanest.maxMs,
      touchStallOtherCores: cleanest.otherCores,
      touchStallAllMaxMs: Math.max(...touches.map((t) => t.maxMs)),
      touchStallIdleMaxMs: quiet.maxMs,
      touchStallPeers: hold.held,
    };
    const window = (t) => `${t.maxMs} ms in ${t.windowMs} ms, server ${t.serverCores} / other ${t.otherCores} cores`;
    ctx.log(
      `touch of every live key (${hold.held} peers with claims, held in ${hold.seconds.toFixed(1)} s, ` +
        `${hold.failed} failed; touch every ${plan.touchIntervalMs} ms): longest event-loop stall ` +
        `${metrics.touchStallMaxMs} ms in the cleanest of ${touches.length} touch windows ` +
        `(${touches.map(window).join('; ')}); ` +
        `without a touch ${quiet.maxMs} ms over ${quiet.windowMs} ms (other ${quiet.otherCores} cores)`,
    );
    await Promise.all([ctx.w0.call('release', {}, 20_000), ctx.w1.call('release', {}, 20_000)]);
    return { metrics, phase: { plan, target, ...hold, quiet, touches } };
  } finally {
    await stopChild(child, 10_000);
  }
}
