/**
 * Bench phase `claims`: what durable nickname claims (the SQLite claim store) cost a registration,
 * next to the same server without them, in one run.
 *
 * Three servers, one after the other, each fresh on the server CPU with the bench's config:
 *  - `none`      (c) the baseline: bench/phases/claims-server.mjs, which is `p2p-registry serve`
 *                with a claim store that keeps nothing injected through StartOptions.openStore
 *                (the claim keeper and everything else as shipped; ClaimAfterSeconds 600);
 *  - `shipped`   (a) the built CLI as shipped: ClaimAfterSeconds 600 (a registration is checked
 *                against the claims and its key's last-seen touched), the database on disk;
 *  - `immediate` (b) the built CLI with ClaimAfterSeconds 0: every registration writes its claim
 *                (synchronous=FULL, group commit) before `registered` names it.
 * (a) and (b) each start on their own copy of one database pre-loaded with `preload` claims
 * (100,000 in the full plan; see preloadClaims) before the server starts; those rows' keys are
 * random 44-byte DERs (the store checks only that the key id is their SHA-256), their addresses
 * valid v3 onions, their last-seen spread over the last 29 days.
 *
 * Each server gets the `register` load of run.mjs's register phase (64 at a time, a new connection
 * each, closed after `registered`; registrations per server CPU-second from the cleanest window),
 * then an open-loop `pacedRegister` at half of the baseline's rate (latency from when a
 * registration was due to `registered`, pooled over the cleanest windows). Ratios (a)/(c) and
 * (b)/(c) per server CPU-second: the issue's target is >= 0.9.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import { onionAddressFromPublicKey } from '../../server/dist/protocol/onion-address.js';
import { keyIdOf } from '../../server/dist/store/claim-store.js';
import { openSqliteClaimStore } from '../../server/dist/store/sqlite/sqlite-store.js';
import { ratio } from '../lib/measure.mjs';

const PHASE_DIR = dirname(fileURLToPath(import.meta.url));

const PLANS = {
  full: { preload: 100_000, pacedPool: 3_000, pacedWarmupMs: 1_000, pacedMs: 5_000 },
  smoke: { preload: 10_000, pacedPool: 600, pacedWarmupMs: 300, pacedMs: 1_000 },
};

/** Registrations per server CPU-second with claims / without: [metric, test, as text] (merged into TARGETS). */
export const CLAIMS_TARGETS = [
  ['claimsShippedVsNone', (v) => v >= 0.9, '>= 0.9'],
  ['claimsImmediateVsNone', (v) => v >= 0.9, '>= 0.9'],
];

const VARIANTS = [
  {
    key: 'none',
    name: 'ClaimsNone',
    what: '(c) same server, store that keeps nothing',
    claimAfterSeconds: 600,
    script: join(PHASE_DIR, 'claims-server.mjs'),
    preloaded: false,
  },
  {
    key: 'shipped',
    name: 'ClaimsShipped',
    what: '(a) as shipped, ClaimAfterSeconds 600',
    claimAfterSeconds: 600,
    preloaded: true,
  },
  {
    key: 'immediate',
    name: 'ClaimsImmediate',
    what: '(b) ClaimAfterSeconds 0, every claim durable before registered',
    claimAfterSeconds: 0,
    preloaded: true,
  },
];

/**
 * Writes `count` claims into a new database at `path`: the store creates and migrates the file
 * (openSqliteClaimStore), the rows go in with one INSERT per claim in one transaction (the store's
 * own upsert, one claim per turn, takes ~10 times longer), and the store then reads them back
 * through its row checks (claim-row.ts). Returns the seconds it took.
 */
export async function preloadClaims(path, count) {
  const t0 = performance.now();
  await (await openSqliteClaimStore({ path, claimDays: 30 })).close();
  const db = new DatabaseSync(path);
  try {
    const insert = db.prepare(
      `INSERT INTO claims (key_id, public_key, nickname, nickname_key, address, address_verified, claimed_at,
        last_seen_at, expires_at)
       VALUES (?, ?, ?, lower(?), ?, 0, ?, ?, ?)`,
    );
    const now = Date.now();
    db.exec('BEGIN');
    for (let i = 0; i < count; i += 1) {
      const der = randomBytes(44);
      // Ages spread over the last 30 days, as in a registry that has run for a while.
      const lastSeen = now - Math.floor(Math.random() * 29 * 86_400_000);
      insert.run(
        keyIdOf(der),
        der,
        `pre${i}`,
        `pre${i}`,
        onionAddressFromPublicKey(randomBytes(32)),
        lastSeen - 86_400_000,
        lastSeen,
        lastSeen + 30 * 86_400_000,
      );
    }
    db.exec('COMMIT');
  } finally {
    db.close();
  }
  const store = await openSqliteClaimStore({ path, claimDays: 30 });
  try {
    const page = await store.list({ limit: 1000 });
    const last = await store.getByNickname(`pre${count - 1}`);
    if (page.claims.length !== Math.min(1000, count) || last === null)
      throw new Error('preload: the store does not read the rows back');
  } finally {
    await store.close();
  }
  return (performance.now() - t0) / 1000;
}

function countClaims(path) {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return Number(db.prepare('SELECT count(*) AS n FROM claims').get().n);
  } finally {
    db.close();
  }
}

/**
 * Runs the phase. `ctx` is what run.mjs lends it: { mode, tempRoot, startRegistry, stopChild,
 * worker, registerArgs, registerTimeout, addresses, windowMs, cleanWindows, mergedPercentiles,
 * perCpu, log, metrics, phases, serverWarnings, profile }. With `profile`, every server runs
 * under --cpu-prof (bench/profiles/claims-<variant>.cpuprofile).
 */
export async function claimsPhase(ctx) {
  const plan = PLANS[ctx.mode] ?? PLANS.full;
  const { log, metrics: m, phases: P, worker: w } = ctx;
  const dir = join(ctx.tempRoot, 'claims');
  mkdirSync(dir, { recursive: true });
  const template = join(dir, 'preloaded.db');
  const preloadSeconds = await preloadClaims(template, plan.preload);
  if (existsSync(`${template}-wal`)) throw new Error('preload: the WAL was not checkpointed on close');
  log(`claims: ${plan.preload} claims written into ${template} through the store in ${preloadSeconds.toFixed(1)}s`);
  P.claims = { plan, preloaded: plan.preload, preloadSeconds: Number(preloadSeconds.toFixed(2)), variants: {} };
  m.claimsPreloaded = plan.preload;

  let pacedRate = null;
  for (const v of VARIANTS) {
    const database = join(dir, `${v.key}.db`);
    if (v.preloaded) copyFileSync(template, database);
    const reg = await ctx.startRegistry(`claims-${v.key}`, 30, ctx.profile ? `claims-${v.key}.cpuprofile` : null, {
      database,
      claimAfterSeconds: v.claimAfterSeconds,
      ...(v.script ? { script: v.script } : {}),
    });
    const pids = { server: reg.pid, client: w.pid };
    try {
      const thr = await w.measured(
        'register',
        { ...ctx.registerArgs(reg.port), prefix: `${v.key.slice(0, 2)}t-` },
        ctx.registerTimeout,
        pids,
      );
      const perSec = Math.round(thr.chosen.perSec);
      const perCpuSecond = ctx.perCpu(thr.chosen.perSec, thr.cpu);
      if (pacedRate === null) pacedRate = Math.max(50, Math.round(perSec / 2));
      const paced = await w.measured(
        'pacedRegister',
        {
          port: reg.port,
          rate: pacedRate,
          warmupMs: plan.pacedWarmupMs,
          durationMs: plan.pacedMs,
          windowMs: ctx.windowMs,
          poolSize: plan.pacedPool,
          prefix: `${v.key.slice(0, 2)}p-`,
          localAddresses: ctx.addresses(10, 20),
        },
        plan.pacedWarmupMs + plan.pacedMs + 40_000,
        pids,
      );
      const clean = ctx.cleanWindows(paced.result.windows, paced.result.windowCpus);
      const pct = ctx.mergedPercentiles(
        clean.map((x) => x.histogram),
        [50, 99],
      );
      for (const x of paced.result.windows) delete x.histogram;
      await ctx.stopChild(reg.child, 10_000);
      const rowsAfter = v.preloaded ? countClaims(database) : null;
      P.claims.variants[v.key] = {
        what: v.what,
        claimAfterSeconds: v.claimAfterSeconds,
        throughput: {
          ...thr.result,
          cpu: thr.cpu,
          chosen: {
            window: thr.chosen.index,
            of: thr.chosen.windows,
            perSec: thr.chosen.perSec,
            medianPerSec: thr.chosen.medianPerSec,
          },
        },
        paced: {
          ...paced.result,
          cpu: clean[0]?.cpu ?? paced.cpu,
          chosen: {
            windows: clean.map((x) => x.index),
            of: paced.result.windows.length,
            p50Ms: pct[50],
            p99Ms: pct[99],
          },
        },
        rowsAfter,
        warnings: ctx.serverWarnings(reg.child).slice(0, 10),
      };
      m[`${lower(v.name)}PerSec`] = perSec;
      m[`${lower(v.name)}PerServerCpuSecond`] = perCpuSecond;
      m[`${lower(v.name)}RegisterP50Ms`] = round(pct[50]);
      m[`${lower(v.name)}RegisterP99Ms`] = round(pct[99]);
      m.claimsPacedRatePerSec = pacedRate;
      log(
        `claims ${v.key} ${v.what}: ${perSec}/s, ${perCpuSecond} per server CPU-second (cpu ` +
          `${JSON.stringify(thr.cpu)}, errors ${thr.result.errors}); ` +
          `paced at ${pacedRate}/s: p50 ${round(pct[50])} ms, p99 ${round(pct[99])} ms over ${clean.length} of ` +
          `${paced.result.windows.length} windows ` +
          `(cpu ${JSON.stringify(clean[0]?.cpu)}; answered ${paced.result.answered}, overload ` +
          `${paced.result.overload}, errors ${paced.result.errors})` +
          (rowsAfter === null ? '' : `; claims in the database afterwards ${rowsAfter}`),
      );
      for (const [name, r] of [
        ['register', thr.result],
        ['pacedRegister', paced.result],
      ])
        if (r.errors > 0) log(`claims ${v.key} ${name} errors: ${r.errorSamples.join(' | ')}`);
    } finally {
      await ctx.stopChild(reg.child, 10_000);
    }
  }
  m.claimsShippedVsNone = ratio(m.claimsShippedPerServerCpuSecond, m.claimsNonePerServerCpuSecond);
  m.claimsImmediateVsNone = ratio(m.claimsImmediatePerServerCpuSecond, m.claimsNonePerServerCpuSecond);
  log(
    `claims: per server CPU-second, shipped/none ${m.claimsShippedVsNone}, immediate/none ${m.claimsImmediateVsNone}`,
  );
}

/** The phase's rows of the table: [metric, value, target, note]. */
export function claimsRows(m, P, cores) {
  const c = P.claims;
  if (c === undefined) return [];
  const ok = (v) => (v >= 0.9 ? 'ok' : 'MISSED');
  const row = (key, name) => {
    const v = c.variants[key];
    if (v === undefined) return [];
    const l = lower(name);
    return [
      [
        `${l}PerSec`,
        m[`${l}PerSec`],
        '',
        `${v.what}: ${m[`${l}PerServerCpuSecond`]} per server CPU-second; paced at ${m.claimsPacedRatePerSec}/s: ` +
          `register p50 ${m[`${l}RegisterP50Ms`]} / p99 ${m[`${l}RegisterP99Ms`]} ms; ${cores(v.throughput)}`,
      ],
    ];
  };
  return [
    ...row('none', 'ClaimsNone'),
    ...row('shipped', 'ClaimsShipped'),
    ...row('immediate', 'ClaimsImmediate'),
    [
      'claimsShippedVsNone',
      m.claimsShippedVsNone,
      '>= 0.9',
      `${ok(m.claimsShippedVsNone)}; per server CPU-second, ${m.claimsPreloaded} claims in the database`,
    ],
    [
      'claimsImmediateVsNone',
      m.claimsImmediateVsNone,
      '>= 0.9',
      `${ok(m.claimsImmediateVsNone)}; per server CPU-second, ${m.claimsPreloaded} claims in the database`,
    ],
  ];
}

const lower = (name) => name[0].toLowerCase() + name.slice(1);
const round = (ms) => (ms === null || ms === undefined ? null : Number(ms.toFixed(2)));
