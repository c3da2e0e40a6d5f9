import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig, DEFAULT_LIMITS, describeConfig, envName, loadConfig } from './config.js';
import { DEFAULT_CLAIMS } from './claims-config.js';
import { RegistryError } from '../../protocol/errors.js';

const minimal = {
  Host: { HOST: '127.0.0.1', PORT: '5000' },
  HiddenService: { HiddenServiceDir: '/var/lib/tor/hidden_service', HiddenServicePort: '80' },
};

function errorOf(fn: () => unknown): RegistryError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'CONFIG_INVALID') return err;
    throw err;
  }
  throw new Error('expected a CONFIG_INVALID error');
}

describe('configuration', () => {
  it('reads the required keys and fills every limit with its default', () => {
    const config = buildConfig(minimal, {});
    expect(config.listen).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 5000 });
    expect(config.hiddenServicePort).toBe(80);
    expect(config.limits).toEqual(DEFAULT_LIMITS);
    expect(config.logLevel).toBe('info');
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.limits)).toBe(true);
  });

  it("names every missing key in one line starting with the original server's words", () => {
    const err = errorOf(() => buildConfig({}, {}));
    expect(err.message.split('\n')).toHaveLength(1);
    expect(err.message).toMatch(/^\[Configuration error\] Missing variables in config: /);
    for (const key of [
      '[Host] HOST',
      '[Host] PORT',
      '[HiddenService] HiddenServiceDir',
      '[HiddenService] HiddenServicePort',
    ]) {
      expect(err.message).toContain(key);
    }
    expect(err.message).toContain('config.ini.example');
  });

  it('reports wrong values together with missing ones, saying what is allowed', () => {
    const err = errorOf(() =>
      buildConfig(
        {
          Host: { HOST: 'localhost', PORT: 'eighty' },
          Registry: { MaxPeers: '0', HeartbeatSeconds: '1.5' },
          Log: { level: 'loud' },
        },
        {},
      ),
    );
    expect(err.missing).toEqual(['[HiddenService] HiddenServiceDir', '[HiddenService] HiddenServicePort']);
    expect(err.invalid).toEqual([
      '[Host] PORT must be a whole number, got "eighty"',
      '[Registry] MaxPeers must be between 1 and 10000000, got 0',
      '[Registry] HeartbeatSeconds must be a whole number, got "1.5"',
      '[Log] level must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ]);
    expect(err.message.split('\n')).toHaveLength(1);
  });

  it('lets REGISTRY_<SECTION>_<KEY> environment variables override the file', () => {
    expect(envName('Registry', 'MaxPeers')).toBe('REGISTRY_REGISTRY_MAXPEERS');
    const config = buildConfig(minimal, {
      REGISTRY_REGISTRY_MAXPEERS: '7',
      REGISTRY_HOST_PORT: '6000',
      REGISTRY_LOG_LEVEL: 'DEBUG',
    });
    expect(config.limits.maxPeers).toBe(7);
    expect(config.listen).toMatchObject({ port: 6000 });
    expect(config.logLevel).toBe('debug');
  });

  it('fills a missing key from the environment', () => {
    const config = buildConfig(
      { Host: minimal.Host },
      { REGISTRY_HIDDENSERVICE_HIDDENSERVICEDIR: '/hs', REGISTRY_HIDDENSERVICE_HIDDENSERVICEPORT: '8080' },
    );
    expect(config.hiddenServiceDir).toBe('/hs');
    expect(config.hiddenServicePort).toBe(8080);
  });

  it('listens on a unix socket when HOST is unix:<path>, and then needs no PORT', () => {
    const config = buildConfig({ ...minimal, Host: { HOST: 'unix:/run/registry/registry.sock' } }, {});
    expect(config.listen).toEqual({ kind: 'unix', path: '/run/registry/registry.sock' });
    expect(errorOf(() => buildConfig({ ...minimal, Host: { HOST: 'unix:' } }, {})).message).toContain(
      'needs a socket path',
    );
  });

  it(
    'has no operator listener unless [Host] OperatorSocket names its unix socket, from the file or ' +
      'REGISTRY_HOST_OPERATORSOCKET',
    () => {
      expect(buildConfig(minimal, {}).operatorSocket).toBeNull();
      expect(
        buildConfig(
          { ...minimal, Host: { ...minimal.Host, OperatorSocket: '/run/registry-operator/operator.sock' } },
          {},
        ).operatorSocket,
      ).toBe('/run/registry-operator/operator.sock');
      expect(buildConfig(minimal, { REGISTRY_HOST_OPERATORSOCKET: '/tmp/operator.sock' }).operatorSocket).toBe(
        '/tmp/operator.sock',
      );
    },
  );

  it("refuses an operator socket that is the public listener's socket, which tor forwards the onion to", () => {
    const host = { HOST: 'unix:/run/registry/registry.sock' };
    for (const operator of ['/run/registry/registry.sock', '/run/registry/../registry/registry.sock']) {
      const err = errorOf(() => buildConfig({ ...minimal, Host: { ...host, OperatorSocket: operator } }, {}));
      expect(err.invalid).toEqual([
        "[Host] OperatorSocket is the public listener's socket ([Host] HOST unix:/run/registry/registry.sock), which " +
          'tor forwards the onion to: health would answer on the onion; choose another path, in a folder tor does ' +
          'not mount, e.g. /run/registry-operator/operator.sock',
      ]);
    }
    expect(
      errorOf(() =>
        buildConfig({ ...minimal, Host: host }, { REGISTRY_HOST_OPERATORSOCKET: '/run/registry/registry.sock' }),
      ).message,
    ).toContain('OperatorSocket is the public listener');
    expect(
      buildConfig({ ...minimal, Host: { ...host, OperatorSocket: '/run/registry-operator/operator.sock' } }, {})
        .operatorSocket,
    ).toBe('/run/registry-operator/operator.sock');
  });

  it(
    'refuses an operator socket path that is relative, a folder, too long for a unix socket, or written ' +
      'with unix:',
    () => {
      const problem = (path: string): string[] =>
        errorOf(() => buildConfig({ ...minimal, Host: { ...minimal.Host, OperatorSocket: path } }, {}))
          .invalid as string[];
      expect(problem('operator.sock')).toEqual([
        '[Host] OperatorSocket must be an absolute path (the health command may run from another folder), e.g. ' +
          '/run/registry-operator/operator.sock, got "operator.sock"',
      ]);
      expect(problem('/run/registry-operator/')).toEqual([
        '[Host] OperatorSocket must name the socket file, not its folder, e.g. /run/registry-operator/operator.sock, ' +
          'got "/run/registry-operator/"',
      ]);
      expect(problem(`/${'a'.repeat(107)}`)).toEqual([
        "[Host] OperatorSocket is 108 bytes long, over a unix socket path's 107: choose a shorter path",
      ]);
      expect(problem('unix:/run/operator.sock')).toEqual([
        '[Host] OperatorSocket takes the socket path alone, without "unix:", e.g. ' +
          '/run/registry-operator/operator.sock, got "unix:/run/operator.sock"',
      ]);
      expect(
        buildConfig({ ...minimal, Host: { ...minimal.Host, OperatorSocket: `/${'a'.repeat(106)}` } }, {})
          .operatorSocket,
      ).toHaveLength(107);
    },
  );

  it('refuses a key given twice as an array', () => {
    expect(errorOf(() => buildConfig({ ...minimal, Registry: { MaxPeers: ['1', '2'] } }, {})).message).toContain(
      '[Registry] MaxPeers must be a single value',
    );
  });

  it('reads config.ini.example as shipped', () => {
    const config = loadConfig(join(import.meta.dirname, '../../../../config.ini.example'), {});
    expect(config.limits).toEqual(DEFAULT_LIMITS);
    expect(config.hiddenServicePort).toBe(80);
    expect(config.claims).toEqual(DEFAULT_CLAIMS);
    expect(config.operatorSocket).toBeNull();
  });

  it('says how to fix a config file that does not exist', () => {
    const err = errorOf(() => loadConfig('/nonexistent/config.ini', {}));
    expect(err.message).toContain('/nonexistent/config.ini does not exist');
    expect(err.message).toContain('copy config.ini.example to config.ini');
  });

  it('reads ini comments and spacing the way operators write them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const path = join(dir, 'config.ini');
    writeFileSync(
      path,
      '; comment\n[Host]\nHOST = 0.0.0.0 \nPORT=5000\n# other comment\n[HiddenService]\nHiddenServiceDir = ' +
        '/hs\nHiddenServicePort = 443\n',
    );
    expect(loadConfig(path, {})).toMatchObject({ listen: { host: '0.0.0.0', port: 5000 }, hiddenServicePort: 443 });
  });

  it('refuses a misspelt key, naming the key it was probably meant to be', () => {
    const err = errorOf(() => buildConfig({ ...minimal, Registry: { MaxPeer: '10' } }, {}));
    expect(err.message).toContain('unknown key [Registry] MaxPeer: did you mean MaxPeers?');
    expect(err.message.split('\n')).toHaveLength(1);
  });

  it('refuses a section spelt in another case, naming the right spelling', () => {
    const err = errorOf(() => buildConfig({ Host: minimal.Host, hiddenservice: minimal.HiddenService }, {}));
    expect(err.message).toContain('unknown section [hiddenservice]: did you mean [HiddenService]?');
    // The required keys of the real section are then missing too, and said so in the same line.
    expect(err.missing).toContain('[HiddenService] HiddenServicePort');
  });

  it('says in which section a key belongs when it is put in another', () => {
    const err = errorOf(() => buildConfig({ ...minimal, Registry: { HiddenServicePort: '80' } }, {}));
    expect(err.message).toContain(
      'unknown key [Registry] HiddenServicePort: HiddenServicePort belongs in [HiddenService]',
    );
  });

  it('refuses a key outside any section', () => {
    const err = errorOf(() => buildConfig({ ...minimal, MaxPeers: '5' }, {}));
    expect(err.message).toContain('"MaxPeers" is outside any section');
  });

  it('lists every unknown name of a file at once, with the missing keys', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const path = join(dir, 'config.ini');
    writeFileSync(path, '[Host]\nHOST = 127.0.0.1\nPROT = 5000\n[Regsitry]\nMaxPeers = 5\n[Log]\nlevle = debug\n');
    const err = errorOf(() => loadConfig(path, {}));
    expect(err.invalid).toEqual(
      expect.arrayContaining([
        expect.stringContaining('unknown key [Host] PROT: did you mean PORT?'),
        expect.stringContaining('unknown section [Regsitry]: did you mean [Registry]?'),
        expect.stringContaining('unknown key [Log] levle: did you mean level?'),
      ]),
    );
    expect(err.missing).toEqual([
      '[Host] PORT',
      '[HiddenService] HiddenServiceDir',
      '[HiddenService] HiddenServicePort',
    ]);
  });

  it(
    'describes the config for the start-up log without the database password, from the file or the ' + 'environment',
    () => {
      const fromFile = buildConfig(
        { ...minimal, Store: { Database: 'postgres://registry:s3cr@t@db:5432/claims?sslmode=require&password=other' } },
        {},
      );
      const fromEnv = buildConfig(minimal, {
        REGISTRY_STORE_DATABASE: 'postgresql://registry:s3cr@t@/claims?host=/run/postgresql',
      });
      for (const config of [fromFile, fromEnv]) {
        const text = JSON.stringify(describeConfig(config));
        expect(text).not.toContain('s3cr');
        expect(text).not.toContain('@t');
        expect(text).not.toContain('other');
      }
      expect(describeConfig(fromFile)).toMatchObject({
        claims: { database: 'postgres://registry@db:5432/claims?sslmode=require' },
      });
    },
  );

  it(
    'refuses an unknown REGISTRY_* variable, naming it, the variable it was probably meant to be, and ' + 'what to do',
    () => {
      const err = errorOf(() => buildConfig(minimal, { REGISTRY_STORE_DATABSE: 'postgres://registry@db/claims' }));
      expect(err.invalid).toEqual([
        'unknown environment variable REGISTRY_STORE_DATABSE: did you mean REGISTRY_STORE_DATABASE? ' +
          '(REGISTRY_<SECTION>_<KEY> sets [Section] Key of config.ini: rename the variable or unset it)',
      ]);
      expect(err.message.split('\n')).toHaveLength(1);
    },
  );

  it('refuses a REGISTRY_* variable near no known name, and one spelt in lower case, which is not read', () => {
    const err = errorOf(() => buildConfig(minimal, { REGISTRY_TELEPORT: '1', registry_store_database: '/data/r.db' }));
    expect(err.invalid).toEqual([
      'unknown environment variable REGISTRY_TELEPORT: no key of config.ini has this name (REGISTRY_<SECTION>_<KEY> ' +
        'sets [Section] Key of config.ini, e.g. REGISTRY_STORE_DATABASE: rename the variable or unset it)',
      'unknown environment variable registry_store_database: did you mean REGISTRY_STORE_DATABASE? ' +
        '(REGISTRY_<SECTION>_<KEY> sets [Section] Key of config.ini: rename the variable or unset it)',
    ]);
  });

  it('lists unknown variables with the other problems, and leaves other variables alone', () => {
    const err = errorOf(() =>
      buildConfig(
        { Host: minimal.Host },
        { REGISTRY_LOG_LEVLE: 'debug', PATH: '/bin', P2P_REGISTRY_URL: 'ws://x/', MY_REGISTRY_TOKEN: 'x' },
      ),
    );
    expect(err.missing).toEqual(['[HiddenService] HiddenServiceDir', '[HiddenService] HiddenServicePort']);
    expect(err.invalid).toEqual([expect.stringContaining('REGISTRY_LOG_LEVLE: did you mean REGISTRY_LOG_LEVEL?')]);
  });
});
