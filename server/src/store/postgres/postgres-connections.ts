/**
 * How many connections a cluster instance holds to its PostgreSQL, at most, and what for
 * (docs/CLUSTER.md "Connection budget"). Sized so that the cluster's usual eight backends, the
 * frontend's psql and a few operator sessions fit PostgreSQL's default max_connections (100).
 * Pools open connections only as they are needed: a quiet instance holds fewer.
 */
export const INSTANCE_CONNECTIONS = Object.freeze({
  /**
   * The claim store's pool; the moderation poll (revision 3: one read of one row twice a second)
   * borrows it too. Each registration makes one or two short statements there (its
   * conflicts, then a touch or the claim); four keep up with the signature budget of one process,
   * and a registration that finds them busy waits for one (up to the connect timeout), not fails.
   */
  claims: 4,
  /**
   * The presence pool: the batch writer, the tail, housekeeping and the sweep each run one thing
   * at a time and never overlap themselves, so four never wait for each other.
   */
  presence: 4,
  /** LISTEN for the presence log's notifications. */
  listener: 1,
  /** The lease's own connection: nothing else can delay a renewal. */
  lease: 1,
});

/** The most connections one cluster instance holds. */
export const INSTANCE_CONNECTION_TOTAL: number = Object.values(INSTANCE_CONNECTIONS).reduce((sum, n) => sum + n, 0);

/** The default application_name of the registry's connections (the operator's commands use it). */
export const APPLICATION_NAME = 'p2p-registry';

/**
 * The application_name of one of an instance's connections, as pg_stat_activity shows it:
 * `p2p-registry <instance> <use>` (at most 63 bytes, PostgreSQL's limit).
 */
export function connectionName(label: string, use: keyof typeof INSTANCE_CONNECTIONS): string {
  return `${label} ${use}`.slice(0, 63);
}
