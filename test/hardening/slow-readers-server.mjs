// The registry of test/hardening/slow-readers.test.ts: server/dist's startServer in a process of its
// own (forked by slow-readers-child.mjs inside its network namespace, with the image's V8 flags),
// so that the scenario is driven and timed from outside the event loop it measures, also when that
// loop stalls for seconds. Over IPC, {id, cmd} -> {id, ok, result}:
//
//   stats  the server's stats (output total, subscribers, connections), the closings counted by
//          its summary lines, by name, and the longest event-loop delay since it started listening
//   close  closes the server (its last summary line is counted), then answers
//
// It starts with {ready, port} once it listens. Its plan (JSON, argv[2]): { onion, registry }.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { buildConfig, createLogger, startServer } from '../../server/dist/index.js';

const plan = JSON.parse(process.argv[2] ?? '{}');
process.on('disconnect', () => process.exit(0));

/** Closings by name, from the summary lines ([Log] SummarySeconds 1): nothing per connection is logged at info. */
const closed = {};
const sink = new Writable({
  write(chunk, _encoding, done) {
    for (const line of chunk.toString().split('\n')) {
      if (line === '') continue;
      for (const [name, n] of Object.entries(JSON.parse(line).closed ?? {})) closed[name] = (closed[name] ?? 0) + n;
    }
    done();
  },
});

const dir = mkdtempSync(join(tmpdir(), 'slow-readers-'));
writeFileSync(join(dir, 'hostname'), `${plan.onion}\n`);
const config = buildConfig(
  {
    Host: { HOST: '127.0.0.1', PORT: '0' },
    HiddenService: { HiddenServiceDir: dir, HiddenServicePort: '80' },
    Registry: Object.fromEntries(Object.entries(plan.registry).map(([key, value]) => [key, String(value)])),
    Log: { level: 'info', SummarySeconds: '1' },
  },
  {},
);
const server = await startServer(config, createLogger('info', sink));
const loop = monitorEventLoopDelay({ resolution: 5 });
loop.enable();

const COMMANDS = {
  stats: () => ({ ...server.stats(), closed, loopDelayMaxMs: loop.max / 1e6 }),
  close: async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
    return { closed };
  },
};

process.on('message', async ({ id, cmd }) => {
  try {
    process.send({ id, ok: true, result: await COMMANDS[cmd]() });
  } catch (err) {
    process.send({ id, ok: false, error: err?.stack ?? String(err) });
  }
});
process.send({ ready: true, port: server.address.port });
