/**
 * Bench phase `metrics`: what serving the Prometheus metrics costs the lookup throughput. On the
 * lookup phase's server (1,000 peers registered, its operator socket in the run's temp dir):
 *
 *  1. scrape cost: the server's CPU time per GET /metrics, from its /proc counters over a run of
 *     sequential scrapes while it is otherwise idle; at one scrape a second (what the phase's
 *     scraper does; Prometheus's default is one every 15 s) that CPU is the share of a core the
 *     scrapes take from lookups;
 *  2. lookups with and without a scraper polling /metrics every second, alternated over `rounds`
 *     pairs (the order flips each round): the median ratio of lookups per server CPU-second (the
 *     server's core is shared with whatever else the host runs; per CPU-second is what the server
 *     itself got done). The host's own noise (bench/README.md: up to 20% between runs, a few %
 *     between windows) is larger than the effect, so (1) is the number the 1% budget is checked
 *     against, and (2) shows that nothing else moved.
 */
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSeconds } from '../lib/procs.mjs';

/** The target (run.mjs TARGETS): scrapes every second take under 1% of the server's core. */
export const METRICS_TARGETS = [['metricsScrapeShareOfCore', (v) => v < 0.01, '< 0.01']];

function scrape(socketPath) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/metrics', timeout: 5_000 }, (res) => {
      let bytes = 0;
      res.on('data', (chunk) => (bytes += chunk.length));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(bytes) : reject(new Error(`/metrics answered ${res.statusCode}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error('/metrics: no answer in 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/** Scrapes every `everyMs` until stopped; counts scrapes and failures. */
function startScraper(socketPath, everyMs) {
  const state = { scrapes: 0, failures: 0, stopped: false };
  const done = (async () => {
    while (!state.stopped) {
      const started = Date.now();
      await scrape(socketPath).then(
        () => (state.scrapes += 1),
        () => (state.failures += 1),
      );
      await sleep(Math.max(0, everyMs - (Date.now() - started)));
    }
  })();
  return {
    state,
    stop: async () => {
      state.stopped = true;
      await done;
    },
  };
}

/**
 * Runs the phase; `measure()` runs one lookup measurement on the server and resolves with its
 * { perSec, perCpuSecond }. Returns the phase's record (results.json) and the metrics it adds.
 */
export async function metricsPhase({ reg, measure, rounds, scrapes, everyMs = 1_000, log }) {
  await scrape(reg.operatorSocket); // the first scrape builds what later ones reuse
  const cpuBefore = cpuSeconds(reg.pid);
  let bytes = 0;
  const started = performance.now();
  for (let i = 0; i < scrapes; i += 1) bytes = await scrape(reg.operatorSocket);
  const wallMs = performance.now() - started;
  const cpuMsPerScrape = ((cpuSeconds(reg.pid) - cpuBefore) * 1000) / scrapes;
  const scrapeShareOfCore = cpuMsPerScrape / 1000; // at one scrape a second
  log(
    `metrics: ${scrapes} scrapes of ${bytes} B, ${cpuMsPerScrape.toFixed(2)} ms of server CPU each ` +
      `(${(wallMs / scrapes).toFixed(2)} ms wall): ${(scrapeShareOfCore * 100).toFixed(2)}% of a core at one ` +
      `scrape a second`,
  );
  const pairs = [];
  for (let round = 0; round < rounds; round += 1) {
    const order = round % 2 === 0 ? ['without', 'with'] : ['with', 'without'];
    const pair = {};
    for (const mode of order) {
      const scraper = mode === 'with' ? startScraper(reg.operatorSocket, everyMs) : null;
      pair[mode] = await measure();
      await scraper?.stop();
      if (scraper !== null) pair.scrapes = scraper.state.scrapes;
      if (scraper !== null && scraper.state.failures > 0) throw new Error(`${scraper.state.failures} scrapes failed`);
    }
    pair.ratio = pair.with.perCpuSecond / pair.without.perCpuSecond;
    pairs.push(pair);
    log(
      `metrics: lookups ${Math.round(pair.without.perSec)}/s (${pair.without.perCpuSecond} per server CPU-second) ` +
        `without a scraper, ${Math.round(pair.with.perSec)}/s (${pair.with.perCpuSecond}) with one every second ` +
        `(${pair.scrapes} scrapes): ${(pair.ratio * 100).toFixed(1)}% per CPU-second`,
    );
  }
  const ratios = pairs.map((p) => p.ratio).sort((a, b) => a - b);
  const medianRatio = ratios[Math.floor((ratios.length - 1) / 2)];
  return {
    phase: { scrapes, bytesPerScrape: bytes, cpuMsPerScrape, wallMsPerScrape: wallMs / scrapes, pairs },
    metrics: {
      metricsScrapeBytes: bytes,
      metricsScrapeCpuMs: Math.round(cpuMsPerScrape * 100) / 100,
      metricsScrapeShareOfCore: Math.round(scrapeShareOfCore * 10_000) / 10_000,
      lookupWithScraperVsWithout: Math.round(medianRatio * 1000) / 1000,
    },
  };
}

export function metricsRows(m, targets) {
  if (m.metricsScrapeCpuMs === undefined) return [];
  const ok = targets.metricsScrapeShareOfCore?.met ? 'ok' : 'MISSED';
  return [
    [
      'metricsScrapeShareOfCore',
      m.metricsScrapeShareOfCore,
      '< 0.01',
      `${ok}; ${m.metricsScrapeCpuMs} ms of server CPU per GET /metrics (${m.metricsScrapeBytes} B), at one ` +
        `scrape a second`,
    ],
    [
      'lookupWithScraperVsWithout',
      m.lookupWithScraperVsWithout,
      '',
      'lookups per server CPU-second with a scraper every second / without: median of alternated pairs (the host ' +
        'moves more than this)',
    ],
  ];
}
