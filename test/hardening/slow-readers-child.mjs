// The scenario of test/hardening/slow-readers.test.ts. The test starts this process inside a fresh
// network namespace (unshare --net) whose TCP buffers are 4 KB (tcp_rmem, tcp_wmem): there the
// kernel holds only a few KB of each connection, so what a reader leaves unread queues in the
// server (ws bufferedAmount), as it does behind tor. On the host's loopback the kernel would absorb
// megabytes per socket and the server's queues would barely grow.
//
//   node <the image's V8 flags> slow-readers-child.mjs '<json plan>'
//
// This process drives and times the scenario; it forks, into the same namespace and each a process
// of its own: the registry (slow-readers-server.mjs: its output total and closings over IPC, its
// RSS and CPU from /proc), the slow readers (slow-readers-worker.mjs), and a producer and a pinger
// (bench/phases/fan-out-worker.mjs: its `churn` and `ping`). Nothing here runs on the server's
// event loop, so a server that stalls for seconds still yields its numbers. Prints one JSON line.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

const plan = JSON.parse(process.argv[2] ?? '{}');
// Whatever happens, this process ends (the test bounds it too: this is the second fence).
setTimeout(() => {
  console.error(`slow-readers child: over ${plan.lifetimeMs} ms, exiting`);
  process.exit(3);
}, plan.lifetimeMs).unref();

const FAN_OUT_WORKER = new URL('../../bench/phases/fan-out-worker.mjs', import.meta.url).pathname;
const SLOW_READERS_WORKER = new URL('./slow-readers-worker.mjs', import.meta.url).pathname;
const SERVER = new URL('./slow-readers-server.mjs', import.meta.url).pathname;
const LOCAL = ['127.0.0.1'];
const now = () => performance.now();

/** The namespace's TCP buffer settings, as this process sees them. */
function kernelBuffers() {
  const read = (name) => readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/).join(' ');
  return { tcpRmem: read('tcp_rmem'), tcpWmem: read('tcp_wmem') };
}

/** Resident set size (VmRSS) and CPU seconds (user + system) of a process, from /proc. */
function processUse(pid) {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (USER_HZ, 100 on Linux).
  return { rssBytes: Number(kb) * 1024, cpuSeconds: (Number(fields[11]) + Number(fields[12])) / 100 };
}

/**
 * A worker process in this namespace, one IPC command at a time; killed by `kill()`. `nice`: it
 * stands for remote machines, and must not take the server's (or the pinger's) CPU.
 */
async function worker(script, name, nice = 0, args = []) {
  const child = fork(script, args, {
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
  const ready = await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', () => reject(new Error(exited)));
  });
  let next = 0;
  return {
    ready,
    pid: child.pid,
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

/**
 * Samples the server every `plan.sampleEveryMs`: its output total over IPC (one request at a time:
 * a stalled server is sampled less often, not queued up), its RSS from /proc.
 */
function sampler(server) {
  const bound = plan.registry.MaxOutputBytes;
  const started = now();
  const state = { samples: 0, peakOutputBytes: 0, overBoundSamples: 0, firstOverBoundMs: null, peakRssBytes: 0 };
  /** [ms, subscribers] every tenth sample: how fast the slow readers were shed. */
  const subscribers = [];
  let asking = false;
  const record = (stats) => {
    state.samples += 1;
    state.peakOutputBytes = Math.max(state.peakOutputBytes, stats.outputBytes);
    if (stats.outputBytes > bound) {
      state.overBoundSamples += 1;
      state.firstOverBoundMs ??= now() - started;
    }
    if (state.samples % 10 === 0) subscribers.push([Math.round(now() - started), stats.subscribers]);
  };
  const timer = setInterval(() => {
    state.peakRssBytes = Math.max(state.peakRssBytes, processUse(server.pid).rssBytes);
    if (asking) return;
    asking = true;
    server
      .call('stats', {}, 60_000)
      .then(record, () => {})
      .finally(() => {
        asking = false;
      });
  }, plan.sampleEveryMs);
  return {
    stop() {
      clearInterval(timer);
      return { ...state, subscribers };
    },
  };
}

/** The server's stats, or null if it does not answer within `timeoutMs` (a stalled event loop). */
function statsOrNull(server, timeoutMs) {
  return server.call('stats', {}, timeoutMs).catch(() => null);
}

/** Production and pings, measured: the pinger's window covers the production and the cut-off after it. */
async function measure(port, workers) {
  const { server, readers, producer, pinger } = workers;
  const before = processUse(server.pid);
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
  const output = samples.stop();
  const after = processUse(server.pid);
  return {
    produced,
    readerPings,
    ping,
    output,
    serverCpuSeconds: after.cpuSeconds - before.cpuSeconds,
    rss: { baselineBytes: before.rssBytes, peakBytes: Math.max(output.peakRssBytes, after.rssBytes) },
  };
}

async function run() {
  const t0 = now();
  const kernel = kernelBuffers();
  const workers = {};
  try {
    const registry = JSON.stringify({ onion: plan.onion, registry: plan.registry });
    [workers.server, workers.readers, workers.producer, workers.pinger] = await Promise.all([
      worker(SERVER, 'registry', 0, [registry]),
      worker(SLOW_READERS_WORKER, 'slow readers', 19),
      worker(FAN_OUT_WORKER, 'producer'),
      worker(FAN_OUT_WORKER, 'pinger'),
    ]);
    const { port } = workers.server.ready;
    const { opened } = await workers.readers.call(
      'open',
      { port, count: plan.subscribers, concurrency: plan.openConcurrency },
      plan.openTimeoutMs,
    );
    const subscribed = {
      opened,
      subscribers: (await workers.server.call('stats', {}, 5_000)).subscribers,
      ms: now() - t0,
    };
    const measured = await measure(port, workers);
    // A server that stalled may not answer: the numbers above are measured without it.
    const left = await statsOrNull(workers.server, 3_000);
    const closing = await workers.server.call('close', {}, 5_000).catch(() => null);
    return {
      kernel,
      subscribed,
      ...measured,
      loopDelayMaxMs: left?.loopDelayMaxMs ?? null,
      left,
      closed: closing?.closed ?? left?.closed ?? {},
      totalMs: now() - t0,
    };
  } finally {
    for (const w of Object.values(workers)) w.kill();
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
