/**
 * Test support: the servers and clients one test starts, closed after it (vitest afterEach), and
 * the claim rows of a server's database read from a second, read-only connection.
 */
import { DatabaseSync } from 'node:sqlite';
import { afterEach } from 'vitest';
import { RawClient, startTestServer, type TestServer, type TestServerOptions } from './registry-harness.js';

export interface TestSession {
  server(registry?: Record<string, string | number>, options?: TestServerOptions): Promise<TestServer>;
  client(s: TestServer): Promise<RawClient>;
}

/** Call at the top of a test file: every server and client started through it is closed after each test. */
export function testSession(): TestSession {
  let servers: TestServer[] = [];
  let clients: RawClient[] = [];
  afterEach(async () => {
    for (const c of clients) c.ws.terminate();
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
    clients = [];
  });
  return {
    async server(registry = {}, options = {}) {
      const s = await startTestServer(registry, options);
      servers.push(s);
      return s;
    },
    async client(s) {
      const c = await RawClient.connect(s.url);
      clients.push(c);
      return c;
    },
  };
}

export interface ClaimRow {
  readonly nickname: string;
  readonly address: string;
  readonly address_verified: number;
  readonly last_seen_at: number;
  readonly expires_at: number;
}

/** Every claim row of a database, by nickname; read while the server runs (WAL allows it). */
export function claimRows(database: string): ClaimRow[] {
  const db = new DatabaseSync(database, { readOnly: true });
  try {
    return db
      .prepare('SELECT nickname, address, address_verified, last_seen_at, expires_at FROM claims ORDER BY nickname_key')
      .all() as unknown as ClaimRow[];
  } finally {
    db.close();
  }
}
