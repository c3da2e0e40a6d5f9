/**
 * The load of the fan-out phase (bench/phases/fan-out.mjs) and of the hardening test
 * test/hardening/fan-out-load.test.ts (and the producer and pinger of slow-readers.test.ts), in a
 * process of its own. Like load-worker.mjs it takes one
 * command at a time over IPC ({id, cmd, args} -> {id, ok, result | error}); every command is bounded
 * in count and in time. One process runs one role, so the subscribers' reading cannot slow down the
 * churn, nor either of them the pinger:
 *
 *   subscribe  `count` subscribers that read: subscribe, a full `list` after `subscribed`, then every
 *              event applied in order (the protocol's promise)
 *   churn      `peers` connections, each alternating register / unregister at `perPeerRps`, inside
 *              its own request budget: 2 events per cycle
 *   ping       `conns` connections sending `ping` on a fixed schedule; latency counts from when a
 *              ping was due, so a stalled server cannot hide its queue
 *   verify     every subscriber's applied view against a fresh `list`, and who was cut off
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { makeIdentity, registerRequest } from '../lib/identities.mjs';
import { clientFrame, hasPrefix, WireConnection } from '../lib/wire.mjs';

const MAX_LIFETIME_MS = Number(process.env.FAN_OUT_WORKER_MAX_MS ?? 240_000);
const OPEN_CONCURRENCY = 64;
const LIST_PAGE = 1000;
const MAX_LIST_PAGES = 100;
const P = (text) => Buffer.from(text, 'latin1');
const JOINED = P('{"type":"peer_joined","peer":{"nickname":"');
const LEFT = P('{"type":"peer_left","nickname":"');
const PONG = P('{"type":"pong"');

setTimeout(() => process.exit(3), MAX_LIFETIME_MS).unref();
process.on('disconnect', () => process.exit(0));
const now = () => performance.now();

function picker(localAddresses) {
  let next = 0;
  return () => localAddresses[next++ % localAddresses.length];
}

/** Opens `count` connections (hello read), OPEN_CONCURRENCY at a time, each handed to `then` at once. */
async function openMany(port, count, localAddresses, then = async () => {}) {
  const pick = picker(localAddresses);
  const conns = [];
  let started = 0;
  const lane = async () => {
    while (started < count) {
      started += 1;
      const conn = await WireConnection.open({ port, localAddress: pick() });
      const hello = JSON.parse(await conn.next());
      if (hello.type !== 'hello') throw new Error(`expected hello, got ${hello.type}`);
      conn.challenge = hello.challenge;
      conns.push(conn);
      // A valid request at once: an open connection without one counts against MaxPendingConnections.
      await then(conn);
    }
  };
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, count) }, lane));
  return conns;
}

/** Every page of `list`, read with `reply()`. */
async function listAll(conn, reply) {
  const names = new Set();
  let after = null;
  for (let page = 0; page < MAX_LIST_PAGES; page += 1) {
    conn.sendJson({ type: 'list', id: `l${page}`, after, limit: LIST_PAGE });
    const peers = JSON.parse(await reply());
    if (peers.type !== 'peers') throw new Error(`list refused: ${JSON.stringify(peers).slice(0, 160)}`);
    for (const peer of peers.peers) names.add(peer.nickname);
    if (peers.next === null) return names;
    after = peers.next;
  }
  throw new Error(`list did not end within ${MAX_LIST_PAGES} pages`);
}

/** The nickname after `prefix` (the server's field order; the bench's nicknames need no escapes). */
function nameAfter(buf, start, end, prefix) {
  const from = start + prefix.length;
  const quote = buf.indexOf(0x22, from);
  return buf.toString('latin1', from, quote < 0 || quote > end ? end : quote);
}

const subscribers = [];

async function subscribe({ port, count, localAddresses }) {
  await openMany(port, count, localAddresses, follow);
  return { subscribers: subscribers.length };
}

/** Subscribes on `conn`, lists, and applies every event from then on. */
async function follow(conn) {
  const sub = { conn, view: null, early: [], events: 0, replies: [] };
  conn.onText = (buf, start, end) => {
    let event = null;
    if (hasPrefix(buf, start, end, JOINED)) event = [true, nameAfter(buf, start, end, JOINED)];
    else if (hasPrefix(buf, start, end, LEFT)) event = [false, nameAfter(buf, start, end, LEFT)];
    if (event === null) {
      sub.replies.push(buf.toString('utf8', start, end));
      conn.wake();
      return;
    }
    sub.events += 1;
    if (sub.view === null) sub.early.push(event);
    else if (event[0]) sub.view.add(event[1]);
    else sub.view.delete(event[1]);
  };
  const reply = async () => {
    const deadline = now() + 10_000;
    while (sub.replies.length === 0) {
      if (conn.closed) throw new Error(`subscriber closed (code ${conn.closeCode})`);
      if (now() > deadline) throw new Error('no reply within 10 s');
      await new Promise((resolve) => {
        conn.waiter = resolve;
        setTimeout(resolve, 100);
      });
    }
    return sub.replies.shift();
  };
  conn.sendJson({ type: 'subscribe', id: 's' });
  const ok = JSON.parse(await reply());
  if (ok.type !== 'subscribed') throw new Error(`subscribe refused: ${JSON.stringify(ok).slice(0, 160)}`);
  const view = await listAll(conn, reply);
  for (const [joined, name] of sub.early.splice(0)) {
    if (joined) view.add(name);
    else view.delete(name);
  }
  sub.view = view;
  subscribers.push(sub);
}

/** Each peer alternates register and unregister on its own connection, at `perPeerRps` requests a second. */
async function churn({ port, peers, perPeerRps, durationMs, prefix, localAddresses }) {
  const conns = await openMany(port, peers, localAddresses);
  const tally = { requests: 0, joins: 0, leaves: 0, refused: 0, errors: [], closed: 0 };
  const stopAt = now() + durationMs;
  const period = 1000 / perPeerRps;
  await Promise.all(
    conns.map(async (conn, i) => {
      const register = clientFrame(JSON.stringify(registerRequest(makeIdentity(`${prefix}${i}`), conn.challenge)));
      const unregister = clientFrame('{"type":"unregister","id":2}');
      let due = now() + (i * period) / peers;
      for (let k = 0; due < stopAt && !conn.closed; k += 1) {
        await sleep(Math.max(0, due - now()));
        conn.send(k % 2 === 0 ? register : unregister);
        tally.requests += 1;
        const reply = await conn.next(10_000).catch((err) => `!${err.message}`);
        if (reply.startsWith('{"type":"registered"')) tally.joins += 1;
        else if (reply.startsWith('{"type":"unregistered"')) tally.leaves += 1;
        else if (reply.includes('"RATE_LIMITED"')) tally.refused += 1;
        else if (tally.errors.length < 3) tally.errors.push(reply.slice(0, 160));
        due = Math.max(due + period, now()); // behind schedule: go on from now, never burst
      }
      if (conn.closed) tally.closed += 1;
      await conn.close(2_000);
    }),
  );
  return tally;
}

/** A gap this much longer than the lag timer's period means this process itself was stalled. */
const OWN_STALL_MS = 20;

/**
 * Pings on a fixed schedule over `conns` connections; returns latency percentiles in ms. On a busy
 * host this process can itself be descheduled, and every ping in flight then looks slow: `clean`
 * leaves out the pings in flight during such a stall of the pinger's own (counted in `clouded`).
 */
async function ping({ port, conns: count, perConnRps, warmupMs, durationMs, localAddresses }) {
  const conns = await openMany(port, count, localAddresses);
  const samples = []; // [latency ms, due, answered at]
  let sent = 0;
  let closed = 0;
  const period = 1000 / perConnRps;
  const measureFrom = now() + warmupMs;
  const stopAt = measureFrom + durationMs;
  const stalls = [];
  let lastTick = now();
  const lag = setInterval(() => {
    const t = now();
    if (t - lastTick > 5 + OWN_STALL_MS) stalls.push([lastTick, t]);
    lastTick = t;
  }, 5);
  await Promise.all(
    conns.map(async (conn, i) => {
      const dues = [];
      conn.onText = (buf, start, end) => {
        if (!hasPrefix(buf, start, end, PONG)) return;
        const due = dues.shift();
        const t = now();
        if (due !== undefined && due >= measureFrom) samples.push([t - due, due, t]);
      };
      const frame = clientFrame('{"type":"ping","id":1}');
      let due = now() + (i * period) / count;
      while (due < stopAt && !conn.closed) {
        await sleep(Math.max(0, due - now()));
        dues.push(due);
        conn.send(frame);
        sent += 1;
        due += period;
      }
      const drainUntil = now() + 5_000;
      while (dues.length > 0 && !conn.closed && now() < drainUntil) await sleep(10);
      if (conn.closed) closed += 1;
      conn.destroy();
    }),
  );
  clearInterval(lag);
  const clean = samples.filter(([, due, at]) => !stalls.some(([from, to]) => due < to && at > from));
  // The worst pings with when they were due (ms into the measurement): a stall shows as a cluster.
  const worst = [...samples]
    .sort((a, b) => b[0] - a[0])
    .slice(0, 5)
    .map(([ms, due]) => [Math.round(ms), Math.round(due - measureFrom)]);
  const ownStallMs = stalls.reduce((most, [from, to]) => (to >= measureFrom ? Math.max(most, to - from - 5) : most), 0);
  return {
    sent,
    closed,
    ...percentiles(samples),
    clean: percentiles(clean),
    clouded: samples.length - clean.length,
    worst,
    ownStallMs,
  };
}

function percentiles(samples) {
  const sorted = Float64Array.from(samples, ([ms]) => ms).sort();
  const pct = (p) =>
    sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  return { samples: sorted.length, p50Ms: pct(50), p99Ms: pct(99), maxMs: sorted.at(-1) ?? null };
}

/** Compares every subscriber's view with a fresh `list`; then closes the subscribers. */
async function verify({ port, localAddresses }) {
  const [conn] = await openMany(port, 1, localAddresses);
  try {
    const fresh = await listAll(conn, () => conn.next(10_000));
    const result = {
      subscribers: subscribers.length,
      freshSize: fresh.size,
      mismatched: 0,
      cutOff: 0,
      closeCodes: {},
      events: 0,
      minEvents: Infinity,
    };
    for (const sub of subscribers) {
      const same = sub.view.size === fresh.size && [...fresh].every((name) => sub.view.has(name));
      if (!same) result.mismatched += 1;
      if (sub.conn.closed) {
        result.cutOff += 1;
        result.closeCodes[sub.conn.closeCode] = (result.closeCodes[sub.conn.closeCode] ?? 0) + 1;
      }
      result.events += sub.events;
      result.minEvents = Math.min(result.minEvents, sub.events);
    }
    for (const sub of subscribers.splice(0)) sub.conn.destroy();
    return result;
  } finally {
    conn.destroy();
  }
}

const COMMANDS = { subscribe, churn, ping, verify };

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
