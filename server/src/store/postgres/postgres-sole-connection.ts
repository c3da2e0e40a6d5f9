/**
 * One PostgreSQL connection of its own, outside any pool, for work that must never wait behind
 * other work for a connection (the cluster's lease). Opened on first use; a query that fails drops
 * it (it may be broken, or still busy with a statement the driver gave up on) and the next query
 * opens another. Errors are thrown as the driver gave them: the caller maps them.
 */
import pg, { type ClientConfig } from 'pg';

export class SoleConnection {
  readonly #config: ClientConfig;
  #client: Promise<pg.Client> | undefined;
  #open: pg.Client | undefined;
  #closed = false;

  constructor(config: ClientConfig) {
    this.#config = config;
  }

  async query(sql: string, params: unknown[]): Promise<pg.QueryResult> {
    const client = await this.#connection();
    try {
      return await client.query(sql, params);
    } catch (err) {
      this.#drop();
      throw err;
    }
  }

  close(): void {
    this.#closed = true;
    this.#drop();
  }

  #connection(): Promise<pg.Client> {
    if (this.#client === undefined) {
      const client = this.#connect();
      this.#client = client;
      client.catch(() => {
        if (this.#client === client) this.#client = undefined;
      });
    }
    return this.#client;
  }

  async #connect(): Promise<pg.Client> {
    const client = new pg.Client(this.#config);
    // Broken while idle (the server restarted): dropped, and the next query opens another.
    client.on('error', () => {
      if (this.#open === client) this.#drop();
    });
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      throw new Error('the connection was closed while it was being opened');
    }
    this.#open = client;
    return client;
  }

  #drop(): void {
    const client = this.#client;
    this.#client = undefined;
    this.#open = undefined;
    client?.then((c) => c.end()).catch(() => undefined);
  }
}
