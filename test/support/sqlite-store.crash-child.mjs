/**
 * The child of the crash test (sqlite-store.test.ts): makes claims as fast as the store acks them
 * and prints each one, as a JSON line, only after its promise resolved. The test kill -9s it at a
 * random moment and then checks every printed claim is in the database.
 * Usage: node sqlite-store.crash-child.mjs <database>
 */
import './ts-source-hooks.mjs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

const { openSqliteClaimStore } = await import('../../server/src/store/sqlite/sqlite-store.ts');
const { keyIdOf } = await import('../../server/src/store/claim-store.ts');
const { onionAddressFromPublicKey } = await import('../../server/src/protocol/onion-address.ts');

const path = process.argv[2];
if (path === undefined) throw new Error('usage: sqlite-store.crash-child.mjs <database>');
const store = await openSqliteClaimStore({ path, claimDays: 30 });
process.stdout.write('ready\n');

function newKey() {
  const der = new Uint8Array(generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }));
  return { keyId: keyIdOf(der), publicKeyDer: der };
}

// A fresh key per claim: no claim replaces another, so every printed claim must still be there.
async function claimOne() {
  const key = newKey();
  const nickname = `c${randomBytes(6).toString('hex')}`;
  const address = onionAddressFromPublicKey(
    generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).subarray(12),
  );
  const outcome = await store.claim({ ...key, nickname, address, addressVerified: false });
  if (outcome.kind === 'claimed') process.stdout.write(`${JSON.stringify({ keyId: key.keyId, nickname, address })}\n`);
}

for (;;) {
  // Several claims per turn, so that kills land inside group commits too.
  await Promise.all(Array.from({ length: 8 }, claimOne));
}
