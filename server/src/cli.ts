#!/usr/bin/env node
/**
 * `p2p-registry`: the only place that exits the process.
 *   serve  --config <path>   run the registry
 *   onion  --config <path>   print ws://<onion>:<port>/ from tor's hostname file
 *   health --config <path>   exit 0 when /healthz answers 200 (container HEALTHCHECK)
 * plus the peer client commands of client-cli.ts.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, UsageError } from './cli-args.js';
import { CLIENT_COMMANDS, CLIENT_FLAGS, CLIENT_OPTIONS, CLIENT_USAGE, runClientCommand } from './client-cli.js';
import { describeConfig, loadConfig, type Config } from './config.js';
import { ConfigError } from './errors.js';
import { fetchHealth } from './health-check.js';
import { createLogger } from './logger.js';
import { readOnionState } from './onion-watcher.js';
import { startServer } from './server.js';

const USAGE = `usage: p2p-registry <command> [options]

registry commands (--config defaults to ./config.ini):
  serve  [--config <path>]   run the registry server
  onion  [--config <path>]   print the registry's ws://<onion>:<port>/ URL
  health [--config <path>]   exit 0 if the running server is healthy
  exit codes: 0 ok, 1 failure, 2 usage, 3 no onion address yet (onion), 78 configuration error
${CLIENT_USAGE}`;

const SERVER_COMMANDS = new Set(['serve', 'onion', 'health']);

function config(path: string): Config {
  return loadConfig(path);
}

async function serve(configPath: string): Promise<number> {
  const cfg = config(configPath);
  const logger = createLogger(cfg.logLevel);
  logger.info({ config: describeConfig(cfg), node: process.version }, 'starting p2p-registry');
  const server = await startServer(cfg, logger);
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down: closing every connection with 1001');
      server.close().then(
        () => {
          logger.info('stopped');
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

async function onion(configPath: string): Promise<number> {
  const cfg = config(configPath);
  const state = await readOnionState(cfg.hiddenServiceDir);
  if (state.status !== 'known') {
    process.stderr.write(`p2p-registry: no onion address yet: ${state.detail}\n`);
    return 3;
  }
  process.stdout.write(`ws://${state.address}:${cfg.hiddenServicePort}/\n`);
  return 0;
}

async function health(configPath: string): Promise<number> {
  const cfg = config(configPath);
  try {
    const result = await fetchHealth(cfg.listen);
    process.stdout.write(`${result.body}\n`);
    return result.status === 200 ? 0 : 1;
  } catch (err) {
    process.stderr.write(`p2p-registry: the server does not answer on its listener: ${(err as Error).message}\n`);
    return 1;
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, new Set(['config', ...CLIENT_OPTIONS]), new Set(['help', ...CLIENT_FLAGS]));
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
      return await health(configPath);
    }
    if (CLIENT_COMMANDS.has(command)) return await runClientCommand(command, args);
    throw new UsageError(`unknown command "${command}"`);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 78; // EX_CONFIG
    }
    if (err instanceof UsageError) {
      process.stderr.write(`p2p-registry: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`p2p-registry: ${(err as Error).message}\n`);
    return 1;
  }
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`p2p-registry: unexpected failure: ${String(err)}\n`);
      process.exit(1);
    },
  );
}
