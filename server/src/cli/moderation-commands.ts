/**
 * The operator's moderation commands (PROTOCOL.md revision 3, "Moderation"; docs/OPERATIONS.md):
 * `block key|address`, `unblock key|address`, `reserve`, `unreserve`, `moderation list` and
 * `audit`. They write the claim database next to the running server (a decision is one durable
 * transaction), and every running server applies it within a second (moderation-watch.ts). Each
 * action is audited in the database and logged as one line at info on stderr. Each returns its
 * exit code.
 */
import { userInfo } from 'node:os';
import { parseOnionAddress } from '../protocol/onion-address.js';
import { MS_PER_DAY } from '../store/claim-store.js';
import type { BlockKind, Decision, ModerationStore } from '../store/moderation/moderation-store.js';
import { NicknamePattern, patternProblem } from '../server/moderation/nickname-pattern.js';
import type { Logger } from '../server/logger.js';
import type { ParsedArgs } from './args.js';
import { usageError } from './args.js';
import { printAudit, printDecisions } from './moderation-output.js';
import type { StoreIo } from './store-commands.js';

export const MODERATION_COMMANDS: ReadonlySet<string> = new Set([
  'block',
  'unblock',
  'reserve',
  'unreserve',
  'moderation',
  'audit',
]);
export const MODERATION_OPTIONS: readonly string[] = ['reason', 'note', 'days', 'by', 'for', 'since'];

export const MODERATION_USAGE = `
moderation (the operator's decisions, in the claim database; safe while the server runs: every
running server applies a decision within a second; docs/OPERATIONS.md "Moderation"):
  block key <key-id|nickname>          refuse a key (BLOCKED); its live registration is closed (4003), its claim deleted
  block address <onion>                the same for an onion address
  reserve <nickname-or-pattern> [--for <key-id|nickname>]
                                       refuse a nickname and its look-alikes (NICKNAME_RESERVED); a glob
                                       with * and ? reserves every nickname it matches; --for: only that key may use it
  unblock key|address <target>, unreserve <nickname-or-pattern>   lift a decision
    options: --reason "<public reason, sent to the peer>"  --note "<private note>"
             --days <n> (the decision lapses after n days; default never)  --by <who> (default: the OS user)
  moderation list [--json]             the decisions in force
  audit [--since <date>] [--json]      every operator action (also claims release), oldest first
  exit codes: 0 ok, 1 failure or nothing to lift, 2 usage, 78 configuration error
`;

const KEY_ID = /^[0-9a-f]{64}$/;
/** The commands that write a decision (and take --reason, --note, --by, --days). */
const DECIDING: ReadonlySet<string> = new Set(['block', 'unblock', 'reserve', 'unreserve']);
const MAX_TEXT = 500;

export interface ModerationIo extends StoreIo {
  /** One info line per action (the operator's log). */
  readonly log: Pick<Logger, 'info'>;
}

function text(args: ParsedArgs, name: string): string | null {
  const value = args.options.get(name);
  if (value === undefined) return null;
  if (typeof value !== 'string' || value.length > MAX_TEXT)
    throw usageError(`--${name} takes a text of at most ${MAX_TEXT} characters`);
  return value;
}

/** Who, why, until when: from --by, --reason, --note and --days. */
export function decisionOf(args: ParsedArgs, now: number = Date.now()): Decision {
  const daysText = text(args, 'days');
  let expiresAt: number | null = null;
  if (daysText !== null) {
    const days = Number(daysText);
    if (!/^\d+(\.\d+)?$/.test(daysText) || !(days > 0) || days > 36_500)
      throw usageError(`--days takes a number of days above 0 (up to 36500), not "${daysText}"`);
    expiresAt = now + Math.round(days * MS_PER_DAY);
  }
  let by = text(args, 'by');
  if (by === null) {
    try {
      by = userInfo().username;
    } catch {
      by = process.env['USER'] ?? 'unknown';
    }
  }
  return { by, reason: text(args, 'reason'), note: text(args, 'note'), expiresAt };
}

/**
 * `<key-id|nickname>`: a key id as it is; a nickname by the key that holds it now (its claim, or live in a cluster).
 */
async function keyOf(
  store: ModerationStore,
  given: string,
  what: string,
): Promise<{ readonly keyId: string; readonly label: string | null }> {
  if (KEY_ID.test(given)) return { keyId: given, label: null };
  const held = await store.keyOfNickname(given);
  if (held === null)
    throw new Error(
      `no key holds "${given}" now (${what} names a key by its key id, 64 lowercase hex characters, or by a nickname ` +
        `it holds now; "${given}" has no ` +
        `claim${store.target.startsWith('postgres') ? ' and no live registration' : ''}). Fix: pass the key id: ` +
        `\`p2p-registry claims list\` shows the start of each claim's, \`claims show <nickname> --json\` the whole; ` +
        `a peer's key id is the SHA-256 of its public key's DER`,
    );
  return { keyId: held.keyId, label: held.nickname };
}

function addressOf(given: string): string {
  const parsed = parseOnionAddress(given);
  if (!parsed.ok)
    throw usageError(
      `"${given}" is not a v3 onion address: ${parsed.reason}. Pass the address as the peer registered it (56 ` +
        `characters and .onion; \`p2p-registry claims show <nickname>\` shows a claim's)`,
    );
  return parsed.address;
}

function kindAndTarget(args: ParsedArgs, command: string): { readonly kind: BlockKind; readonly target: string } {
  const [kind, target, ...rest] = args.positional;
  if ((kind !== 'key' && kind !== 'address') || target === undefined || rest.length > 0)
    throw usageError(`${command} takes key <key-id|nickname> or address <onion>: p2p-registry ${command} key <key-id>`);
  return { kind, target };
}

function onePattern(args: ParsedArgs, command: string): string {
  const [pattern, ...rest] = args.positional;
  if (pattern === undefined || rest.length > 0)
    throw usageError(`${command} takes one nickname or pattern: p2p-registry ${command} 'admin*'`);
  const problem = patternProblem(pattern);
  if (problem !== null) throw usageError(`${command} "${pattern}": ${problem}`);
  return pattern.toLowerCase();
}

function effect(claimsDeleted: readonly string[]): string {
  return claimsDeleted.length === 0 ? 'no claim deleted' : `claims deleted: ${claimsDeleted.join(', ')}`;
}

function lapse(decision: Decision): string {
  return decision.expiresAt === null ? 'until lifted' : `until ${new Date(decision.expiresAt).toISOString()}`;
}

async function block(store: ModerationStore, args: ParsedArgs, io: ModerationIo): Promise<number> {
  const { kind, target: given } = kindAndTarget(args, 'block');
  const decision = decisionOf(args, store.now());
  const { keyId, label } =
    kind === 'key' ? await keyOf(store, given, 'block key') : { keyId: addressOf(given), label: null };
  const applied = await store.block(kind, keyId, label, decision);
  io.log.info({ action: 'block', kind, target: keyId, label, by: decision.by }, 'operator action: block');
  const named = label === null ? '' : ` (${label})`;
  io.stdout.write(
    `blocked ${kind} ${keyId}${named} ${lapse(decision)}${applied.renewed ? ' (renewed)' : ''}: ` +
      `${effect(applied.claimsDeleted)}; running servers close its live registration within a second\n`,
  );
  return 0;
}

async function unblock(store: ModerationStore, args: ParsedArgs, io: ModerationIo): Promise<number> {
  const { kind, target: given } = kindAndTarget(args, 'unblock');
  const decision = decisionOf(args, store.now());
  const target = kind === 'address' ? addressOf(given) : given;
  const lifted = await store.unblock(kind, target, decision);
  if (lifted === null) {
    io.stderr.write(`p2p-registry: no block of ${kind} ${given} to lift (see p2p-registry moderation list)\n`);
    return 1;
  }
  io.log.info({ action: 'unblock', kind, target: lifted.target, by: decision.by }, 'operator action: unblock');
  io.stdout.write(`unblocked ${kind} ${lifted.target}: it may register again\n`);
  return 0;
}

async function reserve(store: ModerationStore, args: ParsedArgs, io: ModerationIo): Promise<number> {
  const pattern = onePattern(args, 'reserve');
  const decision = decisionOf(args, store.now());
  const forGiven = text(args, 'for');
  const forKey = forGiven === null ? null : await keyOf(store, forGiven, '--for');
  const matcher = new NicknamePattern(pattern);
  const applied = await store.reserve(pattern, (nickname) => matcher.covers(nickname), forKey, decision);
  io.log.info(
    { action: 'reserve', target: pattern, forKeyId: forKey?.keyId ?? null, by: decision.by },
    'operator action: reserve',
  );
  const forWhom = forKey === null ? '' : ` for key ${forKey.keyId}`;
  io.stdout.write(
    `reserved ${pattern}${forWhom} and its look-alikes ${lapse(decision)}${applied.renewed ? ' (renewed)' : ''}: ` +
      `${effect(applied.claimsDeleted)}; running servers close live registrations of it within a second\n`,
  );
  return 0;
}

async function unreserve(store: ModerationStore, args: ParsedArgs, io: ModerationIo): Promise<number> {
  const pattern = onePattern(args, 'unreserve');
  const decision = decisionOf(args, store.now());
  const lifted = await store.unreserve(pattern, decision);
  if (lifted === null) {
    io.stderr.write(`p2p-registry: no reservation of "${pattern}" to lift (see p2p-registry moderation list)\n`);
    return 1;
  }
  io.log.info({ action: 'unreserve', target: pattern, by: decision.by }, 'operator action: unreserve');
  io.stdout.write(`unreserved ${pattern}: it may be registered again\n`);
  return 0;
}

/** `--since`: an ISO date or date-time. */
function sinceOf(args: ParsedArgs): number {
  const since = text(args, 'since');
  if (since === null) return 0;
  const at = Date.parse(since);
  if (!/^\d{4}-\d{2}-\d{2}/.test(since) || Number.isNaN(at))
    throw usageError(`--since takes a date, e.g. 2027-01-31 or 2027-01-31T12:00:00Z, not "${since}"`);
  return at;
}

/** Checks the command line before anything is opened: a mistyped command must not touch the database. */
export function checkModerationUsage(command: string, args: ParsedArgs): void {
  if (command === 'block' || command === 'unblock') {
    const { kind, target } = kindAndTarget(args, command);
    if (kind === 'address') addressOf(target);
  }
  if (command === 'reserve' || command === 'unreserve') onePattern(args, command);
  if (command === 'moderation' && (args.positional[0] !== 'list' || args.positional.length > 1))
    throw usageError('moderation takes list: p2p-registry moderation list [--json]');
  if (command === 'audit' && args.positional.length > 0) throw usageError('audit takes options only: --since, --json');
  if (command === 'audit') sinceOf(args);
  if (command !== 'reserve' && args.options.has('for'))
    throw usageError(`--for goes with reserve only: p2p-registry reserve <nickname> --for <key-id|nickname>`);
  if (command !== 'audit' && args.options.has('since'))
    throw usageError('--since goes with audit only: p2p-registry audit --since 2027-01-31');
  const deciding = DECIDING.has(command) ? [] : ['reason', 'note', 'by', 'days'].filter((o) => args.options.has(o));
  if (deciding.length > 0)
    throw usageError(
      `--${deciding[0]} goes with block, unblock, reserve and unreserve: ${command} only reads the decisions`,
    );
  if (args.options.has('days') && (command === 'unblock' || command === 'unreserve'))
    throw usageError(`--days goes with block and reserve (how long a decision lasts): ${command} lifts it now`);
  if (args.options.has('json') && DECIDING.has(command))
    throw usageError(`--json goes with moderation list and audit: p2p-registry moderation list --json`);
  decisionOf(args);
}

/** Runs a moderation command on an opened store (closed afterwards). Usage problems throw USAGE. */
export async function runModerationCommand(
  command: string,
  args: ParsedArgs,
  open: () => Promise<ModerationStore>,
  io: ModerationIo,
): Promise<number> {
  checkModerationUsage(command, args);
  const store = await open();
  try {
    if (command === 'block') return await block(store, args, io);
    if (command === 'unblock') return await unblock(store, args, io);
    if (command === 'reserve') return await reserve(store, args, io);
    if (command === 'unreserve') return await unreserve(store, args, io);
    if (command === 'moderation') return printDecisions(await store.decisions(), args.options.has('json'), io);
    return printAudit(await store.audit(sinceOf(args)), args.options.has('json'), io);
  } finally {
    await store.close();
  }
}
