import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { randomOnion, tempDir } from '../../../test/support/registry-harness.js';

// These tests run the built command (npm test builds first), as an operator would.
const CLI = join(import.meta.dirname, '../../dist/cli.js');
const run = promisify(execFile);

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[]): Promise<Outcome> {
  return cliWithEnv(args, {});
}

async function cliWithEnv(args: string[], env: Record<string, string>): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
      env: { ...process.env, NO_PRETTY: '1', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The built command as another OS user (the tests run as root in CI: root ignores file modes). */
async function cliAs(user: string, args: string[]): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run('/usr/sbin/runuser', ['-u', user, '--', process.execPath, CLI, ...args], {
      env: { ...process.env, NO_PRETTY: '1' },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function writeConfig(lines: string): string {
  const dir = tempDir('cli-');
  const path = join(dir, 'config.ini');
  writeFileSync(path, lines);
  return path;
}

/** A config whose SQLite store holds one claim, of `mallory`. */
async function storeWithMallory(): Promise<{ dir: string; database: string; path: string }> {
  const dir = tempDir('cli-store-');
  const database = join(dir, 'registry.db');
  const path = writeConfig(
    `[Host]\nHOST=127.0.0.1\nPORT=1\n[HiddenService]\nHiddenServiceDir=${dir}\nHiddenServicePort=80\n[Store]\n` +
      `Database=${database}\n`,
  );
  const { openSqliteClaimStore } = await import('../store/sqlite/sqlite-store.js');
  const { newAddress, newKey, request } = await import('../../../test/support/claim-store.contract.js');
  const store = await openSqliteClaimStore({ path: database, claimDays: 30 });
  await store.claim(request(newKey(), 'mallory', newAddress()));
  await store.close();
  return { dir, database, path };
}

describe('p2p-registry command', () => {
  it('serve fails with one line naming every missing key and exits non-zero', async () => {
    const path = writeConfig('[Host]\nHOST = 127.0.0.1\n');
    const out = await cli(['serve', '--config', path]);
    expect(out.code).toBe(78);
    expect(out.stderr.trim().split('\n')).toHaveLength(1);
    expect(out.stderr).toMatch(/^\[Configuration error\] Missing variables in config: /);
    expect(out.stderr).toContain(
      'Missing variables in config: [Host] PORT, [HiddenService] HiddenServiceDir, [HiddenService] HiddenServicePort.',
    );
  });

  it('serve says how to fix a config path that does not exist', async () => {
    const out = await cli(['serve', '--config', '/nonexistent/config.ini']);
    expect(out.code).toBe(78);
    expect(out.stderr).toContain('copy config.ini.example to config.ini or pass --config <path>');
  });

  it('onion prints ws://<onion>:<port>/ from the hostname file', async () => {
    const hs = tempDir('hs-');
    const onion = randomOnion();
    writeFileSync(join(hs, 'hostname'), `${onion}\n`);
    const path = writeConfig(
      `[Host]\nHOST=127.0.0.1\nPORT=1\n[HiddenService]\nHiddenServiceDir=${hs}\nHiddenServicePort=8080\n`,
    );
    const out = await cli(['onion', '--config', path]);
    expect(out).toMatchObject({ code: 0, stdout: `ws://${onion}:8080/\n` });
  });

  it('onion exits non-zero with the reason when there is no hostname yet', async () => {
    const hs = tempDir('hs-');
    const path = writeConfig(
      `[Host]\nHOST=127.0.0.1\nPORT=1\n[HiddenService]\nHiddenServiceDir=${hs}\nHiddenServicePort=80\n`,
    );
    const out = await cli(['onion', '--config', path]);
    expect(out.code).toBe(3);
    expect(out.stderr).toContain('no onion address yet');
  });

  it('tor-settings writes the onion port tor needs, from config.ini or its environment override', async () => {
    const dir = tempDir('tor-settings-');
    const path = writeConfig(
      '[Host]\nHOST=127.0.0.1\nPORT=1\n[HiddenService]\nHiddenServiceDir=/hs\nHiddenServicePort=8080 ; the ' +
        'onion port\n',
    );
    const out = join(dir, 'tor.env');
    expect(await cli(['tor-settings', '--config', path, '--out', out])).toMatchObject({ code: 0 });
    expect(readFileSync(out, 'utf8')).toBe('HIDDEN_SERVICE_PORT=8080\n');
    const overridden = await cliWithEnv(['tor-settings', '--config', path, '--out', out], {
      REGISTRY_HIDDENSERVICE_HIDDENSERVICEPORT: '443',
    });
    expect(overridden.code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe('HIDDEN_SERVICE_PORT=443\n');
  });

  it('tor-settings refuses a config.ini the server would refuse, with its one line, and writes nothing', async () => {
    const dir = tempDir('tor-settings-');
    const out = join(dir, 'tor.env');
    const path = writeConfig(
      '[Host]\nHOST=127.0.0.1\nPORT=1\n[hiddenservice]\nHiddenServiceDir=/hs\nHiddenServicePort=80\n',
    );
    const result = await cli(['tor-settings', '--config', path, '--out', out]);
    expect(result.code).toBe(78);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('unknown section [hiddenservice]: did you mean [HiddenService]?');
    expect(existsSync(out)).toBe(false);
    const misspelt = writeConfig(
      '[Host]\nHOST=127.0.0.1\nPORT=1\n[HiddenService]\nHiddenServiceDir=/hs\nHiddenServicePort=80\n' +
        'HiddenServicePrt=81\n',
    );
    expect((await cli(['tor-settings', '--config', misspelt, '--out', out])).stderr).toContain(
      'did you mean HiddenServicePort?',
    );
    expect((await cli(['tor-settings', '--config', misspelt])).stderr).toContain('tor-settings needs --out <file>');
  });

  it('rejects unknown commands and options with the usage text', async () => {
    const out = await cli(['fly']);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('unknown command "fly"');
    expect(out.stderr).toContain('usage: p2p-registry');
    expect((await cli(['serve', '--bogus'])).stderr).toContain('unknown option --bogus');
  });

  it(
    'serve stops with one line naming the database, the cause and the fix when the database cannot be opened, and ' +
      'exits non-zero',
    async () => {
      const hs = tempDir('hs-');
      writeFileSync(join(hs, 'hostname'), `${randomOnion()}\n`);
      const notADatabase = join(tempDir('claims-'), 'registry.db');
      writeFileSync(
        notADatabase,
        'this is not an SQLite file, it is long enough to have a header of its own ........................',
      );
      const path = writeConfig(
        `[Host]\nHOST=127.0.0.1\nPORT=0\n[HiddenService]\nHiddenServiceDir=${hs}\nHiddenServicePort=80\n[Store]\n` +
          `Database=${notADatabase}\n[Log]\nlevel=silent\n`,
      );
      const out = await cli(['serve', '--config', path]);
      expect(out.code).toBe(1);
      const lines = out.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(`^p2p-registry: cannot open the claim database ${notADatabase}: .+ \\(SQLITE_NOTADB\\)\\. Fix: .+`),
      );
    },
  );

  it(
    'serve on a unix socket logs the URL, answers health on the operator socket, and exits 0 on SIGTERM after ' +
      'closing peers with 1001',
    async () => {
      const hs = tempDir('hs-');
      const onion = randomOnion();
      writeFileSync(join(hs, 'hostname'), `${onion}\n`);
      const socket = join(tempDir('sock-'), 'registry.sock');
      writeFileSync(socket, '');
      const operatorSocket = join(tempDir('operator-'), 'operator.sock');
      const database = join(tempDir('claims-'), 'registry.db');
      const path = writeConfig(
        `[Host]\nHOST=unix:${socket}\nOperatorSocket=${operatorSocket}\n[HiddenService]\nHiddenServiceDir=${hs}\n` +
          `HiddenServicePort=80\n[Store]\nDatabase=${database}\n`,
      );
      // A regular file where the socket should be is refused, not deleted.
      const refused = await cli(['serve', '--config', path]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('is not a socket');

      const { rmSync } = await import('node:fs');
      rmSync(socket);
      const child = spawn(process.execPath, [CLI, 'serve', '--config', path], {
        env: { ...process.env, NO_PRETTY: '1' },
      });
      const lines: Array<{ msg: string; url?: string; level?: number; flags?: string[] }> = [];
      const reachable = new Promise<void>((resolve) => {
        createInterface({ input: child.stdout }).on('line', (line) => {
          lines.push(JSON.parse(line) as { msg: string });
          if (line.includes('registry reachable at')) resolve();
        });
      });
      await reachable;
      expect(lines).toContainEqual(expect.objectContaining({ msg: `registry reachable at ws://${onion}:80/` }));
      // Started by hand without the V8 flag the bin and the image give node: set late, and said so.
      expect(lines).toContainEqual(expect.objectContaining({ level: 40, flags: ['--no-allocation-site-pretenuring'] }));
      const { statSync } = await import('node:fs');
      expect(statSync(socket).mode & 0o777).toBe(0o660);
      const healthy = await cli(['health', '--config', path]);
      expect(healthy.code).toBe(0);
      expect(JSON.parse(healthy.stdout)).toEqual({ status: 'ok', onion, peers: 0, uptimeSeconds: expect.any(Number) });

      const ws = new WebSocket(`ws+unix:${socket}:/`);
      ws.on('error', () => {});
      const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
      await new Promise((resolve) => ws.once('message', resolve));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await closed).toBe(1001);
      expect(await exited).toBe(0);
      const stopped = await cli(['health', '--config', path]);
      expect(stopped.code).toBe(1);
      expect(stopped.stderr).toMatch(
        new RegExp(
          '^p2p-registry: the server does not answer on its operator socket \\(\\[Host\\] OperatorSocket\\): ' +
            '.+; is it running with this config\\?\n$',
        ),
      );
    },
  );

  it(
    'health asks only the operator listener: without [Host] OperatorSocket it says what to set, even with the ' +
      'server up on its public socket',
    async () => {
      const hs = tempDir('hs-');
      writeFileSync(join(hs, 'hostname'), `${randomOnion()}\n`);
      const socket = join(tempDir('sock-'), 'registry.sock');
      const database = join(tempDir('claims-'), 'registry.db');
      const path = writeConfig(
        `[Host]\nHOST=unix:${socket}\n[HiddenService]\nHiddenServiceDir=${hs}\nHiddenServicePort=80\n[Store]\n` +
          `Database=${database}\n`,
      );
      const child = spawn(process.execPath, [CLI, 'serve', '--config', path], {
        env: { ...process.env, NO_PRETTY: '1' },
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      await new Promise<void>((resolve) =>
        createInterface({ input: child.stdout }).on(
          'line',
          (line) => line.includes('registry reachable at') && resolve(),
        ),
      );
      const out = await cli(['health', '--config', path]);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toEqual({
        code: 1,
        stdout: '',
        stderr:
          'p2p-registry: no operator listener to ask: set [Host] OperatorSocket (or ' +
          'REGISTRY_HOST_OPERATORSOCKET) to a ' +
          'unix socket path, e.g. /run/registry-operator/operator.sock, and restart the server\n',
      });
    },
  );

  it('serve refuses an operator socket that is its public socket, with one line, before it listens', async () => {
    const socket = join(tempDir('sock-'), 'registry.sock');
    const path = writeConfig(
      `[Host]\nHOST=unix:${socket}\nOperatorSocket=${socket}\n[HiddenService]\nHiddenServiceDir=/hs\n` +
        `HiddenServicePort=80\n`,
    );
    const out = await cli(['serve', '--config', path]);
    expect(out.code).toBe(78);
    expect(out.stderr.trim().split('\n')).toHaveLength(1);
    expect(out.stderr).toContain("[Host] OperatorSocket is the public listener's socket");
    expect(existsSync(socket)).toBe(false);
  });

  it('claims list, show and release and backup work on the database config.ini names', async () => {
    const dir = tempDir('cli-store-');
    const database = join(dir, 'data', 'registry.db');
    const path = writeConfig(
      `[Host]\nHOST=127.0.0.1\nPORT=1\n[HiddenService]\nHiddenServiceDir=${dir}\nHiddenServicePort=80\n[Store]\n` +
        `Database=${database}\n`,
    );
    const { openSqliteClaimStore } = await import('../store/sqlite/sqlite-store.js');
    const { newAddress, newKey, request } = await import('../../../test/support/claim-store.contract.js');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'data'));
    const store = await openSqliteClaimStore({ path: database, claimDays: 30 });
    await store.claim(request(newKey(), 'mallory', newAddress()));
    await store.close();

    const listed = await cli(['claims', 'list', '--json', '--config', path]);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ nickname: 'mallory' })]);
    const copy = join(dir, 'backup.db');
    expect((await cli(['backup', copy, '--config', path])).code).toBe(0);
    expect(existsSync(copy)).toBe(true);
    const released = await cli(['claims', 'release', 'mallory', '--config', path]);
    expect(released.code).toBe(0);
    expect((await cli(['claims', 'show', 'mallory', '--config', path])).code).toBe(1);
  });

  it("claims list and show only read: they work while another connection holds the database's write lock", async () => {
    const { database, path } = await storeWithMallory();
    const { DatabaseSync } = await import('node:sqlite');
    // A writer's lock, as a busy server's commit would hold it: any write would wait, then fail.
    const writer = new DatabaseSync(database);
    writer.exec('BEGIN IMMEDIATE');
    try {
      const listed = await cli(['claims', 'list', '--json', '--config', path]);
      expect(listed.stderr).toBe('');
      expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ nickname: 'mallory' })]);
      expect(await cli(['claims', 'show', 'Mallory', '--config', path])).toMatchObject({
        code: 0,
        stdout: expect.stringContaining('mallory'),
      });
    } finally {
      writer.exec('ROLLBACK');
      writer.close();
    }
  });

  it(
    'claims list and show work for an account that may only read the database file and its folder, the ' +
      'server stopped',
    async () => {
      const { dir, database, path } = await storeWithMallory();
      const { chmodSync } = await import('node:fs');
      chmodSync(database, 0o444);
      chmodSync(dir, 0o555);
      chmodSync(dirname(path), 0o755);
      try {
        // Root may write anything: the commands then run as `nobody`, whom the modes do bind.
        const asReader = (args: string[]): Promise<Outcome> =>
          process.getuid?.() === 0 ? cliAs('nobody', args) : cli(args);
        const listed = await asReader(['claims', 'list', '--json', '--config', path]);
        expect(listed.stderr).toBe('');
        expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ nickname: 'mallory' })]);
        expect(await asReader(['claims', 'show', 'mallory', '--config', path])).toMatchObject({
          code: 0,
          stdout: expect.stringContaining('mallory'),
        });
        expect(existsSync(`${database}-wal`)).toBe(false);
      } finally {
        chmodSync(dir, 0o755);
      }
    },
  );

  it('claims refuses to create a database that the server has not made, saying which --config to pass', async () => {
    const dir = tempDir('cli-store-');
    const path = writeConfig(
      `[Host]\nHOST=127.0.0.1\nPORT=1\n[HiddenService]\nHiddenServiceDir=${dir}\nHiddenServicePort=80\n[Store]\n` +
        `Database=${join(dir, 'none.db')}\n`,
    );
    const out = await cli(['claims', 'list', '--config', path]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('no claim database at');
    expect(out.stderr).toContain("pass the server's --config");
    expect(existsSync(join(dir, 'none.db'))).toBe(false);
  });
});

describe('the p2p-registry bin', () => {
  it(
    "gives V8 the serving flag on node's command line when started as the bin (its shebang), as " + 'npm links it',
    async () => {
      const shebang = readFileSync(CLI, 'utf8').split('\n')[0] ?? '';
      expect(shebang.startsWith('#!')).toBe(true);
      // What the kernel runs: the interpreter, the rest of the line as one argument, then the script.
      const line = shebang.slice(2).trim();
      const interpreter = line.slice(0, line.indexOf(' '));
      const argument = line.slice(line.indexOf(' ') + 1);
      const preload = join(tempDir('bin-'), 'exec-argv.mjs');
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the preload's source is itself a template literal
      writeFileSync(preload, 'process.stderr.write(`execArgv=${JSON.stringify(process.execArgv)}\\n`);\n');
      const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(preload).href}`.trim();
      const { stderr } = await run(interpreter, [argument, CLI, '--help'], {
        env: { ...process.env, NODE_OPTIONS: nodeOptions },
      });
      const execArgv = JSON.parse(/^execArgv=(.*)$/m.exec(stderr)?.[1] ?? 'null') as string[] | null;
      expect(execArgv).toContain('--no-allocation-site-pretenuring');
    },
  );
});
