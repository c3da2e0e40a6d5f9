/**
 * The monitoring profile's pieces agree with each other, without Docker: tor's MetricsPortPolicy
 * admits exactly the Prometheus of each stack, on an internal network; Prometheus's targets are the
 * stacks' services and ports; every registry metric the alerts and the dashboard use is one the
 * server serves. (promtool checks the files themselves: make test-monitoring; the e2e suite runs
 * the dashboard's queries against a real Prometheus.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = join(import.meta.dirname, '../..');
const read = (file: string): string => readFileSync(join(ROOT, file), 'utf8');

interface Service {
  readonly image?: string;
  readonly command?: readonly string[];
  readonly networks?: readonly string[] | Record<string, { ipv4_address?: string } | null>;
  readonly ports?: readonly string[];
  readonly profiles?: readonly string[];
}
interface Compose {
  readonly services: Record<string, Service>;
  readonly networks: Record<string, { internal?: boolean; ipam?: { config: Array<{ subnet: string }> } } | null>;
}

const compose = (file: string): Compose => parse(read(file), { merge: true }) as Compose;
/** A compose value's default: `${NAME:-default}` -> default. */
const defaultOf = (value: string | undefined): string | undefined => value?.replace(/^\$\{[A-Z_]+:-(.*)\}$/, '$1');
const networkNames = (s: Service): string[] =>
  Array.isArray(s.networks) ? [...s.networks] : Object.keys(s.networks ?? {});

const policies = read('torrc.template')
  .split('\n')
  .filter((line) => line.startsWith('MetricsPortPolicy '))
  .map((line) => line.slice('MetricsPortPolicy '.length));

describe.each([
  ['compose.yaml', 'monitoring/prometheus.yml'],
  ['compose.cluster.yaml', 'monitoring/prometheus-cluster.yml'],
])('%s with %s', (file, prometheusFile) => {
  const doc = compose(file);
  const prometheus = doc.services.prometheus as Service;
  const address = defaultOf((prometheus.networks as Record<string, { ipv4_address: string }>).monitoring?.ipv4_address);

  it("puts Prometheus at a fixed address of an internal network, the one tor's MetricsPortPolicy admits", () => {
    expect(doc.networks.monitoring?.internal).toBe(true);
    const subnet = defaultOf(doc.networks.monitoring?.ipam?.config[0]?.subnet) as string;
    expect(address?.startsWith(subnet.replace(/0\/24$/, ''))).toBe(true);
    expect(policies).toContain(`accept ${address}`);
    expect(policies.at(-1)).toBe('reject *');
    expect(read('torrc.template')).toMatch(/^MetricsPort 0\.0\.0\.0:9035$/m);
  });

  it('publishes only the Prometheus UI, on the loopback by default; the tors and forwarders publish nothing', () => {
    for (const [name, service] of Object.entries(doc.services)) {
      if (name === 'prometheus') expect(service.ports).toEqual([`$\{PROMETHEUS_PUBLISH:-127.0.0.1:9090}:9090`]);
      else expect(service.ports, name).toBeUndefined();
    }
  });

  it('scrapes every forwarder and every onion-serving tor of the file, at their ports', () => {
    const config = parse(read(prometheusFile)) as {
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const targets = (job: string): string[] =>
      config.scrape_configs
        .filter((c) => c.job_name === job)
        .flatMap((c) => c.static_configs.flatMap((s) => s.targets));
    const forwarders = Object.entries(doc.services).filter(([, s]) => s.command?.[0] === 'metrics-forward');
    const tors = Object.entries(doc.services).filter(([, s]) => s.image === 'p2p-registry/tor:latest');
    expect(targets('registry').sort()).toEqual(forwarders.map(([name]) => `${name}:9464`).sort());
    expect(targets('tor').sort()).toEqual(tors.map(([name]) => `${name}:9035`).sort());
    for (const [name, s] of forwarders) {
      expect(s.command).toContain('0.0.0.0:9464');
      expect(networkNames(s), name).toEqual(['monitoring']);
      expect(s.profiles, name).toEqual(['monitoring']);
    }
    for (const [name, s] of tors) expect(networkNames(s), name).toContain('monitoring');
    expect(prometheus.profiles).toEqual(['monitoring']);
  });
});

describe('the alerts and the dashboard', () => {
  const served = read('server/src/metrics/registry-metrics.ts');
  const used = (text: string): string[] => [
    ...new Set([...text.matchAll(/\bregistry_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))),
  ];

  it.each(['monitoring/alerts.yml', 'monitoring/grafana/p2p-registry.json'])(
    '%s uses only registry metrics the server serves',
    (file) => {
      const names = used(read(file));
      expect(names.length).toBeGreaterThan(5);
      for (const name of names) expect(served, name).toContain(`'${name}'`);
    },
  );

  it('gives every dashboard panel a query and a description', () => {
    const dashboard = JSON.parse(read('monitoring/grafana/p2p-registry.json')) as {
      panels: Array<{ type: string; title: string; description?: string; targets?: Array<{ expr: string }> }>;
    };
    const panels = dashboard.panels.filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThan(15);
    for (const panel of panels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      expect(panel.description, panel.title).toBeTruthy();
    }
  });
});
