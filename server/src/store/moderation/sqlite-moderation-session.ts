/**
 * The moderation store's connection to a SQLite claim database: its own connection beside the
 * claim store's (WAL: readers never wait; a write waits for the server's at most the busy timeout),
 * synchronous=FULL so that a decision the CLI reported survives a crash.
 */
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import { readOnlySchemaError, SCHEMA_VERSION, schemaVersionOf } from '../migrations.js';
import { openError } from '../sqlite/sqlite-open.js';
import { isStoreError } from '../store-error.js';
import type { Query, SqlSession, SqlValue } from './sql-session.js';

const BUSY_TIMEOUT_MS = 5_000;

function sqliteText(sql: string): string {
  return sql.replace(/\$(\d+)/g, '?$1');
}

export class SqliteModerationSession implements SqlSession {
  readonly hasPresence = false;
  private readonly statements = new Map<string, ReturnType<DatabaseSync['prepare']>>();

  private constructor(
    private readonly db: DatabaseSync,
    readonly target: string,
  ) {}

  /** Opens `path`, which the claim store has created and migrated: it must be at this version. */
  static open(path: string): SqliteModerationSession {
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS });
      const version = schemaVersionOf(db);
      if (version !== SCHEMA_VERSION) throw readOnlySchemaError(version, SCHEMA_VERSION, path);
      db.exec('PRAGMA synchronous = FULL');
      return new SqliteModerationSession(db, path);
    } catch (err) {
      db?.close();
      if (isStoreError(err)) throw err;
      throw openError(err, path);
    }
  }

  readonly query: Query = <R>(sql: string, params: readonly SqlValue[] = []): Promise<R[]> => {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sqliteText(sql));
      this.statements.set(sql, statement);
    }
    return Promise.resolve(statement.all(...(params as SQLInputValue[])) as R[]);
  };

  async transaction<T>(body: (query: Query) => Promise<T>): Promise<T> {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const result = await body(this.query);
      this.db.exec('COMMIT');
      return result;
    } catch (err) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
  }

  close(): Promise<void> {
    if (this.db.isOpen) this.db.close();
    return Promise.resolve();
  }
}
