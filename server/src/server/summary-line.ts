/**
 * The periodic summary line: registrations and refusals are counted, not logged one by one, so
 * that neither a flood of refused sockets nor a reconnect storm becomes a flood of log lines. One
 * line per interval ([Log] SummarySeconds) holds the registrations made, and the refusals by
 * reason: sockets refused or evicted before they became connections, connections the server
 * closed (by the name of their closing in refusals.ts), and error replies (by code, added when
 * their connection closes).
 */
import type { Logger } from './logger.js';

type Counts = Record<string, number>;

/** The refusals a summary line counts. */
export type RefusalKind = 'connections' | 'closed' | 'requests';

export class SummaryLine {
  private counts: Record<RefusalKind, Counts> = emptyCounts();
  private registrations = 0;
  private empty = true;
  private readonly timer: NodeJS.Timeout;
  /** Everything counted since the start, for the metrics (registry-metrics.ts): never reset. */
  readonly totals: Readonly<Record<RefusalKind, Map<string, number>>> = {
    connections: new Map(),
    closed: new Map(),
    requests: new Map(),
  };
  /** Connections closed since the start, by WebSocket close code (refusals or not). */
  readonly closes = new Map<number, number>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalSeconds: number,
  ) {
    this.timer = setInterval(() => this.flush(), intervalSeconds * 1000);
    this.timer.unref();
  }

  /** A registration was made (answered `registered`). */
  registered(): void {
    this.registrations += 1;
    this.empty = false;
  }

  count(kind: RefusalKind, reason: string, n = 1): void {
    if (n <= 0) return;
    const counts = this.counts[kind];
    counts[reason] = (counts[reason] ?? 0) + n;
    const totals = this.totals[kind];
    totals.set(reason, (totals.get(reason) ?? 0) + n);
    this.empty = false;
  }

  /** A connection closed with this WebSocket close code (counted for the metrics only). */
  closed(code: number): void {
    this.closes.set(code, (this.closes.get(code) ?? 0) + 1);
  }

  /** Adds a closed connection's refused requests, by error code. */
  countRequests(byCode: Readonly<Partial<Record<string, number>>>): void {
    for (const [code, n] of Object.entries(byCode)) this.count('requests', code, n ?? 0);
  }

  /** Logs the counts since the last line, if there were any, and starts counting afresh. */
  flush(): void {
    if (this.empty) return;
    const { connections, closed, requests } = this.counts;
    const registrations = this.registrations;
    this.counts = emptyCounts();
    this.registrations = 0;
    this.empty = true;
    this.logger.info(
      { intervalSeconds: this.intervalSeconds, registrations, connections, closed, requests },
      `summary of the last ${this.intervalSeconds} s`,
    );
  }

  /** Stops the interval, logging what is left. */
  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}

function emptyCounts(): Record<RefusalKind, Counts> {
  return { connections: {}, closed: {}, requests: {} };
}
