/**
 * The CPU ceiling for registrations: raw Ed25519 verifications per second, one thread, a sync loop
 * over a registration-shaped payload with a ready KeyObject. Also times the PEM -> KeyObject parse
 * a registration needs, for the profile discussion.   node bench/verify-loop.mjs <durationMs> [windowMs]
 */
import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';

const durationMs = Number(process.argv[2] ?? 3000);
const windowMs = Number(process.argv[3] ?? 1000);
const { publicKey: pem, privateKey } = generateKeyPairSync('ed25519', {
  publicKeyEncoding: { type: 'spki', format: 'pem' },
});
const publicKey = createPublicKey(pem);
const payload = Buffer.from(
  `p2p-tor-chat/register/v1\n${'A'.repeat(43)}\nbench-00000\n${'a'.repeat(56)}.onion\n5050`,
  'utf8',
);
const signature = sign(null, payload, privateKey);

/**
 * Calls `fn` in a tight loop for `ms` (checking the clock every 64 calls). Returns calls per wall
 * second and per CPU-second this thread got (they differ when other work shares the core).
 */
function rate(ms, fn) {
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  let n = 0;
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < 64; i += 1) fn();
    n += 64;
    elapsed = performance.now() - start;
  }
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return { perSec: n / (elapsed / 1000), perCpuSecond: n / cpuSeconds, cpuShare: cpuSeconds / (elapsed / 1000) };
}

rate(200, () => verify(null, payload, publicKey, signature)); // warm up
let failures = 0;
// Windows of `windowMs`, so the orchestrator can report one this process had its core to itself in.
const windows = [];
for (let i = 0; i < Math.max(1, Math.round(durationMs / windowMs)); i += 1) {
  windows.push(
    rate(windowMs, () => {
      if (!verify(null, payload, publicKey, signature)) failures += 1;
    }),
  );
}
const pemParse = rate(Math.min(1000, durationMs / 3), () => createPublicKey({ key: pem, format: 'pem' }));
const report = { windows, pemParsePerSec: pemParse.perSec, pemParsePerCpuSecond: pemParse.perCpuSecond, failures };
process.stdout.write(`${JSON.stringify(report)}\n`);
