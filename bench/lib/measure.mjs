/**
 * CPU readings and the choice of measurement window, shared by bench/run.mjs and bench/cluster.mjs
 * (bench/README.md, "Shared hosts").
 */
import { cpuSeconds, machineCpu } from './procs.mjs';

/**
 * A CPU reading of our processes and of the whole machine (other work on the host shows up as
 * "foreign"). Each entry of `pids` is a pid, or a function that returns CPU seconds (a process
 * tree, such as PostgreSQL's).
 */
export function snapshot(pids) {
  const procs = {};
  for (const [name, pid] of Object.entries(pids)) procs[name] = typeof pid === 'function' ? pid() : cpuSeconds(pid);
  return { t: performance.now(), machine: machineCpu(), procs };
}

export function cpuUse(start, end) {
  const seconds = (end.t - start.t) / 1000;
  const out = {};
  let ours = 0;
  for (const name of Object.keys(start.procs)) {
    const used = (end.procs[name] - start.procs[name]) / seconds;
    out[name] = Number(used.toFixed(2));
    if (Number.isFinite(used)) ours += used;
  }
  const machineBusy = (end.machine.busy - start.machine.busy) / seconds;
  out.foreign = Number(Math.max(0, machineBusy - ours).toFixed(2));
  return out;
}

/**
 * The window the table reports: among the windows in which other processes on the host used least
 * CPU (see cleanWindows), the one with the median rate (not the best one).
 */
export function cleanestWindow(windows, cpus) {
  const candidates = cleanWindows(windows, cpus).sort((a, b) => a.perSec - b.perSec);
  const all = windows.map((w) => w.perSec).sort((a, b) => a - b);
  return {
    ...candidates[Math.floor((candidates.length - 1) / 2)],
    windows: windows.length,
    medianPerSec: all[Math.floor((all.length - 1) / 2)],
  };
}

/** Every window whose foreign CPU is within 0.05 core of the least. */
export function cleanWindows(windows, cpus) {
  const foreign = windows.map((_, i) => cpus[i]?.foreign ?? Infinity);
  const least = Math.min(...foreign);
  return windows.map((w, i) => ({ ...w, cpu: cpus[i], index: i })).filter((w) => foreign[w.index] <= least + 0.05);
}

/** Percentiles (ms, 1% resolution) of merged latency histograms from load-worker's `paced`. */
export function mergedPercentiles(histograms, percentiles) {
  const counts = new Map();
  for (const histogram of histograms)
    for (const [bucket, n] of histogram) counts.set(bucket, (counts.get(bucket) ?? 0) + n);
  const buckets = [...counts.entries()].sort((a, b) => a[0] - b[0]);
  const total = buckets.reduce((sum, [, n]) => sum + n, 0);
  const out = {};
  for (const p of percentiles) {
    const rank = Math.ceil((p / 100) * total);
    let seen = 0;
    out[p] = null;
    for (const [bucket, n] of buckets) {
      seen += n;
      if (seen >= rank) {
        out[p] = 0.001 * 1.01 ** bucket; // the bucket's upper edge
        break;
      }
    }
  }
  return out;
}

/** What the results file keeps about the reported window. */
export function summary({ chosen }) {
  return chosen === undefined
    ? null
    : { window: chosen.index, of: chosen.windows, perSec: chosen.perSec, medianPerSec: chosen.medianPerSec };
}

/** Operations per CPU-second the server process (all threads) actually used: robust to other load on the host. */
export function perCpu(perSec, cpu) {
  return cpu?.server > 0 ? Math.round(perSec / cpu.server) : null;
}

/** a / b to three places, or null when either is missing. */
export function ratio(a, b) {
  return a > 0 && b > 0 ? Number((a / b).toFixed(3)) : null;
}
