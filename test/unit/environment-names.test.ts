/**
 * Every REGISTRY_* variable the repository sets or tells operators to set (compose files,
 * Dockerfiles, the Makefile, shell scripts, config.ini.example, the README) is one the config parser
 * reads: an unknown one stops the server (config-names.ts), so a stale name here would stop the stack.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../server/src/protocol/errors.js';
import { buildConfig } from '../../server/src/server/config/config.js';

const ROOT = join(import.meta.dirname, '../..');
const SKIPPED = new Set(['node_modules', '.git', 'dist', 'data']);
/** The files that configure or document a deployment, not the TypeScript (its tests set wrong names on purpose). */
const DEPLOYMENT = new RegExp(
  '(^|/)(Makefile|Dockerfile|[^/]*\\.Dockerfile|[^/]*\\.ya?ml|[^/]*\\.sh|[^/]*\\.pl|config\\.ini\\.example|' +
    '[^/]*\\.ini|README\\.md|CLUSTER\\.md)$',
);
/** `NAME=` (shell, Makefile, README) or `NAME:` (compose). */
const ASSIGNMENT = /\b(REGISTRY_[A-Za-z0-9_]+)\s*[:=]/g;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (SKIPPED.has(entry.name)) return [];
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return files(path);
    return DEPLOYMENT.test(relative(ROOT, path)) ? [path] : [];
  });
}

function unknownNamesIn(name: string): string[] {
  try {
    buildConfig({}, { [name]: 'x' });
  } catch (err) {
    if (err instanceof RegistryError)
      return err.invalid.filter((line) => line.startsWith(`unknown environment variable ${name}`));
    throw err;
  }
  return [];
}

describe('REGISTRY_* variables in the repository', () => {
  it('are all read by the config parser', () => {
    const set = new Map<string, string>();
    for (const path of files(ROOT)) {
      for (const match of readFileSync(path, 'utf8').matchAll(ASSIGNMENT))
        set.set(match[1] as string, relative(ROOT, path));
    }
    // The stack's own settings must be found, or this test checks nothing.
    expect([...set.keys()]).toEqual(
      expect.arrayContaining(['REGISTRY_STORE_DATABASE', 'REGISTRY_HOST_HOST', 'REGISTRY_STORE_PASSWORDFILE']),
    );
    const unknown = [...set].flatMap(([name, path]) => unknownNamesIn(name).map((line) => `${path}: ${line}`));
    expect(unknown).toEqual([]);
  });
});
