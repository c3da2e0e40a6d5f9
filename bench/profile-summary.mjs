/**
 * Reads a V8 .cpuprofile (from `node --cpu-prof`) and prints where the time went: self time by
 * function, inclusive time by function (each sample counted once per function on its stack), and
 * self time by area (our server code, ws, pino, node internals, GC, idle).
 *   node bench/profile-summary.mjs bench/profiles/lookup.cpuprofile [top] [--from S] [--to S] [--timeline]
 * --from/--to keep the samples between S seconds after the profile's start (a phase of a longer
 * run: bench-cluster --profile profiles each instance over every phase); --timeline prints the busy
 * time of every 5 s of the profile first, to find the phases.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function area(url, name) {
  if (name === '(garbage collector)') return 'gc';
  if (name === '(idle)') return 'idle';
  if (name === '(program)' || name === '(root)') return 'native/program';
  if (url.includes('/server/dist/')) return 'server (ours)';
  if (url.includes('/node_modules/ws/')) return 'ws';
  if (url.includes('/node_modules/pino')) return 'pino';
  if (url.includes('/node_modules/')) return 'other deps';
  if (url.startsWith('node:')) return 'node internals';
  if (url === '') return 'native/builtins';
  return 'other';
}

function shortUrl(url) {
  const at = url.search(/(server\/dist|node_modules)\//);
  return at >= 0 ? url.slice(at) : url;
}

export function summarizeProfile(file, { top = 25, fromS = 0, toS = Number.POSITIVE_INFINITY, timeline = false } = {}) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map();
  const parent = new Map();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const keyOf = (node) => {
    const f = node.callFrame;
    return `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
  };
  const self = new Map();
  const inclusive = new Map();
  const areas = new Map();
  let total = 0;
  let at = 0;
  const buckets = [];
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    at += dt;
    const node = byId.get(id);
    const bucket = Math.floor(at / 5e6);
    if (node.callFrame.functionName !== '(idle)') buckets[bucket] = (buckets[bucket] ?? 0) + dt;
    if (at < fromS * 1e6 || at > toS * 1e6) return;
    total += dt;
    const key = keyOf(node);
    self.set(key, (self.get(key) ?? 0) + dt);
    const a = area(node.callFrame.url, node.callFrame.functionName);
    areas.set(a, (areas.get(a) ?? 0) + dt);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = keyOf(byId.get(cur));
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
  });
  const idle = areas.get('idle') ?? 0;
  const busy = total - idle;
  const pct = (us) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const rows = (map, n, filter = () => true) =>
    [...map.entries()]
      .filter(([k]) => filter(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `  ${pct(us)}  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`)
      .join('\n');
  const interesting = (k) => !/^\((root|program|idle|garbage collector)\)/.test(k);
  const busyByBucket = [...buckets]
    .map((us, i) => {
      const span = `${String(i * 5).padStart(4)}-${String(i * 5 + 5).padEnd(4)} s`;
      return `  ${span} ${((us ?? 0) / 1000).toFixed(0).padStart(5)} ms busy`;
    })
    .join('\n');
  const window = fromS > 0 || Number.isFinite(toS) ? ` (${fromS}-${toS} s)` : '';
  const sampled = `${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy`;
  return [
    ...(timeline ? ['busy time per 5 s of the profile:', busyByBucket] : []),
    `${file}${window}: ${sampled} (percentages are of busy time)`,
    'self time by area:',
    rows(areas, 20),
    `self time, top ${top}:`,
    rows(self, top),
    `inclusive time, top ${top} (excluding root/program/idle/gc):`,
    rows(inclusive, top, interesting),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node bench/profile-summary.mjs <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const args = process.argv.slice(3);
  const option = (name) => {
    const at = args.indexOf(name);
    return at < 0 ? undefined : Number(args[at + 1]);
  };
  const top = args[0] !== undefined && !args[0].startsWith('--') ? Number(args[0]) : 25;
  const summary = summarizeProfile(file, {
    top,
    fromS: option('--from') ?? 0,
    toS: option('--to') ?? Number.POSITIVE_INFINITY,
    timeline: args.includes('--timeline'),
  });
  process.stdout.write(`${summary}\n`);
}
