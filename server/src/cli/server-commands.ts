/**
 * The registry's own commands: serve, onion (print the URL), health (container HEALTHCHECK, over
 * the operator listener), tor-settings (what the tor container needs from config.ini, rendered by
 * this parser). Each returns its exit code; only ../cli.ts exits.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { describeConfig, loadConfig, type Config } from '../server/config.js';
import { tuneHeapForServing } from '../server/heap-tuning.js';
import { createLogger, type Logger } from '../server/logger.js';
import { readOnionState } from '../server/onion-watcher.js';
import { startServer } from '../server/start-server.js';
import { fetchHealth } from './health-check.js';

export const SERVER_COMMANDS: ReadonlySet<string> = new Set(['serve', 'onion', 'health', 'tor-settings']);

export async function serve(configPath: string): Promise<number> {
  const cfg = loadConfig(configPath);
  tuneHeapForServing();
  const logger = createLogger(cfg.logLevel);
  logger.info({ config: describeConfig(cfg), node: process.version }, 'starting p2p-registry');
  let stop: (reason: string, code?: number) => void = () => undefined;
  const unguard = guardProcess(logger, (reason) => stop(reason, EXIT_SOFTWARE));
  const server = await startServer(cfg, logger);
  return new Promise((resolve) => {
    let stopping = false;
    stop = (reason: string, code = 0): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ reason }, 'shutting down: closing every connection with 1001');
      server.close().then(
        () => {
          logger.info('stopped');
          unguard();
          resolve(code);
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

/** sysexits EX_SOFTWARE: the server stopped itself after a storm of uncaught exceptions. */
const EXIT_SOFTWARE = 70;
/** This many uncaught exceptions within the window mean a broken state, not one bad input. */
const EXCEPTION_STORM = { count: 10, windowMs: 60_000 } as const;

/**
 * The process-level policy: an unhandled rejection or an uncaught exception is a bug, logged with
 * its stack, and the registry keeps serving: every peer dropped at once would come back as a
 * reconnect storm that tor's intro-point limits stretch over minutes. Exceptions come from one
 * connection's handler almost always; should they keep coming (EXCEPTION_STORM), the state is
 * suspect and the server shuts down cleanly (exit 70) for its supervisor to restart. Returns the
 * function that removes the handlers.
 */
export function guardProcess(logger: Logger, giveUp: (reason: string) => void): () => void {
  const recent: number[] = [];
  const onRejection = (reason: unknown): void => {
    logger.error(reason instanceof Error ? { err: reason } : { reason: String(reason) }, 'unhandled promise rejection (a bug): logged, still serving');
  };
  const onException = (err: Error, origin: string): void => {
    logger.error({ err, origin }, 'uncaught exception (a bug): logged, still serving');
    const now = Date.now();
    recent.push(now);
    while (recent.length > 0 && (recent[0] as number) <= now - EXCEPTION_STORM.windowMs) recent.shift();
    if (recent.length >= EXCEPTION_STORM.count) {
      logger.fatal({ exceptions: recent.length, windowMs: EXCEPTION_STORM.windowMs }, 'uncaught exceptions keep coming: shutting down for a restart');
      giveUp('uncaught exceptions');
    }
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}

export async function onion(configPath: string): Promise<number> {
  const cfg = loadConfig(configPath);
  const state = await readOnionState(cfg.hiddenServiceDir);
  if (state.status !== 'known') {
    process.stderr.write(`p2p-registry: no onion address yet: ${state.detail}\n`);
    return 3;
  }
  process.stdout.write(`ws://${state.address}:${cfg.hiddenServicePort}/\n`);
  return 0;
}

/** Asks the operator listener, never the public one: tor forwards that to the onion, which must not learn health (SECURITY.md). */
export async function health(configPath: string): Promise<number> {
  const cfg = loadConfig(configPath);
  if (cfg.operatorSocket === null) {
    process.stderr.write('p2p-registry: no operator listener to ask: set [Host] OperatorSocket (or REGISTRY_HOST_OPERATORSOCKET) to a unix socket path, e.g. /run/registry-operator/operator.sock, and restart the server\n');
    return 1;
  }
  try {
    const result = await fetchHealth(cfg.operatorSocket);
    process.stdout.write(`${result.body}\n`);
    return result.status === 200 ? 0 : 1;
  } catch (err) {
    process.stderr.write(`p2p-registry: the server does not answer on its operator socket ([Host] OperatorSocket): ${(err as Error).message}; is it running with this config?\n`);
    return 1;
  }
}

/**
 * The KEY=VALUE lines the tor container reads (tor/entrypoint.sh accepts exactly these lines,
 * digits only): config.ini has one parser, this one, and tor never reads config.ini itself.
 */
export function torSettings(cfg: Config): string {
  return `HIDDEN_SERVICE_PORT=${cfg.hiddenServicePort}\n`;
}

/**
 * Validates config.ini (and the REGISTRY_* environment) exactly as `serve` does and writes
 * torSettings to `outPath`, atomically: a reader sees the old file or the new one, never half.
 * A bad config.ini fails here, with the server's one-line message, before tor or the server start.
 */
export function writeTorSettings(configPath: string, outPath: string): number {
  const cfg = loadConfig(configPath);
  const text = torSettings(cfg);
  const temporary = `${outPath}.tmp`;
  try {
    writeFileSync(temporary, text, { mode: 0o644 });
    renameSync(temporary, outPath);
  } catch (err) {
    process.stderr.write(`p2p-registry: cannot write ${outPath}: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`p2p-registry: config ${configPath} is valid; wrote ${outPath}: ${text.trim()}\n`);
  return 0;
}
