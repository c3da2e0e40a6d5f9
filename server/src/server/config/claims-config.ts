/**
 * The configuration of revision 2's durable parts: `[Store] Database` (with PasswordFile and
 * LeaseSeconds for a cluster's PostgreSQL), `[Claims] ClaimDays` and
 * `ClaimAfterSeconds`, and `[Registry] RequireAddressProof`. Read by buildConfig (config.ts) with
 * its reader, so the environment overrides them and every problem is reported with the others.
 */
import { isPostgresDatabase } from '../../store/open-store.js';

export interface ClaimsConfig {
  /**
   * The SQLite file of the claim store, as configured (relative paths are from the working
   * directory), or a postgres:// URL: the cluster's shared PostgreSQL.
   */
  readonly database: string;
  /**
   * [Store] PasswordFile: the PostgreSQL password, read from this file at start; null: none (or PGPASSWORD, or in the
   * URL).
   */
  readonly passwordFile: string | null;
  /** [Store] LeaseSeconds: a cluster instance that stops renewing its lease loses its peers after this long. */
  readonly leaseSeconds: number;
  /** A claim lasts this many days after its key was last registered. */
  readonly claimDays: number;
  /** Seconds of uninterrupted registration before a claim is made; 0: at once. */
  readonly claimAfterSeconds: number;
  /** Refuse registrations without an address proof (ADDRESS_PROOF_REQUIRED). */
  readonly requireAddressProof: boolean;
}

export const DEFAULT_CLAIMS: ClaimsConfig = Object.freeze({
  database: './data/registry.db',
  passwordFile: null,
  leaseSeconds: 15,
  claimDays: 30,
  claimAfterSeconds: 600,
  requireAddressProof: false,
});

/** The sections and keys this module reads, for config.ts's list of known names. */
export const CLAIMS_SECTIONS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['Store', ['Database', 'PasswordFile', 'LeaseSeconds']],
  ['Claims', ['ClaimDays', 'ClaimAfterSeconds']],
];
/** Keys of [Registry] read here rather than as limits. */
export const CLAIMS_REGISTRY_KEYS: readonly string[] = ['RequireAddressProof'];

/** What buildConfig's reader offers (config.ts). */
export interface ConfigReader {
  readonly invalid: string[];
  raw(section: string, key: string): string | undefined;
  integer(section: string, key: string, text: string | undefined, min: number, max: number): number | undefined;
}

const MAX_CLAIM_DAYS = 3_650;
const MIN_LEASE_SECONDS = 2;
const MAX_LEASE_SECONDS = 600;
const MAX_CLAIM_AFTER_SECONDS = 30 * 86_400;
const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);

function readBoolean(reader: ConfigReader, section: string, key: string, fallback: boolean): boolean {
  const text = reader.raw(section, key);
  if (text === undefined) return fallback;
  const lower = text.toLowerCase();
  if (TRUE.has(lower)) return true;
  if (FALSE.has(lower)) return false;
  reader.invalid.push(`[${section}] ${key} must be true or false, got "${text}"`);
  return fallback;
}

function readDatabase(reader: ConfigReader): string {
  const path = reader.raw('Store', 'Database') ?? DEFAULT_CLAIMS.database;
  if (path === ':memory:' || path.startsWith('file:')) {
    reader.invalid.push(
      `[Store] Database must be a file path or a postgres:// URL (claims must outlive the process), got "${path}"`,
    );
  }
  return path;
}

function readPasswordFile(reader: ConfigReader, database: string): string | null {
  const file = reader.raw('Store', 'PasswordFile');
  if (file === undefined) return null;
  if (!isPostgresDatabase(database)) {
    reader.invalid.push(
      '[Store] PasswordFile is the password of a PostgreSQL database: set [Store] Database to a postgres:// URL, or ' +
        'delete the line',
    );
  }
  return file;
}

/** Reads the claims settings; problems go to the reader's list, and defaults fill their place. */
export function readClaimsConfig(reader: ConfigReader): ClaimsConfig {
  const claimDays =
    reader.integer('Claims', 'ClaimDays', reader.raw('Claims', 'ClaimDays'), 1, MAX_CLAIM_DAYS) ??
    DEFAULT_CLAIMS.claimDays;
  const claimAfterSeconds =
    reader.integer(
      'Claims',
      'ClaimAfterSeconds',
      reader.raw('Claims', 'ClaimAfterSeconds'),
      0,
      MAX_CLAIM_AFTER_SECONDS,
    ) ?? DEFAULT_CLAIMS.claimAfterSeconds;
  const database = readDatabase(reader);
  return Object.freeze({
    database,
    passwordFile: readPasswordFile(reader, database),
    leaseSeconds:
      reader.integer(
        'Store',
        'LeaseSeconds',
        reader.raw('Store', 'LeaseSeconds'),
        MIN_LEASE_SECONDS,
        MAX_LEASE_SECONDS,
      ) ?? DEFAULT_CLAIMS.leaseSeconds,
    claimDays,
    claimAfterSeconds,
    requireAddressProof: readBoolean(reader, 'Registry', 'RequireAddressProof', DEFAULT_CLAIMS.requireAddressProof),
  });
}
