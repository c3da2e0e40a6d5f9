/**
 * The e2e suites' view of the monitoring profile's Prometheus: instant queries over its HTTP API,
 * and the Grafana dashboard's queries (monitoring/grafana/p2p-registry.json), each of which must
 * parse and return data.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { waitUntil } from '../support/wait.js';

const DASHBOARD = resolve(import.meta.dirname, '../../monitoring/grafana/p2p-registry.json');

export interface Series {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

export interface QueryAnswer {
  readonly status: 'success' | 'error';
  readonly error?: string;
  readonly errorType?: string;
  readonly result: Series[];
}

/** GET /api/v1/query: the answer, an error answer (a query that does not parse) included. */
export async function promQuery(base: string, expr: string): Promise<QueryAnswer> {
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as {
    status: 'success' | 'error';
    error?: string;
    errorType?: string;
    data?: { result?: Series[] };
  };
  return {
    status: body.status,
    ...(body.error === undefined ? {} : { error: body.error, errorType: body.errorType ?? '' }),
    result: body.data?.result ?? [],
  };
}

export interface PanelQuery {
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
}

/** Every query of the dashboard; `cluster` false leaves out the panels titled "Cluster: ...". */
export function dashboardQueries(cluster: boolean): PanelQuery[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: Array<{ type: string; title: string; targets?: Array<{ refId: string; expr: string }> }>;
  };
  return dashboard.panels
    .filter((p) => p.type !== 'row' && (cluster || !p.title.startsWith('Cluster:')))
    .flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));
}

/**
 * Waits until every query answers with data; fails at once on a query Prometheus cannot parse, and
 * after `timeoutMs` naming the queries that still return nothing.
 */
export async function expectEveryQueryAnswers(base: string, queries: readonly PanelQuery[], timeoutMs: number) {
  const empty = new Set(queries);
  await waitUntil(
    'every dashboard query to return data',
    async () => {
      for (const query of [...empty]) {
        const answer = await promQuery(base, query.expr);
        if (answer.status !== 'success')
          throw new Error(`panel "${query.panel}" ${query.refId}: ${query.expr} does not run: ${answer.error}`);
        if (answer.result.length > 0) empty.delete(query);
      }
      return empty.size === 0;
    },
    {
      timeoutMs,
      intervalMs: 5_000,
      describe: () => `still empty: ${[...empty].map((q) => `"${q.panel}" ${q.refId} (${q.expr})`).join('; ')}`,
    },
  );
}

/** The one value of an instant query, or null when it returns no series. */
export async function promValue(base: string, expr: string): Promise<number | null> {
  const answer = await promQuery(base, expr);
  const first = answer.result[0];
  return first === undefined ? null : Number(first.value[1]);
}
