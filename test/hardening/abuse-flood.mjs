// The attacker of the abuse load test, in its own process so its work does not delay the honest
// peers' event loop: N connections that flood garbage, junk JSON, registrations with bad
// signatures, registrations followed by list floods, and lists they never read. Each one reconnects
// as soon as the server drops it. Prints a JSON summary on stdout when the time is up.
//
//   node abuse-flood.mjs <ws-url> <seconds> <connections> [frames per second per connection]
//
// Each connection sends 200 frames a second by default: ten times the default request budget, and a
// fixed rate so the attack measures the server rather than how fast this process can write.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { WebSocket } from 'ws';
import { onionAddressFromPublicKey } from '../../server/dist/protocol/onion-address.js';

const [url, secondsArg, countArg, rateArg = '200'] = process.argv.slice(2);
const TICK_MS = 10;
const perTick = Math.max(1, Math.round((Number(rateArg) * TICK_MS) / 1000));
const deadline = Date.now() + Number(secondsArg) * 1000;
const count = Number(countArg);
const summary = { connections: 0, refused: 0, framesSent: 0, replies: {}, closes: {} };
const bump = (table, key) => {
  table[key] = (table[key] ?? 0) + 1;
};

const keys = Array.from({ length: 64 }, () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    privateKey,
    address: onionAddressFromPublicKey(publicKey.export({ format: 'der', type: 'spki' }).subarray(12)),
  };
});
const pick = (list) => list[Math.floor(Math.random() * list.length)];
const nick = () => `x${randomBytes(6).toString('hex')}`;

const deep = `{"type":"ping","x":${'['.repeat(7_000)}${']'.repeat(7_000)}}`;
const giant = JSON.stringify({ type: 'lookup', nickname: 'y'.repeat(16_000) });
const oversize = 'z'.repeat(20_000);
// Dear to parse (~0.2 ms) yet one token of the request budget: a flat object with 1,500 fields.
const manyFields = `{"type":"ping",${Array.from({ length: 1_500 }, (_, i) => `"f${i}":0`).join(',')}}`;

const junk = [
  () => randomBytes(64 + Math.floor(Math.random() * 512)),
  () => '{"type":',
  () => deep,
  () => manyFields,
  () => giant,
  () => '{"__proto__":{"polluted":true},"type":"ping"}',
  () => JSON.stringify({ type: 'register', nickname: ['x'], port: '1', address: 5 }),
  () => JSON.stringify({ type: 'teleport', id: 'x'.repeat(65) }),
  () => `{"type":"lookup","nickname":"${'\\ud800'.repeat(500)}"}`,
  () => '1e400',
];

function register(challenge, key, signed) {
  const nickname = nick();
  const port = 1 + Math.floor(Math.random() * 65_535);
  const payload = `p2p-tor-chat/register/v1\n${challenge}\n${nickname}\n${key.address}\n${port}`;
  const signature = signed
    ? sign(null, Buffer.from(payload), key.privateKey).toString('base64')
    : randomBytes(64).toString('base64');
  return JSON.stringify({
    type: 'register',
    nickname,
    address: key.address,
    port,
    publicKey: key.publicKey,
    signature,
  });
}

/** What each kind of attacker sends after the hello; `n` counts frames on this connection. */
const kinds = {
  garbage: (_hello, n) => (n % 97 === 96 ? oversize : randomBytes(32 + Math.floor(Math.random() * 256))),
  junk: () => pick(junk)(),
  badSignature: (hello) => register(hello.challenge, pick(keys), false),
  registerThenList: (hello, n) =>
    n === 0 ? register(hello.challenge, pick(keys), true) : n % 3 === 0 ? '{"type":"subscribe"}' : '{"type":"list"}',
  binary: () => randomBytes(100),
};
const plan = [
  'garbage',
  'junk',
  'badSignature',
  'registerThenList',
  'badSignature',
  'junk',
  'garbage',
  'registerThenList',
  'binary',
  'stalled',
];

function attacker(kind) {
  if (Date.now() >= deadline) return;
  summary.connections += 1;
  const ws = new WebSocket(url, { perMessageDeflate: false });
  let sent = 0;
  let hello;
  ws.on('error', () => {});
  ws.on('unexpected-response', (_req, res) => {
    bump(summary.closes, `http ${res.statusCode}`);
    summary.refused += 1;
    res.resume();
  });
  ws.on('message', (data) => {
    if (hello === undefined) {
      hello = JSON.parse(data.toString());
      if (kind === 'stalled') {
        // Asks for lists and never reads the replies: the server must drop it at MaxBufferedBytes.
        ws._socket.pause();
        for (let i = 0; i < 40; i += 1) ws.send('{"type":"list"}');
        return;
      }
      pump();
      return;
    }
    try {
      const frame = JSON.parse(data.toString());
      bump(summary.replies, frame.type === 'error' ? frame.code : frame.type);
    } catch {
      bump(summary.replies, 'unparseable');
    }
  });
  ws.on('close', (code) => {
    bump(summary.closes, String(code));
    // The next attacker of this kind takes the place of the dropped one.
    setTimeout(() => attacker(kind), 5);
  });
  function pump() {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() >= deadline) {
      ws.terminate();
      return;
    }
    for (let i = 0; i < perTick && ws.bufferedAmount < 256 * 1024; i += 1) {
      const data = kinds[kind](hello, sent);
      ws.send(data, { binary: kind === 'binary' });
      sent += 1;
      summary.framesSent += 1;
    }
    setTimeout(pump, TICK_MS);
  }
}

for (let i = 0; i < count; i += 1) attacker(plan[i % plan.length]);
setTimeout(
  () => {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    process.exit(0);
  },
  deadline - Date.now() + 500,
);
