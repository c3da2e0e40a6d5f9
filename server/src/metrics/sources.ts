/**
 * What the metrics read, and only when Prometheus scrapes: the parts' own plain counts and sizes
 * (start-server.ts gathers them). Nothing here is a nickname, a key or an onion address.
 */
import type { CommitStats } from './latency-histogram.js';
import type { RequestCounts } from './request-counts.js';

export interface ClusterMetrics {
  readonly databaseReachable: boolean;
  /** The last presence log event applied here, and the log's head as last read. */
  readonly applied: number;
  readonly head: number;
  /** How long this instance has been behind the head (0 when caught up). */
  readonly lagSeconds: number;
  /** Seconds since the lease was last renewed (-1 before the first renewal), and the lease's length. */
  readonly leaseAgeSeconds: number;
  readonly leaseSeconds: number;
  readonly resyncs: number;
}

export interface GaugeSnapshot {
  readonly connections: number;
  readonly pending: number;
  readonly peers: number;
  readonly subscribers: number;
  readonly outputBytes: number;
}

export interface MetricSources {
  readonly gauges: () => GaugeSnapshot;
  readonly maxOutputBytes: number;
  readonly requests: RequestCounts;
  /** The summary line's totals since the start: refusals by kind and reason, closes by close code. */
  readonly refusals: Readonly<Record<'connections' | 'closed' | 'requests', ReadonlyMap<string, number>>>;
  readonly closes: ReadonlyMap<number, number>;
  readonly events: { readonly published: number; readonly deliveries: number; readonly deliveredBytes: number };
  readonly store: {
    readonly writable: () => boolean;
    readonly claimsHeld: () => number;
    readonly commits: () => CommitStats | undefined;
  };
  /** Whether the onion address is known, and the path of tor's `hostname` file (its age is read at scrape). */
  readonly onionKnown: () => boolean;
  readonly hostnameFile: string;
  /** Where the tor container records its last descriptor upload (tor/tor-control.pl: seconds since the epoch). */
  readonly descriptorFile: string;
  /** A cluster instance's numbers, and how many of the peers it holds itself; null on a single host. */
  readonly cluster: (() => ClusterMetrics) | null;
  readonly localPeers: () => number;
}
