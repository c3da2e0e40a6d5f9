import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ed25519Identity,
  RawClient,
  startTestServer,
  type TestServer,
} from '../../../test/support/registry-harness.js';
import { LATENCY_BUCKETS, LatencyHistogram } from './latency-histogram.js';

const servers: TestServer[] = [];
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(): Promise<TestServer> {
  const s = await startTestServer();
  servers.push(s);
  return s;
}

async function client(s: TestServer): Promise<RawClient> {
  const c = await RawClient.connect(s.url);
  clients.push(c);
  return c;
}

function scrape(socketPath: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample line (name with its labels exactly as written), or undefined. */
function sample(body: string, series: string): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('GET /metrics on the operator socket', () => {
  it('serves the Prometheus text format with the default process metrics and build info', async () => {
    const s = await server();
    const res = await scrape(s.operatorSocket);
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of [
      'process_resident_memory_bytes',
      'process_open_fds',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_gc_duration_seconds',
      'registry_peers',
      'registry_connections',
      'registry_connections_pending',
      'registry_subscribers',
      'registry_output_queued_bytes',
      'registry_output_limit_bytes',
      'registry_claims_held',
      'registry_store_up',
      'registry_store_commit_duration_seconds',
      'registry_store_commit_failures_total',
      'registry_onion_known',
      'registry_onion_hostname_age_seconds',
      'registry_events_published_total',
      'registry_event_deliveries_total',
      'registry_requests_total',
      'registry_registrations_total',
      'registry_refusals_total',
      'registry_connections_closed_total',
      'registry_request_duration_seconds',
    ])
      expect(res.body, name).toContain(`# TYPE ${name} `);
    expect(res.body).toMatch(/^registry_build_info\{version="[^"]+",node="v24\.[^"]+",protocol="1",revision="2"\} 1$/m);
    expect(sample(res.body, 'registry_onion_known')).toBe(1);
    expect(sample(res.body, 'registry_store_up')).toBe(1);
    expect(res.body).not.toContain('registry_cluster_');
  });

  it('counts peers, connections, subscribers, requests by type and result, and registrations by result', async () => {
    const s = await server();
    const a = await client(s);
    const b = await client(s);
    await a.register(ed25519Identity(), 'rita');
    await b.register(ed25519Identity(), 'sam');
    await b.request({ type: 'subscribe' });
    await b.request({ type: 'lookup', nickname: 'rita' });
    await b.request({ type: 'lookup', nickname: 'nobody' });
    await b.request({ type: 'list' });
    const taken = await a.register(ed25519Identity(), 'sam').catch((err: unknown) => err);
    expect(taken).toBeDefined();
    const { body } = await scrape(s.operatorSocket);
    expect(sample(body, 'registry_peers')).toBe(2);
    expect(sample(body, 'registry_connections')).toBe(2);
    expect(sample(body, 'registry_subscribers')).toBe(1);
    expect(sample(body, 'registry_registrations_total{result="registered"}')).toBe(2);
    expect(sample(body, 'registry_registrations_total{result="ALREADY_REGISTERED"}')).toBe(1);
    expect(sample(body, 'registry_requests_total{type="lookup",result="ok"}')).toBe(1);
    expect(sample(body, 'registry_requests_total{type="lookup",result="error"}')).toBe(1);
    expect(sample(body, 'registry_requests_total{type="list",result="ok"}')).toBe(1);
    expect(sample(body, 'registry_requests_total{type="register",result="ok"}')).toBe(2);
    expect(sample(body, 'registry_request_duration_seconds_count{type="lookup"}')).toBe(2);
    expect(sample(body, 'registry_request_duration_seconds_count{type="register"}')).toBe(3);
    expect(sample(body, 'registry_request_duration_seconds_bucket{type="register",le="+Inf"}')).toBe(3);
    expect(sample(body, 'registry_events_published_total')).toBeGreaterThanOrEqual(2);
  });

  it('counts closes by close code and refusals by reason once a connection ends', async () => {
    const s = await server();
    const c = await client(s);
    await c.request({ type: 'lookup', nickname: 'nobody' });
    c.ws.close(1000);
    await c.closed;
    await expect
      .poll(async () => sample((await scrape(s.operatorSocket)).body, 'registry_connections_closed_total{code="1000"}'))
      .toBe(1);
    const { body } = await scrape(s.operatorSocket);
    expect(sample(body, 'registry_refusals_total{kind="requests",reason="NOT_FOUND"}')).toBe(1);
  });

  it("reports when tor last uploaded the onion's descriptor, from the record tor-control writes", async () => {
    const s = await server();
    expect((await scrape(s.operatorSocket)).body).not.toMatch(/^registry_onion_descriptor_upload_timestamp_seconds /m);
    writeFileSync(join(s.hiddenServiceDir, 'descriptor-uploaded'), '1764900000\n');
    expect(sample((await scrape(s.operatorSocket)).body, 'registry_onion_descriptor_upload_timestamp_seconds')).toBe(
      1764900000,
    );
  });

  it('never puts a nickname, key or onion address in a label value', async () => {
    const s = await server();
    const c = await client(s);
    const identity = ed25519Identity();
    await c.register(identity, 'zelda-secret');
    const { body } = await scrape(s.operatorSocket);
    expect(body).not.toContain('zelda-secret');
    expect(body).not.toContain(identity.address.replace('.onion', ''));
    expect(body).not.toContain(String(s.server.onion).replace('.onion', ''));
  });

  it('is not served by the public listener: plain HTTP for /metrics gets the 426', async () => {
    const s = await server();
    const res = await fetch(`http://127.0.0.1:${s.port}/metrics`);
    expect(res.status).toBe(426);
    expect(await res.text()).not.toContain('registry_');
  });
});

describe('the latency histogram', () => {
  it('puts each observation in the first bucket whose bound it does not exceed, the rest in +Inf', () => {
    const h = new LatencyHistogram();
    h.observe(0.0005);
    h.observe(0.003);
    h.observe(99);
    expect(h.counts[0]).toBe(1);
    expect(h.counts[LATENCY_BUCKETS.indexOf(0.005)]).toBe(1);
    expect(h.counts[LATENCY_BUCKETS.length]).toBe(1);
    expect(h.count).toBe(3);
    expect(h.sum).toBeCloseTo(99.0035);
  });
});
