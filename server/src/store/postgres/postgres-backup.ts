/**
 * `p2p-registry backup <file>` on PostgreSQL: an online, consistent copy of the claims as a psql
 * script. One REPEATABLE READ, READ ONLY transaction reads the schema version and every row (in
 * pages by key id), so the copy is one snapshot of committed claims however many writes run
 * meanwhile. The script recreates the schema at that version and loads the rows with COPY; it is
 * written beside the target, synced, then renamed into place, so a failed backup never leaves a
 * partial file under the name an operator will restore from.
 *
 * Restore into an empty database: `psql -v ON_ERROR_STOP=1 -d <database> -f <file>` (one
 * transaction: all or nothing). pg_dump of the whole database remains the operator's tool for
 * everything else in it (and for the later presence and event tables). Revision 3's moderation
 * tables (blocks, reservations, the audit trail and the decisions' version) are copied in the same
 * snapshot: a restored registry keeps its operator's decisions and their history.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { PoolClient } from 'pg';
import { PG_MIGRATIONS, PG_SCHEMA_VERSION, pgSchemaVersionOf } from './postgres-schema.js';
import { SQL } from './postgres-sql.js';
import { storeError } from '../store-error.js';

const PAGE_ROWS = 5_000;
const COPY_COLUMNS =
  'key_id, public_key, nickname, nickname_key, address, address_verified, claimed_at, last_seen_at, expires_at';

interface DumpRow {
  readonly key_id: string;
  readonly public_key: Uint8Array;
  readonly nickname: string;
  readonly nickname_key: string;
  readonly address: string;
  readonly address_verified: boolean;
  readonly claimed_at: number;
  readonly last_seen_at: number;
  readonly expires_at: number;
}

/** COPY's text format: backslash, tab, newline and carriage return escaped. */
function copyText(value: string): string {
  return value.replace(/[\\\t\n\r]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c] ?? c);
}

function copyLine(row: DumpRow): string {
  const fields = [
    copyText(row.key_id),
    // bytea in hex form; its backslash is escaped for COPY.
    `\\\\x${Buffer.from(row.public_key).toString('hex')}`,
    copyText(row.nickname),
    copyText(row.nickname_key),
    copyText(row.address),
    row.address_verified ? 't' : 'f',
    String(row.claimed_at),
    String(row.last_seen_at),
    String(row.expires_at),
  ];
  return `${fields.join('\t')}\n`;
}

function header(target: string, version: number): string {
  return [
    `-- p2p-registry claim backup of ${target}, ${new Date().toISOString()}, schema version ${version}.`,
    '-- Restore into an empty database: psql -v ON_ERROR_STOP=1 -d <database> -f <this file>',
    'BEGIN;',
    'CREATE TABLE schema_version (version integer NOT NULL);',
    `INSERT INTO schema_version VALUES (${version});`,
    ...PG_MIGRATIONS.map((migration) => migration.sql.trim()),
    `COPY claims (${COPY_COLUMNS}) FROM stdin;`,
    '',
  ].join('\n');
}

async function writeSnapshot(client: PoolClient, target: string, partial: string): Promise<void> {
  const file = await open(partial, 'wx', 0o600);
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const version = await pgSchemaVersionOf(client);
    if (version !== PG_SCHEMA_VERSION)
      throw new Error(
        `the database has schema version ${version}, this registry writes backups of version ${PG_SCHEMA_VERSION}`,
      );
    await file.write(header(target, version));
    let after = '';
    for (;;) {
      const rows = (await client.query<DumpRow>(SQL.dumpAfter, [after, PAGE_ROWS])).rows;
      if (rows.length > 0) await file.write(rows.map(copyLine).join(''));
      const last = rows[rows.length - 1];
      if (last === undefined || rows.length < PAGE_ROWS) break;
      after = last.key_id;
    }
    await file.write('\\.\n');
    await file.write(await moderationRows(client));
    await client.query('COMMIT');
    await file.write('COMMIT;\n');
    await file.sync();
  } finally {
    await file.close();
  }
}

/** The moderation tables, small, as COPY blocks (text format; null as \\N). */
const MODERATION_TABLES: ReadonlyArray<readonly [string, string]> = [
  ['moderation_blocks', 'kind, target, label, reason, note, created_at, created_by, expires_at'],
  ['moderation_reservations', 'pattern, for_key_id, for_label, reason, note, created_at, created_by, expires_at'],
  ['moderation_audit', 'seq, at, action, target, reason, note, actor, detail'],
];

async function moderationRows(client: PoolClient): Promise<string> {
  const parts: string[] = [];
  for (const [table, columns] of MODERATION_TABLES) {
    const rows = (await client.query<Record<string, string | number | null>>(`SELECT ${columns} FROM ${table}`)).rows;
    const names = columns.split(', ');
    const lines = rows.map(
      (row) => `${names.map((name) => (row[name] === null ? '\\N' : copyText(String(row[name])))).join('\t')}\n`,
    );
    parts.push(`COPY ${table} (${columns}) FROM stdin;\n${lines.join('')}\\.\n`);
  }
  const version = (await client.query<{ version: number }>('SELECT version FROM moderation_version')).rows[0];
  parts.push(`UPDATE moderation_version SET version = ${Number(version?.version ?? 0)};\n`);
  parts.push(
    "SELECT setval(pg_get_serial_sequence('moderation_audit', 'seq'), coalesce(max(seq), 0) + 1, false) FROM " +
      'moderation_audit;\n',
  );
  return parts.join('');
}

async function syncFolder(path: string): Promise<void> {
  const folder = await open(path, 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/** Writes the snapshot to `file` and releases `client`; STORE_UNAVAILABLE (nothing left at `file`) on failure. */
export async function backupPostgresClaims(
  client: PoolClient,
  target: string,
  file: string,
  retryAfterMs: number,
): Promise<void> {
  const destination = resolve(file);
  const partial = `${destination}.partial-${randomBytes(6).toString('hex')}`;
  try {
    try {
      await writeSnapshot(client, target, partial);
      client.release();
    } catch (err) {
      client.release(true);
      throw err;
    }
    await rename(partial, destination);
    await syncFolder(dirname(destination));
  } catch (err) {
    await rm(partial, { force: true });
    const reason = err instanceof Error ? err.message : String(err);
    throw storeError(
      'STORE_UNAVAILABLE',
      `cannot back up the claim database ${target} to ${destination}: ${reason}. Fix: check that the folder exists, ` +
        `is writable and has space, and that the database is reachable, then retry (or use pg_dump).`,
      { cause: err, retryAfterMs },
    );
  }
}
