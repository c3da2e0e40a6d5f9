/**
 * The bench's fan-out phase: does delivering events to many subscribers starve requests?
 *
 * A fresh registry; `subscribers` connections that subscribe and read (each applies every event to
 * a `list` taken after `subscribed`); an honest pinger (`pingConns` connections x `pingRps`, open
 * loop). The pinger is measured twice in one run: first with the subscribers connected but no
 * events (the baseline), then while `churners` peers each alternate register / unregister at
 * `churnRps` requests a second, inside the default request budget (20/s): ~2 x churners x churnRps / 2
 * events a second to every subscriber. Afterwards every subscriber's view must equal a fresh `list`
 * and none may have been cut off. The load runs in three processes of bench/phases/fan-out-worker.mjs
 * on the load CPU; the subscribers (by far the busiest) are niced so that the churners and the
 * pinger, which stands for one honest peer, get their share of that core.
 */
import { setPriority } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSeconds, machineCpu } from '../lib/procs.mjs';

const PLANS = {
  full: {
    subscribers: 2_000,
    churners: 20,
    churnRps: 19,
    pingConns: 5,
    pingRps: 10,
    warmupMs: 1_000,
    baselineMs: 5_000,
    fanOutMs: 10_000,
  },
  smoke: {
    subscribers: 200,
    churners: 10,
    churnRps: 19,
    pingConns: 2,
    pingRps: 10,
    warmupMs: 300,
    baselineMs: 1_000,
    fanOutMs: 1_500,
  },
};

/** The targets for this phase: [metric, test, as text] (merged into run.mjs's TARGETS). */
export const FAN_OUT_TARGETS = [
  ['fanOutPingP99Ms', (v) => v < 100, '< 100'],
  ['fanOutCutOff', (v) => v === 0, '= 0'],
  ['fanOutLost', (v) => v === 0, '= 0'],
];

/**
 * Runs the phase. `ctx` is what run.mjs lends it: { mode, startRegistry, startWorker, stopChild,
 * log, metrics, phases, addresses, serverWarnings }.
 */
export async function fanOutPhase(ctx) {
  const plan = PLANS[ctx.mode] ?? PLANS.full;
  const { log, metrics: m, phases: P } = ctx;
  const reg = await ctx.startRegistry('fan-out', 30);
  const [subs, churn, pinger] = await Promise.all([
    ctx.startWorker('fan-out-subs'),
    ctx.startWorker('fan-out-churn'),
    ctx.startWorker('fan-out-ping'),
  ]);
  try {
    setPriority(subs.pid, 19);
    const subscribed = await subs.call(
      'subscribe',
      { port: reg.port, count: plan.subscribers, localAddresses: ctx.addresses(80, 8) },
      60_000,
    );
    const pingArgs = (durationMs) => ({
      port: reg.port,
      conns: plan.pingConns,
      perConnRps: plan.pingRps,
      warmupMs: plan.warmupMs,
      durationMs,
      localAddresses: ctx.addresses(90, 1),
    });
    const pingTimeout = (durationMs) => plan.warmupMs + durationMs + 15_000;

    const baseline = await pinger.call('ping', pingArgs(plan.baselineMs), pingTimeout(plan.baselineMs));
    const pids = { server: reg.pid, subscribers: subs.pid, churners: churn.pid, pinger: pinger.pid };
    const cpuBefore = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
    const machineBefore = machineCpu().busy;
    const t0 = performance.now();
    const churnMs = plan.warmupMs + plan.fanOutMs + 500;
    const [churned, loaded] = await Promise.all([
      churn.call(
        'churn',
        {
          port: reg.port,
          peers: plan.churners,
          perPeerRps: plan.churnRps,
          durationMs: churnMs,
          prefix: 'fo-',
          localAddresses: ctx.addresses(91, 1),
        },
        churnMs + 20_000,
      ),
      pinger.call('ping', pingArgs(plan.fanOutMs), pingTimeout(plan.fanOutMs)),
    ]);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = Object.fromEntries(
      Object.entries(pids).map(([name, pid]) => [
        name,
        Number(((cpuSeconds(pid) - cpuBefore[name]) / seconds).toFixed(2)),
      ]),
    );
    // Other work on the host during the phase (its busy CPU minus ours): it delays the pinger too.
    const ours = Object.values(cpu).reduce((a, b) => a + b, 0);
    cpu.foreign = Number(Math.max(0, (machineCpu().busy - machineBefore) / seconds - ours).toFixed(2));
    const serverCpu = cpu.server;
    await sleep(500); // several EventBatchMs: the last batch
    const views = await subs.call('verify', { port: reg.port, localAddresses: ctx.addresses(90, 1) }, 30_000);

    const events = 2 * churned.joins; // each join, then its leave (an unregister or the final close)
    P.fanOut = {
      plan,
      subscribed,
      baseline,
      loaded,
      churn: churned,
      views,
      cpu,
      serverCpu,
      warnings: ctx.serverWarnings(reg.child).slice(0, 10),
    };
    m.fanOutSubscribers = views.subscribers;
    m.fanOutEventsPerSec = Math.round(events / seconds);
    m.fanOutDeliveriesPerSec = Math.round((events * views.subscribers) / seconds);
    m.fanOutServerCpu = P.fanOut.serverCpu;
    m.fanOutBaselinePingP99Ms = round(baseline.clean.p99Ms);
    m.fanOutPingP50Ms = round(loaded.clean.p50Ms);
    m.fanOutPingP99Ms = round(loaded.clean.p99Ms);
    m.fanOutPingP99AllMs = round(loaded.p99Ms);
    m.fanOutCutOff = views.cutOff;
    m.fanOutLost = views.mismatched + (views.minEvents === events ? 0 : 1);
    log(
      `fan-out: ${views.subscribers} subscribers, ${m.fanOutEventsPerSec} events/s (${m.fanOutDeliveriesPerSec} ` +
        `deliveries/s); CPU ${JSON.stringify(cpu)}; ` +
        `ping p99 ${m.fanOutPingP99Ms} ms (baseline without fan-out ${m.fanOutBaselinePingP99Ms} ms; all pings ` +
        `${m.fanOutPingP99AllMs} ms, ${loaded.clouded} clouded by the pinger's own stalls); ` +
        `cut off ${views.cutOff}, views differing ${views.mismatched}, fewest events ${views.minEvents} of ${events}`,
    );
  } finally {
    await Promise.all([subs.stop(), churn.stop(), pinger.stop()]);
    await ctx.stopChild(reg.child, 10_000);
  }
}

/** The phase's rows of the table: [metric, value, target, note]. */
export function fanOutRows(m, P) {
  const ok = (met) => (met ? 'ok' : 'MISSED');
  const f = P.fanOut;
  if (f === undefined) return [];
  return [
    [
      'fanOutEventsPerSec',
      m.fanOutEventsPerSec,
      '',
      `${m.fanOutSubscribers} subscribers that read: ${m.fanOutDeliveriesPerSec} frames/s delivered; CPU: server ` +
        `${m.fanOutServerCpu} / subscribers ${f.cpu.subscribers} / churners ${f.cpu.churners} / pinger ` +
        `${f.cpu.pinger} / other ${f.cpu.foreign}${f.cpu.foreign >= 0.25 ? ' (other work on the host)' : ''}`,
    ],
    [
      'fanOutPingP99Ms',
      m.fanOutPingP99Ms,
      '< 100',
      `${ok(m.fanOutPingP99Ms < 100)}; same pinger without fan-out ${m.fanOutBaselinePingP99Ms} ms; p50 ` +
        `${m.fanOutPingP50Ms} ms; all pings ${m.fanOutPingP99AllMs} ms`,
    ],
    [
      'fanOutCutOff',
      m.fanOutCutOff,
      '= 0',
      `${ok(m.fanOutCutOff === 0)}; subscribers whose view differs from a fresh list: ${f.views.mismatched}`,
    ],
  ];
}

const round = (ms) => (ms === null ? null : Number(ms.toFixed(2)));
