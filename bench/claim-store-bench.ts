/**
 * Measurements of a claim store, for the bench (which can call these) and for a quick look:
 *   node --import ./test/support/ts-source-hooks.mjs bench/claim-store-bench.ts [folder]
 * Claims are issued `perTurn` at a time, as registrations arriving on many sockets in one poll
 * phase would be; CPU is this process's user+system time, which is what the server's
 * registrations-per-CPU-second figure pays.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { onionAddressFromPublicKey } from '../server/src/protocol/onion-address.js';
import { keyIdOf, type ClaimRequest, type ClaimStore } from '../server/src/store/claim-store.js';
import { migrate } from '../server/src/store/migrations.js';
import { openSqliteClaimStore } from '../server/src/store/sqlite/sqlite-store.js';

export interface ThroughputResult {
  readonly claims: number;
  readonly perTurn: number;
  readonly claimsPerSecond: number;
  /** CPU (user + system) per claim, in microseconds. */
  readonly cpuMicrosPerClaim: number;
  /** From issuing a turn's claims to the last of them resolving: the wait a registration sees. */
  readonly turnP99Ms: number;
  readonly turnMaxMs: number;
}

export interface LatencyResult {
  readonly samples: number;
  readonly p50Micros: number;
  readonly p99Micros: number;
}

/** Requests for `count` distinct keys, nicknames and addresses (made before any timing). */
export function makeRequests(count: number, prefix = 'peer'): ClaimRequest[] {
  return Array.from({ length: count }, (_, i) => {
    // 44 random bytes: the size of an Ed25519 SPKI, without the cost of making real keys.
    const der = new Uint8Array(randomBytes(44));
    return {
      keyId: keyIdOf(der),
      publicKeyDer: der,
      nickname: `${prefix}${i}`,
      address: onionAddressFromPublicKey(randomBytes(32)),
      addressVerified: false,
    };
  });
}

/** Claims every request, `perTurn` per event-loop turn, and times it. */
export async function measureClaims(
  store: ClaimStore,
  requests: readonly ClaimRequest[],
  perTurn: number,
): Promise<ThroughputResult> {
  const turns: number[] = [];
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < requests.length; i += perTurn) {
    const turnStart = process.hrtime.bigint();
    await Promise.all(requests.slice(i, i + perTurn).map((request) => store.claim(request)));
    turns.push(Number(process.hrtime.bigint() - turnStart) / 1e6);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  return {
    claims: requests.length,
    perTurn,
    claimsPerSecond: Math.round(requests.length / seconds),
    cpuMicrosPerClaim: Math.round(((used.user + used.system) / requests.length) * 10) / 10,
    turnP99Ms:
      Math.round(
        percentile(
          turns.sort((a, b) => a - b),
          99,
        ) * 100,
      ) / 100,
    turnMaxMs: Math.round((turns[turns.length - 1] ?? 0) * 100) / 100,
  };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** Latency of findForRegistration for random claimed and unclaimed nicknames and addresses. */
export async function measureFind(
  store: ClaimStore,
  claimed: readonly ClaimRequest[],
  samples: number,
): Promise<LatencyResult> {
  const fresh = makeRequests(samples, 'absent');
  const times: number[] = [];
  for (let i = 0; i < samples; i += 1) {
    const hit = claimed[Math.floor(Math.random() * claimed.length)];
    const miss = fresh[i];
    if (hit === undefined || miss === undefined) break;
    const query = i % 2 === 0 ? { keyId: miss.keyId, nickname: hit.nickname, address: miss.address } : miss;
    const start = process.hrtime.bigint();
    await store.findForRegistration(query);
    times.push(Number(process.hrtime.bigint() - start) / 1e3);
  }
  times.sort((a, b) => a - b);
  return {
    samples: times.length,
    p50Micros: Math.round(percentile(times, 50) * 10) / 10,
    p99Micros: Math.round(percentile(times, 99) * 10) / 10,
  };
}

/** Time of one purge that finds nothing to delete, in a file at `schemaVersion` holding `rows` claims. */
export function measureEmptyPurge(folder: string, schemaVersion: number, requests: readonly ClaimRequest[]): number {
  const path = join(folder, `purge-v${schemaVersion}.db`);
  const db = new DatabaseSync(path);
  migrate(db, path, schemaVersion);
  const insert = db.prepare(
    `INSERT INTO claims (key_id, public_key, nickname, nickname_key, address, address_verified, claimed_at,
      last_seen_at, expires_at)
     VALUES (?, ?, ?, lower(?), ?, 0, 0, 0, ?)`,
  );
  db.exec('BEGIN');
  const later = Date.now() + 86_400_000;
  for (const r of requests) insert.run(r.keyId, r.publicKeyDer, r.nickname, r.nickname, r.address, later);
  db.exec('COMMIT');
  const purge = db.prepare(
    'DELETE FROM claims WHERE rowid IN (SELECT rowid FROM claims WHERE expires_at <= ? LIMIT 1000)',
  );
  purge.run(Date.now()); // warm the cache, as a server's periodic purge would find it
  const start = process.hrtime.bigint();
  purge.run(Date.now());
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  db.close();
  return Math.round(ms * 100) / 100;
}

async function main(folder: string): Promise<void> {
  const report: Record<string, unknown> = {};
  for (const [label, maxBatch, perTurn] of [
    ['one transaction per claim', 1, 64],
    ['group commit, 1 claim per turn', 512, 1],
    ['group commit, 16 claims per turn', 512, 16],
    ['group commit, 64 claims per turn', 512, 64],
  ] as const) {
    const store = await openSqliteClaimStore({
      path: join(folder, `t-${maxBatch}-${perTurn}.db`),
      claimDays: 30,
      maxBatch,
    });
    report[label] = await measureClaims(store, makeRequests(maxBatch === 1 || perTurn === 1 ? 2_000 : 20_000), perTurn);
    await store.close();
  }
  const big = await openSqliteClaimStore({ path: join(folder, 'big.db'), claimDays: 30 });
  const claimed = makeRequests(100_000);
  report['filling 100,000 claims (512 per turn)'] = await measureClaims(big, claimed, 512);
  report['findForRegistration with 100,000 claims'] = await measureFind(big, claimed, 20_000);
  report['claims with 100,000 claims already (64 per turn)'] = await measureClaims(
    big,
    makeRequests(20_000, 'more'),
    64,
  );
  await big.close();
  report['empty purge at 100,000 claims, ms'] = {
    'schema 1 (no expiry index)': measureEmptyPurge(folder, 1, claimed),
    'schema 2 (expiry index)': measureEmptyPurge(folder, 2, claimed),
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

if (import.meta.main) {
  const given = process.argv[2];
  const folder = given ?? mkdtempSync(join(tmpdir(), 'claim-bench-'));
  try {
    await main(folder);
  } finally {
    if (given === undefined) rmSync(folder, { recursive: true, force: true });
  }
}
