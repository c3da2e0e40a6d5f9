/**
 * Helpers of the cluster tests: fresh databases on the run's PostgreSQL, registry instances that
 * share one, and a subscriber's view (a list, then its events applied to it).
 */
import pg from 'pg';
import { afterAll, afterEach, inject } from 'vitest';
import { postgresUrl, type PostgresServer } from './postgres.js';
import { RawClient, startTestServer, type Frame, type TestServer, type TestServerOptions } from './registry-harness.js';
import { waitUntil } from './wait.js';

export function postgresServer(): PostgresServer {
  return inject('postgres');
}

let admin: pg.Pool | undefined;
let databases = 0;

function adminPool(): pg.Pool {
  if (admin === undefined) {
    admin = new pg.Pool({ connectionString: postgresUrl(postgresServer(), 'postgres'), max: 2 });
    admin.on('error', () => undefined);
  }
  return admin;
}

/** A new, empty database; its URL. */
export async function freshDatabase(prefix = 'cluster'): Promise<string> {
  databases += 1;
  const name = `${prefix}_${process.pid}_${databases}`;
  await adminPool().query(`CREATE DATABASE ${name}`);
  return postgresUrl(postgresServer(), name);
}

export async function closeAdmin(): Promise<void> {
  await admin?.end();
  admin = undefined;
}

/** One statement on a database, on a connection of its own. */
export async function sql(url: string, text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}

/** A registry instance on `database` (in this process), with a short lease. */
export function startInstance(
  database: string,
  options: TestServerOptions & { registry?: Record<string, string | number> } = {},
): Promise<TestServer> {
  const { registry = {}, ...rest } = options;
  return startTestServer(
    { EventBatchMs: 0, ...registry },
    { ...rest, database, store: { LeaseSeconds: 2, ...(rest.store ?? {}) } },
  );
}

/** A subscriber's picture of the registry: the list it took after `subscribed`, with every event applied since. */
export class View {
  private constructor(
    readonly client: RawClient,
    private readonly initial: ReadonlyMap<string, string>,
    private readonly from: number,
  ) {}

  static async of(url: string): Promise<View> {
    const client = await RawClient.connect(url);
    await client.request({ type: 'subscribe' });
    const from = client.frames.length;
    const listed = await listAll(client);
    return new View(client, listed, from);
  }

  /** nickname (lower case) to the peer's address, as the events make it. */
  applied(): Map<string, string> {
    const view = new Map(this.initial);
    for (const frame of this.client.frames.slice(this.from)) {
      if (frame.type === 'peer_joined') {
        const peer = frame.peer as { nickname: string; address: string };
        view.set(peer.nickname.toLowerCase(), peer.address);
      } else if (frame.type === 'peer_left') view.delete((frame.nickname as string).toLowerCase());
    }
    return view;
  }

  events(): Frame[] {
    return this.client.frames.slice(this.from).filter((f) => f.type === 'peer_joined' || f.type === 'peer_left');
  }
}

/** Every peer a fresh `list` shows, nickname (lower case) to address, all pages. */
export async function listAll(client: RawClient): Promise<Map<string, string>> {
  const peers = new Map<string, string>();
  let after: string | null = null;
  for (;;) {
    const page = await client.request(after === null ? { type: 'list' } : { type: 'list', after });
    for (const peer of page.peers as Array<{ nickname: string; address: string }>)
      peers.set(peer.nickname.toLowerCase(), peer.address);
    after = (page.next as string | null) ?? null;
    if (after === null) return peers;
  }
}

/** Waits until a fresh list on every instance equals `expected`, and so does every view. */
export async function waitConverged(
  urls: readonly string[],
  views: readonly View[],
  timeoutMs = 10_000,
): Promise<Map<string, string>> {
  let truth = new Map<string, string>();
  await waitUntil(
    'every instance and every subscriber to agree',
    async () => {
      const lists = await Promise.all(
        urls.map(async (url) => {
          const client = await RawClient.connect(url);
          try {
            return await listAll(client);
          } finally {
            client.close();
          }
        }),
      );
      truth = lists[0] as Map<string, string>;
      const same = (m: Map<string, string>): boolean =>
        m.size === truth.size && [...m].every(([k, v]) => truth.get(k) === v);
      return lists.every(same) && views.every((view) => same(view.applied()));
    },
    { timeoutMs, intervalMs: 100 },
  );
  return truth;
}

/**
 * What a cluster test file starts and must end after each test: instances, raw clients and the
 * outside connections that hold locks. Registers the hooks; call once at the top of a file.
 */
export function clusterTestScope(): {
  instances: TestServer[];
  clients: RawClient[];
  lockers: pg.Client[];
  connect: (url: string) => Promise<RawClient>;
} {
  const scope = { instances: [] as TestServer[], clients: [] as RawClient[], lockers: [] as pg.Client[] };
  afterEach(async () => {
    for (const locker of scope.lockers.splice(0)) await locker.end().catch(() => undefined);
    for (const client of scope.clients.splice(0)) client.close();
    await Promise.all(scope.instances.splice(0).map((s) => s.close()));
  });
  afterAll(closeAdmin);
  const connect = async (url: string): Promise<RawClient> => {
    const client = await RawClient.connect(url);
    scope.clients.push(client);
    return client;
  };
  return { ...scope, connect };
}
