#!/usr/bin/env node
/**
 * The bench's "same server without claims" (phase `claims`, baseline (c)):
 *   node bench/phases/claims-server.mjs --config <config.ini>
 *
 * Exactly what `p2p-registry serve --config <file>` does (server/src/cli/server-commands.ts: the
 * same config parser, logger and `startServer` of the built package, SIGTERM/SIGINT close it),
 * except that `startServer` is given a claim store that keeps nothing (StartOptions.openStore,
 * dependency injection; no config key reaches it). Everything else runs as shipped: the claim
 * keeper, its checks and its timers, and every registration still passes through it; only the
 * store's work is missing, so the rate next to the real server's is what durable claims cost.
 * The store:
 *  - reads find nothing (findForRegistration: no claims; getByNickname: null; list: empty);
 *  - writes resolve at once without writing (touch: 0; revert: 0; releaseClaim: false; releaseKey and releaseNickname:
 * null; purge: 0);
 *  - `claim` answers `claimed` with the claim it would have made (only reached with
 *    ClaimAfterSeconds 0 or after ClaimAfterSeconds, which the phase does not use with this store).
 */
import { loadConfig } from '../../server/dist/server/config/config.js';
import { createLogger } from '../../server/dist/server/logger.js';
import { startServer } from '../../server/dist/server/start-server.js';

const CLAIM_MS = 30 * 86_400_000;

/** A ClaimStore (server/src/store/claim-store.ts) that keeps nothing. */
export function nullClaimStore() {
  return {
    async findForRegistration() {
      return { byNickname: null, byAddress: null, byKey: null };
    },
    async claim(request) {
      const now = Date.now();
      const claim = Object.freeze({ ...request, claimedAt: now, lastSeenAt: now, expiresAt: now + CLAIM_MS });
      return { kind: 'claimed', claim, previous: null, displaced: null };
    },
    async touch() {
      return 0;
    },
    async revert() {
      return 0;
    },
    async releaseClaim() {
      return false;
    },
    async releaseKey() {
      return null;
    },
    async releaseNickname() {
      return null;
    },
    async getByNickname() {
      return null;
    },
    async list() {
      return { claims: [], next: null };
    },
    async purgeExpired() {
      return 0;
    },
    async backup() {
      throw new Error('the bench baseline keeps no claims to back up');
    },
    async close() {},
  };
}

async function main(argv) {
  const at = argv.indexOf('--config');
  if (at < 0 || argv[at + 1] === undefined) throw new Error('usage: claims-server.mjs --config <config.ini>');
  const cfg = loadConfig(argv[at + 1]);
  const logger = createLogger(cfg.logLevel);
  logger.info({ node: process.version }, 'starting p2p-registry (bench baseline: a claim store that keeps nothing)');
  const server = await startServer(cfg, logger, { openStore: async () => nullClaimStore() });
  await new Promise((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      server.close().then(resolve, resolve);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`claims-server: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
