/**
 * The registry's metrics in Prometheus's text format (GET /metrics on the operator socket,
 * operator-listener.ts), with prom-client: its default process metrics (CPU, RSS, heap, GC, event
 * loop lag, open fds) and the registry's own, read from MetricSources when Prometheus scrapes.
 * Counting is the parts' plain increments (request-counts.ts, latency-histogram.ts): serving a
 * request never touches prom-client, whose labelled children hash their labels on every call.
 * Label values come from fixed sets only (request types, error codes, closing names, close codes).
 */
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import { LATENCY_BUCKETS, type LatencyHistogram } from './latency-histogram.js';
import { REQUEST_TYPES } from './request-counts.js';
import type { MetricSources } from './sources.js';

type Labels = Record<string, string>;
interface Sample {
  readonly value: number;
  readonly labels?: Labels;
  readonly metricName?: string;
}
type MetricType = 'counter' | 'gauge' | 'histogram';

/** The package's version, read once (server/package.json, beside dist/ and src/). */
const VERSION = (() => {
  try {
    const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
    return String((JSON.parse(text) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
})();

/** The tor container's record of its last descriptor upload, in HiddenServiceDir (tor/tor-control.pl). */
export const DESCRIPTOR_UPLOADED_FILE = 'descriptor-uploaded';

/** Where the memory limit of the container the server runs in is: cgroup v2, then v1. */
const CGROUP_MEMORY_LIMITS = ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'];
/** cgroup v1 says "no limit" with a number near 2^63. */
const NO_LIMIT_ABOVE = 2 ** 50;

async function memoryLimit(): Promise<number | null> {
  for (const file of CGROUP_MEMORY_LIMITS) {
    const text = await readFile(file, 'utf8').catch(() => null);
    if (text === null) continue;
    const limit = Number(text.trim()); // "max" (v2, no limit) is NaN
    return Number.isFinite(limit) && limit > 0 && limit < NO_LIMIT_ABOVE ? limit : null;
  }
  return null;
}

/** The protocol revision the server speaks (PROTOCOL.md: revision 2 of protocol 1). */
const PROTOCOL_REVISION = '2';

/**
 * prom-client's default process metrics, made once per process: they watch the process (a GC
 * observer, an event-loop delay histogram, neither of which can be stopped), not one server, and a
 * process that starts many servers (the tests) must not stack them up.
 */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class RegistryMetrics {
  readonly registry = new Registry();
  private readonly process = processMetrics();

  constructor(private readonly sources: MetricSources) {
    this.registerRegistryMetrics();
    this.registerTraffic();
    this.registerStoreAndOnion();
    if (sources.cluster !== null) this.registerCluster(sources.cluster);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition, as Prometheus reads it: the process's metrics, then the registry's. */
  async text(): Promise<string> {
    const [process, registry] = await Promise.all([this.process.metrics(), this.registry.metrics()]);
    return `${process}\n${registry}`;
  }

  private add(name: string, help: string, type: MetricType, values: () => Sample[] | Promise<Sample[]>): void {
    this.registry.registerMetric({
      name,
      help,
      type,
      aggregator: 'sum',
      get: async () => ({ name, help, type, aggregator: 'sum', values: await values() }),
    } as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  private registerRegistryMetrics(): void {
    const { gauges } = this.sources;
    this.add('registry_build_info', 'The running server: version, Node.js, protocol and its revision.', 'gauge', () => [
      {
        value: 1,
        labels: {
          version: VERSION,
          node: process.version,
          protocol: String(PROTOCOL_VERSION),
          revision: PROTOCOL_REVISION,
        },
      },
    ]);
    this.add(
      'registry_memory_limit_bytes',
      "The container's memory limit (cgroup v2 memory.max or v1 memory.limit_in_bytes; absent without one): compare " +
        'process_resident_memory_bytes.',
      'gauge',
      async () => {
        const limit = await memoryLimit();
        return limit === null ? [] : [{ value: limit }];
      },
    );
    this.add('registry_peers', 'Live registrations in the peer table (a cluster: of every instance).', 'gauge', () => [
      { value: gauges().peers },
    ]);
    this.add('registry_connections', 'Open WebSocket connections.', 'gauge', () => [{ value: gauges().connections }]);
    this.add(
      'registry_connections_pending',
      'Connections that have sent no valid request yet (MaxPendingConnections).',
      'gauge',
      () => [{ value: gauges().pending }],
    );
    this.add('registry_subscribers', 'Connections subscribed to peer_joined / peer_left.', 'gauge', () => [
      { value: gauges().subscribers },
    ]);
    this.add('registry_output_queued_bytes', 'Bytes queued for all connections, unread.', 'gauge', () => [
      { value: gauges().outputBytes },
    ]);
    this.add(
      'registry_output_limit_bytes',
      'MaxOutputBytes: the bound of registry_output_queued_bytes.',
      'gauge',
      () => [{ value: this.sources.maxOutputBytes }],
    );
  }

  private registerTraffic(): void {
    const { requests, refusals, closes, events } = this.sources;
    this.add('registry_requests_total', 'Requests answered, by type and result (ok or error).', 'counter', () =>
      REQUEST_TYPES.flatMap((type) => {
        const [ok, error] = requests.countsOf(type);
        return [
          { value: ok, labels: { type, result: 'ok' } },
          { value: error, labels: { type, result: 'error' } },
        ];
      }),
    );
    this.add(
      'registry_registrations_total',
      'Registrations by result: registered, or the error code.',
      'counter',
      () => [
        { value: requests.registered, labels: { result: 'registered' } },
        ...Object.entries(requests.registrationRefusals).map(([code, value]) => ({ value, labels: { result: code } })),
      ],
    );
    this.add(
      'registry_refusals_total',
      'Refusals as the summary line counts them: kind connections (sockets refused or evicted), closed (connections ' +
        'the server closed) or requests (error replies, added at close), by reason.',
      'counter',
      () =>
        (['connections', 'closed', 'requests'] as const).flatMap((kind) =>
          [...refusals[kind]].map(([reason, value]) => ({ value, labels: { kind, reason } })),
        ),
    );
    this.add('registry_connections_closed_total', 'Connections closed, by WebSocket close code.', 'counter', () =>
      [...closes].map(([code, value]) => ({ value, labels: { code: String(code) } })),
    );
    this.add('registry_events_published_total', 'peer_joined and peer_left events published.', 'counter', () => [
      { value: events.published },
    ]);
    this.add(
      'registry_event_deliveries_total',
      'Writes of events to subscribers (one carries a batch).',
      'counter',
      () => [{ value: events.deliveries }],
    );
    this.add('registry_event_delivered_bytes_total', 'Bytes of events written to subscribers.', 'counter', () => [
      { value: events.deliveredBytes },
    ]);
    this.add(
      'registry_request_duration_seconds',
      'From dispatch to reply: register (signature checks and the store included), lookup and list.',
      'histogram',
      () =>
        (['register', 'lookup', 'list'] as const).flatMap((type) =>
          histogramSamples('registry_request_duration_seconds', requests.durations[type], { type }),
        ),
    );
  }

  private registerStoreAndOnion(): void {
    const { store, onionKnown, hostnameFile, descriptorFile } = this.sources;
    this.add(
      'registry_store_up',
      '1 while the claim store can be written (its last write worked), else 0.',
      'gauge',
      () => [{ value: store.writable() ? 1 : 0 }],
    );
    this.add(
      'registry_claims_held',
      "Live registrations of this registry that hold their nickname's claim.",
      'gauge',
      () => [{ value: store.claimsHeld() }],
    );
    this.add(
      'registry_store_commit_duration_seconds',
      'Claim store commits (a batch or a transaction).',
      'histogram',
      () => {
        const commits = store.commits();
        return commits === undefined
          ? []
          : histogramSamples('registry_store_commit_duration_seconds', commits.latency, {});
      },
    );
    this.add('registry_store_commit_failures_total', 'Claim store commits that failed.', 'counter', () => [
      { value: store.commits()?.failures ?? 0 },
    ]);
    this.add(
      'registry_onion_known',
      "1 once the registry knows its onion address (tor's hostname file), else 0.",
      'gauge',
      () => [{ value: onionKnown() ? 1 : 0 }],
    );
    this.add(
      'registry_onion_hostname_age_seconds',
      'Seconds since tor wrote the hostname file (absent while there is none).',
      'gauge',
      async () => {
        const mtimeMs = await stat(hostnameFile).then(
          (s) => s.mtimeMs,
          () => null,
        );
        return mtimeMs === null ? [] : [{ value: Math.max(0, (Date.now() - mtimeMs) / 1000) }];
      },
    );
    this.add(
      'registry_onion_descriptor_upload_timestamp_seconds',
      "When a directory last accepted tor's descriptor of the onion (tor/tor-control.pl records it; absent until " +
        'the first).',
      'gauge',
      async () => {
        const uploaded = await readFile(descriptorFile, 'utf8').then(
          (text) => Number.parseInt(text, 10),
          () => Number.NaN,
        );
        return Number.isFinite(uploaded) ? [{ value: uploaded }] : [];
      },
    );
  }

  private registerCluster(cluster: () => import('./sources.js').ClusterMetrics): void {
    const gauge = (name: string, help: string, read: () => number): void =>
      this.add(name, help, 'gauge', () => [{ value: read() }]);
    gauge('registry_cluster_database_up', '1 while the lease renewals reach the shared database.', () =>
      cluster().databaseReachable ? 1 : 0,
    );
    gauge(
      'registry_cluster_log_applied_seq',
      'The last presence log event applied by this instance.',
      () => cluster().applied,
    );
    gauge(
      'registry_cluster_log_head_seq',
      "The presence log's head, as this instance last read it.",
      () => cluster().head,
    );
    gauge('registry_cluster_log_lag_events', 'Events of the presence log not yet applied here.', () => {
      const { head, applied } = cluster();
      return Math.max(0, head - applied);
    });
    gauge(
      'registry_cluster_log_lag_seconds',
      'How long this instance has been behind the log head (0 when caught up).',
      () => cluster().lagSeconds,
    );
    gauge(
      'registry_cluster_lease_age_seconds',
      "Seconds since this instance's lease was last renewed (-1 before the first).",
      () => cluster().leaseAgeSeconds,
    );
    gauge(
      'registry_cluster_lease_seconds',
      '[Store] LeaseSeconds: a lease older than this is lost.',
      () => cluster().leaseSeconds,
    );
    gauge('registry_cluster_local_peers', 'Peers registered through this instance.', this.sources.localPeers);
    this.add('registry_cluster_resyncs_total', 'Re-syncs of the replica from a snapshot.', 'counter', () => [
      { value: cluster().resyncs },
    ]);
  }
}

/** A histogram's _bucket (cumulative), _sum and _count samples. */
function histogramSamples(name: string, histogram: LatencyHistogram, labels: Labels): Sample[] {
  const samples: Sample[] = [];
  let cumulative = 0;
  for (let i = 0; i <= LATENCY_BUCKETS.length; i += 1) {
    cumulative += histogram.counts[i] as number;
    const le = i < LATENCY_BUCKETS.length ? String(LATENCY_BUCKETS[i]) : '+Inf';
    samples.push({ metricName: `${name}_bucket`, value: cumulative, labels: { ...labels, le } });
  }
  samples.push({ metricName: `${name}_sum`, value: histogram.sum, labels });
  samples.push({ metricName: `${name}_count`, value: histogram.count, labels });
  return samples;
}
