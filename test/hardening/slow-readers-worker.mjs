// The slow readers of test/hardening/slow-readers.test.ts, in a process of their own (forked by
// slow-readers-child.mjs, inside its network namespace), so that their sends do not run on the
// server's event loop. One command at a time over IPC ({id, cmd, args} -> {id, ok, result | error}),
// like bench/phases/fan-out-worker.mjs:
//
//   open        `count` connections that subscribe, then stop reading, `concurrency` at a time
//   startPings  each of them sends a WebSocket ping every `everyMs`, spread evenly
//   stopPings   stops them; returns how many were sent
import { clientFrame, WireConnection } from '../../bench/lib/wire.mjs';

const MAX_LIFETIME_MS = Number(process.env.SLOW_READERS_WORKER_MAX_MS ?? 60_000);
const PING_TICK_MS = 10;
/** A masked WebSocket ping with no payload (opcode 0x9). */
const WS_PING = clientFrame(Buffer.alloc(0), 0x9);

setTimeout(() => process.exit(3), MAX_LIFETIME_MS).unref();
process.on('disconnect', () => process.exit(0));

const readers = [];
let pinging = null;

/** One subscriber that reads its hello and `subscribed`, then nothing more. */
async function openSlowReader(port) {
  // Paused, a socket still reads ahead up to its high-water mark (64 KiB by default) into this
  // process: 1 byte leaves the backlog in the kernel's 4 KB buffers, then in the server's queue.
  const conn = await WireConnection.open({ port, readableHighWaterMark: 1 });
  const hello = JSON.parse(await conn.next());
  if (hello.type !== 'hello') throw new Error(`expected hello, got ${hello.type}`);
  conn.sendJson({ type: 'subscribe', id: 's' });
  const reply = JSON.parse(await conn.next());
  if (reply.type !== 'subscribed') throw new Error(`subscribe refused: ${JSON.stringify(reply).slice(0, 160)}`);
  conn.socket.pause();
  return conn;
}

async function open({ port, count, concurrency }) {
  let started = 0;
  const lane = async () => {
    while (started < count) {
      started += 1;
      readers.push(await openSlowReader(port));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return { opened: readers.length };
}

/**
 * The client library's liveness pings (every 30 s by default; faster here, so that a few seconds
 * see many): each is answered with a pong queued behind what the reader left unread, so each is a
 * send that grows a queue and goes through the server's output budget, outside the fan-out's slices.
 */
function startPings({ everyMs }) {
  const perTick = Math.max(1, Math.round((readers.length * PING_TICK_MS) / everyMs));
  let next = 0;
  const state = { sent: 0, timer: undefined };
  state.timer = setInterval(() => {
    for (let i = 0; i < perTick; i += 1) {
      const reader = readers[next];
      next = (next + 1) % readers.length;
      if (reader.closed) continue;
      reader.send(WS_PING);
      state.sent += 1;
    }
  }, PING_TICK_MS);
  pinging = state;
  return {};
}

function stopPings() {
  if (pinging === null) return { sent: 0 };
  clearInterval(pinging.timer);
  const { sent } = pinging;
  pinging = null;
  return { sent };
}

const COMMANDS = { open, startPings, stopPings };

process.on('message', async ({ id, cmd, args }) => {
  try {
    const command = COMMANDS[cmd];
    if (command === undefined) throw new Error(`unknown command ${cmd}`);
    process.send({ id, ok: true, result: await command(args ?? {}) });
  } catch (err) {
    process.send({ id, ok: false, error: err?.stack ?? String(err) });
  }
});
process.send({ ready: true, pid: process.pid });
