/**
 * Load generator process. The orchestrator (run.mjs) sends one command at a time over IPC and gets
 * one result back; every command is bounded in count and in time. Measurement windows are
 * announced with `mark` messages so the orchestrator can read CPU use over exactly that window.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { clientFrame, hasPrefix, WireConnection } from './lib/wire.mjs';
import { makeIdentity, registerRequest } from './lib/identities.mjs';

const MAX_LIFETIME_MS = Number(process.env.BENCH_WORKER_MAX_MS ?? 240_000);
const OPEN_CONCURRENCY = 64;
const ERROR_SAMPLES = 3;
const LIST_PAGE = 1000;
const MAX_LIST_PAGES = 1000;

const P = (text) => Buffer.from(text, 'latin1');
const HELLO = P('{"type":"hello"');
const JOINED = P('{"type":"peer_joined"');
const JOINED_FAST = P('{"type":"peer_joined","peer":{"nickname":"');
const LEFT = P('{"type":"peer_left"');
const LEFT_FAST = P('{"type":"peer_left","nickname":"');
const REGISTERED = '{"type":"registered"';

// The orchestrator owns this process: exit with it, and never outlive the run.
setTimeout(() => process.exit(3), MAX_LIFETIME_MS).unref();
process.on('disconnect', () => process.exit(0));

const debug =
  process.env.BENCH_DEBUG === '1' ? (text) => process.stderr.write(`[worker ${process.pid}] ${text}\n`) : () => {};
const now = () => performance.now();
const wallNow = () => performance.timeOrigin + performance.now();
const mark = (label) => process.send({ mark: label, at: wallNow() });

/**
 * Measures in back-to-back windows of `windowMs` (marking each, so the orchestrator can read the CPU
 * of every window): on a shared host the windows in which other work ran can be told apart.
 * `count()` returns the running total; returns one entry per window.
 */
async function windows(durationMs, windowMs, count) {
  const out = [];
  const n = Math.max(1, Math.round(durationMs / windowMs));
  for (let i = 0; i < n; i += 1) {
    const before = count();
    mark('start');
    const t0 = now();
    await sleep(windowMs);
    const seconds = (now() - t0) / 1000;
    const done = count() - before;
    mark('end');
    out.push({ done, seconds, perSec: done / seconds });
  }
  return out;
}

/**
 * Runs an open-loop load's `tick` every millisecond while `windowCount` windows of `windowMs`, from
 * `measureFrom` on, are marked on a fixed schedule (so a slow tick never shifts them).
 */
async function pacedWindows(tick, measureFrom, windowCount, windowMs) {
  const timer = setInterval(tick, 1);
  await sleep(Math.max(0, measureFrom - now()));
  for (let w = 0; w < windowCount; w += 1) {
    mark('start');
    await sleep(Math.max(0, measureFrom + (w + 1) * windowMs - now()));
    mark('end');
  }
  clearInterval(timer);
}

class ErrorTally {
  constructor() {
    this.count = 0;
    this.samples = [];
  }
  add(err) {
    this.count += 1;
    const text = typeof err === 'string' ? err : (err?.message ?? String(err));
    if (this.samples.length < ERROR_SAMPLES && !this.samples.includes(text)) this.samples.push(text.slice(0, 200));
  }
}

function addressPicker(localAddresses) {
  let next = 0;
  return () => {
    const address = localAddresses[next % localAddresses.length];
    next += 1;
    return address;
  };
}

/** Opens `count` connections, at most OPEN_CONCURRENCY handshakes at a time. */
async function openMany(port, count, localAddresses) {
  const pick = addressPicker(localAddresses);
  const conns = [];
  let started = 0;
  const lane = async () => {
    while (started < count) {
      started += 1;
      conns.push(await WireConnection.open({ port, localAddress: pick() }));
    }
  };
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, count) }, lane));
  return conns;
}

/** Pre-framed requests of one length, laid end to end so a run of them is one zero-copy write. */
function frameRing(payloads) {
  const frames = payloads.map((p) => clientFrame(p));
  const size = frames[0].length;
  if (frames.some((f) => f.length !== size)) throw new Error('request frames must all have the same length');
  return { ring: Buffer.concat(frames), size, count: frames.length };
}

function writeRun(conn, ring, n) {
  let left = n;
  while (left > 0) {
    const run = Math.min(left, ring.count - conn.cursor);
    conn.socket.write(ring.ring.subarray(conn.cursor * ring.size, (conn.cursor + run) * ring.size));
    conn.cursor = (conn.cursor + run) % ring.count;
    left -= run;
  }
}

/** Latency histogram bucket of `ms`: 1% wide, from 1 µs (bucket 0). */
export function latencyBucket(ms) {
  return Math.max(0, Math.ceil(Math.log(Math.max(ms, 0.001) / 0.001) / Math.log(1.01)));
}

/** A log histogram (1% buckets) of latencies, which the orchestrator can merge across windows. */
function histogram(values) {
  const counts = new Map();
  for (const v of values) {
    const bucket = latencyBucket(v);
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => a[0] - b[0]);
}

/** Closed loop: `inflight` requests outstanding per connection; each reply releases the next request. */
async function throughput({
  port,
  conns: connCount,
  inflight,
  warmupMs,
  durationMs,
  windowMs,
  payloads,
  okPrefix,
  localAddresses,
}) {
  const ring = frameRing(payloads);
  const ok = P(okPrefix);
  const conns = await openMany(port, connCount, localAddresses);
  const errors = new ErrorTally();
  let stopped = false;
  let replies = 0;
  let closedEarly = 0;
  conns.forEach((conn, index) => {
    conn.cursor = (index * 37) % ring.count;
    conn.owed = 0;
    conn.onText = (buf, start, end) => {
      if (hasPrefix(buf, start, end, ok)) {
        replies += 1;
      } else if (hasPrefix(buf, start, end, HELLO)) {
        return;
      } else {
        errors.add(buf.toString('utf8', start, Math.min(end, start + 200)));
      }
      conn.owed += 1;
    };
    conn.onBurst = () => {
      if (conn.owed > 0 && !stopped) writeRun(conn, ring, conn.owed);
      conn.owed = 0;
    };
    conn.onClose = () => {
      if (!stopped) closedEarly += 1;
    };
    writeRun(conn, ring, inflight);
  });
  await sleep(warmupMs);
  const measured = await windows(durationMs, windowMs, () => replies);
  stopped = true;
  for (const conn of conns) conn.destroy();
  return { windows: measured, errors: errors.count, errorSamples: errors.samples, closedEarly };
}

/**
 * Open loop at a fixed total rate: each connection sends on its own schedule whatever the replies do,
 * and latency runs from the moment a request was due (so a stalled server cannot hide its queue).
 */
async function paced({
  port,
  conns: connCount,
  rate,
  warmupMs,
  durationMs,
  windowMs,
  payloads,
  okPrefix,
  localAddresses,
}) {
  const ring = frameRing(payloads);
  const ok = P(okPrefix);
  const conns = await openMany(port, connCount, localAddresses);
  const perConnPerMs = rate / connCount / 1000;
  const cap = 1 << 16;
  const maxSamples = Math.ceil(rate * (durationMs / 1000) * 1.2) + 1000;
  const samples = new Float64Array(maxSamples);
  const sampleWindow = new Uint16Array(maxSamples);
  const windowCount = Math.max(1, Math.round(durationMs / windowMs));
  let sampleCount = 0;
  let replies = 0;
  let repliesTotal = 0;
  let overload = 0;
  let closedEarly = 0;
  let stopped = false;
  const closeCodes = new Set();
  const errors = new ErrorTally();
  const start = now() + 20;
  const measureFrom = start + warmupMs;
  const measureTo = measureFrom + durationMs;
  conns.forEach((conn, index) => {
    conn.cursor = (index * 37) % ring.count;
    conn.sent = 0;
    conn.offset = index / connCount / perConnPerMs;
    conn.due = new Float64Array(cap);
    conn.head = 0;
    conn.tail = 0;
    conn.onText = (buf, s, e) => {
      if (hasPrefix(buf, s, e, HELLO)) return;
      if (conn.head === conn.tail) return errors.add('reply without a request');
      const due = conn.due[conn.head % cap];
      conn.head += 1;
      repliesTotal += 1;
      const t = now();
      if (!hasPrefix(buf, s, e, ok)) errors.add(buf.toString('utf8', s, Math.min(e, s + 200)));
      if (due >= measureFrom && due < measureTo) {
        replies += 1;
        if (sampleCount < maxSamples) {
          sampleWindow[sampleCount] = Math.min(windowCount - 1, Math.floor((due - measureFrom) / windowMs));
          samples[sampleCount++] = t - due;
        }
      }
    };
    conn.onClose = (code) => {
      if (stopped) return;
      closedEarly += 1;
      closeCodes.add(code);
    };
  });
  const tick = () => {
    const t = now();
    for (const conn of conns) {
      const first = start + conn.offset;
      if (t < first) continue;
      const until = Math.min(t, measureTo) - first;
      const due = Math.floor(until * perConnPerMs) + 1 - conn.sent;
      if (due <= 0) continue;
      if (conn.tail - conn.head + due > cap) {
        overload += due;
        conn.sent += due;
        continue;
      }
      for (let i = 0; i < due; i += 1) conn.due[(conn.tail + i) % cap] = first + (conn.sent + i) / perConnPerMs;
      conn.tail += due;
      conn.sent += due;
      writeRun(conn, ring, due);
    }
  };
  await pacedWindows(tick, measureFrom, windowCount, windowMs);
  // Let the requests already sent come back (bounded), then count what never did.
  const drainUntil = now() + 3_000;
  while (now() < drainUntil && conns.some((c) => c.head !== c.tail)) await sleep(10);
  const unanswered = conns.reduce((sum, c) => sum + (c.tail - c.head), 0);
  const sent = conns.reduce((sum, c) => sum + c.tail, 0);
  stopped = true;
  for (const conn of conns) conn.destroy();
  const stats = (values) => {
    const sorted = Float64Array.from(values).sort();
    const pct = (p) =>
      sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
    return {
      samples: sorted.length,
      p50Ms: pct(50),
      p90Ms: pct(90),
      p99Ms: pct(99),
      maxMs: sorted.length === 0 ? null : sorted[sorted.length - 1],
    };
  };
  const perWindow = Array.from({ length: windowCount }, () => []);
  for (let i = 0; i < sampleCount; i += 1) perWindow[sampleWindow[i]].push(samples[i]);
  return {
    targetPerSec: rate,
    achievedPerSec: replies / (durationMs / 1000),
    ...stats(samples.subarray(0, sampleCount)),
    windows: perWindow.map((values) => ({
      ...stats(values),
      perSec: values.length / (windowMs / 1000),
      histogram: histogram(values),
    })),
    errors: errors.count,
    errorSamples: errors.samples,
    sent,
    repliesTotal,
    unanswered,
    overload,
    closedEarly,
    closeCodes: [...closeCodes],
  };
}

/**
 * Full registration on a new connection: handshake, hello, signed register, reply. Returns the open
 * connection. With `fixedRequest` (the echo baseline) that text is sent instead of a signed request.
 */
async function registerOn(
  port,
  localAddress,
  identity,
  timeoutMs = 10_000,
  fixedRequest = null,
  replyPrefix = REGISTERED,
  timing = null,
) {
  const deadline = now() + timeoutMs;
  const left = () => Math.max(1, deadline - now());
  const conn = await WireConnection.open({ port, localAddress, timeoutMs });
  try {
    const hello = JSON.parse(await conn.next(left()));
    if (hello.type !== 'hello') throw new Error(`expected hello, got ${hello.type}`);
    if (fixedRequest === null) conn.sendJson(registerRequest(identity, hello.challenge));
    else conn.send(fixedRequest);
    if (timing !== null) timing.sentAt = now();
    const reply = await conn.next(left());
    if (!reply.startsWith(replyPrefix)) throw new Error(`register refused: ${reply.slice(0, 160)}`);
    return conn;
  } catch (err) {
    conn.destroy();
    throw err;
  }
}

function identityPool(prefix, size) {
  return Array.from({ length: size }, (_, i) => makeIdentity(`${prefix}${String(i).padStart(5, '0')}`));
}

/**
 * Registrations per second, each on a new connection that is closed again after `registered`.
 * With `fixedRequest` it is the same cycle against the echo server: the transport's share of it.
 * With `ports` (several servers: a cluster's instances) lane i registers on ports[i % n].
 */
async function register({
  port,
  ports = [port],
  concurrency,
  warmupMs,
  durationMs,
  windowMs,
  poolSize,
  prefix,
  localAddresses,
  fixedRequest = null,
  replyPrefix = REGISTERED,
}) {
  const pool = identityPool(prefix, fixedRequest === null ? poolSize : 1);
  const fixedFrame = fixedRequest === null ? null : clientFrame(fixedRequest);
  const pick = addressPicker(localAddresses);
  const errors = new ErrorTally();
  let done = 0;
  let stopping = false;
  // Lanes stop when the windows are over, or at this deadline whatever happens.
  const stopAt = now() + warmupMs + durationMs + 5_000;
  const lane = async (laneIndex) => {
    const lanePort = ports[laneIndex % ports.length];
    while (!stopping && now() < stopAt) {
      const identity = pool.shift();
      try {
        const conn = await registerOn(lanePort, pick(), identity, 10_000, fixedFrame, replyPrefix);
        done += 1;
        await conn.close();
      } catch (err) {
        errors.add(err);
        await sleep(5);
      } finally {
        pool.push(identity);
      }
    }
  };
  const lanes = Promise.all(Array.from({ length: concurrency }, (_, i) => lane(i)));
  await sleep(warmupMs);
  const measured = await windows(durationMs, windowMs, () => done);
  stopping = true;
  await lanes;
  return { windows: measured, errors: errors.count, errorSamples: errors.samples };
}

/**
 * Subscribers (`watchPorts`: name -> port, one connection each) that time every `peer_joined` of a
 * registration in `pending` (nickname -> timing): the time from sending its `register` to the event.
 */
async function eventWatchers(watchPorts, localAddress, pending) {
  const conns = [];
  for (const [name, port] of Object.entries(watchPorts)) {
    const conn = await WireConnection.open({ port, localAddress });
    const hello = JSON.parse(await conn.next());
    if (hello.type !== 'hello') throw new Error(`watcher ${name}: expected hello, got ${hello.type}`);
    conn.sendJson({ type: 'subscribe', id: 's' });
    const ok = JSON.parse(await conn.next());
    if (ok.type !== 'subscribed')
      throw new Error(`watcher ${name}: subscribe refused: ${JSON.stringify(ok).slice(0, 160)}`);
    conn.onText = (buf, start, end) => {
      const event = eventOf(buf, start, end);
      const timing = event?.joined ? pending.get(event.name) : undefined;
      if (timing?.sentAt !== undefined && timing.events[name] === undefined)
        timing.events[name] = now() - timing.sentAt;
    };
    conns.push(conn);
  }
  return conns;
}

/** Per window, the histograms of what `watchers` timed: `registered` from sending and each watcher's event. */
function watchedWindows(timings, watchNames, windowCount) {
  const out = Array.from({ length: windowCount }, () => ({
    reply: [],
    events: Object.fromEntries(watchNames.map((n) => [n, []])),
    missing: 0,
  }));
  for (const t of timings) {
    if (t.replyMs === undefined) continue;
    const w = out[t.window];
    w.reply.push(t.replyMs);
    for (const name of watchNames) {
      if (t.events[name] === undefined) w.missing += 1;
      else w.events[name].push(t.events[name]);
    }
  }
  return out.map((w) => ({
    replyHistogram: histogram(w.reply),
    eventHistograms: Object.fromEntries(watchNames.map((n) => [n, histogram(w.events[n])])),
    missingEvents: w.missing,
  }));
}

/**
 * Open-loop registrations (phases `claims` and cluster `propagation`): a new connection and a
 * signed `register` is due every 1/rate s whatever the replies do, and latency runs from when it
 * was due to `registered` (connect, hello, register, reply; the connection is closed afterwards).
 * An identity is used by one registration at a time; a due registration that finds every identity
 * busy (the server fell that far behind) counts as `overload` and is not sent. Per window: a 1%
 * latency histogram. With `watchPorts` (name -> port), a subscriber on each of those servers times
 * every registration's `peer_joined` from the moment its `register` was sent, and each window also
 * gets histograms of that and of `registered` from the send (an identity pool larger than the run's
 * registrations keeps every nickname's event unambiguous).
 */
async function pacedRegister({
  port,
  rate,
  warmupMs,
  durationMs,
  windowMs,
  poolSize,
  prefix,
  localAddresses,
  watchPorts = null,
}) {
  const pool = identityPool(prefix, poolSize);
  const pick = addressPicker(localAddresses);
  const errors = new ErrorTally();
  const windowCount = Math.max(1, Math.round(durationMs / windowMs));
  const perWindow = Array.from({ length: windowCount }, () => []);
  const pending = new Map();
  const timings = [];
  const watchers = watchPorts === null ? [] : await eventWatchers(watchPorts, localAddresses[0], pending);
  const start = now() + 20;
  const measureFrom = start + warmupMs;
  const measureTo = measureFrom + durationMs;
  let launched = 0;
  let overload = 0;
  let inFlight = 0;
  let answered = 0;
  const one = async (due) => {
    const identity = pool.shift();
    if (identity === undefined) {
      overload += 1;
      return;
    }
    inFlight += 1;
    const measured = due >= measureFrom && due < measureTo;
    const window = Math.min(windowCount - 1, Math.floor((due - measureFrom) / windowMs));
    const timing = watchPorts === null ? null : { sentAt: undefined, replyMs: undefined, events: {}, window };
    if (timing !== null) pending.set(identity.nickname, timing);
    try {
      const conn = await registerOn(port, pick(), identity, 10_000, null, REGISTERED, timing);
      const latency = now() - due;
      answered += 1;
      if (timing !== null) timing.replyMs = now() - timing.sentAt;
      if (measured) {
        perWindow[window].push(latency);
        if (timing !== null) timings.push(timing);
      }
      await conn.close();
    } catch (err) {
      errors.add(err);
    } finally {
      inFlight -= 1;
      pool.push(identity);
    }
  };
  const tick = () => {
    const t = Math.min(now(), measureTo);
    const due = Math.floor(((t - start) * rate) / 1000) + 1 - launched;
    for (let i = 0; i < due; i += 1) void one(start + ((launched + i) * 1000) / rate);
    if (due > 0) launched += due;
  };
  await pacedWindows(tick, measureFrom, windowCount, windowMs);
  const drainUntil = now() + 10_000;
  while (inFlight > 0 && now() < drainUntil) await sleep(10);
  // The events of the last registrations (bounded): one that never comes counts as missing.
  const watchNames = Object.keys(watchPorts ?? {});
  const eventsDone = () => timings.every((t) => watchNames.every((n) => t.events[n] !== undefined));
  const eventsUntil = now() + 3_000;
  while (!eventsDone() && now() < eventsUntil) await sleep(10);
  const watchersClosed = watchers.filter((c) => c.closed).length;
  for (const conn of watchers) conn.destroy();
  const watched = watchPorts === null ? null : watchedWindows(timings, watchNames, windowCount);
  return {
    targetPerSec: rate,
    windows: perWindow.map((values, i) => ({
      samples: values.length,
      perSec: values.length / (windowMs / 1000),
      histogram: histogram(values),
      ...(watched?.[i] ?? {}),
    })),
    launched,
    answered,
    unanswered: inFlight,
    overload,
    errors: errors.count,
    errorSamples: errors.samples,
    watchersClosed,
  };
}

const held = { conns: [], unexpectedCloses: 0, releasing: false, identities: null };

/** Makes the identities of the next `hold` ahead of time, so that `hold` times registrations only. */
function prepareHold({ count, prefix }) {
  const t0 = now();
  held.identities = { prefix, list: identityPool(prefix, count) };
  return { keygenMs: now() - t0 };
}

/** Registers `count` peers and keeps them: each answers the server's pings (heartbeats). */
async function hold({ port, count, concurrency, prefix, localAddresses, timeoutMs }) {
  const t0 = now();
  const prepared =
    held.identities?.prefix === prefix && held.identities.list.length >= count ? held.identities.list : null;
  held.identities = null;
  const identities = prepared ?? identityPool(prefix, count);
  const keygenMs = now() - t0;
  debug(`hold: ${count} identities in ${keygenMs.toFixed(0)} ms`);
  const pick = addressPicker(localAddresses);
  const errors = new ErrorTally();
  const deadline = now() + timeoutMs;
  let next = 0;
  const t1 = now();
  const lane = async () => {
    while (next < count && now() < deadline) {
      const identity = identities[next];
      next += 1;
      try {
        const conn = await registerOn(port, pick(), identity, Math.min(10_000, Math.max(1_000, deadline - now())));
        conn.onText = () => {};
        conn.onClose = () => {
          if (!held.releasing) held.unexpectedCloses += 1;
        };
        held.conns.push(conn);
      } catch (err) {
        errors.add(err);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return {
    held: held.conns.length,
    failed: errors.count,
    errorSamples: errors.samples,
    keygenMs,
    registerMs: now() - t1,
  };
}

/** Opens `count` plain connections and keeps them (the memory baseline against the echo server). */
async function holdIdle({ port, count, localAddresses }) {
  const t0 = now();
  const conns = await openMany(port, count, localAddresses);
  for (const conn of conns) {
    conn.onText = () => {};
    conn.onClose = () => {
      if (!held.releasing) held.unexpectedCloses += 1;
    };
    held.conns.push(conn);
  }
  return { held: conns.length, openMs: now() - t0 };
}

function holdStatus() {
  const open = held.conns.filter((c) => !c.closed).length;
  const pings = held.conns.reduce((sum, c) => sum + c.pings, 0);
  const minPings = held.conns.reduce((m, c) => Math.min(m, c.pings), Infinity);
  return { open, unexpectedCloses: held.unexpectedCloses, pings, minPings: Number.isFinite(minPings) ? minPings : 0 };
}

async function release() {
  held.releasing = true;
  for (const conn of held.conns) conn.destroy();
  const deadline = now() + 10_000;
  while (now() < deadline && held.conns.some((c) => !c.closed)) await sleep(20);
  const count = held.conns.length;
  held.conns = [];
  held.releasing = false;
  held.unexpectedCloses = 0;
  return { released: count };
}

/** Reads every page of `list` on `conn` (which must not have an onText handler). */
async function listAll(conn, replies) {
  const names = new Set();
  let after = null;
  for (let page = 0; page < MAX_LIST_PAGES; page += 1) {
    conn.sendJson({ type: 'list', id: `l${page}`, after, limit: LIST_PAGE });
    const reply = JSON.parse(await replies(10_000));
    if (reply.type !== 'peers') throw new Error(`list refused: ${JSON.stringify(reply).slice(0, 160)}`);
    for (const peer of reply.peers) names.add(peer.nickname);
    if (reply.next === null) return names;
    after = reply.next;
  }
  throw new Error(`list did not end within ${MAX_LIST_PAGES} pages`);
}

/** Nickname of a peer_joined / peer_left frame: a fast path for the server's field order, JSON otherwise. */
function eventOf(buf, start, end) {
  const fast = (prefix) => {
    if (!hasPrefix(buf, start, end, prefix)) return null;
    const from = start + prefix.length;
    const quote = buf.indexOf(0x22, from);
    if (quote < 0 || quote >= end) return null;
    const name = buf.toString('latin1', from, quote);
    return name.includes('\\') ? null : name;
  };
  if (hasPrefix(buf, start, end, JOINED)) {
    const name = fast(JOINED_FAST) ?? JSON.parse(buf.toString('utf8', start, end)).peer.nickname;
    return { joined: true, name };
  }
  if (hasPrefix(buf, start, end, LEFT)) {
    const name = fast(LEFT_FAST) ?? JSON.parse(buf.toString('utf8', start, end)).nickname;
    return { joined: false, name };
  }
  return null;
}

const subscribers = [];

/** Opens `count` subscribers: subscribe, then a full `list` taken after `subscribed`, then events applied in order. */
async function subscribe({ port, count, localAddresses }) {
  const conns = await openMany(port, count, localAddresses);
  await Promise.all(
    conns.map(async (conn) => {
      const sub = { conn, view: null, early: [], events: 0, firstAt: null, lastAt: null, replies: [], waiter: null };
      const hello = JSON.parse(await conn.next());
      if (hello.type !== 'hello') throw new Error('expected hello');
      conn.sendJson({ type: 'subscribe', id: 's' });
      const ok = JSON.parse(await conn.next());
      if (ok.type !== 'subscribed') throw new Error(`subscribe refused: ${JSON.stringify(ok).slice(0, 160)}`);
      conn.onText = (buf, start, end) => {
        const event = eventOf(buf, start, end);
        if (event === null) {
          sub.replies.push(buf.toString('utf8', start, end));
          const wake = sub.waiter;
          sub.waiter = null;
          if (wake !== null) wake();
          return;
        }
        sub.events += 1;
        const t = wallNow();
        sub.firstAt ??= t;
        sub.lastAt = t;
        if (sub.view === null) sub.early.push(event);
        else if (event.joined) sub.view.add(event.name);
        else sub.view.delete(event.name);
      };
      // Frames that came in the same read as `subscribed` are already queued as strings.
      for (const text of conn.queue.splice(0)) {
        const bytes = Buffer.from(text, 'utf8');
        conn.onText(bytes, 0, bytes.length);
      }
      const nextReply = async (timeoutMs) => {
        const deadline = now() + timeoutMs;
        while (sub.replies.length === 0) {
          if (conn.closed) throw new Error('subscriber closed while listing');
          const left = deadline - now();
          if (left <= 0) throw new Error('list reply timed out');
          await new Promise((resolve) => {
            const timer = setTimeout(resolve, left);
            sub.waiter = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
        return sub.replies.shift();
      };
      const view = await listAll(conn, nextReply);
      for (const event of sub.early) {
        if (event.joined) view.add(event.name);
        else view.delete(event.name);
      }
      sub.early = [];
      sub.view = view;
      subscribers.push(sub);
    }),
  );
  return { subscribers: subscribers.length, initialView: subscribers[0]?.view.size ?? 0 };
}

/** Peers that join (signed register) and leave (alternately `unregister` and closing), `concurrency` at a time. */
async function churn({ port, concurrency, durationMs, maxCycles, poolSize, prefix, localAddresses }) {
  const pool = identityPool(prefix, poolSize);
  const pick = addressPicker(localAddresses);
  const errors = new ErrorTally();
  let cycles = 0;
  let joins = 0;
  let leaves = 0;
  const startedAt = wallNow();
  mark('start');
  const stopAt = now() + durationMs;
  const lane = async () => {
    while (now() < stopAt && cycles < maxCycles) {
      cycles += 1;
      const useUnregister = cycles % 2 === 0;
      const identity = pool.shift();
      try {
        const conn = await registerOn(port, pick(), identity);
        joins += 1;
        if (useUnregister) {
          conn.sendJson({ type: 'unregister', id: 'u' });
          const reply = await conn.next();
          if (!reply.startsWith('{"type":"unregistered"'))
            throw new Error(`unregister refused: ${reply.slice(0, 160)}`);
        }
        await conn.close();
        leaves += 1;
      } catch (err) {
        errors.add(err);
        await sleep(5);
      } finally {
        pool.push(identity);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const endedAt = wallNow();
  mark('end');
  return { cycles, joins, leaves, startedAt, endedAt, errors: errors.count, errorSamples: errors.samples };
}

/** Compares every subscriber's applied view with a fresh `list` from a new connection. */
async function verifyViews({ port, localAddresses }) {
  const conn = await WireConnection.open({ port, localAddress: localAddresses[0] });
  try {
    const hello = JSON.parse(await conn.next());
    if (hello.type !== 'hello') throw new Error('expected hello');
    const fresh = await listAll(conn, (timeoutMs) => conn.next(timeoutMs));
    let lost = 0;
    let mismatched = 0;
    let dropped = 0;
    let events = 0;
    let firstAt = Infinity;
    let lastAt = 0;
    let minEvents = Infinity;
    for (const sub of subscribers) {
      if (sub.conn.closed) dropped += 1;
      let diff = 0;
      for (const name of sub.view) if (!fresh.has(name)) diff += 1;
      for (const name of fresh) if (!sub.view.has(name)) diff += 1;
      if (diff > 0 || sub.conn.closed) mismatched += 1;
      lost += diff;
      events += sub.events;
      minEvents = Math.min(minEvents, sub.events);
      if (sub.firstAt !== null) firstAt = Math.min(firstAt, sub.firstAt);
      if (sub.lastAt !== null) lastAt = Math.max(lastAt, sub.lastAt);
    }
    for (const sub of subscribers.splice(0)) sub.conn.destroy();
    return {
      freshSize: fresh.size,
      lost,
      mismatched,
      dropped,
      events,
      minEvents,
      firstEventAt: firstAt,
      lastEventAt: lastAt,
    };
  } finally {
    conn.destroy();
  }
}

const COMMANDS = {
  throughput,
  paced,
  register,
  pacedRegister,
  prepareHold,
  hold,
  holdIdle,
  holdStatus,
  release,
  subscribe,
  churn,
  verifyViews,
};

process.on('message', async (message) => {
  const { id, cmd, args } = message;
  debug(`${cmd} started`);
  try {
    const command = COMMANDS[cmd];
    if (command === undefined) throw new Error(`unknown command ${cmd}`);
    const result = await command(args ?? {});
    debug(`${cmd} done`);
    process.send({ id, ok: true, result });
  } catch (err) {
    process.send({ id, ok: false, error: err?.stack ?? String(err) });
  }
});
process.send({ ready: true, pid: process.pid });
