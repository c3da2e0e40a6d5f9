/**
 * Checkpoints of the claim database's WAL, off the server's thread. SQLite's automatic checkpoint
 * runs inside the COMMIT that passes wal_autocheckpoint pages, on the thread that commits: there,
 * the server's event loop, stalled for as long as copying and syncing the pages takes. The store
 * turns it off (wal_autocheckpoint = 0) and this part runs PASSIVE checkpoints on a timer from a
 * worker thread with its own connection (sqlite-checkpoint-worker.ts); WAL mode lets that
 * connection checkpoint while the server's connection reads and commits. The thread is started at
 * the first checkpoint due, so a store opened briefly (a CLI command) never starts one.
 *
 * A checkpoint that fails (a disk error) is retried at the next tick. A thread that cannot run at
 * all hands the checkpoints back to SQLite (`onFailure`): the WAL must not grow without bound.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { CheckpointReply, CheckpointWorkerData } from './sqlite-checkpoint-worker.js';

export interface CheckpointerOptions extends CheckpointWorkerData {
  readonly intervalMs: number;
  /** The thread failed: the store checkpoints by itself again. */
  readonly onFailure: (err: Error) => void;
  /** The worker's script; this folder's sqlite-checkpoint-worker by default (tests point elsewhere). */
  readonly workerFile?: URL;
}

/** The worker beside this module, with this module's own extension (.ts when tests run the sources). */
const WORKER_FILE = new URL(`./sqlite-checkpoint-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export class SqliteCheckpointer {
  readonly #options: CheckpointerOptions;
  readonly #timer: NodeJS.Timeout;
  #worker: Worker | undefined;
  /** Commits since the last checkpoint was asked for. */
  #dirty = false;
  #inFlight = false;
  #failed = false;
  #checkpoints = 0;

  constructor(options: CheckpointerOptions) {
    this.#options = options;
    this.#timer = setInterval(() => this.#tick(), options.intervalMs).unref();
  }

  /** Checkpoints completed so far. */
  get checkpoints(): number {
    return this.#checkpoints;
  }

  /** A transaction committed: there is WAL to copy at the next tick. */
  committed(): void {
    this.#dirty = true;
  }

  /** Stops the timer and the thread (after the checkpoint in flight, if any). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker === undefined || this.#failed) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    // Unreferenced, the thread would not keep a process that only awaits this close alive.
    worker.ref();
    worker.postMessage('close');
    await exited;
  }

  #tick(): void {
    if (!this.#dirty || this.#inFlight || this.#failed) return;
    this.#dirty = false;
    this.#inFlight = true;
    this.#worker ??= this.#start();
    this.#worker.postMessage('checkpoint');
  }

  #start(): Worker {
    const { path, journalSizeLimitBytes } = this.#options;
    const worker = new Worker(this.#options.workerFile ?? WORKER_FILE, {
      workerData: { path, journalSizeLimitBytes } satisfies CheckpointWorkerData,
    });
    worker.unref();
    worker.on('message', (reply: CheckpointReply) => this.#settled(reply));
    worker.on('error', (err) => this.#fail(err));
    worker.on('exit', (code) => {
      if (this.#worker === worker) this.#fail(new Error(`the checkpoint thread exited (code ${code})`));
    });
    return worker;
  }

  #settled(reply: CheckpointReply): void {
    this.#inFlight = false;
    if (reply.ok) this.#checkpoints += 1;
    // Frames a reader still needed, or a failed copy: they wait for the next tick.
    if (!reply.ok || reply.checkpointed < reply.log) this.#dirty = true;
  }

  #fail(err: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    clearInterval(this.#timer);
    void this.#worker?.terminate();
    this.#worker = undefined;
    this.#options.onFailure(err);
  }
}
