/** Peer client commands of `p2p-registry` (peers, lookup, register, watch). */
import type { ParsedArgs } from './cli-args.js';
import { UsageError } from './cli-args.js';

export const CLIENT_COMMANDS: ReadonlySet<string> = new Set<string>();
export const CLIENT_OPTIONS: readonly string[] = [];
export const CLIENT_FLAGS: readonly string[] = [];
export const CLIENT_USAGE = '';

export function runClientCommand(command: string, _args: ParsedArgs): Promise<number> {
  return Promise.reject(new UsageError(`unknown command "${command}"`));
}
