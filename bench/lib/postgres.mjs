/**
 * The cluster bench's PostgreSQL: the tests' throw-away cluster (test/support/postgres.ts: initdb
 * into a temp dir as the `postgres` user when we are root, a unix socket in that dir, no TCP),
 * pinned to one CPU, with the CPU of its whole process tree and its commit counter.
 *
 * pg_ctl starts the server as a daemon, so it is not under coreutils `timeout` like the bench's
 * other children: the bench stops it on exit, error and signals (removePostgresSync), and a run
 * killed outright leaves a dir that the next start removes (startPostgres removes the clusters of
 * owners that are gone).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { migratePostgres } from '../../server/dist/store/postgres/postgres-schema.js';
import { postgresUrl, removePostgresSync, startPostgres } from '../../test/support/postgres.ts';
import { CAN_PIN, CLOCK_TICKS } from './procs.mjs';

function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Fields of /proc/<pid>/stat after the command name: utime, stime, cutime, cstime in seconds. */
function times(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    return { own: (f[11] + f[12]) / CLOCK_TICKS, reaped: (f[13] + f[14]) / CLOCK_TICKS };
  } catch {
    return { own: 0, reaped: 0 };
  }
}

/**
 * Starts the server, pins the postmaster and its children (backends fork from the postmaster and
 * inherit its CPU) to `cpu`. Returns { server, postmasterPid, url(name), cpuSeconds(), stop() }.
 */
export async function startBenchPostgres({ cpu, onCleanup }) {
  const server = await startPostgres();
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    removePostgresSync(server);
  };
  onCleanup(stop);
  const postmasterPid = Number(readFileSync(join(server.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  if (CAN_PIN)
    for (const pid of [postmasterPid, ...childrenOf(postmasterPid)])
      execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
  return {
    server,
    postmasterPid,
    url: (database) => postgresUrl(server, database),
    /** The postmaster's own CPU, its reaped children's and its live children's (backends and workers). */
    cpuSeconds: () => {
      const root = times(postmasterPid);
      return childrenOf(postmasterPid).reduce((sum, pid) => sum + times(pid).own, root.own + root.reaped);
    },
    stop,
  };
}

const pools = new Map();

/** One statement on a database, through a small pool per database kept until closePools(). */
export function sql(url, text, params = []) {
  let pool = pools.get(url);
  if (pool === undefined) {
    pool = new pg.Pool({ connectionString: url, max: 1 });
    pool.on('error', () => undefined);
    pools.set(url, pool);
  }
  return pool.query(text, params);
}

export async function closePools() {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((pool) => pool.end()));
}

/** A new database, migrated to the registry's schema when `migrate` (as a registry would on start). */
export async function createDatabase(pgHandle, name, { migrate = false } = {}) {
  await sql(pgHandle.url('postgres'), `CREATE DATABASE ${name}`);
  const url = pgHandle.url(name);
  if (migrate) {
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    const client = await pool.connect();
    try {
      await migratePostgres(client, name);
    } finally {
      client.release();
      await pool.end();
    }
  }
  return url;
}

/**
 * Commits and rollbacks of a database so far (pg_stat_database: PostgreSQL flushes a backend's
 * counts at most once a second, so read it a second after the load stopped).
 */
export async function transactionsOf(url) {
  const row = (
    await sql(
      url,
      'SELECT xact_commit::bigint AS c, xact_rollback::bigint AS r FROM pg_stat_database WHERE datname = ' +
        'current_database()',
    )
  ).rows[0];
  return { commits: Number(row.c), rollbacks: Number(row.r) };
}
