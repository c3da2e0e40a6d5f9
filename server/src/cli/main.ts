/**
 * `p2p-registry <command>`: parses the arguments and runs a command; returns the exit code (the
 * executable, ../cli.ts, is the only place that exits).
 *   serve  --config <path>   run the registry
 *   onion  --config <path>   print ws://<onion>:<port>/ from tor's hostname file
 *   health --config <path>   exit 0 when the operator listener's /healthz answers 200 (container HEALTHCHECK)
 *   tor-settings --config <path> --out <file>   validate config.ini, write what tor needs
 *   status --config <path> [--watch] [--json]   one screen from the operator socket (status-command.ts)
 *   metrics-forward --socket <path> --listen <address:port>   the monitoring profile's forwarder
 *   claims list|show|release, backup <file>   operators' commands on the claim database
 * plus the peer client commands of client-commands.ts.
 */
import { isUsageError, parseArgs, usageError } from './args.js';
import { CLIENT_COMMANDS, CLIENT_FLAGS, CLIENT_OPTIONS, CLIENT_USAGE, runClientCommand } from './client-commands.js';
import { RegistryError } from '../protocol/errors.js';
import { health, onion, serve, SERVER_COMMANDS, writeTorSettings } from './server-commands.js';
import {
  openDatabaseOf,
  openForRelease,
  openModerationOf,
  runStoreCommand,
  STORE_COMMANDS,
  STORE_USAGE,
} from './store-commands.js';
import {
  decisionOf,
  MODERATION_COMMANDS,
  MODERATION_OPTIONS,
  MODERATION_USAGE,
  runModerationCommand,
} from './moderation-commands.js';
import { createLogger } from '../server/logger.js';
import { metricsForward } from './metrics-forward.js';
import { parseInterval, status } from './status-command.js';

const USAGE = `usage: p2p-registry <command> [options]

registry commands (--config defaults to ./config.ini):
  serve  [--config <path>]   run the registry server
  onion  [--config <path>]   print the registry's ws://<onion>:<port>/ URL
  health [--config <path>]   exit 0 if the running server is healthy (asks [Host] OperatorSocket)
  tor-settings [--config <path>] --out <file>
                             validate config.ini as serve does and write the KEY=VALUE lines
                             the tor container needs (HIDDEN_SERVICE_PORT) to <file>
  status [--config <path>] [--watch] [--json] [--interval <seconds>]
                             one screen from the operator socket: peers, connections, requests,
                             registrations and refusals per minute, latency, store, onion, cluster
  metrics-forward --socket <path> --listen <address:port>
                             serve GET /metrics of the operator socket over TCP (monitoring profile)
  exit codes: 0 ok, 1 failure, 2 usage, 3 no onion address yet (onion), 78 configuration error
${STORE_USAGE}${MODERATION_USAGE}${CLIENT_USAGE}`;

export async function main(argv: readonly string[]): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(
      argv,
      new Set(['config', 'out', 'socket', 'listen', 'interval', ...CLIENT_OPTIONS, ...MODERATION_OPTIONS]),
      new Set(['help', 'watch', ...CLIENT_FLAGS]),
    );
  } catch (err) {
    process.stderr.write(`p2p-registry: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { command } = args;
  if (command === undefined || args.options.has('help') || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined && !args.options.has('help') ? 2 : 0;
  }
  try {
    if (SERVER_COMMANDS.has(command)) {
      const configPath = String(args.options.get('config') ?? './config.ini');
      if (command === 'serve') return await serve(configPath);
      if (command === 'onion') return await onion(configPath);
      if (command === 'tor-settings') {
        const out = args.options.get('out');
        if (typeof out !== 'string') throw usageError('tor-settings needs --out <file>');
        return writeTorSettings(configPath, out);
      }
      return await health(configPath);
    }
    if (command === 'status' || command === 'metrics-forward') return await monitoringCommand(command, args);
    if (STORE_COMMANDS.has(command)) {
      const configPath = String(args.options.get('config') ?? './config.ini');
      const release = command === 'claims' && args.positional[0] === 'release';
      return await runStoreCommand(
        command,
        args,
        (access) => (release ? openForRelease(configPath, decisionOf(args)) : openDatabaseOf(configPath, access)),
        { stdout: process.stdout, stderr: process.stderr, log: operatorLog() },
      );
    }
    if (MODERATION_COMMANDS.has(command)) {
      const configPath = String(args.options.get('config') ?? './config.ini');
      return await runModerationCommand(command, args, () => openModerationOf(configPath), {
        stdout: process.stdout,
        stderr: process.stderr,
        log: operatorLog(),
      });
    }
    if (CLIENT_COMMANDS.has(command)) return await runClientCommand(command, args);
    throw usageError(`unknown command "${command}"`);
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'CONFIG_INVALID') {
      process.stderr.write(`${err.message}\n`);
      return 78; // EX_CONFIG
    }
    if (isUsageError(err)) {
      process.stderr.write(`p2p-registry: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`p2p-registry: ${(err as Error).message}\n`);
    return 1;
  }
}

/** The operator's actions, one JSON line each at info on stderr (stdout is the command's answer). */
function operatorLog(): ReturnType<typeof createLogger> {
  return createLogger('info', process.stderr).child({ module: 'operator' });
}

async function monitoringCommand(command: string, args: ReturnType<typeof parseArgs>): Promise<number> {
  if (command === 'metrics-forward') {
    const socket = args.options.get('socket');
    const listen = args.options.get('listen');
    if (typeof socket !== 'string' || typeof listen !== 'string')
      throw usageError('metrics-forward needs --socket <operator socket> and --listen <address:port>');
    return metricsForward(socket, listen);
  }
  return status(String(args.options.get('config') ?? './config.ini'), {
    watch: args.options.has('watch'),
    json: args.options.has('json'),
    intervalSeconds: parseInterval(args.options.get('interval')),
    write: (text) => process.stdout.write(text),
  });
}
