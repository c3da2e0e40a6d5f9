/**
 * A cluster instance's metrics (issue 21): its lease, the presence log it applied and its lag, the
 * peers registered through it, on GET /metrics of its operator socket. Two instances in this
 * process on a real PostgreSQL (the run's throw-away server).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { fetchOperator } from '../../server/src/cli/health-check.js';
import { parseMetrics } from '../../server/src/cli/prometheus-text.js';
import { runStatus } from '../../server/src/cli/status-command.js';
import { closeAdmin, freshDatabase, startInstance } from '../support/cluster.js';
import { ed25519Identity, RawClient, type TestServer } from '../support/registry-harness.js';
import { waitUntil } from '../support/wait.js';

const instances: TestServer[] = [];
const clients: RawClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(instances.splice(0).map((s) => s.close()));
});
afterAll(closeAdmin);

async function metricsOf(instance: TestServer): Promise<Record<string, number>> {
  const { status, body } = await fetchOperator(instance.operatorSocket, '/metrics');
  expect(status).toBe(200);
  const values: Record<string, number> = {};
  for (const sample of parseMetrics(body))
    if (sample.name.startsWith('registry_') && Object.keys(sample.labels).length === 0)
      values[sample.name] = sample.value;
  return values;
}

describe("a cluster instance's metrics", () => {
  it('tell its lease, the log it applied and its lag, and the peers registered through it', async () => {
    const database = await freshDatabase();
    const [a, b] = await Promise.all([startInstance(database), startInstance(database)]);
    instances.push(a as TestServer, b as TestServer);
    const client = await RawClient.connect((a as TestServer).url);
    clients.push(client);
    expect(await client.register(ed25519Identity(), 'metered')).toMatchObject({ type: 'registered' });
    let seen: Record<string, number>[] = [];
    await waitUntil(
      'both instances to show the peer, caught up',
      async () => {
        seen = [await metricsOf(a as TestServer), await metricsOf(b as TestServer)];
        return seen.every((m) => m.registry_peers === 1 && m.registry_cluster_log_lag_events === 0);
      },
      { timeoutMs: 10_000, intervalMs: 100, describe: () => JSON.stringify(seen) },
    );
    const [ma, mb] = seen as [Record<string, number>, Record<string, number>];
    expect(ma.registry_cluster_local_peers).toBe(1);
    expect(mb.registry_cluster_local_peers).toBe(0);
    for (const m of [ma, mb]) {
      expect(m.registry_cluster_database_up).toBe(1);
      expect(m.registry_cluster_lease_age_seconds).toBeGreaterThanOrEqual(0);
      expect(m.registry_cluster_lease_age_seconds).toBeLessThan(m.registry_cluster_lease_seconds as number);
      expect(m.registry_cluster_log_applied_seq).toBe(m.registry_cluster_log_head_seq);
      expect(m.registry_cluster_log_applied_seq).toBeGreaterThan(0);
      expect(m.registry_cluster_log_lag_seconds).toBe(0);
      expect(m.registry_cluster_resyncs_total).toBe(0);
      expect(m.registry_store_up).toBe(1);
    }
  });

  it('show in p2p-registry status: the instance, its database, log lag and lease', async () => {
    const database = await freshDatabase();
    const instance = await startInstance(database);
    instances.push(instance);
    const out: string[] = [];
    const code = await runStatus(instance.operatorSocket, 80, {
      watch: false,
      json: false,
      intervalSeconds: 0.3,
      write: (text) => {
        out.push(text);
        return true;
      },
    });
    expect(code).toBe(0);
    expect(out[0]).toMatch(
      /cluster +instance [0-9a-f-]{36}, database reachable, housekeeping ok, 0 peers through this instance/,
    );
    expect(out[0]).toMatch(
      /log applied \d+ of head \d+: 0 events, 0 s behind; lease renewed \d+ s ago \(lease \d+ s\); 0 re-syncs/,
    );
  });
});
