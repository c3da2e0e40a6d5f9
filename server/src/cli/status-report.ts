/**
 * What `p2p-registry status` shows, built from the operator socket's /healthz and two scrapes of
 * its /metrics taken `window` seconds apart: counts per minute come from their difference, latency
 * quantiles from the histograms' difference (since the start when nothing happened in the window).
 */
import { registryUrl } from '../protocol/onion-address.js';
import { histogramQuantile, type Scrape } from './prometheus-text.js';

export interface HealthBody {
  readonly status?: string;
  readonly onion?: string | null;
  readonly peers?: number;
  readonly uptimeSeconds?: number;
  readonly cluster?: {
    readonly instance: string;
    readonly database: string;
    readonly applied: number;
    readonly frontend: string | null;
    readonly housekeeping: string;
  };
}

export interface Latency {
  readonly count: number;
  readonly p50Seconds: number | null;
  readonly p99Seconds: number | null;
}

export interface StatusReport {
  readonly time: string;
  readonly status: string;
  readonly url: string | null;
  readonly uptimeSeconds: number | null;
  readonly version: string | null;
  readonly peers: number | null;
  readonly connections: number | null;
  readonly pending: number | null;
  readonly subscribers: number | null;
  readonly outputQueuedBytes: number | null;
  readonly outputLimitBytes: number | null;
  readonly hostnameAgeSeconds: number | null;
  readonly descriptorUploadedSecondsAgo: number | null;
  readonly store: {
    readonly writable: boolean | null;
    readonly claimsHeld: number | null;
    readonly commitFailures: number | null;
    readonly commit: Latency;
  };
  /** Per minute over `windowSeconds`. */
  readonly windowSeconds: number;
  readonly requestsPerMinute: Record<string, { ok: number; error: number }>;
  readonly registrationsPerMinute: Record<string, number>;
  readonly refusalsPerMinute: Record<string, Record<string, number>>;
  readonly latency: Record<'register' | 'lookup' | 'list', Latency>;
  readonly cluster: {
    readonly instance: string;
    readonly database: string;
    readonly frontend: string | null;
    readonly housekeeping: string;
    readonly localPeers: number | null;
    readonly applied: number | null;
    readonly head: number | null;
    readonly lagEvents: number | null;
    readonly lagSeconds: number | null;
    readonly leaseAgeSeconds: number | null;
    readonly leaseSeconds: number | null;
    readonly resyncs: number | null;
  } | null;
}

/** Per-minute rate of a counter between two scrapes (a restart in between counts from zero). */
function perMinute(before: number | null, after: number | null, windowSeconds: number): number {
  if (after === null) return 0;
  const delta = before === null || after < before ? after : after - before;
  return windowSeconds <= 0 ? 0 : Math.round((delta * 600) / windowSeconds) / 10;
}

function byLabel(
  now: Scrape,
  then: Scrape,
  name: string,
  label: string,
  windowSeconds: number,
  filter: Readonly<Record<string, string>> = {},
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const sample of now.all(name, filter)) {
    const key = sample.labels[label] ?? '';
    const rate = perMinute(then.value(name, { ...filter, [label]: key }), sample.value, windowSeconds);
    if (rate > 0) out[key] = rate;
  }
  return out;
}

/** Quantiles of the histogram `name` (matching `labels`) over the window, else since the start. */
function latencyOf(now: Scrape, then: Scrape, name: string, labels: Readonly<Record<string, string>>): Latency {
  const buckets = (scrape: Scrape): Array<[number, number]> =>
    scrape.all(`${name}_bucket`, labels).map((s) => [Number(s.labels.le), s.value]);
  const current = buckets(now);
  const earlier = new Map(buckets(then));
  const windowed = current.map(([le, count]): [number, number] => [le, count - (earlier.get(le) ?? 0)]);
  const windowCount = windowed.reduce((max, [, count]) => Math.max(max, count), 0);
  const use = windowCount > 0 ? windowed : current;
  const count = use.reduce((max, [, c]) => Math.max(max, c), 0);
  return { count, p50Seconds: histogramQuantile(0.5, use), p99Seconds: histogramQuantile(0.99, use) };
}

export function buildReport(health: HealthBody, now: Scrape, then: Scrape, port: number): StatusReport {
  const windowSeconds = Math.max(0, (now.at - then.at) / 1000);
  const v = (name: string, labels: Readonly<Record<string, string>> = {}): number | null => now.value(name, labels);
  const requestsPerMinute: StatusReport['requestsPerMinute'] = {};
  for (const sample of now.all('registry_requests_total', { result: 'ok' })) {
    const type = sample.labels.type ?? '';
    const ok = perMinute(then.value('registry_requests_total', { type, result: 'ok' }), sample.value, windowSeconds);
    const errorNow = now.value('registry_requests_total', { type, result: 'error' });
    const error = perMinute(then.value('registry_requests_total', { type, result: 'error' }), errorNow, windowSeconds);
    requestsPerMinute[type] = { ok, error };
  }
  const refusalsPerMinute: StatusReport['refusalsPerMinute'] = {};
  for (const kind of ['connections', 'closed', 'requests'])
    refusalsPerMinute[kind] = byLabel(now, then, 'registry_refusals_total', 'reason', windowSeconds, { kind });
  const uploaded = v('registry_onion_descriptor_upload_timestamp_seconds');
  const master = health.cluster?.frontend ?? null;
  const onion = master ?? health.onion ?? null;
  return {
    time: new Date(now.at).toISOString(),
    status: health.status ?? 'unknown',
    url: onion === null ? null : registryUrl(onion, port),
    uptimeSeconds: health.uptimeSeconds ?? null,
    version: now.all('registry_build_info')[0]?.labels.version ?? null,
    peers: v('registry_peers'),
    connections: v('registry_connections'),
    pending: v('registry_connections_pending'),
    subscribers: v('registry_subscribers'),
    outputQueuedBytes: v('registry_output_queued_bytes'),
    outputLimitBytes: v('registry_output_limit_bytes'),
    hostnameAgeSeconds: v('registry_onion_hostname_age_seconds'),
    descriptorUploadedSecondsAgo: uploaded === null ? null : Math.max(0, Math.round(now.at / 1000 - uploaded)),
    store: {
      writable: v('registry_store_up') === null ? null : v('registry_store_up') === 1,
      claimsHeld: v('registry_claims_held'),
      commitFailures: v('registry_store_commit_failures_total'),
      commit: latencyOf(now, then, 'registry_store_commit_duration_seconds', {}),
    },
    windowSeconds,
    requestsPerMinute,
    registrationsPerMinute: byLabel(now, then, 'registry_registrations_total', 'result', windowSeconds),
    refusalsPerMinute,
    latency: {
      register: latencyOf(now, then, 'registry_request_duration_seconds', { type: 'register' }),
      lookup: latencyOf(now, then, 'registry_request_duration_seconds', { type: 'lookup' }),
      list: latencyOf(now, then, 'registry_request_duration_seconds', { type: 'list' }),
    },
    cluster: clusterPart(health, now),
  };
}

function clusterPart(health: HealthBody, now: Scrape): StatusReport['cluster'] {
  const { cluster } = health;
  if (cluster === undefined) return null;
  const v = (name: string): number | null => now.value(name);
  return {
    instance: cluster.instance,
    database: cluster.database,
    frontend: cluster.frontend,
    housekeeping: cluster.housekeeping,
    localPeers: v('registry_cluster_local_peers'),
    applied: v('registry_cluster_log_applied_seq'),
    head: v('registry_cluster_log_head_seq'),
    lagEvents: v('registry_cluster_log_lag_events'),
    lagSeconds: v('registry_cluster_log_lag_seconds'),
    leaseAgeSeconds: v('registry_cluster_lease_age_seconds'),
    leaseSeconds: v('registry_cluster_lease_seconds'),
    resyncs: v('registry_cluster_resyncs_total'),
  };
}
