/**
 * The few SQL calls the moderation store makes, over either database: statements are written once,
 * with PostgreSQL's `$1` placeholders (SQLite reads them as `?1`), and every write is one durable
 * transaction. What differs between SQLite and PostgreSQL stays in the two sessions.
 */
export type SqlValue = string | number | null;

export type Query = <R>(sql: string, params?: readonly SqlValue[]) => Promise<R[]>;

export interface SqlSession {
  /** Where the decisions live, for messages (a path, or a URL without its password). */
  readonly target: string;
  /** PostgreSQL: the cluster's live presence is in the same database (a nickname held now names its key). */
  readonly hasPresence: boolean;
  /** One statement outside a transaction (a read). */
  readonly query: Query;
  /** `body` in one write transaction, durable once this resolves; rolled back if it throws. */
  transaction<T>(body: (query: Query) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
