/**
 * The registry's own commands: serve, onion (print the URL), health (container HEALTHCHECK, over
 * the operator listener), tor-settings (what the tor container needs from config.ini, rendered by
 * this parser). Each returns its exit code; only ../cli.ts exits.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { registryUrl } from '../protocol/onion-address.js';
import { describeConfig, loadConfig, type Config } from '../server/config/config.js';
import { tuneHeapForServing } from '../server/heap-tuning.js';
import { createLogger, type Logger } from '../server/logger.js';
import { readOnionState } from '../server/onion-watcher.js';
import { startServer } from '../server/start-server.js';
import { fetchHealth } from './health-check.js';

export const SERVER_COMMANDS: ReadonlySet<string> = new Set(['serve', 'onion', 'health', 'tor-settings']);

export async function serve(configPath: string): Promise<number> {
  const cfg = loadConfig(configPath);
  const setLate = tuneHeapForServing();
  const logger = createLogger(cfg.logLevel);
  logger.info({ config: describeConfig(cfg), node: process.version }, 'starting p2p-registry');
  if (setLate.length > 0) {
    logger.warn(
      { flags: setLate },
      `V8 flags set after start, which Node calls unsafe: start node with ${setLate.join(' ')} (the image and the ` +
        `p2p-registry bin do)`,
    );
  }
  const unguard = guardProcess(logger, (code) => process.exit(code));
  const server = await startServer(cfg, logger);
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (reason: string, code = 0): void => {
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

/** sysexits EX_SOFTWARE: the server stopped itself after an uncaught exception. */
const EXIT_SOFTWARE = 70;
/** How long the last log lines may take to reach stdout before the process exits anyway. */
const FLUSH_TIMEOUT_MS = 2_000;

/**
 * The process-level policy (SECURITY.md, "Bugs"). A bug in a frame's handling is caught in its
 * connection's handler (dispatch.ts, registration.ts) and closes that connection alone (1011). An
 * uncaught exception escaped every handler: where it came from and what it left half done are
 * unknown, so it is logged at fatal with its stack, the log is flushed, and the process exits with
 * EXIT_SOFTWARE for its supervisor to restart it (peers reconnect with backoff). An unhandled
 * rejection is logged and the server keeps serving: it ends an async operation nobody waited for,
 * after the synchronous code around it ran to completion. Returns the function that removes the
 * handlers; `exit` ends the process.
 */
function guardProcess(logger: Logger, exit: (code: number) => void): () => void {
  let exiting = false;
  const onRejection = (reason: unknown): void => {
    logger.error(
      reason instanceof Error ? { err: reason } : { reason: String(reason) },
      'unhandled promise rejection (a bug): logged, still serving',
    );
  };
  const onException = (err: Error, origin: string): void => {
    if (exiting) return;
    exiting = true;
    logger.fatal(
      { err, origin },
      `uncaught exception (a bug): the server's state is unknown, exiting with ${EXIT_SOFTWARE} for a restart`,
    );
    const exitNow = (): void => exit(EXIT_SOFTWARE);
    // A stdout that never drains (a stuck pipe) must not keep a broken server running.
    setTimeout(exitNow, FLUSH_TIMEOUT_MS);
    logger.flush(() => process.stdout.write('', exitNow));
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
  process.stdout.write(`${registryUrl(state.address, cfg.hiddenServicePort)}\n`);
  return 0;
}

/**
 * Asks the operator listener, never the public one: tor forwards that to the onion, which must not learn health
 * (SECURITY.md).
 */
export async function health(configPath: string): Promise<number> {
  const cfg = loadConfig(configPath);
  if (cfg.operatorSocket === null) {
    process.stderr.write(
      'p2p-registry: no operator listener to ask: set [Host] OperatorSocket (or REGISTRY_HOST_OPERATORSOCKET) to a ' +
        'unix socket path, e.g. /run/registry-operator/operator.sock, and restart the server\n',
    );
    return 1;
  }
  try {
    const result = await fetchHealth(cfg.operatorSocket);
    process.stdout.write(`${result.body}\n`);
    return result.status === 200 ? 0 : 1;
  } catch (err) {
    process.stderr.write(
      `p2p-registry: the server does not answer on its operator socket ([Host] OperatorSocket): ` +
        `${(err as Error).message}; is it running with this config?\n`,
    );
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
