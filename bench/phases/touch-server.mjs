#!/usr/bin/env node
/**
 * The bench's registry for phase `touch` (bench/phases/touch.mjs):
 *   node bench/phases/touch-server.mjs --server <path/to/cli.js> --config <config.ini> --touch-interval-ms <ms>
 *
 * What `p2p-registry serve --config <file>` does (the same config parser, logger and `startServer`
 * of the build next to `--server`, SIGTERM/SIGINT close it), with two differences: the periodic
 * touch of every live key runs every `--touch-interval-ms` instead of every 5 minutes
 * (StartOptions.touchIntervalMs, which tests and the bench may set; no config key reaches it), and
 * the process measures its own event loop (perf_hooks monitorEventLoopDelay, 1 ms resolution).
 * Over IPC: {id, cmd: 'reset'} starts a new measurement; {id, cmd: 'read'} answers the longest
 * stall since then, and its p99 and mean, in ms. `--server` may name another build (the bench's
 * "before" figures): only `startServer`, `loadConfig` and `createLogger` of its index.js are used.
 */
import { dirname, join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

function option(argv, name) {
  const at = argv.indexOf(name);
  if (at < 0 || argv[at + 1] === undefined)
    throw new Error(
      `usage: touch-server.mjs --server <cli.js> --config <config.ini> --touch-interval-ms <ms> (missing ${name})`,
    );
  return argv[at + 1];
}

async function main(argv) {
  const dist = dirname(resolve(option(argv, '--server')));
  const touchIntervalMs = Number(option(argv, '--touch-interval-ms'));
  const { loadConfig, createLogger, startServer } = await import(pathToFileURL(join(dist, 'index.js')).href);
  const cfg = loadConfig(option(argv, '--config'));
  const logger = createLogger(cfg.logLevel);
  const server = await startServer(cfg, logger, { touchIntervalMs });
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  process.on('message', ({ id, cmd }) => {
    if (cmd === 'reset') loop.reset();
    const ms = (ns) => Number((ns / 1e6).toFixed(2));
    const read = { maxMs: ms(loop.max), p99Ms: ms(loop.percentile(99)), meanMs: ms(loop.mean), count: loop.count };
    process.send({ id, ok: true, result: cmd === 'read' ? read : {} });
  });
  process.send({ ready: true, pid: process.pid });
  await new Promise((resolveStop) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      loop.disable();
      server.close().then(resolveStop, resolveStop);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`touch-server: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
