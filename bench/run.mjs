#!/usr/bin/env node
/**
 * `npm run bench` / `make bench`: the registry's speed, capacity and memory on this machine, each
 * next to a ceiling measured in the same run.
 *
 *   node bench/run.mjs                 full run (4-5 minutes), writes bench/results.json + bench/chart.svg
 *   node bench/run.mjs --smoke         about a minute, writes bench/results.json + bench/chart-smoke.svg
 *   node bench/run.mjs --profile lookup|register|claims   same load, server under --cpu-prof (bench/profiles/)
 *   node bench/run.mjs --server <path/to/cli.js>   bench another build of the server (e.g. a scratch copy)
 *
 * The split of the machine (see bench/README.md): the process under test (registry, echo server or
 * verify loop) is pinned to CPU 0 with all its threads; the load generators are pinned to CPU 1.
 * Each ratio therefore compares two things that had exactly one core each, and the CPU use of both
 * sides is recorded per phase so a client-bound number is visible as such.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { renderChart } from './lib/chart.mjs';
import { CLAIMS_TARGETS, claimsPhase, claimsRows } from './phases/claims.mjs';
import { FAN_OUT_TARGETS, fanOutPhase, fanOutRows } from './phases/fan-out.mjs';
import { makeIdentity, peerRecordLike, registerRequest } from './lib/identities.mjs';
import { cleanWindows, mergedPercentiles, perCpu, ratio, summary } from './lib/measure.mjs';
import { openFilesLimit, rssBytes, spawnNode, stopChild, CAN_PIN } from './lib/procs.mjs';
import {
  addresses,
  BUILT_CLI,
  LOAD_CPU as CLIENT_CPU,
  NOFILE,
  SERVER_CPU,
  formatTable,
  freePort,
  healthz,
  launchRegistry,
  lookupPayloads,
  lookupReplyBytes,
  machineInfo,
  OK_LOOKUP,
  serverProvenance,
  serverWarnings,
} from './lib/registry.mjs';
import { startRun } from './lib/run-control.mjs';
import { Worker as LoadWorker } from './lib/worker.mjs';
import { nonReaderPhase } from './phases/non-reader.mjs';
import { METRICS_TARGETS, metricsPhase, metricsRows } from './phases/metrics.mjs';
import { touchPhase } from './phases/touch.mjs';
import { summarizeProfile } from './profile-summary.mjs';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
/** fds kept free on the server during the capacity phase: /healthz (operator socket), and a margin. */
const FD_RESERVE = 8;
/** A phase whose load generator used this much of its core may be measuring the client. */
const CLIENT_BOUND_CPU = 0.9;
/** Other processes on the host using this many cores during a phase make its numbers suspect. */
const BUSY_HOST_CPU = 0.25;

const PLANS = {
  full: {
    budgetMs: 410_000, // 220 s before the claims phase came, 280 s before the metrics and touch phases
    metricsRounds: 3,
    metricsScrapes: 500,
    metricsScrapeEveryMs: 1_000,
    windowMs: 1_000,
    verifyMs: 3_000,
    conns: 128,
    inflight: 16,
    unpipelinedConns: 1024,
    extras: 1,
    warmupMs: 1_500,
    measureMs: 5_000,
    latencyConns: 512,
    latencyWarmupMs: 1_000,
    latencyMs: 5_000,
    regConcurrency: 64,
    regPool: 4_000,
    regWarmupMs: 1_000,
    regMs: 6_000,
    lookupPeers: 1_000,
    peers: 20_000,
    holdConcurrency: 128,
    holdTimeoutMs: 45_000,
    heartbeatSeconds: 3,
    holdMs: 7_000,
    subscribers: 50,
    churnConcurrency: 32,
    churnPool: 3_000,
    churnMs: 8_000,
    churnMaxCycles: 200_000,
  },
  smoke: {
    // 20 s before the non-reader and fan-out phases came, 45 s before claims, 60 s before metrics and touch
    budgetMs: 105_000,
    metricsRounds: 1,
    metricsScrapes: 100,
    metricsScrapeEveryMs: 1_000,
    windowMs: 500,
    verifyMs: 500,
    conns: 64,
    inflight: 16,
    unpipelinedConns: 256,
    extras: 0,
    warmupMs: 300,
    measureMs: 1_000,
    latencyConns: 256,
    latencyWarmupMs: 300,
    latencyMs: 1_000,
    regConcurrency: 32,
    regPool: 600,
    regWarmupMs: 300,
    regMs: 1_000,
    lookupPeers: 200,
    peers: 1_500,
    holdConcurrency: 128,
    holdTimeoutMs: 5_000,
    heartbeatSeconds: 1,
    holdMs: 2_100,
    subscribers: 10,
    churnConcurrency: 16,
    churnPool: 600,
    churnMs: 1_000,
    churnMaxCycles: 20_000,
  },
};

/** The issue's targets: [metric, test, as text]. */
const TARGETS = [
  ['lookupVsEcho', (v) => v >= 0.7, '>= 0.7'],
  ['registrationVsVerify', (v) => v >= 0.5, '>= 0.5'],
  ['peersHeld', (v) => v >= 20_000, '>= 20000'],
  ['serverRssMb', (v) => v < 400, '< 400'],
  ['churnLost', (v) => v === 0, '= 0'],
  ...FAN_OUT_TARGETS,
  ...CLAIMS_TARGETS,
  ...METRICS_TARGETS,
];

function parseArgs(argv) {
  const opts = { mode: 'full', profile: null, server: BUILT_CLI, keepTemp: false, set: [], only: null };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--smoke') opts.mode = 'smoke';
    else if (arg === '--profile') opts.profile = argv[++i];
    else if (arg === '--server') opts.server = resolve(argv[++i] ?? '');
    else if (arg === '--keep-temp') opts.keepTemp = true;
    else if (arg === '--set') opts.set.push(argv[++i] ?? '');
    else if (arg === '--only') opts.only = new Set((argv[++i] ?? '').split(','));
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
      process.exit(0);
    } else throw new Error(`unknown argument ${arg} (try --help)`);
  }
  if (opts.profile !== null && !['lookup', 'register', 'claims'].includes(opts.profile)) {
    throw new Error('--profile takes "lookup", "register" or "claims"');
  }
  const phases = [
    'verify',
    'echo',
    'lookup',
    'latency',
    'metrics',
    'register',
    'capacity',
    'churn',
    'nonreader',
    'claims',
    'touch',
    'fan-out',
  ];
  for (const phase of opts.only ?? [])
    if (!phases.includes(phase)) throw new Error(`--only: unknown phase ${phase} (${phases.join(', ')})`);
  if (opts.profile !== null) opts.only = new Set([opts.profile]);
  if (!existsSync(opts.server))
    throw new Error(`${opts.server} does not exist: run \`npm run build\` first (or pass --server)`);
  return opts;
}

function usageError(err) {
  process.stderr.write(`bench: ${err.message}\n`);
  process.exit(2);
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  usageError(err);
}
const plan = { ...PLANS[opts.mode] };
for (const item of opts.set) {
  // --set key=value overrides one plan entry (experiments; the defaults are what results mean).
  const [key, value] = item.split('=');
  if (!(key in plan) || !Number.isFinite(Number(value)))
    usageError(new Error(`--set ${item}: expected <plan key>=<number>`));
  plan[key] = Number(value);
}
const { log, elapsed, tempRoot, lifetimeSeconds, cleanup } = startRun({
  budgetMs: plan.budgetMs,
  keepTemp: opts.keepTemp,
  tempPrefix: 'registry-bench-',
});

/** A load worker process on the load CPU (bench/lib/worker.mjs). */
const Worker = {
  start: (name, script = 'load-worker.mjs') =>
    LoadWorker.start(name, script, { cpu: CLIENT_CPU, nofile: NOFILE, lifetimeSeconds, log }),
};

/** The built registry (or `claims.script`) on the server CPU: bench/lib/registry.mjs launchRegistry. */
function startRegistry(label, heartbeatSeconds, profileName = null, claims = {}) {
  return launchRegistry(
    { tempRoot, server: opts.server, cpu: SERVER_CPU, nofile: NOFILE, lifetimeSeconds },
    label,
    heartbeatSeconds,
    profileName,
    claims,
  );
}

async function main() {
  const results = {
    mode: opts.profile === null ? opts.mode : `profile-${opts.profile}`,
    startedAt: new Date().toISOString(),
    server: serverProvenance(opts.server),
    machine: machineInfo(),
    plan,
    metrics: {},
    phases: {},
  };
  const m = results.metrics;
  const P = results.phases;
  const pinning = CAN_PIN
    ? `server on CPU ${SERVER_CPU}, load on CPU ${CLIENT_CPU}`
    : 'taskset missing: processes are NOT pinned';
  log(`mode ${results.mode}; server ${opts.server}; ${pinning}`);

  const w0 = await Worker.start('load-0');
  const w1 = await Worker.start('load-1');
  const want = (phase) => opts.only === null || opts.only.has(phase);

  // 1. Ed25519 verify ceiling, alone on the server's CPU.
  if (want('verify')) {
    const verifier = spawnNode({
      script: join(BENCH_DIR, 'verify-loop.mjs'),
      args: [String(plan.verifyMs), String(plan.windowMs)],
      cpu: SERVER_CPU,
      nofile: 1024,
      lifetimeSeconds,
      name: 'verify',
    });
    const code = await verifier.exited;
    const line = verifier.lines.find((l) => l.startsWith('{'));
    if (code !== 0 || line === undefined) throw new Error(`verify loop failed (${code}): ${verifier.lines.join('\n')}`);
    P.verify = JSON.parse(line);
    // The window in which the loop had most of its core (other work on the host shares it).
    const most = Math.max(...P.verify.windows.map((w) => w.cpuShare));
    const clean = P.verify.windows.filter((w) => w.cpuShare >= most - 0.02).sort((a, b) => a.perSec - b.perSec);
    const chosen = clean[Math.floor((clean.length - 1) / 2)];
    const perCpu = P.verify.windows.map((w) => w.perCpuSecond).sort((a, b) => a - b);
    P.verify.chosen = chosen;
    m.verifyPerSec = Math.round(chosen.perSec);
    m.verifyPerCpuSecond = Math.round(perCpu[Math.floor((perCpu.length - 1) / 2)]);
    log(
      `verify: ${m.verifyPerSec}/s (window with ${(chosen.cpuShare * 100).toFixed(0)}% of the core; PEM key parse ` +
        `${Math.round(P.verify.pemParsePerSec)}/s)`,
    );
  }

  // 2. Transport ceilings: a bare ws server, same client, same frames, same connection counts.
  const payloads = lookupPayloads(plan.lookupPeers);
  const sample = makeIdentity('lk-00000');
  const echoReply = JSON.stringify({ type: 'peer', id: 1, peer: peerRecordLike(sample) });
  const echoHello = JSON.stringify({
    type: 'hello',
    protocol: 1,
    challenge: randomBytes(32).toString('base64url'),
    onion: makeIdentity('registry').address,
    limits: { maxMessageBytes: 16_384 },
  });
  const echoRegistered = JSON.stringify({ type: 'registered', id: 1, peer: peerRecordLike(makeIdentity('rg-00000')) });
  const registerSized = JSON.stringify(
    registerRequest(makeIdentity('rg-00000'), randomBytes(32).toString('base64url')),
  );
  const throughputArgs = (port, pipelined) => ({
    port,
    conns: pipelined ? plan.conns : plan.unpipelinedConns,
    inflight: pipelined ? plan.inflight : 1,
    warmupMs: plan.warmupMs,
    durationMs: plan.measureMs,
    windowMs: plan.windowMs,
    payloads,
    okPrefix: OK_LOOKUP,
    localAddresses: addresses(2, 4),
  });
  const registerArgs = (port, fixedRequest = null) => ({
    port,
    concurrency: plan.regConcurrency,
    warmupMs: plan.regWarmupMs,
    durationMs: plan.regMs,
    windowMs: plan.windowMs,
    poolSize: plan.regPool,
    prefix: 'rg-',
    localAddresses: addresses(10, 20),
    fixedRequest,
  });
  const phaseTimeout = (ms) => ms + 30_000;
  const registerTimeout = phaseTimeout(plan.regWarmupMs + plan.regMs + plan.regPool);

  /** Starts the bare ws server on the server CPU. */
  async function startEcho(env) {
    const port = await freePort();
    const child = spawnNode({
      script: join(BENCH_DIR, 'echo-server.mjs'),
      args: [String(port)],
      env: { BENCH_WORKER_MAX_MS: String(lifetimeSeconds * 1000), NODE_ENV: 'production', ...env },
      cpu: SERVER_CPU,
      nofile: NOFILE,
      lifetimeSeconds,
      name: 'echo',
    });
    const pid = await child.pid;
    for (let i = 0; i < 200 && !child.lines.some((l) => l.startsWith('listening')); i += 1) await sleep(25);
    if (!child.lines.some((l) => l.startsWith('listening')))
      throw new Error(`echo server did not start: ${child.lines.join('\n')}`);
    return { child, pid, port, fdLimit: openFilesLimit(pid) };
  }

  /** Runs one load against a fresh echo server on the server CPU; returns the worker's result and CPU use. */
  async function againstEcho(env, cmd, args, timeoutMs) {
    const { child: echo, pid: echoPid, port } = await startEcho(env);
    try {
      const out = await w0.measured(cmd, { ...args, port }, timeoutMs, { server: echoPid, client: w0.pid });
      if (out.result.errors > 0)
        throw new Error(`echo ${cmd} had ${out.result.errors} bad replies: ${out.result.errorSamples.join(' | ')}`);
      return out;
    } finally {
      await stopChild(echo);
    }
  }

  if (want('echo')) {
    const throughputTimeout = phaseTimeout(plan.warmupMs + plan.measureMs);
    const plain = await againstEcho(
      { BENCH_ECHO_REPLY: echoReply },
      'throughput',
      throughputArgs(0, true),
      throughputTimeout,
    );
    P.echo = { ...plain.result, cpu: plain.cpu, chosen: summary(plain), replyBytes: Buffer.byteLength(echoReply) };
    m.echoBaselinePerSec = Math.round(plain.chosen.perSec);
    m.echoPerServerCpuSecond = perCpu(plain.chosen.perSec, plain.cpu);
    log(
      `echo baseline (${plan.conns} conns x ${plan.inflight} in flight): ${m.echoBaselinePerSec}/s (cpu ` +
        `${JSON.stringify(plain.cpu)})`,
    );

    if (plan.extras) await echoExtras(throughputTimeout);
  }

  /** Baselines that explain the ratios (full runs only): one request in flight, gathered writes, connection cycle. */
  async function echoExtras(throughputTimeout) {
    const single = await againstEcho(
      { BENCH_ECHO_REPLY: echoReply },
      'throughput',
      throughputArgs(0, false),
      throughputTimeout,
    );
    P.echoUnpipelined = { ...single.result, cpu: single.cpu, chosen: summary(single) };
    m.echoUnpipelinedPerSec = Math.round(single.chosen.perSec);
    log(
      `echo, ${plan.unpipelinedConns} conns x 1 in flight: ${m.echoUnpipelinedPerSec}/s (cpu ` +
        `${JSON.stringify(single.cpu)})`,
    );

    const corked = await againstEcho(
      { BENCH_ECHO_REPLY: echoReply, BENCH_ECHO_CORK: '1' },
      'throughput',
      throughputArgs(0, true),
      throughputTimeout,
    );
    P.echoCorked = { ...corked.result, cpu: corked.cpu, chosen: summary(corked) };
    m.echoCorkedPerSec = Math.round(corked.chosen.perSec);
    log(
      `echo with replies gathered per tick (not the baseline): ${m.echoCorkedPerSec}/s (cpu ` +
        `${JSON.stringify(corked.cpu)})`,
    );

    const cycle = await againstEcho(
      { BENCH_ECHO_REPLY: echoRegistered, BENCH_ECHO_HELLO: echoHello },
      'register',
      registerArgs(0, registerSized),
      registerTimeout,
    );
    P.echoCycle = { ...cycle.result, cpu: cycle.cpu, chosen: summary(cycle) };
    m.connectCycleBaselinePerSec = Math.round(cycle.chosen.perSec);
    m.connectCyclePerServerCpuSecond = perCpu(cycle.chosen.perSec, cycle.cpu);
    log(
      `echo connection cycle (connect, hello, register-sized request, reply, close): ` +
        `${m.connectCycleBaselinePerSec}/s (cpu ${JSON.stringify(cycle.cpu)})`,
    );
  }

  // 3. The registry: lookups, lookup latency at half the peak, registrations.
  if (want('lookup') || want('latency') || want('metrics') || want('register')) {
    const reg = await startRegistry('main', 30, opts.profile === null ? null : `${opts.profile}.cpuprofile`);
    const pids = { server: reg.pid, client: w0.pid };
    P.registryFdLimit = reg.fdLimit;
    const lookupHold = await w1.call(
      'hold',
      {
        port: reg.port,
        count: plan.lookupPeers,
        concurrency: 32,
        prefix: 'lk-',
        localAddresses: addresses(6, 2),
        timeoutMs: 30_000,
      },
      60_000,
    );
    if (lookupHold.held !== plan.lookupPeers)
      throw new Error(`could not register the lookup peers: ${JSON.stringify(lookupHold)}`);
    const replyBytes = await lookupReplyBytes(reg.port, 'lk-00001');

    if (want('lookup') || want('latency')) {
      const { result, cpu, chosen } = await w0.measured(
        'throughput',
        throughputArgs(reg.port, true),
        phaseTimeout(plan.warmupMs + plan.measureMs),
        pids,
      );
      P.lookup = { ...result, cpu, chosen: summary({ chosen }), replyBytes };
      m.lookupsPerSec = Math.round(chosen.perSec);
      m.lookupsPerServerCpuSecond = perCpu(chosen.perSec, cpu);
      m.lookupVsEcho = ratio(m.lookupsPerSec, m.echoBaselinePerSec);
      m.lookupVsEchoPerCpu = ratio(m.lookupsPerServerCpuSecond, m.echoPerServerCpuSecond);
      log(
        `lookups (${plan.conns} conns x ${plan.inflight} in flight): ${m.lookupsPerSec}/s (cpu ` +
          `${JSON.stringify(cpu)}), reply ${replyBytes} B vs echo ${Buffer.byteLength(echoReply)} B`,
      );
      if (result.errors > 0)
        throw new Error(`lookup phase had ${result.errors} bad replies: ${result.errorSamples.join(' | ')}`);
    }

    if (opts.profile === null && (want('latency') || (want('lookup') && plan.extras))) {
      const { result, cpu, chosen } = await w0.measured(
        'throughput',
        throughputArgs(reg.port, false),
        phaseTimeout(plan.warmupMs + plan.measureMs),
        pids,
      );
      P.lookupUnpipelined = { ...result, cpu, chosen: summary({ chosen }) };
      m.lookupsUnpipelinedPerSec = Math.round(chosen.perSec);
      m.lookupVsEchoUnpipelined = ratio(m.lookupsUnpipelinedPerSec, m.echoUnpipelinedPerSec);
      log(
        `lookups (${plan.unpipelinedConns} conns x 1 in flight): ${m.lookupsUnpipelinedPerSec}/s (cpu ` +
          `${JSON.stringify(cpu)})`,
      );
      if (result.errors > 0)
        throw new Error(`lookup phase had ${result.errors} bad replies: ${result.errorSamples.join(' | ')}`);
    }

    if (want('metrics') && opts.profile === null) {
      const out = await metricsPhase({
        reg,
        rounds: plan.metricsRounds,
        scrapes: plan.metricsScrapes,
        everyMs: plan.metricsScrapeEveryMs,
        log,
        measure: async () => {
          const { result, chosen, cpu } = await w0.measured(
            'throughput',
            throughputArgs(reg.port, true),
            phaseTimeout(plan.warmupMs + plan.measureMs),
            pids,
          );
          if (result.errors > 0)
            throw new Error(`metrics phase had ${result.errors} bad replies: ${result.errorSamples.join(' | ')}`);
          return { perSec: chosen.perSec, perCpuSecond: perCpu(chosen.perSec, cpu) };
        },
      });
      P.metrics = out.phase;
      Object.assign(m, out.metrics);
    }

    if (want('latency')) {
      // Half the peak for the same traffic shape: the paced load spreads requests over many
      // connections, one or two at a time, like the unpipelined phase (the pipelined peak, where a
      // read carries 16 requests, is a cheaper shape and would put "half" near saturation).
      const peak = m.lookupsUnpipelinedPerSec ?? m.lookupsPerSec;
      const rate = Math.max(100, Math.round(peak / 2));
      const { result, cpu } = await w0.measured(
        'paced',
        {
          port: reg.port,
          conns: plan.latencyConns,
          rate,
          warmupMs: plan.latencyWarmupMs,
          durationMs: plan.latencyMs,
          windowMs: plan.windowMs,
          payloads,
          okPrefix: OK_LOOKUP,
          localAddresses: addresses(2, 4),
        },
        phaseTimeout(plan.latencyWarmupMs + plan.latencyMs),
        pids,
      );
      // Percentiles over every window in which other work on the host was (nearly) as low as in the cleanest one.
      const clean = cleanWindows(result.windows, result.windowCpus);
      const pooled = mergedPercentiles(
        clean.map((w) => w.histogram),
        [50, 99],
      );
      for (const w of result.windows) delete w.histogram;
      P.latency = {
        ...result,
        cpu: clean[0]?.cpu ?? cpu,
        chosen: { windows: clean.map((w) => w.index), of: result.windows.length, p50Ms: pooled[50], p99Ms: pooled[99] },
      };
      m.lookupLatencyRatePerSec = rate;
      m.lookupP50Ms = Number(pooled[50]?.toFixed(3));
      m.lookupP99Ms = Number(pooled[99]?.toFixed(3));
      log(
        `latency at ${rate}/s: p50 ${m.lookupP50Ms} ms, p99 ${m.lookupP99Ms} ms over the ${clean.length} cleanest of ` +
          `${result.windows.length} windows ` +
          `(all windows: p50 ${result.p50Ms?.toFixed(2)} ms, p99 ${result.p99Ms?.toFixed(2)} ms; cpu ` +
          `${JSON.stringify(cpu)}; achieved ${Math.round(result.achievedPerSec)}/s, ` +
          `sent ${result.sent}, answered ${result.repliesTotal}, unanswered ${result.unanswered}, connections closed ` +
          `early ${result.closedEarly})`,
      );
      if (result.unanswered > 0.01 * result.sent)
        log(
          `WARNING: ${result.unanswered} of ${result.sent} paced lookups got no reply: the latency numbers are not ` +
            `valid (${JSON.stringify(result).slice(0, 300)})`,
        );
      if (result.errors > 0)
        throw new Error(`latency phase had ${result.errors} bad replies: ${result.errorSamples.join(' | ')}`);
    }

    if (want('register') && plan.extras) {
      // The same connection cycle against the registry, with a lookup instead of a register: what
      // the registry's own connection handling costs, without the registration.
      const lookupText = JSON.stringify({ type: 'lookup', id: 1, nickname: 'lk-00001' });
      const { result, cpu, chosen } = await w0.measured(
        'register',
        { ...registerArgs(reg.port, lookupText), replyPrefix: OK_LOOKUP },
        registerTimeout,
        pids,
      );
      P.registryCycle = { ...result, cpu, chosen: summary({ chosen }) };
      m.registryCyclePerSec = Math.round(chosen.perSec);
      m.registryCyclePerServerCpuSecond = perCpu(chosen.perSec, cpu);
      log(`registry connection cycle with a lookup: ${m.registryCyclePerSec}/s (cpu ${JSON.stringify(cpu)})`);
    }

    if (want('register')) {
      const { result, cpu, chosen } = await w0.measured('register', registerArgs(reg.port), registerTimeout, pids);
      P.registration = { ...result, cpu, chosen: summary({ chosen }) };
      m.registrationsPerSec = Math.round(chosen.perSec);
      m.registrationsPerServerCpuSecond = perCpu(chosen.perSec, cpu);
      m.registrationVsVerify = ratio(m.registrationsPerSec, m.verifyPerSec);
      m.registrationVsVerifyPerCpu = ratio(m.registrationsPerServerCpuSecond, m.verifyPerCpuSecond);
      if (m.connectCyclePerServerCpuSecond && m.verifyPerCpuSecond) {
        // What one core could do if a registration cost only the bare connection cycle plus one
        // verify. Both per CPU-second of the server side: the cycle baseline is nearly symmetric
        // work, so its wall rate can be capped by the load generator's core.
        m.registrationCeilingPerSec = Math.round(1 / (1 / m.connectCyclePerServerCpuSecond + 1 / m.verifyPerCpuSecond));
        m.registrationVsCeiling = ratio(m.registrationsPerServerCpuSecond, m.registrationCeilingPerSec);
      }
      log(`registrations: ${m.registrationsPerSec}/s (cpu ${JSON.stringify(cpu)}, errors ${result.errors})`);
      if (result.errors > 0) log(`registration errors: ${result.errorSamples.join(' | ')}`);
    }

    await w1.call('release', {}, 20_000);
    P.registryWarnings = serverWarnings(reg.child).slice(0, 10);
    await stopChild(reg.child, 10_000);
  }

  // 4. Capacity: 20,000 registered, heart-beating peers on a fresh server; RSS growth per peer.
  if (want('capacity') && plan.extras) {
    // Memory baseline: the same number of plain, idle connections held by the bare ws server.
    const echo = await startEcho({ BENCH_ECHO_REPLY: echoReply });
    await sleep(500);
    const rssBefore = rssBytes(echo.pid);
    const count = Math.min(plan.peers, echo.fdLimit - readdirSync(`/proc/${echo.pid}/fd`).length - FD_RESERVE);
    const half = Math.floor(count / 2);
    const [a, b] = await Promise.all([
      w0.call('holdIdle', { port: echo.port, count: half, localAddresses: addresses(30, 10) }, plan.holdTimeoutMs),
      w1.call(
        'holdIdle',
        { port: echo.port, count: count - half, localAddresses: addresses(40, 10) },
        plan.holdTimeoutMs,
      ),
    ]);
    await sleep(1_000);
    const rssAfter = rssBytes(echo.pid);
    const held = a.held + b.held;
    P.idleBaseline = { connections: held, rssBeforeBytes: rssBefore, rssAfterBytes: rssAfter };
    m.echoRssBytesPerConnection = Math.round((rssAfter - rssBefore) / held);
    log(
      `bare ws server holding ${held} idle connections: RSS ${Math.round(rssAfter / 2 ** 20)} MB ` +
        `(${m.echoRssBytesPerConnection} B/connection)`,
    );
    await Promise.all([w0.call('release', {}, 20_000), w1.call('release', {}, 20_000)]);
    await stopChild(echo.child);
  }

  if (want('capacity') || want('churn')) {
    const reg = await startRegistry('capacity', plan.heartbeatSeconds);
    if (want('capacity')) await capacity(reg);
    if (want('churn')) await churnPhase(reg);
    P.capacityWarnings = serverWarnings(reg.child).slice(0, 10);
    await stopChild(reg.child, 10_000);
  }

  async function capacity(reg) {
    await sleep(500);
    const rssBefore = rssBytes(reg.pid);
    // One fd per connection: a hard RLIMIT_NOFILE below the target (a container without
    // CAP_SYS_RESOURCE cannot raise it) caps what any server can hold. Stay just under it, and say so.
    const idleFds = readdirSync(`/proc/${reg.pid}/fd`).length;
    const fdRoom = reg.fdLimit - idleFds - FD_RESERVE;
    const target = Math.min(plan.peers, fdRoom);
    if (target < plan.peers)
      log(`server fd limit is ${reg.fdLimit} (${idleFds} in use idle): holding ${target} peers, not ${plan.peers}`);
    const half = Math.floor(target / 2);
    await Promise.all([
      w0.call('prepareHold', { count: half, prefix: 'pa-' }, plan.holdTimeoutMs),
      w1.call('prepareHold', { count: target - half, prefix: 'pb-' }, plan.holdTimeoutMs),
    ]);
    // A registry that restarts gets every peer back at once: this is how long that takes.
    const t0 = performance.now();
    const [a, b] = await Promise.all([
      w0.call(
        'hold',
        {
          port: reg.port,
          count: half,
          concurrency: plan.holdConcurrency,
          prefix: 'pa-',
          localAddresses: addresses(30, 10),
          timeoutMs: plan.holdTimeoutMs,
        },
        plan.holdTimeoutMs + 30_000,
      ),
      w1.call(
        'hold',
        {
          port: reg.port,
          count: target - half,
          concurrency: plan.holdConcurrency,
          prefix: 'pb-',
          localAddresses: addresses(40, 10),
          timeoutMs: plan.holdTimeoutMs,
        },
        plan.holdTimeoutMs + 30_000,
      ),
    ]);
    const registerSeconds = (performance.now() - t0) / 1000;
    log(
      `held ${a.held + b.held} peers in ${registerSeconds.toFixed(1)}s (failed ${a.failed + b.failed}); holding ` +
        `${plan.holdMs / 1000}s with ${plan.heartbeatSeconds}s heartbeats`,
    );
    await sleep(plan.holdMs);
    const [sa, sb] = await Promise.all([w0.call('holdStatus', {}, 5_000), w1.call('holdStatus', {}, 5_000)]);
    const health = await healthz(reg.operatorSocket);
    const rssAfter = rssBytes(reg.pid);
    const open = sa.open + sb.open;
    const registered = health?.body?.peers ?? 0;
    P.capacity = {
      target: plan.peers,
      attempted: target,
      fdLimited: target < plan.peers,
      serverIdleFds: idleFds,
      registered,
      openConnections: open,
      failed: a.failed + b.failed,
      errorSamples: [...a.errorSamples, ...b.errorSamples].slice(0, 3),
      unexpectedCloses: sa.unexpectedCloses + sb.unexpectedCloses,
      pingsReceived: sa.pings + sb.pings,
      minPingsPerPeer: Math.min(sa.minPings, sb.minPings),
      registerSeconds,
      rssBeforeBytes: rssBefore,
      rssAfterBytes: rssAfter,
      serverFdLimit: reg.fdLimit,
    };
    m.peersHeld = Math.min(open, registered);
    m.refillSeconds = Number(registerSeconds.toFixed(1));
    m.refillPerSec = Math.round((a.held + b.held) / registerSeconds);
    m.serverRssMb = Math.round(rssAfter / 2 ** 20);
    m.rssBytesPerPeer = m.peersHeld > 0 ? Math.round((rssAfter - rssBefore) / m.peersHeld) : null;
    log(
      `peersHeld ${m.peersHeld}, RSS ${m.serverRssMb} MB (+${Math.round((rssAfter - rssBefore) / 2 ** 20)} MB, ` +
        `${m.rssBytesPerPeer} B/peer), min pings per peer ${P.capacity.minPingsPerPeer}`,
    );
    await Promise.all([w0.call('release', {}, 20_000), w1.call('release', {}, 20_000)]);
    for (let i = 0; i < 100 && (await healthz(reg.operatorSocket))?.body?.peers !== 0; i += 1) await sleep(50);
  }

  async function churnPhase(reg) {
    // 5. Churn: peers join and leave while subscribers listen; every view must match a fresh list.
    const subs = await w1.call(
      'subscribe',
      { port: reg.port, count: plan.subscribers, localAddresses: addresses(70, 1) },
      30_000,
    );
    const { result: churn, cpu } = await w0.measured(
      'churn',
      {
        port: reg.port,
        concurrency: plan.churnConcurrency,
        durationMs: plan.churnMs,
        maxCycles: plan.churnMaxCycles,
        poolSize: plan.churnPool,
        prefix: 'ch-',
        localAddresses: addresses(50, 20),
      },
      phaseTimeout(plan.churnMs + plan.churnPool),
      { server: reg.pid, churners: w0.pid, subscribers: w1.pid },
    );
    await sleep(1_000); // several EventBatchMs: let the last batch arrive
    const views = await w1.call('verifyViews', { port: reg.port, localAddresses: addresses(70, 1) }, 30_000);
    const expectedPerSub = churn.joins + churn.leaves;
    const windowSeconds = (views.lastEventAt - churn.startedAt) / 1000;
    P.churn = { ...churn, cpu, subscribers: subs.subscribers, ...views, expectedEventsPerSubscriber: expectedPerSub };
    m.churnEventsPerSec = windowSeconds > 0 ? Math.round(views.events / windowSeconds) : 0;
    m.churnLost = views.lost + views.dropped;
    m.churnEventsMissing = Math.max(0, expectedPerSub * subs.subscribers - views.events);
    log(
      `churn: ${churn.joins} joins/${churn.leaves} leaves, ${views.events} events to ${subs.subscribers} subscribers ` +
        `(${m.churnEventsPerSec}/s), lost ${m.churnLost}, missing events ${m.churnEventsMissing}`,
    );
  }

  // What the phases that start servers of their own (non-reader, touch) take from this run.
  const ownServers = {
    mode: opts.mode,
    server: opts.server,
    tempRoot,
    serverCpu: SERVER_CPU,
    nofile: NOFILE,
    lifetimeSeconds,
    freePort,
    log,
  };
  if (want('nonreader') && opts.profile === null) {
    const out = await nonReaderPhase(ownServers);
    Object.assign(m, out.metrics);
    P.nonReader = out.phase;
  }

  if (want('claims') && (opts.profile === null || opts.profile === 'claims')) {
    const lent = { registerArgs, registerTimeout, windowMs: plan.windowMs, cleanWindows, mergedPercentiles, perCpu };
    await claimsPhase({
      mode: opts.mode,
      tempRoot,
      startRegistry,
      stopChild,
      worker: w0,
      addresses,
      log,
      metrics: m,
      phases: P,
      serverWarnings,
      profile: opts.profile === 'claims',
      ...lent,
    });
  }

  if (want('touch') && opts.profile === null) {
    const out = await touchPhase({ ...ownServers, w0, w1, addresses });
    Object.assign(m, out.metrics);
    P.touch = out.phase;
  }

  await Promise.all([w0.stop(), w1.stop()]);
  if (want('fan-out')) {
    const startWorker = (name) => Worker.start(name, 'phases/fan-out-worker.mjs');
    await fanOutPhase({
      mode: opts.mode,
      startRegistry,
      startWorker,
      stopChild,
      log,
      metrics: m,
      phases: P,
      addresses,
      serverWarnings,
    });
  }
  results.durationSeconds = Number(elapsed());
  results.machine.loadAvgAtEnd = loadavg().map((x) => Number(x.toFixed(2)));

  if (opts.profile !== null) {
    writeFileSync(join(BENCH_DIR, 'profiles', `${opts.profile}.results.json`), `${JSON.stringify(results, null, 2)}\n`);
    const names = opts.profile === 'claims' ? ['claims-none', 'claims-shipped', 'claims-immediate'] : [opts.profile];
    for (const name of names)
      process.stdout.write(
        `== ${name}\n${summarizeProfile(join(BENCH_DIR, 'profiles', `${name}.cpuprofile`), { top: 30 })}\n`,
      );
    return;
  }
  results.targets = Object.fromEntries(
    TARGETS.filter(([name]) => m[name] !== undefined).map(([name, test, text]) => [
      name,
      { value: m[name], target: text, met: test(m[name]) },
    ]),
  );
  printTable(results);
  if (opts.only !== null || opts.set.length > 0) {
    // A partial or tweaked run is an experiment: keep it away from results.json and the chart.
    writeFileSync(join(BENCH_DIR, 'results-partial.json'), `${JSON.stringify(results, null, 2)}\n`);
    log(`wrote bench/results-partial.json in ${results.durationSeconds}s`);
    return;
  }
  writeFileSync(join(BENCH_DIR, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const chartName = opts.mode === 'smoke' ? 'chart-smoke.svg' : 'chart.svg';
  writeFileSync(join(BENCH_DIR, chartName), renderChart(results));
  log(`wrote bench/results.json and bench/${chartName} in ${results.durationSeconds}s`);
}

function printTable(results) {
  const m = results.metrics;
  const P = results.phases;
  const cores = (phase) => {
    if (!phase?.cpu) return '';
    const load = phase.cpu.client ?? phase.cpu.churners;
    const flags = [];
    if (load >= CLIENT_BOUND_CPU) flags.push('load CPU near its core: a lower bound');
    if (phase.cpu.foreign >= BUSY_HOST_CPU) flags.push('other work on the host');
    return (
      `CPU: server ${phase.cpu.server} / load ${load} / other ` +
      `${phase.cpu.foreign}${flags.length > 0 ? ` (${flags.join('; ')})` : ''}`
    );
  };
  const check = (ok) => (ok ? 'ok' : 'MISSED');
  const capNote = P.capacity?.fdLimited
    ? `; the server's hard fd limit (${P.capacity.serverFdLimit}) allows ${P.capacity.attempted}: ` +
      `${m.peersHeld === P.capacity.attempted ? 'all held' : 'not all held'}`
    : '';
  const rows = [
    ['verifyPerSec', m.verifyPerSec, '', `one thread, sync loop; ${m.verifyPerCpuSecond} per CPU-second`],
    ['echoBaselinePerSec', m.echoBaselinePerSec, '', cores(P.echo)],
    ['lookupsPerSec', m.lookupsPerSec, '', cores(P.lookup)],
    [
      'lookupVsEcho',
      m.lookupVsEcho,
      '>= 0.7',
      `${check(results.targets.lookupVsEcho?.met)}; per server CPU-second ${m.lookupVsEchoPerCpu}`,
    ],
    [
      'echoUnpipelinedPerSec',
      m.echoUnpipelinedPerSec,
      '',
      `${plan.unpipelinedConns} conns x 1 in flight; ${cores(P.echoUnpipelined)}`,
    ],
    [
      'lookupsUnpipelinedPerSec',
      m.lookupsUnpipelinedPerSec,
      '',
      `vs echo ${m.lookupVsEchoUnpipelined ?? 'n/a'}; ${cores(P.lookupUnpipelined)}`,
    ],
    [
      'echoCorkedPerSec',
      m.echoCorkedPerSec,
      '',
      `echo that gathers a tick's replies into one write; ${cores(P.echoCorked)}`,
    ],
    [
      'connectCycleBaselinePerSec',
      m.connectCycleBaselinePerSec,
      '',
      `echo: connect+hello+request+reply+close; ${cores(P.echoCycle)}`,
    ],
    [
      'registryCyclePerSec',
      m.registryCyclePerSec,
      '',
      `the same cycle against the registry, lookup instead of register; ${cores(P.registryCycle)}`,
    ],
    ['registrationsPerSec', m.registrationsPerSec, '', cores(P.registration)],
    [
      'registrationVsVerify',
      m.registrationVsVerify,
      '>= 0.5',
      `${check(results.targets.registrationVsVerify?.met)}; per CPU-second ${m.registrationVsVerifyPerCpu}`,
    ],
    [
      'registrationVsCeiling',
      m.registrationVsCeiling,
      '',
      `per server CPU-second, ceiling 1/(1/cycle + 1/verify) = ${m.registrationCeilingPerSec}/s`,
    ],
    ['lookupP50Ms', m.lookupP50Ms, '', `open loop at ${m.lookupLatencyRatePerSec}/s`],
    ['lookupP99Ms', m.lookupP99Ms, '', `open loop at ${m.lookupLatencyRatePerSec}/s`],
    [
      'peersHeld',
      m.peersHeld,
      `${plan.peers}`,
      `${check(m.peersHeld >= plan.peers)}${capNote}; every peer answered >= ${P.capacity?.minPingsPerPeer} pings`,
    ],
    ['serverRssMb', m.serverRssMb, '< 400', check(results.targets.serverRssMb?.met)],
    ['rssBytesPerPeer', m.rssBytesPerPeer, '', 'server RSS growth / peersHeld'],
    [
      'refillSeconds',
      m.refillSeconds,
      '',
      `all of them registered from an empty table, ${2 * plan.holdConcurrency} at a time, connections kept: ` +
        `${m.refillPerSec}/s (a restart's reconnect storm)`,
    ],
    [
      'echoRssBytesPerConnection',
      m.echoRssBytesPerConnection,
      '',
      'bare ws server, idle connections (memory baseline)',
    ],
    ['churnEventsPerSec', m.churnEventsPerSec, '', cores(P.churn)],
    [
      'churnLost',
      m.churnLost,
      '= 0',
      `${check(results.targets.churnLost?.met)}; events missing ${m.churnEventsMissing}`,
    ],
    [
      'nonReaderPeakRssMb',
      m.nonReaderPeakRssMb,
      '',
      `non-readers asking for pages: baseline ${m.nonReaderBaselineRssMb} MB, MaxOutputBytes ` +
        `${m.nonReaderOutputBoundMb} MiB, ${m.nonReaderAttackersClosed} closed; honest pages ` +
        `${m.nonReaderHonestPages} (failed ${m.nonReaderHonestFailures}, p99 ${m.nonReaderHonestP99Ms} ms)`,
    ],
    ...fanOutRows(m, P),
    ...claimsRows(m, P, cores),
    ...metricsRows(m, results.targets),
    [
      'touchStallMaxMs',
      m.touchStallMaxMs,
      '',
      `longest event-loop stall while the touch of every live key writes ${m.touchStallPeers} claims ` +
        `(SQLite; other work ${m.touchStallOtherCores} cores); all touches ${m.touchStallAllMaxMs} ms, ` +
        `none ${m.touchStallIdleMaxMs} ms`,
    ],
  ].filter((row) => row[1] !== undefined);
  process.stdout.write(formatTable(rows));
}

main().then(
  () => {
    cleanup();
    process.exit(0);
  },
  (err) => {
    log(`failed: ${err?.stack ?? err}`);
    cleanup();
    process.exit(1);
  },
);
