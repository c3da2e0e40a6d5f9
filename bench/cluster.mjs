#!/usr/bin/env node
/**
 * `make bench-cluster` / `npm run bench:cluster`: the registry as a cluster (issue 13: several
 * instances sharing PostgreSQL), each figure next to a ceiling measured in the same run.
 *
 *   node bench/cluster.mjs            full run (~90 s), writes bench/results-cluster.json
 *   node bench/cluster.mjs --smoke    under 45 seconds, smaller numbers
 *   node bench/cluster.mjs --set key=value   override one plan entry (see PLANS)
 *   node bench/cluster.mjs --server <path/to/cli.js>   bench another build of the server
 *   node bench/cluster.mjs --profile  also write a V8 CPU profile of each instance and of the
 *                                     single host's registrations to bench/profiles/
 *
 * One PostgreSQL (test/support/postgres.ts: a throw-away cluster on a unix socket), three instances
 * of the built registry with `[Store] Database = postgres://…` (A, B, C), and a single-host
 * registry (SQLite) as the reference. The split of the 2-core machine (bench/README.md):
 * CPU 0 holds PostgreSQL, the three instances and the single-host server; CPU 1 the load (the
 * load workers of bench/load-worker.mjs, and pgbench). Phases:
 *   lookups      the lookup load of bench/run.mjs against each instance alone, in rounds, with the
 *                single-host server before, between and after them: per instance / single-host
 *   propagation  open-loop registrations on A at a steady rate; subscribers on B and on A time
 *                each `peer_joined` from the moment its `register` was sent; A's `registered` too
 *   registrations  64 at a time over A, B and C, each on a new connection closed after
 *                `registered` (its end is a leave): per second, beside pgbench running the same
 *                enter and leave statements (bench/phases/pgbench.mjs), the ceiling
 */
import { existsSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanWindows, mergedPercentiles, ratio } from './lib/measure.mjs';
import { closePools, createDatabase, startBenchPostgres, transactionsOf } from './lib/postgres.mjs';
import { CAN_PIN, stopChild } from './lib/procs.mjs';
import {
  addresses,
  BUILT_CLI,
  LOAD_CPU,
  NOFILE,
  SERVER_CPU,
  formatTable,
  launchRegistry,
  lookupPayloads,
  machineInfo,
  OK_LOOKUP,
  serverProvenance,
  serverWarnings,
} from './lib/registry.mjs';
import { startRun } from './lib/run-control.mjs';
import { Worker } from './lib/worker.mjs';
import { pgbenchCeiling } from './phases/pgbench.mjs';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const LOOKUP_TARGET = 0.9;
const REGISTRATION_TARGET = 0.8;

const PLANS = {
  full: {
    budgetMs: 170_000,
    windowMs: 1_000,
    lookupPeers: 1_000,
    conns: 128,
    inflight: 16,
    warmupMs: 1_500,
    measureMs: 5_000,
    lookupRounds: 2,
    propRate: 25,
    propWarmupMs: 1_000,
    propMs: 12_000,
    regConcurrency: 64,
    regPool: 4_000,
    regWarmupMs: 1_000,
    regMs: 6_000,
    pgbenchClients: 12,
    pgbenchSeconds: 5,
    eventBatchMs: 50,
  },
  smoke: {
    budgetMs: 45_000,
    windowMs: 500,
    lookupPeers: 200,
    conns: 64,
    inflight: 16,
    warmupMs: 300,
    measureMs: 1_000,
    lookupRounds: 1,
    propRate: 25,
    propWarmupMs: 300,
    propMs: 3_000,
    regConcurrency: 32,
    regPool: 600,
    regWarmupMs: 300,
    regMs: 1_500,
    pgbenchClients: 12,
    pgbenchSeconds: 2,
    eventBatchMs: 50,
  },
};

function parseArgs(argv) {
  const opts = { mode: 'full', server: BUILT_CLI, keepTemp: false, set: {} };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--smoke') opts.mode = 'smoke';
    else if (arg === '--server') opts.server = resolve(argv[++i] ?? '');
    else if (arg === '--keep-temp') opts.keepTemp = true;
    else if (arg === '--profile') opts.profile = true;
    else if (arg === '--set') {
      const [key, value] = (argv[++i] ?? '').split('=');
      if (!(key in PLANS.full) || !Number.isFinite(Number(value)))
        throw new Error(`--set ${key}=${value}: expected <plan key>=<number> (${Object.keys(PLANS.full).join(', ')})`);
      opts.set[key] = Number(value);
    } else throw new Error(`unknown argument ${arg} (see the top of bench/cluster.mjs)`);
  }
  if (!existsSync(opts.server))
    throw new Error(`${opts.server} does not exist: run \`npm run build\` first (or pass --server)`);
  return opts;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`bench-cluster: ${err.message}\n`);
  process.exit(2);
}
const plan = { ...PLANS[opts.mode], ...opts.set };
const run = startRun({
  budgetMs: plan.budgetMs,
  keepTemp: opts.keepTemp,
  tempPrefix: 'registry-bench-cluster-',
  name: 'bench-cluster',
});
const { log } = run;
/** With --profile: a V8 CPU profile of the whole run of each instance (bench/profiles/, bench/profile-summary.mjs). */
const profileName = (label) => (opts.profile === true ? `cluster-${label}.cpuprofile` : null);
const spawnOnLoad = { cpu: LOAD_CPU, nofile: NOFILE, lifetimeSeconds: run.lifetimeSeconds, log };
const onServerCpu = {
  tempRoot: run.tempRoot,
  server: opts.server,
  cpu: SERVER_CPU,
  nofile: NOFILE,
  lifetimeSeconds: run.lifetimeSeconds,
};
const round = (x, places = 2) => (x === null || x === undefined ? null : Number(x.toFixed(places)));

/**
 * The cleanest window of a measured throughput (bench/lib/measure.mjs), with the CPU of every process named in `pids`.
 */
async function lookupsOn(worker, label, port, pids) {
  const args = {
    port,
    conns: plan.conns,
    inflight: plan.inflight,
    warmupMs: plan.warmupMs,
    durationMs: plan.measureMs,
    windowMs: plan.windowMs,
    payloads: lookupPayloads(plan.lookupPeers),
    okPrefix: OK_LOOKUP,
    localAddresses: addresses(2, 4),
  };
  const { result, cpu, chosen } = await worker.measured(
    'throughput',
    args,
    plan.warmupMs + plan.measureMs + 30_000,
    pids,
  );
  if (result.errors > 0)
    throw new Error(`lookups on ${label}: ${result.errors} bad replies: ${result.errorSamples.join(' | ')}`);
  log(`lookups on ${label}: ${Math.round(chosen.perSec)}/s (cpu ${JSON.stringify(cpu)})`);
  return {
    perSec: Math.round(chosen.perSec),
    perServerCpuSecond: cpu?.server > 0 ? Math.round(chosen.perSec / cpu.server) : null,
    cpu,
    windows: result.windows.map((w) => Math.round(w.perSec)),
    windowCpus: result.windowCpus,
  };
}

async function lookupPhase(ctx) {
  const { single, instances, w0, w1, m, P, pgPids } = ctx;
  // The lookup peers: on the single-host server, and on instance C (A and B know them from the log).
  for (const [i, [label, port]] of [
    ['single', single.port],
    ['C', instances.C.port],
  ].entries()) {
    // `held` counts every connection the worker holds, so the second call holds twice as many.
    const held = await w1.call(
      'hold',
      {
        port,
        count: plan.lookupPeers,
        concurrency: 32,
        prefix: 'lk-',
        localAddresses: addresses(6, 2),
        timeoutMs: 30_000,
      },
      60_000,
    );
    if (held.held !== (i + 1) * plan.lookupPeers)
      throw new Error(`could not register the lookup peers on ${label}: ${JSON.stringify(held)}`);
  }
  await sleep(500);
  const on = (label, reg) => lookupsOn(w0, label, reg.port, { server: reg.pid, client: w0.pid, ...pgPids });
  // Rounds, the single host before, between and after them, the instances' order reversed every
  // other round: a host whose speed drifts over the phase (a 15% swing between two 6-second
  // measurements is common here) then weighs on every figure alike, and each figure is a mean.
  // Every server's first lookups run on code V8 has not optimised yet: each gets the same
  // unmeasured warm-up first, so that no figure carries a cold start the others do not.
  for (const reg of [single, instances.A, instances.B, instances.C]) {
    const warm = {
      port: reg.port,
      conns: plan.conns,
      inflight: plan.inflight,
      warmupMs: plan.warmupMs,
      durationMs: plan.warmupMs,
      windowMs: plan.warmupMs,
      payloads: lookupPayloads(plan.lookupPeers),
      okPrefix: OK_LOOKUP,
      localAddresses: addresses(2, 4),
    };
    await w0.call('throughput', warm, 2 * plan.warmupMs + 30_000);
  }
  const singles = [await on('single-host (before round 1)', single)];
  const rounds = { A: [], B: [], C: [] };
  for (let round = 1; round <= plan.lookupRounds; round += 1) {
    const order = round % 2 === 1 ? ['A', 'B', 'C'] : ['C', 'B', 'A'];
    for (const name of order) rounds[name].push(await on(`instance ${name} (round ${round})`, instances[name]));
    singles.push(await on(`single-host (after round ${round})`, single));
  }
  const mean = (runs, key) => Math.round(runs.reduce((sum, r) => sum + r[key], 0) / runs.length);
  const summary = (runs) => ({
    perSec: mean(runs, 'perSec'),
    perServerCpuSecond: mean(runs, 'perServerCpuSecond'),
    cpu: runs[runs.length - 1].cpu,
    runs,
  });
  const perInstance = Object.fromEntries(['A', 'B', 'C'].map((name) => [name, summary(rounds[name])]));
  const singleHost = summary(singles);
  const singlePerSec = singleHost.perSec;
  const singlePerCpu = singleHost.perServerCpuSecond;
  P.lookups = {
    single: singleHost,
    instances: perInstance,
    rounds: plan.lookupRounds,
    peers: plan.lookupPeers,
    peersHeldOn: 'C',
  };
  m.singleHostLookupsPerSec = singlePerSec;
  for (const name of ['A', 'B', 'C']) {
    m[`instance${name}LookupsPerSec`] = perInstance[name].perSec;
    m[`instance${name}LookupVsSingle`] = ratio(perInstance[name].perSec, singlePerSec);
  }
  // The target is judged per server CPU-second (the slowest instance): on a shared host the wall
  // rates move with other work (the `foreign` CPU); both ratios are kept.
  m.singleHostLookupsPerServerCpuSecond = singlePerCpu;
  m.clusterLookupVsSingle = ratio(
    Math.min(...['A', 'B', 'C'].map((n) => perInstance[n].perServerCpuSecond)),
    singlePerCpu,
  );
  m.clusterLookupVsSingleWall = ratio(Math.min(...['A', 'B', 'C'].map((n) => perInstance[n].perSec)), singlePerSec);
  await w1.call('release', {}, 20_000);
}

async function propagationPhase({ instances, w0, m, P, pgPids }) {
  const { A, B } = instances;
  const total = Math.ceil((plan.propRate * (plan.propWarmupMs + plan.propMs)) / 1000);
  const args = {
    port: A.port,
    rate: plan.propRate,
    warmupMs: plan.propWarmupMs,
    durationMs: plan.propMs,
    windowMs: plan.windowMs,
    poolSize: total + 200,
    prefix: 'pp-',
    localAddresses: addresses(10, 10),
    watchPorts: { B: B.port, A: A.port },
  };
  const { result } = await w0.measured('pacedRegister', args, plan.propWarmupMs + plan.propMs + 40_000, {
    server: A.pid,
    other: B.pid,
    client: w0.pid,
    ...pgPids,
  });
  const clean = cleanWindows(result.windows, result.windowCpus);
  const pct = (histograms) => {
    const p = mergedPercentiles(histograms, [50, 99]);
    return { p50: round(p[50]), p99: round(p[99]) };
  };
  const toB = pct(clean.map((w) => w.eventHistograms.B));
  const toA = pct(clean.map((w) => w.eventHistograms.A));
  const reply = pct(clean.map((w) => w.replyHistogram));
  const missing = result.windows.reduce((sum, w) => sum + w.missingEvents, 0);
  for (const w of result.windows) for (const key of ['histogram', 'replyHistogram', 'eventHistograms']) delete w[key];
  P.propagation = { ...result, rate: plan.propRate, cleanWindows: clean.map((w) => w.index), cpu: clean[0]?.cpu };
  Object.assign(m, {
    propagationRatePerSec: plan.propRate,
    propagationP50Ms: toB.p50,
    propagationP99Ms: toB.p99,
    sameInstanceEventP50Ms: toA.p50,
    sameInstanceEventP99Ms: toA.p99,
    registeredReplyP50Ms: reply.p50,
    registeredReplyP99Ms: reply.p99,
    propagationMissingEvents: missing,
  });
  log(
    `propagation at ${plan.propRate}/s: register on A -> peer_joined on B p50 ${toB.p50} / p99 ${toB.p99} ms; on A ` +
      `itself ${toA.p50} / ${toA.p99} ms; A's registered ${reply.p50} / ${reply.p99} ms; missing events ${missing}, ` +
      `errors ${result.errors} ${result.errorSamples.join(' | ')}`,
  );
}

/** load-worker's `register` load of both registration phases: the same plan, other ports and nicknames. */
function registrationLoad(ports, prefix) {
  return {
    ports,
    concurrency: plan.regConcurrency,
    warmupMs: plan.regWarmupMs,
    durationMs: plan.regMs,
    windowMs: plan.windowMs,
    poolSize: plan.regPool,
    prefix,
    localAddresses: addresses(10, 20),
  };
}

async function registrationPhase({ instances, w0, m, P, pgHandle, pgPids, databaseUrl }) {
  const args = registrationLoad(
    ['A', 'B', 'C'].map((n) => instances[n].port),
    'rg-',
  );
  const pids = { A: instances.A.pid, B: instances.B.pid, C: instances.C.pid, client: w0.pid, ...pgPids };
  const xactBefore = await transactionsOf(databaseUrl);
  const t0 = performance.now();
  const { result, cpu, chosen } = await w0.measured('register', args, plan.regWarmupMs + plan.regMs + 40_000, pids);
  const seconds = (performance.now() - t0) / 1000;
  await sleep(1_200); // the leaves of the last registrations, and PostgreSQL's statistics flush
  const xactAfter = await transactionsOf(databaseUrl);
  const spanRegistrations =
    result.windows.reduce((sum, w) => sum + w.done, 0) * ((plan.regWarmupMs + plan.regMs) / plan.regMs);
  const ceiling = await pgbenchCeiling({
    pgHandle,
    tempRoot: run.tempRoot,
    cpu: LOAD_CPU,
    clients: plan.pgbenchClients,
    seconds: plan.pgbenchSeconds,
    lifetimeSeconds: run.lifetimeSeconds,
    log,
  });
  const perSec = Math.round(chosen.perSec);
  P.registrations = {
    ...result,
    cpu,
    seconds,
    commits: xactAfter.commits - xactBefore.commits,
    rollbacks: xactAfter.rollbacks - xactBefore.rollbacks,
    pgbench: ceiling,
  };
  Object.assign(m, {
    clusterRegistrationsPerSec: perSec,
    pgbenchCyclesPerSec: Math.round(ceiling.cyclesPerSec),
    clusterRegistrationVsPgbench: ratio(perSec, ceiling.cyclesPerSec),
    clusterPostgresCpu: cpu?.postgres ?? null,
    pgbenchPostgresCpu: ceiling.postgresCpu,
    clusterRegistrationVsPgbenchPerPgCpu: ratio(
      cpu?.postgres > 0 ? perSec / cpu.postgres : null,
      ceiling.postgresCpu > 0 ? ceiling.cyclesPerSec / ceiling.postgresCpu : null,
    ),
    clusterCommitsPerRegistration:
      spanRegistrations > 0 ? round((xactAfter.commits - xactBefore.commits) / spanRegistrations, 1) : null,
  });
  log(
    `cluster registrations over A, B, C: ${perSec}/s (cpu ${JSON.stringify(cpu)}, errors ` +
      `${result.errors}${result.errors > 0 ? `: ${result.errorSamples.join(' | ')}` : ''}); pgbench ` +
      `${Math.round(ceiling.cyclesPerSec)}/s; ~${m.clusterCommitsPerRegistration} PostgreSQL commits per registration`,
  );
}

/**
 * The same registration load against a single host (SQLite), on the same CPU as the cluster's
 * instances and PostgreSQL: the reference of clusterVsSingleHostRegistrations. Then where each
 * registration's CPU went, per process, in both layouts (ms of CPU per registration).
 */
async function singleHostRegistrationPhase({ w0, m, P }) {
  const single = await launchRegistry(onServerCpu, 'single-registrations', 30, profileName('single-registrations'), {
    eventBatchMs: plan.eventBatchMs,
  });
  try {
    const args = registrationLoad([single.port], 'rs-');
    const pids = { single: single.pid, client: w0.pid };
    const { result, cpu, chosen } = await w0.measured('register', args, plan.regWarmupMs + plan.regMs + 40_000, pids);
    const perSec = Math.round(chosen.perSec);
    P.singleHostRegistrations = { ...result, cpu };
    const perRegistration = (cores, rate) =>
      Object.fromEntries(
        Object.entries(cores ?? {})
          .filter(([name]) => name !== 'client' && name !== 'foreign')
          .map(([name, used]) => [name, rate > 0 ? round((used / rate) * 1000, 3) : null]),
      );
    const cluster = perRegistration(P.registrations.cpu, m.clusterRegistrationsPerSec);
    const clusterTotal = Object.values(cluster).reduce((sum, ms) => sum + (ms ?? 0), 0);
    const singleMs = perRegistration(cpu, perSec);
    Object.assign(m, {
      singleHostRegistrationsPerSec: perSec,
      clusterVsSingleHostRegistrations: ratio(m.clusterRegistrationsPerSec, perSec),
      clusterServerCpuMsPerRegistration: round(clusterTotal, 3),
      singleHostServerCpuMsPerRegistration: singleMs.single ?? null,
    });
    P.cpuMsPerRegistration = { cluster, single: singleMs };
    log(
      `single-host registrations: ${perSec}/s (cpu ${JSON.stringify(cpu)}, errors ${result.errors}); server CPU per ` +
        `registration: cluster ${JSON.stringify(cluster)} = ${round(clusterTotal, 3)} ms, single host ` +
        `${singleMs.single} ms`,
    );
  } finally {
    await stopChild(single.child, 10_000);
  }
}

async function main() {
  const results = {
    mode: opts.mode,
    startedAt: new Date().toISOString(),
    server: serverProvenance(opts.server),
    machine: machineInfo(),
    plan,
    split: {
      serverCpu: SERVER_CPU,
      loadCpu: LOAD_CPU,
      onServerCpu: 'PostgreSQL (postmaster and every backend), instances A, B, C, the single-host server',
      onLoadCpu: 'the load workers, pgbench',
    },
    metrics: {},
    phases: {},
  };
  const m = results.metrics;
  const P = results.phases;
  const pinning = CAN_PIN
    ? `PostgreSQL and the registries on CPU ${SERVER_CPU}, load on CPU ${LOAD_CPU}`
    : 'taskset missing: processes are NOT pinned';
  log(`mode ${opts.mode}; ${pinning}`);
  const pgHandle = await startBenchPostgres({ cpu: SERVER_CPU, onCleanup: run.onCleanup });
  const pgPids = { postgres: pgHandle.cpuSeconds };
  const databaseUrl = await createDatabase(pgHandle, 'bench_cluster');
  const instances = {};
  for (const name of ['A', 'B', 'C'])
    instances[name] = await launchRegistry(onServerCpu, `instance-${name}`, 30, profileName(`instance-${name}`), {
      database: databaseUrl,
      eventBatchMs: plan.eventBatchMs,
    });
  const single = await launchRegistry(onServerCpu, 'single', 30, null, { eventBatchMs: plan.eventBatchMs });
  log(
    `PostgreSQL ${pgHandle.server.binDir} (postmaster ${pgHandle.postmasterPid}); instances on ports ${Object.values(
      instances,
    )
      .map((i) => i.port)
      .join(', ')}; single-host on ${single.port}`,
  );
  const [w0, w1] = [
    await Worker.start('load-0', 'load-worker.mjs', spawnOnLoad),
    await Worker.start('load-1', 'load-worker.mjs', spawnOnLoad),
  ];
  const ctx = { single, instances, w0, w1, m, P, pgHandle, pgPids, databaseUrl };
  await lookupPhase(ctx);
  await stopChild(single.child, 10_000);
  await propagationPhase(ctx);
  await registrationPhase(ctx);
  await singleHostRegistrationPhase(ctx);
  P.warnings = Object.fromEntries(
    [...Object.entries(instances), ['single', single]].map(([name, reg]) => [
      name,
      serverWarnings(reg.child).slice(0, 10),
    ]),
  );
  await Promise.all([w0.stop(), w1.stop()]);
  for (const reg of Object.values(instances)) await stopChild(reg.child, 10_000);
  await closePools();
  results.durationSeconds = Number(run.elapsed());
  results.machine.loadAvgAtEnd = loadavg().map((x) => Number(x.toFixed(2)));
  results.targets = {
    clusterLookupVsSingle: {
      value: m.clusterLookupVsSingle,
      target: `>= ${LOOKUP_TARGET}`,
      met: m.clusterLookupVsSingle >= LOOKUP_TARGET,
    },
    clusterVsSingleHostRegistrations: {
      value: m.clusterVsSingleHostRegistrations,
      target: `>= ${REGISTRATION_TARGET}`,
      met: m.clusterVsSingleHostRegistrations >= REGISTRATION_TARGET,
    },
  };
  process.stdout.write(tableOf(results));
  writeFileSync(join(BENCH_DIR, 'results-cluster.json'), `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote bench/results-cluster.json in ${results.durationSeconds}s`);
}

function tableOf(results) {
  const m = results.metrics;
  const P = results.phases;
  const cores = (cpu) =>
    cpu
      ? `CPU: ${Object.entries(cpu)
          .map(([k, v]) => `${k} ${v}`)
          .join(' / ')}`
      : '';
  const met = results.targets.clusterLookupVsSingle.met ? 'met' : 'MISSED';
  const reg = P.registrations;
  const rows = [
    [
      'singleHostLookupsPerSec',
      m.singleHostLookupsPerSec,
      '',
      `SQLite single host, mean of ${P.lookups.single.runs.length} runs ` +
        `(${P.lookups.single.runs.map((r) => r.perSec).join(', ')}) before, between and after ${P.lookups.rounds} ` +
        `round(s) of the instances; ${m.singleHostLookupsPerServerCpuSecond} per server CPU-second; ${plan.conns} ` +
        `conns x ${plan.inflight} in flight`,
    ],
    ...['A', 'B', 'C'].map((n) => [
      `instance${n}LookupsPerSec`,
      m[`instance${n}LookupsPerSec`],
      '',
      `vs single host ${m[`instance${n}LookupVsSingle`]}; mean of ` +
        `${P.lookups.instances[n].runs.map((r) => r.perSec).join(', ')}; ` +
        `${P.lookups.instances[n].perServerCpuSecond} per server CPU-second; last ${cores(P.lookups.instances[n].cpu)}`,
    ]),
    [
      'clusterLookupVsSingle',
      m.clusterLookupVsSingle,
      `>= ${LOOKUP_TARGET}`,
      `${met}: the slowest instance / single host, per server CPU-second (wall rates: ${m.clusterLookupVsSingleWall})`,
    ],
    [
      'propagationP50Ms',
      m.propagationP50Ms,
      '',
      `register sent on A -> peer_joined on B's subscriber, open loop at ${m.propagationRatePerSec}/s (EventBatchMs ` +
        `${plan.eventBatchMs}${plan.eventBatchMs === 50 ? ', the default,' : ''} included)`,
    ],
    [
      'propagationP99Ms',
      m.propagationP99Ms,
      '',
      `missing events ${m.propagationMissingEvents}; ${cores(P.propagation.cpu)}`,
    ],
    [
      'sameInstanceEventP50Ms',
      m.sameInstanceEventP50Ms,
      '',
      `the same registrations' peer_joined on A's own subscriber; p99 ${m.sameInstanceEventP99Ms} ms`,
    ],
    [
      'registeredReplyP50Ms',
      m.registeredReplyP50Ms,
      '',
      `A's registered, from sending register; p99 ${m.registeredReplyP99Ms} ms`,
    ],
    [
      'clusterRegistrationsPerSec',
      m.clusterRegistrationsPerSec,
      '',
      `${plan.regConcurrency} at a time over A, B, C; a new connection each, closed after registered (enter + ` +
        `leave); ${m.clusterCommitsPerRegistration} commits each; ${cores(reg.cpu)}`,
    ],
    [
      'pgbenchCyclesPerSec',
      m.pgbenchCyclesPerSec,
      '',
      `the ceiling: best pgbench -M extended run ` +
        `(${P.registrations.pgbench.runs.map((r) => `-c ${r.clients}: ${r.cyclesPerSec}/s`).join(', ')}), the same ` +
        `enter + leave transactions, random keys; PostgreSQL ${m.pgbenchPostgresCpu} core`,
    ],
    [
      'clusterRegistrationVsPgbench',
      m.clusterRegistrationVsPgbench,
      '',
      `cluster / pgbench; per PostgreSQL CPU-second ${m.clusterRegistrationVsPgbenchPerPgCpu}`,
    ],
    [
      'singleHostRegistrationsPerSec',
      m.singleHostRegistrationsPerSec,
      '',
      `the same load against one SQLite host on the same CPU; ${cores(P.singleHostRegistrations.cpu)}`,
    ],
    [
      'clusterVsSingleHostRegistrations',
      m.clusterVsSingleHostRegistrations,
      `>= ${REGISTRATION_TARGET}`,
      `${results.targets.clusterVsSingleHostRegistrations.met ? 'met' : 'MISSED'}: server CPU per registration, ms: ` +
        `cluster ${m.clusterServerCpuMsPerRegistration} (${Object.entries(P.cpuMsPerRegistration.cluster)
          .map(([k, v]) => `${k} ${v}`)
          .join(' / ')}), single host ${m.singleHostServerCpuMsPerRegistration}`,
    ],
  ];
  const note =
    `2 cores: CPU ${SERVER_CPU} = PostgreSQL + the three instances + the single-host server, CPU ` +
    `${LOAD_CPU} = load and pgbench; a production cluster gives each its own host, so the cluster figures here are a ` +
    `lower bound.`;
  return `${formatTable(rows)}${note}\n\n`;
}

main().then(
  () => {
    run.cleanup();
    process.exit(0);
  },
  (err) => {
    log(`failed: ${err?.stack ?? err}`);
    run.cleanup();
    process.exit(1);
  },
);
