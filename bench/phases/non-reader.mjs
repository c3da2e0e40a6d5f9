/**
 * Bench phase `nonreader`: peak RSS of the built registry under the non-reader attack, against its
 * configured output bound (MaxOutputBytes). Many connections ask for full pages and never read;
 * the server closes those with the most unread bytes first and the attack replaces them, while an
 * honest reader keeps asking for the same page and must get every one. Defaults otherwise (only
 * the request budgets are raised, so that it is the output bound that is measured).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeIdentity, registerRequest } from '../lib/identities.mjs';
import { rssBytes, spawnNode, stopChild } from '../lib/procs.mjs';
import { listenerSections } from '../lib/registry.mjs';
import { clientFrame, WireConnection } from '../lib/wire.mjs';

/** The V8 flags of the image (server/Dockerfile NODE_OPTIONS, ENTRYPOINT): RSS under churn depends on them. */
const IMAGE_NODE_FLAGS = ['--max-semi-space-size=16', '--max-old-space-size=320', '--no-allocation-site-pretenuring'];
const PLAN = {
  // Loopback TCP buffers up to ~4 MB per connection in the kernel before the server queues
  // anything: fewer attackers with big pages reach the bound sooner.
  full: {
    maxOutputBytes: 67_108_864,
    peers: 1_000,
    attackers: 100,
    attackMs: 8_000,
    pagesPerBurst: 4,
    burstEveryMs: 50,
    maxOpened: 5_000,
  },
  smoke: {
    maxOutputBytes: 67_108_864,
    peers: 1_000,
    attackers: 40,
    attackMs: 3_000,
    pagesPerBurst: 4,
    burstEveryMs: 50,
    maxOpened: 1_000,
  },
};

function writeConfig(dir, port, maxOutputBytes) {
  const ini = `; written by bench/phases/non-reader.mjs: defaults but the request budgets
${listenerSections(dir, port)}
[Registry]
MaxOutputBytes = ${maxOutputBytes}
RateLimitPerSecond = 1000000
RateLimitBurst = 1000000
RateLimitStrikes = 1000000
SignatureChecksPerSecond = 1000000
[Store]
Database = ${join(dir, 'registry.db')}
[Log]
level = warn
`;
  writeFileSync(join(dir, 'config.ini'), ini);
  return join(dir, 'config.ini');
}

async function registerPeers(port, count) {
  const held = [];
  for (let i = 0; i < count; i += 32) {
    await Promise.all(
      Array.from({ length: Math.min(32, count - i) }, async (_, j) => {
        const conn = await WireConnection.open({ port });
        const challenge = JSON.parse(await conn.next()).challenge;
        conn.sendJson(registerRequest(makeIdentity(`nr-${String(i + j).padStart(5, '0')}`), challenge));
        const reply = JSON.parse(await conn.next());
        if (reply.type !== 'registered') throw new Error(`register failed: ${JSON.stringify(reply).slice(0, 200)}`);
        held.push(conn);
      }),
    );
  }
  return held;
}

/** An attacker connection: it reads the hello, then never reads again. */
async function openAttacker(port, onClosed) {
  const conn = await WireConnection.open({ port });
  await conn.next();
  conn.socket.pause();
  conn.onClose = onClosed;
  return conn;
}

/** The honest reader: one page after another, each timed; stops at `until`. */
async function honestReader(port, until, expectedPeers) {
  const conn = await WireConnection.open({ port });
  await conn.next();
  const latencies = [];
  let failures = 0;
  for (let id = 1; performance.now() < until; id += 1) {
    const started = performance.now();
    conn.sendJson({ type: 'list', id });
    try {
      const page = JSON.parse(await conn.next(5_000));
      if (page.type !== 'peers' || page.peers.length !== expectedPeers) failures += 1;
      latencies.push(performance.now() - started);
    } catch {
      failures += 1;
      break;
    }
    await sleep(20);
  }
  conn.destroy();
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.min(latencies.length - 1, Math.ceil(latencies.length * 0.99) - 1)];
  return { pages: latencies.length, failures, p99Ms: p99 === undefined ? null : Number(p99.toFixed(1)) };
}

/** Keeps `count` attackers asking for pages until `until`; returns how many the server closed. */
async function attack(port, count, until, plan) {
  const live = new Set();
  let opened = 0;
  let closed = 0;
  const page = clientFrame(JSON.stringify({ type: 'list' }));
  const burst = Buffer.concat(Array.from({ length: plan.pagesPerBurst }, () => page));
  const refill = async () => {
    while (live.size < count && opened < plan.maxOpened && performance.now() < until) {
      opened += 1;
      const conn = await openAttacker(port, () => {
        closed += 1;
        live.delete(conn);
      }).catch(() => null);
      if (conn !== null && !conn.closed) live.add(conn);
    }
  };
  while (performance.now() < until) {
    await refill();
    for (const conn of live) conn.send(burst);
    await sleep(plan.burstEveryMs);
  }
  for (const conn of live) conn.destroy();
  return { opened, closed };
}

/**
 * Runs the phase against its own registry on `serverCpu`; returns the metrics to merge.
 * `ctx`: { mode, server (cli.js), tempRoot, serverCpu, nofile, lifetimeSeconds, freePort, log }.
 */
export async function nonReaderPhase(ctx) {
  const plan = PLAN[ctx.mode] ?? PLAN.full;
  const dir = join(ctx.tempRoot, 'nonreader');
  mkdirSync(dir, { recursive: true });
  const port = await ctx.freePort();
  const child = spawnNode({
    script: ctx.server,
    args: ['serve', '--config', writeConfig(dir, port, plan.maxOutputBytes)],
    nodeArgs: IMAGE_NODE_FLAGS,
    env: { NODE_ENV: 'production', NO_PRETTY: '1' },
    cpu: ctx.serverCpu,
    nofile: ctx.nofile,
    lifetimeSeconds: ctx.lifetimeSeconds,
    name: 'registry-nonreader',
  });
  const pid = await child.pid;
  try {
    for (let i = 0; i < 200 && !child.lines.some((l) => l.includes('"listening"')); i += 1) await sleep(25);
    const peers = await registerPeers(port, plan.peers);
    await sleep(300);
    const baseline = rssBytes(pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, rssBytes(pid));
      } catch {
        // exited: the phase fails below
      }
    }, 20);
    const until = performance.now() + plan.attackMs;
    const [attackResult, honest] = await Promise.all([
      attack(port, plan.attackers, until, plan),
      honestReader(port, until, plan.peers),
    ]);
    clearInterval(sampler);
    for (const conn of peers) conn.destroy();
    const metrics = {
      nonReaderPeakRssMb: Math.round(peak / 2 ** 20),
      nonReaderBaselineRssMb: Math.round(baseline / 2 ** 20),
      nonReaderOutputBoundMb: plan.maxOutputBytes / 2 ** 20,
      nonReaderAttackersClosed: attackResult.closed,
      nonReaderHonestPages: honest.pages,
      nonReaderHonestFailures: honest.failures,
      nonReaderHonestP99Ms: honest.p99Ms,
    };
    ctx.log(
      `non-reader attack (${plan.attackers} connections asking ${plan.pagesPerBurst} pages of ${plan.peers} peers ` +
        `every ${plan.burstEveryMs} ms, never reading, ${attackResult.opened} opened, ${attackResult.closed} closed ` +
        `by the server): ` +
        `peak RSS ${metrics.nonReaderPeakRssMb} MB (baseline ${metrics.nonReaderBaselineRssMb} MB, MaxOutputBytes ` +
        `${metrics.nonReaderOutputBoundMb} MiB); honest reader ${honest.pages} pages, ${honest.failures} failed, p99 ` +
        `${honest.p99Ms} ms`,
    );
    return { metrics, phase: { plan, ...attackResult, honest, baselineRssBytes: baseline, peakRssBytes: peak } };
  } finally {
    await stopChild(child, 5_000);
  }
}
