/**
 * What a PostgreSQL failure means for the registry: which ones are the environment (the server is
 * down or restarting, the network, a full disk, a standby that only reads; the operation may
 * succeed later, so it is STORE_UNAVAILABLE) and which are bugs, and the one line that tells an
 * operator the cause and the fix. Also the one place that turns a connection target into text:
 * credentials never leave it.
 */
import { INSTANCE_CONNECTION_TOTAL } from './postgres-connections.js';

export interface PostgresFailure {
  /** The SQLSTATE (e.g. 53100) or the socket error code (e.g. ECONNREFUSED). */
  readonly name: string;
  /** The driver's or the server's own words. */
  readonly text: string;
  /** What the operator should do. */
  readonly fix: string;
}

/** Socket-level failures: the server cannot be reached (or went away mid-query). */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ENOENT', // a unix socket that is not there: the server is not running
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EAI_AGAIN',
]);

/**
 * The driver's messages for a connection that ended or never came up; it gives them no code.
 * "Connection terminated" covers "... unexpectedly" and "... due to connection timeout".
 */
const DRIVER_MESSAGES: readonly RegExp[] = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Query read timeout/,
  /Client has encountered a connection error/,
];

/** SQLSTATE classes and codes that come from the server's situation, not from our SQL. */
function sqlstateFix(code: string, target: string): string | undefined {
  if (code.startsWith('08')) return `check that PostgreSQL at ${target} is running and reachable`;
  if (code === '57P01' || code === '57P02' || code === '57P03')
    return `PostgreSQL at ${target} is shutting down or starting up: wait for it`;
  if (code === '53100') return `free disk space on the PostgreSQL server of ${target}`;
  if (code === '53200') return `free memory on the PostgreSQL server of ${target}`;
  if (code === '53300') {
    return (
      `too many connections to ${target}: raise max_connections on the server (or the role's or database's ` +
      `CONNECTION LIMIT), or lower what its clients hold; ` +
      `a registry instance holds up to ${INSTANCE_CONNECTION_TOTAL} connections (docs/CLUSTER.md, "Connection budget")`
    );
  }
  if (code.startsWith('53')) return `the PostgreSQL server of ${target} is out of resources (see its log)`;
  if (code === '25006')
    return (
      `${target} accepts only reads (a standby, or default_transaction_read_only): point [Store] Database at ` +
      `the primary`
    );
  if (code.startsWith('58')) return `the PostgreSQL server of ${target} reports a system or disk error (see its log)`;
  if (code === '57014')
    return `a statement on ${target} ran into its timeout (an overloaded or locked database?): retry`;
  if (code === '55P03' || code === '40001' || code === '40P01')
    return `writes on ${target} keep colliding (locks held by another client?): retry`;
  return undefined;
}

function stringField(err: unknown, field: string): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const value = (err as Record<string, unknown>)[field];
  return typeof value === 'string' ? value : undefined;
}

/** How often a transaction that lost a race (RACE_SQLSTATES) is tried before it is reported. */
export const RACE_ATTEMPTS = 8;

/** Unique violation, serialization failure, deadlock: a concurrent writer won; trying again is safe. */
export function lostRace(err: unknown): boolean {
  const state = sqlstateOf(err);
  return state === '23505' || state === '40001' || state === '40P01';
}

/** The SQLSTATE of a server error, or undefined. */
export function sqlstateOf(err: unknown): string | undefined {
  const code = stringField(err, 'code');
  return code !== undefined && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * The failure a driver error stands for, or undefined when it is not an environment failure (a
 * constraint, a bad statement: a bug, to be thrown as it is). AggregateErrors (one per address
 * tried) count when any part does.
 */
export function environmentFailure(err: unknown, target: string): PostgresFailure | undefined {
  if (err instanceof AggregateError) {
    for (const part of err.errors) {
      const failure = environmentFailure(part, target);
      if (failure !== undefined) return failure;
    }
    return undefined;
  }
  if (!(err instanceof Error)) return undefined;
  const code = stringField(err, 'code');
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return { name: code, text: err.message, fix: `check that PostgreSQL at ${target} is running and reachable` };
  }
  const sqlstate = sqlstateOf(err);
  if (sqlstate !== undefined) {
    const fix = sqlstateFix(sqlstate, target);
    return fix === undefined ? undefined : { name: sqlstate, text: err.message, fix };
  }
  if (DRIVER_MESSAGES.some((pattern) => pattern.test(err.message))) {
    return {
      name: 'CONNECTION',
      text: err.message,
      fix: `check that PostgreSQL at ${target} is running and reachable`,
    };
  }
  return undefined;
}

/** Why a store could not be opened: an environment failure, or the few a configuration causes. */
export function openFailure(err: unknown, target: string): PostgresFailure {
  const sqlstate = sqlstateOf(err);
  const text = err instanceof Error ? err.message : String(err);
  if (sqlstate === '28P01' || sqlstate === '28000') {
    return { name: sqlstate, text, fix: `check the user and password for ${target} (and pg_hba.conf on the server)` };
  }
  if (sqlstate === '3D000')
    return { name: sqlstate, text, fix: `create the database first (createdb), or fix its name in [Store] Database` };
  if (sqlstate === '42501')
    return {
      name: sqlstate,
      text,
      fix: `grant the registry's user CREATE and USAGE on the schema it uses in ${target}`,
    };
  return (
    environmentFailure(err, target) ?? {
      name: sqlstate ?? 'ERROR',
      text,
      fix: `check [Store] Database (${target}) and the PostgreSQL server's log`,
    }
  );
}

/** Query parameters of a connection string that are shown: none of them can hold a secret. */
const SHOWN_PARAMETERS: ReadonlySet<string> = new Set([
  'host',
  'port',
  'dbname',
  'db',
  'user',
  'sslmode',
  'sslrootcert',
  'sslcert',
  'application_name',
  'connect_timeout',
  'target_session_attrs',
  'client_encoding',
  'encoding',
]);

const NOT_SHOWN = '<PostgreSQL connection string (not a postgres:// URL of the usual form; not shown)>';

/**
 * A connection string without its secrets, for messages and logs: the password after the user is
 * dropped, and only the parameters known to hold none (SHOWN_PARAMETERS) are kept. Parsed by hand:
 * `postgres://user@/db?host=/run/postgresql` (a socket) is no WHATWG URL. The user-info ends at the
 * last @ of the host part, as URL parsing (and so the driver) has it. Anything else is not shown at
 * all: a string that is not a postgres:// URL, or one with an @ past its host part (a password
 * holding an unescaped / ? or #, which the driver reads otherwise than its author meant).
 */
export function redactConnectionString(connectionString: string): string {
  const match = /^(postgres(?:ql)?:\/\/)([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/is.exec(connectionString);
  if (match === null) return NOT_SHOWN;
  const [, scheme = '', authority = '', path = '', query = '', fragment = ''] = match;
  if (`${path}${query}${fragment}`.includes('@')) return NOT_SHOWN;
  const at = authority.lastIndexOf('@');
  const user = at < 0 ? '' : `${authority.slice(0, at).split(':')[0] ?? ''}@`;
  const host = authority.slice(at + 1);
  // host, host:port, [v6]:port; a "port" of letters is a user:password whose @ came later.
  if (!/^(\[[^\]]*\]|[^:[\]]*)(:\d*)?$/.test(host)) return NOT_SHOWN;
  const kept = query
    .slice(1)
    .split('&')
    .filter(
      (pair) => pair !== '' && SHOWN_PARAMETERS.has(decodeURIComponentSafe(pair.split('=')[0] ?? '').toLowerCase()),
    );
  return `${scheme}${user}${host}${path}${kept.length === 0 ? '' : `?${kept.join('&')}`}`;
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The target of pool options, as `postgres://user@host:port/database` without the password. */
export function describeTarget(options: {
  readonly host?: string | undefined;
  readonly port?: number | undefined;
  readonly user?: string | undefined;
  readonly database?: string | undefined;
}): string {
  const host = options.host ?? 'localhost';
  const where = host.startsWith('/')
    ? `/${options.database ?? ''}?host=${host}`
    : `${host}${options.port === undefined ? '' : `:${options.port}`}/${options.database ?? ''}`;
  return `postgres://${options.user === undefined ? '' : `${options.user}@`}${where}`;
}
