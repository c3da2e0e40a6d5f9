import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CLAIMS } from '../server/config/claims-config.js';
import { openConfiguredStore } from './open-store.js';

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('the configured claim database', () => {
  it('is created readable by the server user only, in a folder made for it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'open-store-'));
    const database = join(dir, 'data', 'registry.db');
    const store = await openConfiguredStore({ ...DEFAULT_CLAIMS, database });
    await store.close();
    expect(statSync(database).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'data')).mode & 0o777).toBe(0o700);
  });

  it('keeps the mode of a database that exists already', async () => {
    dir = mkdtempSync(join(tmpdir(), 'open-store-'));
    const database = join(dir, 'registry.db');
    await (await openConfiguredStore({ ...DEFAULT_CLAIMS, database })).close();
    const again = await openConfiguredStore({ ...DEFAULT_CLAIMS, database });
    await again.close();
    expect(statSync(database).mode & 0o777).toBe(0o600);
  });
});
