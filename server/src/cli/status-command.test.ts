import { afterEach, describe, expect, it } from 'vitest';
import {
  ed25519Identity,
  RawClient,
  startTestServer,
  type TestServer,
} from '../../../test/support/registry-harness.js';
import { parseListen, startMetricsForward } from './metrics-forward.js';
import { histogramQuantile, parseMetrics } from './prometheus-text.js';
import { runStatus } from './status-command.js';
import type { StatusReport } from './status-report.js';

const servers: TestServer[] = [];
const clients: RawClient[] = [];
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  for (const close of closers.splice(0)) await close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serverWithPeers(nicknames: readonly string[]): Promise<TestServer> {
  const s = await startTestServer();
  servers.push(s);
  for (const nickname of nicknames) {
    const c = await RawClient.connect(s.url);
    clients.push(c);
    await c.register(ed25519Identity(), nickname);
  }
  return s;
}

async function statusOf(s: TestServer, json: boolean, during?: () => Promise<void>): Promise<string[]> {
  const out: string[] = [];
  const run = runStatus(s.operatorSocket, 80, {
    watch: false,
    json,
    intervalSeconds: 0.5,
    write: (text) => {
      out.push(text);
      return true;
    },
  });
  await during?.();
  expect(await run).toBe(0);
  return out;
}

describe('p2p-registry status', () => {
  it('prints one screen: peers, connections, the onion URL, store and latency', async () => {
    const s = await serverWithPeers(['rita', 'sam']);
    const [screen] = await statusOf(s, false);
    expect(screen).toContain(`ws://${s.server.onion}:80/`);
    expect(screen).toMatch(/peers +2 live, 0 subscribers/);
    expect(screen).toMatch(/connections +2 open, 0 pending/);
    expect(screen).toMatch(/store +writable, \d+ claims held/);
    expect(screen).toMatch(/latency +register p50 [\d.]+ ms, p99 [\d.]+ ms \(2\)/);
    expect(screen).not.toContain('cluster');
  });

  it('counts registrations, requests and refusals per minute over its interval, as JSON with --json', async () => {
    const s = await serverWithPeers([]);
    const [line] = await statusOf(s, true, async () => {
      const c = await RawClient.connect(s.url);
      clients.push(c);
      await c.register(ed25519Identity(), 'una');
      await c.register(ed25519Identity(), 'vic');
      await c.request({ type: 'lookup', nickname: 'una' });
    });
    const report = JSON.parse(line as string) as StatusReport;
    expect(report.status).toBe('ok');
    expect(report.peers).toBe(1);
    expect(report.registrationsPerMinute.registered).toBeGreaterThan(0);
    expect(report.registrationsPerMinute.ALREADY_REGISTERED).toBeGreaterThan(0);
    expect(report.requestsPerMinute.lookup?.ok).toBeGreaterThan(0);
    expect(report.cluster).toBeNull();
  });

  it('fails with one line when nothing answers on the operator socket', async () => {
    const code = await runStatus('/nonexistent/operator.sock', 80, {
      watch: false,
      json: false,
      intervalSeconds: 0.2,
      write: () => true,
    });
    expect(code).toBe(1);
  });
});

describe('p2p-registry metrics-forward', () => {
  it('carries GET /metrics of the operator socket over TCP, and nothing else', async () => {
    const s = await serverWithPeers(['wes']);
    const forward = await startMetricsForward(s.operatorSocket, parseListen('127.0.0.1:0'));
    closers.push(() => new Promise((resolve) => forward.close(() => resolve())));
    const { port } = forward.address() as { port: number };
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    const samples = parseMetrics(await res.text());
    expect(samples.find((m) => m.name === 'registry_peers')?.value).toBe(1);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(404);
  });

  it('refuses a --listen that is not address:port', () => {
    expect(() => parseListen('9464')).toThrow('--listen "9464" is not <address>:<port>');
  });
});

describe('histogram quantiles', () => {
  it('interpolates within the bucket as histogram_quantile does', () => {
    expect(
      histogramQuantile(0.5, [
        [0.1, 0],
        [0.2, 10],
        [Number.POSITIVE_INFINITY, 10],
      ]),
    ).toBeCloseTo(0.15);
    expect(
      histogramQuantile(0.5, [
        [0.1, 0],
        [Number.POSITIVE_INFINITY, 0],
      ]),
    ).toBeNull();
  });
});
