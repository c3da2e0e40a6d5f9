/**
 * Operators' commands on the claim store: `claims list [--json]`, `claims show <nickname>`,
 * `claims release <nickname>` and `backup <file>`. They open the database next to the running
 * server (SQLite in WAL mode takes a second connection; a write waits for the server's at most the
 * store's busy timeout), so they are safe while it serves. Each returns its exit code.
 */
import { existsSync } from 'node:fs';
import { redactConnectionString } from '../store/postgres/postgres-failure.js';
import { isPostgresDatabase } from '../store/open-store.js';
import { resolve } from 'node:path';
import { RegistryError } from '../protocol/errors.js';
import { loadConfig } from '../server/config/config.js';
import { openConfiguredStore } from '../store/open-store.js';
import type { ParsedArgs } from './args.js';
import { usageError } from './args.js';
import type { TextSink } from './client-common.js';
import type { Claim, ClaimStore } from '../store/claim-store.js';
import type { Logger } from '../server/logger.js';
import type { Decision, ModerationStore } from '../store/moderation/moderation-store.js';
import { openModerationStore } from '../store/moderation/open-moderation.js';

export const STORE_COMMANDS: ReadonlySet<string> = new Set(['claims', 'backup']);
export const STORE_FLAGS: readonly string[] = ['json'];

export const STORE_USAGE = `
operator commands on the claim database ([Store] Database of --config; safe while the server runs;
all but release only read, so a read-only file or a PostgreSQL role with only SELECT serves them):
  claims list [--json]                 every live claim, in nickname order
  claims show <nickname>               one claim
  claims release <nickname>            delete the claim on a nickname (abuse handling): it is free at once
  backup <file>                        an online, consistent copy of the database (restore: docs/OPERATIONS.md)
  exit codes: 0 ok, 1 failure or no such claim, 2 usage, 78 configuration error
`;

export interface StoreIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  /** The operator's log: one info line per action that changes something (claims release). */
  readonly log?: Pick<Logger, 'info'>;
}

/** Where the claims live, for messages ("backed up <database> to <file>"). */
export interface StoreHandle {
  readonly store: ClaimStore;
  readonly database: string;
  /** Opened for writes: where `claims release` is audited (revision 3). */
  readonly moderation?: ModerationStore;
  /** Who runs it (--by, or the OS user) and the --reason and --note of an audited action. */
  readonly decision?: Decision;
}

/** What a command does to the claims: `read` needs no write access to the database at all. */
export type StoreAccess = 'read' | 'write';

/**
 * Opens the database config.ini names. It must exist: the server creates it at its first start, and
 * an operator's command that made an empty one elsewhere would only hide a wrong --config.
 */
export async function openDatabaseOf(configPath: string, access: StoreAccess): Promise<StoreHandle> {
  const config = loadConfig(configPath);
  const options = { readOnly: access === 'read' };
  if (isPostgresDatabase(config.claims.database)) {
    return {
      store: await openConfiguredStore(config.claims, options),
      database: redactConnectionString(config.claims.database),
    };
  }
  const database = resolve(config.claims.database);
  if (!existsSync(database)) {
    throw new RegistryError(
      'STORE_OPEN_FAILED',
      `no claim database at ${database} ([Store] Database of ${configPath}): pass the server's --config (in the ` +
        `Docker stack: docker compose exec registry node /app/server/dist/cli.js claims list --config ` +
        `/etc/p2p-registry/config.ini); the server creates the database at its first start`,
    );
  }
  return { store: await openConfiguredStore(config.claims, options), database };
}

/** The moderation tables of the database config.ini names, created or migrated first if needed (as a write). */
export async function openModerationOf(configPath: string): Promise<ModerationStore> {
  const handle = await openDatabaseOf(configPath, 'write');
  await handle.store.close();
  return openModerationStore(loadConfig(configPath).claims);
}

/** `claims release` audits what it deletes: the claim database opened for writes, and its moderation tables. */
export async function openForRelease(configPath: string, decision: Decision): Promise<StoreHandle> {
  const handle = await openDatabaseOf(configPath, 'write');
  try {
    return { ...handle, moderation: await openModerationStore(loadConfig(configPath).claims), decision };
  } catch (err) {
    await handle.store.close();
    throw err;
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The form `claims list` and `claims show` print: what an operator needs to judge a claim. */
function describeClaim(claim: Claim): string {
  const verified = claim.addressVerified ? 'address proven' : 'address not proven';
  return (
    `${claim.nickname}  ${claim.address}  ${verified}  until ${iso(claim.expiresAt)}  last seen ` +
    `${iso(claim.lastSeenAt)}  key ${claim.keyId.slice(0, 16)}`
  );
}

function claimJson(claim: Claim): Record<string, unknown> {
  return {
    nickname: claim.nickname,
    address: claim.address,
    addressVerified: claim.addressVerified,
    keyId: claim.keyId,
    claimedAt: iso(claim.claimedAt),
    lastSeenAt: iso(claim.lastSeenAt),
    until: iso(claim.expiresAt),
  };
}

/**
 * Page by page: a store of any size is listed without holding every claim (JSON: one array, as
 * before). Should a later page fail, what was written stays, cut short, and the exit code says so.
 */
async function listClaims(store: ClaimStore, json: boolean, io: StoreIo): Promise<number> {
  let after: string | undefined;
  let listed = 0;
  if (json) io.stdout.write('[');
  for (;;) {
    const page = await store.list(after === undefined ? { limit: 1_000 } : { after, limit: 1_000 });
    if (page.claims.length > 0) {
      const lines = json
        ? page.claims.map((claim) => JSON.stringify(claimJson(claim))).join(',')
        : page.claims.map((claim) => `${describeClaim(claim)}\n`).join('');
      io.stdout.write(json && listed > 0 ? `,${lines}` : lines);
      listed += page.claims.length;
    }
    if (page.next === null) break;
    after = page.next;
  }
  if (json) io.stdout.write(']\n');
  else if (listed === 0) io.stderr.write('no claims\n');
  return 0;
}

function oneNickname(args: ParsedArgs, what: string): string {
  const [, nickname, ...rest] = args.positional;
  if (nickname === undefined || rest.length > 0)
    throw usageError(`claims ${what} takes one nickname: p2p-registry claims ${what} <nickname>`);
  return nickname;
}

async function showClaim(store: ClaimStore, args: ParsedArgs, io: StoreIo): Promise<number> {
  const nickname = oneNickname(args, 'show');
  const claim = await store.getByNickname(nickname);
  if (claim === null) {
    io.stderr.write(`p2p-registry: no live claim on "${nickname}" (never claimed, released, or expired)\n`);
    return 1;
  }
  io.stdout.write(args.options.has('json') ? `${JSON.stringify(claimJson(claim))}\n` : `${describeClaim(claim)}\n`);
  return 0;
}

async function releaseClaim(handle: StoreHandle, args: ParsedArgs, io: StoreIo): Promise<number> {
  const nickname = oneNickname(args, 'release');
  const claim = await handle.store.releaseNickname(nickname);
  if (claim === null) {
    io.stderr.write(`p2p-registry: no claim on "${nickname}" to release\n`);
    return 1;
  }
  if (handle.moderation !== undefined && handle.decision !== undefined) {
    await handle.moderation.claimReleased(claim.nickname, claim.address, handle.decision);
    io.log?.info(
      { action: 'claims-release', target: claim.nickname, by: handle.decision.by },
      'operator action: claims release',
    );
  }
  io.stdout.write(
    `released ${claim.nickname} (${claim.address}): the nickname and address are free now; a peer registered under ` +
      `it right now keeps its live registration until it disconnects\n`,
  );
  return 0;
}

async function backup(handle: StoreHandle, args: ParsedArgs, io: StoreIo): Promise<number> {
  const file = args.positional[0] as string;
  await handle.store.backup(file);
  io.stdout.write(`backed up ${handle.database} to ${file}\n`);
  return 0;
}

/** Runs `claims …` or `backup …` on an opened store (closed afterwards). Usage problems throw USAGE. */
export async function runStoreCommand(
  command: string,
  args: ParsedArgs,
  open: (access: StoreAccess) => Promise<StoreHandle>,
  io: StoreIo,
): Promise<number> {
  const sub = command === 'claims' ? args.positional[0] : undefined;
  if (command === 'claims' && (sub === undefined || !['list', 'show', 'release'].includes(sub))) {
    throw usageError('claims needs list, show <nickname> or release <nickname>');
  }
  if (command === 'claims' && sub === 'list' && args.positional.length > 1)
    throw usageError('claims list takes no arguments');
  if (command === 'claims' && sub !== 'list') oneNickname(args, sub as string);
  if (command === 'backup' && args.positional.length !== 1)
    throw usageError('backup takes one file: p2p-registry backup <file>');
  // Usage is checked before the database is opened: a mistyped command must not create one.
  // Only release writes: list, show and backup work for an account or a role that may only read.
  const handle = await open(sub === 'release' ? 'write' : 'read');
  try {
    if (command === 'backup') return await backup(handle, args, io);
    if (sub === 'list') return await listClaims(handle.store, args.options.has('json'), io);
    if (sub === 'show') return await showClaim(handle.store, args, io);
    return await releaseClaim(handle, args, io);
  } finally {
    await handle.store.close();
    await handle.moderation?.close();
  }
}
