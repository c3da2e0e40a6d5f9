/**
 * What the operator sees of a running server, read from its parts: /healthz's state, the stats
 * (tests and the bench), and the Prometheus metrics (metrics/registry-metrics.ts).
 */
import { join } from 'node:path';
import { DESCRIPTOR_UPLOADED_FILE, RegistryMetrics } from '../metrics/registry-metrics.js';
import type { RequestCounts } from '../metrics/request-counts.js';
import type { ClusterRoster } from './cluster/cluster-roster.js';
import type { Config } from './config/config.js';
import type { OpenConnections } from './connection/open-connections.js';
import type { OutputBudget } from './connection/output-budget.js';
import { HOSTNAME_FILE, type OnionWatcher } from './onion-watcher.js';
import type { HealthState } from './operator-listener.js';
import type { ClaimKeeper } from './registry/claim-keeper.js';
import type { EventHub } from './registry/event-hub.js';
import type { PeerTable } from './registry/peer-table.js';
import type { PeerOwner } from './registry/roster.js';
import type { RegistryStats } from './start-server.js';
import type { SummaryLine } from './summary-line.js';

export interface ObservedParts {
  readonly counts: RequestCounts;
  readonly summary: SummaryLine;
  readonly hub: EventHub;
  readonly claims: ClaimKeeper;
  readonly watcher: OnionWatcher;
  readonly cluster: ClusterRoster | null;
  readonly connections: OpenConnections;
  readonly peers: PeerTable<PeerOwner>;
  readonly output: OutputBudget;
}

export function observers(
  config: Config,
  parts: ObservedParts,
): { health: () => HealthState; stats: () => RegistryStats; metrics: RegistryMetrics } {
  const { connections, peers, hub, output, watcher, cluster, claims, summary } = parts;
  const health = (): HealthState => ({
    onion: watcher.address,
    peers: peers.size,
    ...(cluster === null ? {} : { cluster: cluster.status() }),
  });
  const stats = (): RegistryStats => ({
    connections: connections.size,
    pending: connections.pending,
    peers: peers.size,
    subscribers: hub.subscriberCount,
    outputBytes: output.total,
  });
  const metrics = new RegistryMetrics({
    gauges: stats,
    maxOutputBytes: config.limits.maxOutputBytes,
    requests: parts.counts,
    refusals: summary.totals,
    closes: summary.closes,
    events: hub,
    store: { writable: () => claims.storeWritable, claimsHeld: () => claims.claimsHeld, commits: () => claims.commits },
    onionKnown: () => watcher.address !== null,
    hostnameFile: join(config.hiddenServiceDir, HOSTNAME_FILE),
    descriptorFile: join(config.hiddenServiceDir, DESCRIPTOR_UPLOADED_FILE),
    cluster: cluster === null ? null : () => cluster.metrics(),
    localPeers: () => countLocal(connections, peers),
  });
  return { health, stats, metrics };
}

/** Registrations made through this instance (a cluster's table also holds the others'). */
function countLocal(connections: OpenConnections, peers: PeerTable<PeerOwner>): number {
  let local = 0;
  for (const conn of connections.values()) if (peers.registrationOf(conn) !== undefined) local += 1;
  return local;
}
