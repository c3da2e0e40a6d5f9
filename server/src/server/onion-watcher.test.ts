import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { randomOnion } from '../../../test/support/registry-harness.js';
import { OnionWatcher, readOnionState } from './onion-watcher.js';
import { delay, waitUntil } from '../../../test/support/wait.js';

interface LogLine {
  level: number;
  msg: string;
  problem?: string;
  onion?: string;
}

function capture(): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as LogLine);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

const watchers: OnionWatcher[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function base(): string {
  const dir = mkdtempSync(join(tmpdir(), 'watch-'));
  dirs.push(dir);
  return dir;
}

async function watch(
  dir: string,
  timeoutSeconds = 60,
): Promise<{ watcher: OnionWatcher; lines: LogLine[]; next: () => Promise<string> }> {
  const { logger, lines } = capture();
  const watcher = new OnionWatcher({ dir, timeoutSeconds, logger, recheckMs: 100 });
  watchers.push(watcher);
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  watcher.on('address', (address) => {
    queue.push(address);
    wake?.();
  });
  await watcher.start();
  const next = async (): Promise<string> => {
    const deadline = Date.now() + 5_000;
    while (queue.length === 0) {
      if (Date.now() > deadline) throw new Error(`no address event; logs: ${JSON.stringify(lines)}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100);
      });
    }
    return queue.shift() as string;
  };
  return { watcher, lines, next };
}

const until = (check: () => boolean, what: string): Promise<void> => waitUntil(what, check, { intervalMs: 25 });

describe('onion watcher', () => {
  it('learns the address from a hostname file that is already there', async () => {
    const dir = base();
    const onion = randomOnion();
    writeFileSync(join(dir, 'hostname'), `${onion}\n`);
    const { watcher, lines } = await watch(dir);
    expect(watcher.address).toBe(onion);
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'onion address found', onion }));
  });

  it('learns the address when tor writes hostname later', async () => {
    const dir = base();
    const { watcher, next, lines } = await watch(dir);
    expect(watcher.address).toBeNull();
    expect(lines).toContainEqual(expect.objectContaining({ problem: 'NO_HOSTNAME' }));
    const onion = randomOnion();
    setTimeout(() => writeFileSync(join(dir, 'hostname'), `${onion}\n`), 200);
    expect(await next()).toBe(onion);
  });

  it('notices when the hostname changes (keys restored from a backup)', async () => {
    const dir = base();
    writeFileSync(join(dir, 'hostname'), `${randomOnion()}\n`);
    const { watcher, next, lines } = await watch(dir);
    await next();
    const restored = randomOnion();
    writeFileSync(join(dir, 'hostname'), `${restored}\n`);
    expect(await next()).toBe(restored);
    expect(watcher.address).toBe(restored);
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'onion address changed (keys restored or replaced)' }));
  });

  it('says precisely what is wrong with a hostname that is not a v3 address, and recovers', async () => {
    const dir = base();
    writeFileSync(join(dir, 'hostname'), 'expyuzz4wqqyqhjn.onion\n');
    const { watcher, next, lines } = await watch(dir);
    expect(watcher.address).toBeNull();
    const bad = lines.find((l) => l.problem === 'BAD_HOSTNAME');
    expect(bad?.level).toBe(50);
    expect(bad?.msg).toContain('does not hold a v3 onion address');
    const onion = randomOnion();
    writeFileSync(join(dir, 'hostname'), `${onion}\n`);
    expect(await next()).toBe(onion);
  });

  it('keeps watching a HiddenServiceDir that does not exist yet, and finds hostname once tor creates it', async () => {
    const dir = join(base(), 'hidden_service');
    const { next, lines } = await watch(dir);
    const missing = lines.find((l) => l.problem === 'MISSING_DIR');
    expect(missing?.msg).toContain('does not exist: start tor');
    const onion = randomOnion();
    mkdirSync(dir);
    writeFileSync(join(dir, 'hostname'), `${onion}\n`);
    expect(await next()).toBe(onion);
    // ...and then watches the new folder for changes.
    await delay(300);
    const restored = randomOnion();
    writeFileSync(join(dir, 'hostname'), `${restored}\n`);
    expect(await next()).toBe(restored);
  });

  it('logs an error naming the problem when hostname stays absent past the timeout, and keeps watching', async () => {
    const dir = base();
    const { lines, next } = await watch(dir, 1);
    await until(() => lines.some((l) => l.msg.startsWith('no onion address after 1 s')), 'the timeout error');
    const timeoutLine = lines.find((l) => l.msg.startsWith('no onion address after 1 s'));
    expect(timeoutLine).toMatchObject({ level: 50, problem: 'NO_HOSTNAME' });
    expect(timeoutLine?.msg).toContain('Received empty socket content');
    const onion = randomOnion();
    writeFileSync(join(dir, 'hostname'), `${onion}\n`);
    expect(await next()).toBe(onion);
  });

  it('keeps the last known address when hostname disappears', async () => {
    const dir = base();
    const onion = randomOnion();
    writeFileSync(join(dir, 'hostname'), `${onion}\n`);
    const { watcher, lines } = await watch(dir);
    rmSync(join(dir, 'hostname'));
    await until(() => lines.some((l) => l.msg.includes('keeping the last known address')), 'the warning');
    expect(watcher.address).toBe(onion);
  });

  it('names the group fix when HiddenServiceDir cannot be read', () => {
    // Root reads everything, so the check runs in a child process as an unprivileged user.
    const parent = base();
    chmodSync(parent, 0o755);
    const dir = join(parent, 'hidden_service');
    mkdirSync(dir, { mode: 0o750 });
    writeFileSync(join(dir, 'hostname'), `${randomOnion()}\n`);
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) chmodSync(dir, 0o000);
    const built = new URL('./onion-watcher.ts', import.meta.url).href.replace(
      '/src/server/onion-watcher.ts',
      '/dist/server/onion-watcher.js',
    );
    const script =
      `import(${JSON.stringify(built)}).then(async ` +
      `(m) => { process.stdout.write(JSON.stringify(await m.readOnionState(process.argv[1]))); });`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, dir], {
      ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      encoding: 'utf8',
    });
    if (!asRoot) chmodSync(dir, 0o750);
    const state = JSON.parse(out) as { problem: string; detail: string };
    expect(state.problem).toBe('UNREADABLE_DIR');
    expect(state.detail).toContain('HiddenServiceDirGroupReadable 1');
    expect(state.detail).toContain("tor's group");
  });

  it('reads the file state directly for the onion command', async () => {
    const dir = base();
    expect(await readOnionState(dir)).toMatchObject({ status: 'waiting', problem: 'NO_HOSTNAME' });
    expect(await readOnionState(join(dir, 'nope'))).toMatchObject({ status: 'waiting', problem: 'MISSING_DIR' });
  });
});
