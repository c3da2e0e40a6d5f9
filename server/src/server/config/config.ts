import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseIni } from 'ini';
import { configError } from '../../protocol/errors.js';
import {
  ENV_PREFIX,
  removedNames,
  unknownEnvNames,
  unknownNames,
  type KnownKeys,
  type RemovedKeys,
} from './config-names.js';
import { redactConnectionString } from '../../store/postgres/postgres-failure.js';
import { CLAIMS_REGISTRY_KEYS, CLAIMS_SECTIONS, readClaimsConfig, type ClaimsConfig } from './claims-config.js';
import { isPostgresDatabase } from '../../store/open-store.js';

export type Listen =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface RegistryLimits {
  readonly maxPeers: number;
  readonly maxConnections: number;
  readonly maxMessageBytes: number;
  readonly heartbeatSeconds: number;
  readonly rateLimitPerSecond: number;
  readonly rateLimitBurst: number;
  readonly rateLimitStrikes: number;
  readonly handshakeTimeoutSeconds: number;
  readonly idleTimeoutSeconds: number;
  readonly maxPendingConnections: number;
  readonly maxBufferedBytes: number;
  readonly maxOutputBytes: number;
  readonly eventBatchMs: number;
  readonly signatureChecksPerSecond: number;
  readonly jsonContainersPerSecond: number;
}

export interface Config {
  /** The public listener: tor forwards the onion service here. */
  readonly listen: Listen;
  /**
   * [Host] OperatorSocket: the operator listener's unix socket (GET /healthz), which tor must not
   * forward; null: none (then `p2p-registry health` has nothing to ask).
   */
  readonly operatorSocket: string | null;
  readonly hiddenServiceDir: string;
  readonly hiddenServicePort: number;
  readonly hostnameTimeoutSeconds: number;
  readonly limits: RegistryLimits;
  readonly logLevel: LogLevel;
  /** [Log] SummarySeconds: registrations and refusals are logged as one line of counts per this interval. */
  readonly logSummarySeconds: number;
  /** Revision 2: [Store] Database, [Claims] ClaimDays and ClaimAfterSeconds, [Registry] RequireAddressProof. */
  readonly claims: ClaimsConfig;
}

/** Every limit's default; config.ini.example documents each of them. */
export const DEFAULT_LIMITS: RegistryLimits = Object.freeze({
  maxPeers: 20_000,
  maxConnections: 25_000,
  maxMessageBytes: 16_384,
  heartbeatSeconds: 30,
  rateLimitPerSecond: 20,
  rateLimitBurst: 40,
  rateLimitStrikes: 20,
  handshakeTimeoutSeconds: 10,
  idleTimeoutSeconds: 30,
  maxPendingConnections: 1_000,
  maxBufferedBytes: 1_048_576,
  // Sized for a 1 GB VPS (docs/OPERATIONS.md "Sizing memory"): queued output is at most twice this.
  maxOutputBytes: 67_108_864,
  eventBatchMs: 50,
  signatureChecksPerSecond: 2_000,
  jsonContainersPerSecond: 500_000,
});

const DEFAULT_HOSTNAME_TIMEOUT_SECONDS = 120;
const DEFAULT_LOG_SUMMARY_SECONDS = 60;
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface NumberKey {
  readonly section: 'Registry';
  readonly key: string;
  readonly field: keyof RegistryLimits;
  readonly min: number;
  readonly max: number;
}

export const LIMIT_KEYS: readonly NumberKey[] = [
  { section: 'Registry', key: 'MaxPeers', field: 'maxPeers', min: 1, max: 10_000_000 },
  { section: 'Registry', key: 'MaxConnections', field: 'maxConnections', min: 1, max: 10_000_000 },
  { section: 'Registry', key: 'MaxMessageBytes', field: 'maxMessageBytes', min: 1_024, max: 1_048_576 },
  { section: 'Registry', key: 'HeartbeatSeconds', field: 'heartbeatSeconds', min: 1, max: 3_600 },
  { section: 'Registry', key: 'RateLimitPerSecond', field: 'rateLimitPerSecond', min: 1, max: 1_000_000 },
  { section: 'Registry', key: 'RateLimitBurst', field: 'rateLimitBurst', min: 1, max: 1_000_000 },
  { section: 'Registry', key: 'RateLimitStrikes', field: 'rateLimitStrikes', min: 1, max: 1_000_000 },
  { section: 'Registry', key: 'HandshakeTimeoutSeconds', field: 'handshakeTimeoutSeconds', min: 1, max: 3_600 },
  { section: 'Registry', key: 'IdleTimeoutSeconds', field: 'idleTimeoutSeconds', min: 1, max: 86_400 },
  { section: 'Registry', key: 'MaxPendingConnections', field: 'maxPendingConnections', min: 1, max: 10_000_000 },
  { section: 'Registry', key: 'MaxBufferedBytes', field: 'maxBufferedBytes', min: 16_384, max: 1_073_741_824 },
  { section: 'Registry', key: 'MaxOutputBytes', field: 'maxOutputBytes', min: 1_048_576, max: 1_099_511_627_776 },
  { section: 'Registry', key: 'EventBatchMs', field: 'eventBatchMs', min: 0, max: 10_000 },
  { section: 'Registry', key: 'SignatureChecksPerSecond', field: 'signatureChecksPerSecond', min: 1, max: 1_000_000 },
  {
    section: 'Registry',
    key: 'JsonContainersPerSecond',
    field: 'jsonContainersPerSecond',
    min: 256,
    max: 1_000_000_000,
  },
];

/** Every section and key config.ini may hold (checked by name: a misspelt key is an error). */
export const KNOWN_KEYS: KnownKeys = new Map<string, readonly string[]>([
  ['Host', ['HOST', 'PORT', 'OperatorSocket']],
  ['HiddenService', ['HiddenServiceDir', 'HiddenServicePort', 'HostnameTimeoutSeconds']],
  ['Registry', [...LIMIT_KEYS.map((spec) => spec.key), ...CLAIMS_REGISTRY_KEYS]],
  ['Log', ['level', 'SummarySeconds']],
  ...CLAIMS_SECTIONS,
]);

/** Keys that were removed, with why and what to do instead: a config that sets one does not start. */
const REMOVED_KEYS: RemovedKeys = new Map([
  [
    'Registry',
    new Map([
      [
        'MaxSubscribers',
        'was removed: subscribing is no longer a scarce first-come resource (each subscriber is bounded by ' +
          'MaxBufferedBytes like any reader); delete the line',
      ],
    ]),
  ],
]);

/** The environment variable that overrides `[section] key`, e.g. REGISTRY_HOST_PORT. */
export function envName(section: string, key: string): string {
  return `${ENV_PREFIX}${section}_${key}`.toUpperCase();
}

/** Parsed ini: sections of keys, and (wrongly placed) keys outside any section. */
type Sections = Readonly<Record<string, unknown>>;

class Reader {
  readonly missing: string[] = [];
  readonly invalid: string[] = [];
  constructor(
    private readonly sections: Sections,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** The raw text of a key (environment first), or undefined when absent or blank. */
  raw(section: string, key: string): string | undefined {
    const fromEnv = this.env[envName(section, key)];
    if (fromEnv !== undefined && fromEnv.trim() !== '') return fromEnv.trim();
    const body = this.sections[section];
    const value = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined;
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'boolean') return String(value); // the ini parser reads true/false as booleans
    if (typeof value !== 'string') {
      this.invalid.push(`[${section}] ${key} must be a single value`);
      return undefined;
    }
    const trimmed = value.trim();
    return trimmed === '' ? undefined : trimmed;
  }

  required(section: string, key: string): string | undefined {
    const value = this.raw(section, key);
    if (value === undefined) this.missing.push(`[${section}] ${key}`);
    return value;
  }

  integer(section: string, key: string, text: string | undefined, min: number, max: number): number | undefined {
    if (text === undefined) return undefined;
    if (!/^-?\d+$/.test(text)) {
      this.invalid.push(`[${section}] ${key} must be a whole number, got "${text}"`);
      return undefined;
    }
    const value = Number(text);
    if (value < min || value > max) {
      this.invalid.push(`[${section}] ${key} must be between ${min} and ${max}, got ${value}`);
      return undefined;
    }
    return value;
  }
}

function readListen(reader: Reader): Listen | undefined {
  const host = reader.required('Host', 'HOST');
  if (host?.startsWith('unix:')) {
    const path = host.slice('unix:'.length);
    if (path === '') {
      reader.invalid.push('[Host] HOST unix: needs a socket path, e.g. unix:/run/registry/registry.sock');
      return undefined;
    }
    return { kind: 'unix', path };
  }
  const port = reader.integer('Host', 'PORT', reader.required('Host', 'PORT'), 0, 65_535);
  if (host === undefined || port === undefined) return undefined;
  return { kind: 'tcp', host, port };
}

/** The longest unix socket path Linux takes (sun_path holds 108 bytes with the final NUL). */
const MAX_SOCKET_PATH_BYTES = 107;
const OPERATOR_SOCKET_EXAMPLE = '/run/registry-operator/operator.sock';

/**
 * [Host] OperatorSocket: an absolute socket path (the `health` command may run from another folder), never the public
 * listener's.
 */
function readOperatorSocket(reader: Reader, listen: Listen | undefined): string | null {
  const path = reader.raw('Host', 'OperatorSocket');
  if (path === undefined) return null;
  const problem = operatorSocketProblem(path, listen);
  if (problem === undefined) return path;
  reader.invalid.push(`[Host] OperatorSocket ${problem}`);
  return null;
}

function operatorSocketProblem(path: string, listen: Listen | undefined): string | undefined {
  if (path.startsWith('unix:'))
    return `takes the socket path alone, without "unix:", e.g. ${OPERATOR_SOCKET_EXAMPLE}, got "${path}"`;
  if (!isAbsolute(path))
    return (
      `must be an absolute path (the health command may run from another folder), e.g. ` +
      `${OPERATOR_SOCKET_EXAMPLE}, got "${path}"`
    );
  if (path.endsWith('/'))
    return `must name the socket file, not its folder, e.g. ${OPERATOR_SOCKET_EXAMPLE}, got "${path}"`;
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES)
    return `is ${bytes} bytes long, over a unix socket path's ${MAX_SOCKET_PATH_BYTES}: choose a shorter path`;
  if (listen?.kind === 'unix' && resolve(listen.path) === resolve(path)) {
    return (
      `is the public listener's socket ([Host] HOST unix:${listen.path}), which tor forwards the onion to: ` +
      `health would answer on the onion; choose another path, in a folder tor does not mount, e.g. ` +
      `${OPERATOR_SOCKET_EXAMPLE}`
    );
  }
  return undefined;
}

/**
 * Builds the configuration from parsed ini sections and the environment. Reports every problem at
 * once in a single CONFIG_INVALID error; the result is frozen.
 */
export function buildConfig(sections: Sections, env: NodeJS.ProcessEnv = process.env): Config {
  const reader = new Reader(sections, env);
  reader.invalid.push(...removedNames(sections, env, REMOVED_KEYS, envName));
  reader.invalid.push(...unknownNames(sections, KNOWN_KEYS, REMOVED_KEYS));
  reader.invalid.push(...unknownEnvNames(env, KNOWN_KEYS, REMOVED_KEYS, envName));
  const listen = readListen(reader);
  const operatorSocket = readOperatorSocket(reader, listen);
  const hiddenServiceDir = reader.required('HiddenService', 'HiddenServiceDir');
  const hiddenServicePort = reader.integer(
    'HiddenService',
    'HiddenServicePort',
    reader.required('HiddenService', 'HiddenServicePort'),
    1,
    65_535,
  );
  const hostnameTimeoutSeconds =
    reader.integer(
      'HiddenService',
      'HostnameTimeoutSeconds',
      reader.raw('HiddenService', 'HostnameTimeoutSeconds'),
      1,
      86_400,
    ) ?? DEFAULT_HOSTNAME_TIMEOUT_SECONDS;

  const limits: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const spec of LIMIT_KEYS) {
    const value = reader.integer(spec.section, spec.key, reader.raw(spec.section, spec.key), spec.min, spec.max);
    if (value !== undefined) limits[spec.field] = value;
  }

  const claims = readClaimsConfig(reader);

  const levelText = reader.raw('Log', 'level')?.toLowerCase() ?? 'info';
  const logLevel = LOG_LEVELS.find((level) => level === levelText);
  if (logLevel === undefined) {
    reader.invalid.push(`[Log] level must be one of ${LOG_LEVELS.join(', ')}, got "${levelText}"`);
  }

  const logSummarySeconds =
    reader.integer('Log', 'SummarySeconds', reader.raw('Log', 'SummarySeconds'), 1, 86_400) ??
    DEFAULT_LOG_SUMMARY_SECONDS;

  if (reader.missing.length > 0 || reader.invalid.length > 0) {
    throw configError(reader.missing, reader.invalid);
  }
  return Object.freeze({
    listen: Object.freeze(listen as Listen),
    operatorSocket,
    hiddenServiceDir: hiddenServiceDir as string,
    hiddenServicePort: hiddenServicePort as number,
    hostnameTimeoutSeconds,
    limits: Object.freeze(limits as unknown as RegistryLimits),
    logLevel: logLevel as LogLevel,
    logSummarySeconds,
    claims,
  });
}

/** Reads and validates a config.ini file. A missing or unreadable file is CONFIG_INVALID too. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason =
      (err as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'does not exist'
        : `cannot be read (${(err as Error).message})`;
    throw configError(
      [],
      [`config file ${path} ${reason}: copy config.ini.example to config.ini or pass --config <path>`],
    );
  }
  return buildConfig(parseIni(text) as Sections, env);
}

/**
 * The config as it is safe to log. `[Store] Database` may hold the PostgreSQL password (from the
 * file or REGISTRY_STORE_DATABASE): it is shown as messages show it, without one.
 */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    listen:
      config.listen.kind === 'unix' ? `unix:${config.listen.path}` : `${config.listen.host}:${config.listen.port}`,
    operatorSocket: config.operatorSocket,
    hiddenServiceDir: config.hiddenServiceDir,
    hiddenServicePort: config.hiddenServicePort,
    hostnameTimeoutSeconds: config.hostnameTimeoutSeconds,
    limits: config.limits,
    logLevel: config.logLevel,
    logSummarySeconds: config.logSummarySeconds,
    claims: {
      ...config.claims,
      database: isPostgresDatabase(config.claims.database)
        ? redactConnectionString(config.claims.database)
        : config.claims.database,
    },
  };
}
