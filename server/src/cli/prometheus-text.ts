/**
 * The few lines of Prometheus's text format that `p2p-registry status` reads back from the
 * registry's own /metrics: `name{label="value",...} number`. Comments and blank lines are skipped.
 */

export interface MetricSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (match[2] ?? '').matchAll(LABEL))
      labels[key as string] = (raw as string).replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The samples of one scrape, looked up by name and labels. */
export class Scrape {
  constructor(
    readonly samples: readonly MetricSample[],
    readonly at: number,
  ) {}

  all(name: string, labels: Readonly<Record<string, string>> = {}): MetricSample[] {
    return this.samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value),
    );
  }

  /** The one sample's value (the sum when several match), or null when none does. */
  value(name: string, labels: Readonly<Record<string, string>> = {}): number | null {
    const found = this.all(name, labels);
    return found.length === 0 ? null : found.reduce((sum, s) => sum + s.value, 0);
  }
}

/**
 * A quantile of a histogram's buckets (cumulative counts by upper bound), interpolated within the
 * bucket as PromQL's histogram_quantile does; null without observations.
 */
export function histogramQuantile(q: number, buckets: ReadonlyArray<readonly [number, number]>): number | null {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (!Number.isFinite(bound)) return lowerBound;
      return lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / Math.max(count - lowerCount, 1e-12);
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}
