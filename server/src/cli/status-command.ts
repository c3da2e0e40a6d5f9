/**
 * `p2p-registry status [--config <path>] [--watch] [--json] [--interval <seconds>]`: one terminal
 * screen for an operator without Prometheus, from the operator socket's /healthz and /metrics
 * (status-report.ts). Counts per minute are measured over --interval (default 5 s): the command
 * scrapes, waits, scrapes again. --watch refreshes the screen every interval; --json prints the
 * report as one JSON object (one a line with --watch).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../server/config/config.js';
import { usageError } from './args.js';
import { fetchOperator } from './health-check.js';
import { parseMetrics, Scrape } from './prometheus-text.js';
import { buildReport, type HealthBody, type Latency, type StatusReport } from './status-report.js';

export interface StatusOptions {
  readonly watch: boolean;
  readonly json: boolean;
  readonly intervalSeconds: number;
  /** Where the screen goes (a test passes its own); stops a --watch when it returns false. */
  readonly write: (text: string) => boolean | undefined;
}

export function parseInterval(text: string | true | undefined): number {
  if (text === undefined) return 5;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds < 0.2 || seconds > 3600)
    throw usageError(`--interval ${String(text)} is not a number of seconds from 0.2 to 3600`);
  return seconds;
}

async function scrape(socket: string): Promise<Scrape> {
  const res = await fetchOperator(socket, '/metrics');
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${res.body.trim()}`);
  return new Scrape(parseMetrics(res.body), Date.now());
}

async function healthOf(socket: string): Promise<HealthBody> {
  const res = await fetchOperator(socket, '/healthz');
  try {
    return JSON.parse(res.body) as HealthBody;
  } catch {
    return { status: `unreadable /healthz (HTTP ${res.status})` };
  }
}

export async function status(configPath: string, options: StatusOptions): Promise<number> {
  const cfg = loadConfig(configPath);
  const socket = cfg.operatorSocket;
  if (socket === null) {
    process.stderr.write(
      'p2p-registry: no operator listener to ask: set [Host] OperatorSocket (or REGISTRY_HOST_OPERATORSOCKET) and ' +
        'restart the server\n',
    );
    return 1;
  }
  return runStatus(socket, cfg.hiddenServicePort, options);
}

/** The status of the server on `socket` (its onion's port: `port`), once or every interval. */
export async function runStatus(socket: string, port: number, options: StatusOptions): Promise<number> {
  try {
    let then = await scrape(socket);
    for (;;) {
      await sleep(options.intervalSeconds * 1000);
      const [health, now] = await Promise.all([healthOf(socket), scrape(socket)]);
      const report = buildReport(health, now, then, port);
      const text = options.json ? `${JSON.stringify(report)}\n` : renderStatus(report);
      const more = options.write(options.watch && !options.json ? `\x1b[H\x1b[2J${text}` : text);
      if (!options.watch || more === false) return report.status === 'ok' ? 0 : 1;
      then = now;
    }
  } catch (err) {
    process.stderr.write(
      `p2p-registry: the server does not answer on its operator socket ${socket}: ${(err as Error).message}; is it ` +
        `running with this config?\n`,
    );
    return 1;
  }
}

const fmt = {
  n: (value: number | null): string => (value === null ? '-' : String(Math.round(value * 10) / 10)),
  age: (seconds: number | null): string => {
    if (seconds === null || seconds < 0) return 'never';
    if (seconds < 120) return `${Math.round(seconds)} s`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
    return `${Math.round(seconds / 360) / 10} h`;
  },
  bytes: (value: number | null): string => {
    if (value === null) return '-';
    if (value < 1024 * 1024) return `${Math.round(value / 102.4) / 10} KiB`;
    return `${Math.round(value / (1024 * 102.4)) / 10} MiB`;
  },
  ms: (seconds: number | null): string => (seconds === null ? '-' : `${Math.round(seconds * 10_000) / 10} ms`),
  latency: (l: Latency): string => `p50 ${fmt.ms(l.p50Seconds)}, p99 ${fmt.ms(l.p99Seconds)} (${l.count})`,
  counts: (counts: Record<string, number>): string =>
    Object.keys(counts).length === 0
      ? 'none'
      : Object.entries(counts)
          .sort((a, b) => b[1] - a[1])
          .map(([key, n]) => `${key} ${n}`)
          .join(', '),
};

function requestsLine(requests: StatusReport['requestsPerMinute']): string {
  const used = Object.entries(requests).filter(([, c]) => c.ok + c.error > 0);
  if (used.length === 0) return 'none';
  return used
    .sort((a, b) => b[1].ok + b[1].error - (a[1].ok + a[1].error))
    .map(([type, c]) => `${type} ${c.ok + c.error}${c.error > 0 ? ` (${c.error} refused)` : ''}`)
    .join(', ');
}

export function renderStatus(r: StatusReport): string {
  const lines = [
    `p2p-registry status at ${r.time} (counts per minute over the last ${Math.round(r.windowSeconds)} s)`,
    `  status        ${r.status}, up ${fmt.age(r.uptimeSeconds)}, version ${r.version ?? '-'}`,
    `  onion         ${r.url ?? 'not known yet'}`,
    `  tor           hostname written ${fmt.age(r.hostnameAgeSeconds)} ago; descriptor last uploaded ` +
      (r.descriptorUploadedSecondsAgo === null
        ? 'never (or not recorded)'
        : `${fmt.age(r.descriptorUploadedSecondsAgo)} ago`),
    `  peers         ${fmt.n(r.peers)} live, ${fmt.n(r.subscribers)} subscribers`,
    `  connections   ${fmt.n(r.connections)} open, ${fmt.n(r.pending)} pending; output queued ` +
      `${fmt.bytes(r.outputQueuedBytes)} of ${fmt.bytes(r.outputLimitBytes)}`,
    `  store         ${r.store.writable === null ? '-' : r.store.writable ? 'writable' : 'NOT WRITABLE'}, ` +
      `${fmt.n(r.store.claimsHeld)} claims held, commits ${fmt.latency(r.store.commit)}, ` +
      `${fmt.n(r.store.commitFailures)} failed`,
    `  requests/min  ${requestsLine(r.requestsPerMinute)}`,
    `  registrations ${fmt.counts(r.registrationsPerMinute)}`,
    `  refused       connections: ${fmt.counts(r.refusalsPerMinute.connections ?? {})}`,
    `                closed: ${fmt.counts(r.refusalsPerMinute.closed ?? {})}`,
    `                requests: ${fmt.counts(r.refusalsPerMinute.requests ?? {})}`,
    `  latency       register ${fmt.latency(r.latency.register)}`,
    `                lookup ${fmt.latency(r.latency.lookup)}`,
    `                list ${fmt.latency(r.latency.list)}`,
  ];
  const c = r.cluster;
  if (c !== null)
    lines.push(
      `  cluster       instance ${c.instance}, database ${c.database}, housekeeping ${c.housekeeping}, ` +
        `${fmt.n(c.localPeers)} peers through this instance`,
      `                log applied ${fmt.n(c.applied)} of head ${fmt.n(c.head)}: ${fmt.n(c.lagEvents)} events, ` +
        `${fmt.n(c.lagSeconds)} s behind; lease renewed ${fmt.age(c.leaseAgeSeconds)} ago (lease ` +
        `${fmt.n(c.leaseSeconds)} s); ${fmt.n(c.resyncs)} re-syncs`,
    );
  return `${lines.join('\n')}\n`;
}
