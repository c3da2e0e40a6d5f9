// The scenario of test/hardening/slow-readers.test.ts. The test starts this process inside a fresh
// network namespace (unshare --net) whose TCP buffers are 4 KB (tcp_rmem, tcp_wmem): there the
// kernel holds only a few KB of each connection, so what a reader leaves unread queues in the
// server (ws bufferedAmount), as it does behind tor. On the host's loopback the kernel would absorb
// megabytes per socket and the server's queues would barely grow.
//
//   node <the image's V8 flags> slow-readers-child.mjs '<json plan>'
//
// This process is the registry (server/dist's startServer, so that its output total can be read,
// and its RSS is the server's); it forks, into the same namespace, the slow readers
// (slow-readers-worker.mjs), and a producer and a pinger (bench/phases/fan-out-worker.mjs: its
// `churn` and `ping`), each a process of its own. Prints one JSON line on stdout.
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildConfig, createLogger, startServer } from '../../server/dist/index.js';

const plan = JSON.parse(process.argv[2] ?? '{}');
// Whatever happens, this process ends (the test bounds it too: this is the second fence).
setTimeout(() => {
  console.error(`slow-readers child: over ${plan.lifetimeMs} ms, exiting`);
  process.exit(3);
}, plan.lifetimeMs).unref();

const FAN_OUT_WORKER = new URL('../../bench/phases/fan-out-worker.mjs', import.meta.url).pathname;
const SLOW_READERS_WORKER = new URL('./slow-readers-worker.mjs', import.meta.url).pathname;
const LOCAL = ['127.0.0.1'];
const now = () => performance.now();

/** The namespace's TCP buffer settings, as this process sees them. */
function kernelBuffers() {
  const read = (name) => readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/).join(' ');
  return { tcpRmem: read('tcp_rmem'), tcpWmem: read('tcp_wmem') };
}

/** The registry, logging at info into memory: its summary lines count the closings by name. */
async function startRegistry() {
  const dir = mkdtempSync(join(tmpdir(), 'slow-readers-'));
  writeFileSync(join(dir, 'hostname'), `${plan.onion}\n`);
  const closed = {};
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line === '') continue;
        for (const [name, n] of Object.entries(JSON.parse(line).closed ?? {})) closed[name] = (closed[name] ?? 0) + n;
      }
      done();
    },
  });
  const config = buildConfig(
    {
      Host: { HOST: '127.0.0.1', PORT: '0' },
      HiddenService: { HiddenServiceDir: dir, HiddenServicePort: '80' },
      Registry: Object.fromEntries(Object.entries(plan.registry).map(([key, value]) => [key, String(value)])),
      Log: { level: 'info', SummarySeconds: '1' },
    },
    {},
  );
  const server = await startServer(config, createLogger('info', sink));
  return { server, port: server.address.port, closed, dir };
}

/**
 * A worker process in this namespace, one IPC command at a time; killed by `kill()`. `nice`: it
 * stands for remote machines, and must not take the server's (or the pinger's) CPU.
 */
async function worker(script, name, nice = 0) {
  const child = fork(script, [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      FAN_OUT_WORKER_MAX_MS: `${plan.lifetimeMs}`,
      SLOW_READERS_WORKER_MAX_MS: `${plan.lifetimeMs}`,
    },
  });
  if (nice !== 0) setPriority(child.pid, nice);
  let exited = null;
  child.on('error', () => {}); // a send to a process that is gone: its exit says why
  child.once('exit', (code, signal) => {
    exited = `${name} exited (${signal ?? code})`;
  });
  await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', () => reject(new Error(exited)));
  });
  let next = 0;
  return {
    call(cmd, args, timeoutMs) {
      const id = ++next;
      if (exited !== null) return Promise.reject(new Error(`${cmd}: ${exited}`));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} ${cmd} took over ${timeoutMs} ms`)), timeoutMs);
        const onMessage = (message) => {
          if (message.id !== id) return;
          child.off('message', onMessage);
          clearTimeout(timer);
          if (message.ok) resolve(message.result);
          else reject(new Error(`${name} ${cmd}: ${message.error}`));
        };
        child.on('message', onMessage);
        child.send({ id, cmd, args });
      });
    },
    kill: () => child.kill('SIGKILL'),
  };
}

/** Samples the server's output total and this process's RSS every `plan.sampleEveryMs` until stopped. */
function sampler(server) {
  const bound = plan.registry.MaxOutputBytes;
  const started = now();
  const state = { samples: 0, peakOutputBytes: 0, overBoundSamples: 0, firstOverBoundMs: null, peakRssBytes: 0 };
  /** [ms, subscribers] every tenth sample: how fast the slow readers were shed. */
  const subscribers = [];
  const tick = () => {
    const stats = server.stats();
    state.samples += 1;
    state.peakOutputBytes = Math.max(state.peakOutputBytes, stats.outputBytes);
    if (stats.outputBytes > bound) {
      state.overBoundSamples += 1;
      state.firstOverBoundMs ??= now() - started;
    }
    state.peakRssBytes = Math.max(state.peakRssBytes, process.memoryUsage.rss());
    if (state.samples % 10 === 0) subscribers.push([Math.round(now() - started), stats.subscribers]);
  };
  const timer = setInterval(tick, plan.sampleEveryMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { ...state, subscribers };
    },
  };
}

/** Production and pings, measured: the pinger's window covers the production and the cut-off after it. */
async function measure(server, port, workers) {
  const { readers, producer, pinger } = workers;
  const baselineRssBytes = process.memoryUsage.rss();
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const samples = sampler(server);
  await readers.call('startPings', { everyMs: plan.readerPingEveryMs }, 5_000);
  const measureMs = plan.produceMs + plan.settleMs;
  const pinging = pinger.call(
    'ping',
    {
      port,
      conns: 1,
      perConnRps: 1000 / plan.pingEveryMs,
      warmupMs: plan.warmupMs,
      durationMs: measureMs,
      localAddresses: LOCAL,
    },
    plan.warmupMs + measureMs + 10_000,
  );
  pinging.catch(() => {}); // awaited below, after the production
  await sleep(plan.warmupMs);
  const produced = await producer.call(
    'churn',
    {
      port,
      peers: plan.producers,
      perPeerRps: 1000 / plan.producerEveryMs,
      durationMs: plan.produceMs,
      prefix: 'producer',
      localAddresses: LOCAL,
    },
    plan.produceMs + 15_000,
  );
  const ping = await pinging;
  const { sent: readerPings } = await readers.call('stopPings', {}, 5_000);
  // The slow readers go: what the server still has to read of them is gone with them.
  readers.kill();
  loop.disable();
  const output = samples.stop();
  return {
    produced,
    readerPings,
    ping,
    loopDelayMaxMs: loop.max / 1e6,
    output,
    rss: { baselineBytes: baselineRssBytes, peakBytes: output.peakRssBytes },
  };
}

async function run() {
  const t0 = now();
  const kernel = kernelBuffers();
  const { server, port, closed, dir } = await startRegistry();
  const workers = {};
  try {
    [workers.readers, workers.producer, workers.pinger] = await Promise.all([
      worker(SLOW_READERS_WORKER, 'slow readers', 19),
      worker(FAN_OUT_WORKER, 'producer'),
      worker(FAN_OUT_WORKER, 'pinger'),
    ]);
    const { opened } = await workers.readers.call(
      'open',
      { port, count: plan.subscribers, concurrency: plan.openConcurrency },
      plan.openTimeoutMs,
    );
    const subscribed = { opened, subscribers: server.stats().subscribers, ms: now() - t0 };
    const measured = await measure(server, port, workers);
    const left = server.stats();
    await server.close(); // logs the last summary line
    return { kernel, subscribed, ...measured, left, closed, totalMs: now() - t0 };
  } finally {
    for (const w of Object.values(workers)) w.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

run().then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  },
  (err) => {
    console.error(`slow-readers child failed: ${err?.stack ?? err}`);
    process.exit(1);
  },
);
