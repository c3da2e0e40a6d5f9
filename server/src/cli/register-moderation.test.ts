/**
 * `p2p-registry register` and the operator's decisions (PROTOCOL.md revision 3, "Moderation"),
 * against the real registry: a registration refused BLOCKED or NICKNAME_RESERVED, or a live one the
 * operator blocks (4003), ends the command with exit 1 and the refusal and its public reason on
 * stderr; it never retries.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BY } from '../../../test/support/moderation.contract.js';
import { randomOnion, startTestServer, type TestServer } from '../../../test/support/registry-harness.js';
import { waitUntil } from '../../../test/support/wait.js';
import { NicknamePattern } from '../server/moderation/nickname-pattern.js';
import type { ModerationStore } from '../store/moderation/moderation-store.js';
import { openModerationStore } from '../store/moderation/open-moderation.js';
import { parseArgs } from './args.js';
import { CLIENT_FLAGS, CLIENT_OPTIONS, runClientCommand } from './client-commands.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Every server polls the decisions every 500 ms: after this long a new one is in force everywhere. */
const APPLIED_MS = 1_100;

async function registryWithOperator(): Promise<{ registry: TestServer; operator: ModerationStore }> {
  const registry = await startTestServer({ EventBatchMs: 0 });
  cleanups.push(() => registry.close());
  const operator = await openModerationStore({ database: registry.database, passwordFile: null });
  cleanups.push(() => operator.close());
  return { registry, operator };
}

interface Run {
  readonly exit: Promise<number>;
  readonly out: () => string;
  readonly err: () => string;
}

async function register(url: string, nickname: string, address = randomOnion()): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), 'register-moderation-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  let out = '';
  let err = '';
  const stop = new AbortController();
  cleanups.push(() => stop.abort());
  const argv = ['register', '--registry', url, '--nickname', nickname, '--address', address, '--port', '1'];
  const parsed = parseArgs(
    [...argv, '--key', join(dir, 'key.pem')],
    new Set(['config', ...CLIENT_OPTIONS]),
    new Set(['help', ...CLIENT_FLAGS]),
  );
  const io = {
    stdout: { write: (text: string) => (out += text) },
    stderr: { write: (text: string) => (err += text) },
    env: {},
    signal: stop.signal,
  };
  return { exit: runClientCommand('register', parsed, io), out: () => out, err: () => err };
}

describe('p2p-registry register and moderation', () => {
  it('exits 1 with BLOCKED and the public reason when its address is blocked', async () => {
    const { registry, operator } = await registryWithOperator();
    const address = randomOnion();
    await operator.block('address', address, null, BY);
    await new Promise((resolve) => setTimeout(resolve, APPLIED_MS));
    const run = await register(String(registry.url), 'mallory', address);
    expect(await run.exit).toBe(1);
    expect(run.err()).toContain('BLOCKED');
    expect(run.err()).toContain(String(BY.reason));
    expect(run.err()).not.toContain(String(BY.note));
  });

  it('exits 1 with NICKNAME_RESERVED and the public reason for a look-alike of a reserved nickname', async () => {
    const { registry, operator } = await registryWithOperator();
    const admin = new NicknamePattern('admin');
    await operator.reserve('admin', (n) => admin.covers(n), null, { ...BY, reason: 'staff only' });
    await new Promise((resolve) => setTimeout(resolve, APPLIED_MS));
    const run = await register(String(registry.url), 'adm1n');
    expect(await run.exit).toBe(1);
    expect(run.err()).toContain('NICKNAME_RESERVED');
    expect(run.err()).toContain('staff only');
  });

  it(
    'exits 1 with BLOCKED and the reason when the operator blocks its live registration, without ' + 'reconnecting',
    async () => {
      const { registry, operator } = await registryWithOperator();
      const address = randomOnion();
      const run = await register(String(registry.url), 'mallory', address);
      await waitUntil('the registration', () => run.out().includes('registered mallory'), { timeoutMs: 2_000 });
      await operator.block('address', address, null, { ...BY, reason: 'phishing' });
      expect(await run.exit).toBe(1);
      expect(run.err()).toContain('BLOCKED');
      expect(run.err()).toContain('phishing');
      expect(run.err()).toContain('connection to the registry lost (close code 4003): not reconnecting');
    },
  );
});
