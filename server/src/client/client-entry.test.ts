/**
 * The `./client` entry loads no server code: a peer that imports the client does not pull in
 * chokidar, pino or ini, nor any module of the server part. Checked on the built package, as a
 * consumer would load it, in a fresh `node` whose resolve hook records every module it loads.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ENTRY = fileURLToPath(new URL('../../dist/client/index.js', import.meta.url));

/** Runs in the child: records each resolved URL (import and require alike), then imports the entry. */
const PROBE = `
import { registerHooks } from 'node:module';
const urls = [];
registerHooks({
  resolve(specifier, context, nextResolve) {
    const result = nextResolve(specifier, context);
    urls.push(result.url);
    return result;
  },
});
const client = await import(process.argv[1]);
process.stdout.write(JSON.stringify({ urls, registryClient: typeof client.RegistryClient }));
`;

interface Probe {
  readonly urls: readonly string[];
  readonly registryClient: string;
}

async function loadEntry(): Promise<Probe> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    '--input-type=module',
    '--eval',
    PROBE,
    pathToFileURL(ENTRY).href,
  ]);
  return JSON.parse(stdout) as Probe;
}

describe('the ./client entry', () => {
  it('is built (npm run build) before this test runs', () => {
    expect(existsSync(ENTRY), `${ENTRY} is missing: run npm run build`).toBe(true);
  });

  it('loads neither chokidar, pino, ini nor any server module, and exports RegistryClient', async () => {
    const { urls, registryClient } = await loadEntry();
    expect(registryClient).toBe('function');
    expect(urls.some((url) => url.endsWith('/dist/client/registry-client.js'))).toBe(true);
    for (const banned of ['/node_modules/chokidar/', '/node_modules/pino/', '/node_modules/ini/', '/dist/server/']) {
      expect(
        urls.filter((url) => url.includes(banned)),
        `modules under ${banned}`,
      ).toEqual([]);
    }
  });
});
