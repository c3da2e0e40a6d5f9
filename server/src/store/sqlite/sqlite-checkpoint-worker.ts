/**
 * The checkpointer's thread (sqlite-checkpointer.ts): its own connection to the claim database,
 * which copies the WAL into the database file (and syncs it) when asked, so that neither the copy
 * nor its sync runs on the server's thread. Node builtins only: it also runs from the sources.
 */
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

/** What the checkpointer starts this thread with. */
export interface CheckpointWorkerData {
  readonly path: string;
  /** The WAL is truncated back to this once a checkpoint has copied all of it. */
  readonly journalSizeLimitBytes: number;
}

/** The answer to one 'checkpoint' message. */
export type CheckpointReply =
  | { readonly ok: true; readonly log: number; readonly checkpointed: number }
  | { readonly ok: false; readonly message: string };

const port = parentPort;
if (port === null) throw new Error('sqlite-checkpoint-worker runs as a worker thread of the claim store');
const { path, journalSizeLimitBytes } = workerData as CheckpointWorkerData;
const db = new DatabaseSync(path);
db.exec(`PRAGMA journal_size_limit = ${journalSizeLimitBytes}`);
// PASSIVE: copies what no reader still needs and never waits, so the server's writes go on meanwhile.
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');

port.on('message', (message: unknown) => {
  if (message === 'close') {
    db.close();
    port.close();
    return;
  }
  let reply: CheckpointReply;
  try {
    const row = checkpoint.get() as { log: number; checkpointed: number };
    reply = { ok: true, log: row.log, checkpointed: row.checkpointed };
  } catch (err) {
    reply = { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});
