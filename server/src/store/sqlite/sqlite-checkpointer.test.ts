import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../../../test/support/wait.js';
import { SqliteCheckpointer } from './sqlite-checkpointer.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A WAL database with `rows` rows committed and not yet checkpointed. */
function walDatabase(rows: number): { path: string; db: DatabaseSync } {
  const dir = mkdtempSync(join(tmpdir(), 'checkpointer-'));
  const path = join(dir, 'wal.db');
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x)');
  for (let i = 0; i < rows; i += 1) db.prepare('INSERT INTO t VALUES (?)').run(i);
  cleanups.push(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, db };
}

function walFrames(db: DatabaseSync): { log: number; checkpointed: number } {
  return db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number; checkpointed: number };
}

describe('SqliteCheckpointer', () => {
  it('copies the WAL into the database from its own thread once something was committed', async () => {
    const { path, db } = walDatabase(20);
    const failures: Error[] = [];
    const checkpointer = new SqliteCheckpointer({
      path,
      journalSizeLimitBytes: 1_048_576,
      intervalMs: 10,
      onFailure: (err) => failures.push(err),
    });
    cleanups.push(() => checkpointer.close());
    checkpointer.committed();
    await waitUntil('a checkpoint', () => checkpointer.checkpoints === 1);
    expect(walFrames(db).checkpointed).toBe(walFrames(db).log);
    expect(failures).toEqual([]);
  });

  it('does nothing while nothing was committed', async () => {
    const { path } = walDatabase(1);
    const checkpointer = new SqliteCheckpointer({
      path,
      journalSizeLimitBytes: 1_048_576,
      intervalMs: 5,
      onFailure: () => {},
    });
    cleanups.push(() => checkpointer.close());
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(checkpointer.checkpoints).toBe(0);
  });

  it('hands checkpoints back to the store when its thread cannot run', async () => {
    const { path } = walDatabase(1);
    const failures: Error[] = [];
    const checkpointer = new SqliteCheckpointer({
      path,
      journalSizeLimitBytes: 1_048_576,
      intervalMs: 5,
      onFailure: (err) => failures.push(err),
      workerFile: new URL('./no-such-checkpoint-worker.js', import.meta.url),
    });
    cleanups.push(() => checkpointer.close());
    checkpointer.committed();
    await waitUntil('the failure', () => failures.length > 0);
    expect(failures).toHaveLength(1);
    expect(checkpointer.checkpoints).toBe(0);
  });
});
