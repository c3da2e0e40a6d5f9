/**
 * Learns the registry's own onion address from tor's HiddenServiceDir/hostname, with chokidar.
 * It never reads anything else in that folder (the secret key lives there too).
 */
import { EventEmitter } from 'node:events';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from './logger.js';
import { parseOnionAddress, type OnionAddress } from '../protocol/onion-address.js';

export type OnionState =
  | { readonly status: 'known'; readonly address: OnionAddress }
  | { readonly status: 'waiting'; readonly problem: OnionProblem; readonly detail: string };

export type OnionProblem = 'MISSING_DIR' | 'UNREADABLE_DIR' | 'NO_HOSTNAME' | 'UNREADABLE_HOSTNAME' | 'BAD_HOSTNAME';

export interface OnionWatcherOptions {
  readonly dir: string;
  readonly timeoutSeconds: number;
  readonly logger: Logger;
  /** How often to look again while the address is unknown (chokidar cannot see into a missing folder). */
  readonly recheckMs?: number;
}

export const HOSTNAME_FILE = 'hostname';

/** Reads and classifies the hostname file once. Exported for `p2p-registry onion`. */
export async function readOnionState(dir: string): Promise<OnionState> {
  const file = join(dir, HOSTNAME_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      const dirStatus = await folderStatus(dir);
      if (dirStatus === 'missing') {
        return {
          status: 'waiting',
          problem: 'MISSING_DIR',
          detail:
            `HiddenServiceDir ${dir} does not exist: start tor (it creates the folder) or set [HiddenService] ` +
            `HiddenServiceDir to the folder of torrc's HiddenServiceDir`,
        };
      }
      if (dirStatus === 'unreadable') return unreadableDir(dir);
      return {
        status: 'waiting',
        problem: 'NO_HOSTNAME',
        detail:
          `${file} does not exist yet (the old "Received empty socket content"): is tor running with ` +
          `HiddenServiceDir ${dir}? Check tor's log`,
      };
    }
    if (code === 'EACCES') {
      if ((await folderStatus(dir)) === 'unreadable') return unreadableDir(dir);
      return {
        status: 'waiting',
        problem: 'UNREADABLE_HOSTNAME',
        detail:
          `cannot read ${file} (permission denied): set HiddenServiceDirGroupReadable 1 in torrc and run the ` +
          `server in tor's group`,
      };
    }
    if (code === 'ENOTDIR') {
      return {
        status: 'waiting',
        problem: 'MISSING_DIR',
        detail: `HiddenServiceDir ${dir} is not a folder: fix [HiddenService] HiddenServiceDir`,
      };
    }
    return {
      status: 'waiting',
      problem: 'UNREADABLE_HOSTNAME',
      detail: `cannot read ${file}: ${(err as Error).message}`,
    };
  }
  const parsed = parseOnionAddress(text);
  if (!parsed.ok) {
    return {
      status: 'waiting',
      problem: 'BAD_HOSTNAME',
      detail:
        `${file} does not hold a v3 onion address (${parsed.reason}): let tor rewrite it (restore the folder ` +
        `from a backup, or remove hostname and restart tor)`,
    };
  }
  return { status: 'known', address: parsed.address };
}

async function folderStatus(dir: string): Promise<'missing' | 'unreadable' | 'ok'> {
  try {
    await stat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
  }
  try {
    await access(dir, constants.R_OK | constants.X_OK);
    return 'ok';
  } catch {
    return 'unreadable';
  }
}

function unreadableDir(dir: string): OnionState {
  return {
    status: 'waiting',
    problem: 'UNREADABLE_DIR',
    detail:
      `cannot read HiddenServiceDir ${dir} (permission denied): set HiddenServiceDirGroupReadable 1 in torrc ` +
      `and run the server with tor's group as its group (compose.yaml does)`,
  };
}

/**
 * Emits `address` (OnionAddress) when the address becomes known or changes. Never throws: problems
 * are logged with what to do, and it keeps watching.
 */
export class OnionWatcher extends EventEmitter<{ address: [OnionAddress] }> {
  private watcher: FSWatcher | undefined;
  private recheck: NodeJS.Timeout | undefined;
  private timeout: NodeJS.Timeout | undefined;
  private state: OnionState | undefined;
  private refreshing: Promise<void> | undefined;
  private again = false;
  private closed = false;

  constructor(private readonly options: OnionWatcherOptions) {
    super();
  }

  get address(): OnionAddress | null {
    return this.state?.status === 'known' ? this.state.address : null;
  }

  async start(): Promise<void> {
    await this.startWatcher();
    this.timeout = setTimeout(() => {
      if (this.state?.status !== 'known') {
        this.options.logger.error(
          {
            problem: this.state?.status === 'waiting' ? this.state.problem : undefined,
            waitedSeconds: this.options.timeoutSeconds,
          },
          `no onion address after ${this.options.timeoutSeconds} s: ` +
            `${this.state?.status === 'waiting' ? this.state.detail : 'still waiting'}; still watching`,
        );
      }
    }, this.options.timeoutSeconds * 1000);
    this.timeout.unref();
    await this.refresh();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timeout);
    this.stopRecheck();
    await this.watcher?.close();
    this.watcher = undefined;
  }

  /** Resolves once chokidar is watching, so that no change after that point can be missed. */
  private startWatcher(): Promise<void> {
    this.watcher
      ?.close()
      .catch((err: unknown) => this.options.logger.error({ err }, 'closing the previous folder watch failed'));
    const watcher = watch(this.options.dir, { depth: 0, ignoreInitial: true, persistent: true });
    watcher.on('all', () => this.refreshInBackground());
    watcher.on('error', () => this.refreshInBackground());
    this.watcher = watcher;
    return new Promise((resolve) => watcher.once('ready', () => resolve()));
  }

  private startRecheck(): void {
    if (this.recheck !== undefined || this.closed) return;
    this.recheck = setInterval(() => this.refreshInBackground(), this.options.recheckMs ?? 1000);
    this.recheck.unref();
  }

  private stopRecheck(): void {
    clearInterval(this.recheck);
    this.recheck = undefined;
  }

  /** refresh() from an event or a timer: nobody awaits it, so a failure (a bug) is logged here. */
  private refreshInBackground(): void {
    this.refresh().catch((err: unknown) => this.options.logger.error({ err }, 're-reading the onion hostname failed'));
  }

  /** Re-reads the file; serialised so that a burst of events reads it once or twice, never in parallel. */
  refresh(): Promise<void> {
    if (this.refreshing !== undefined) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        await this.apply(await readOnionState(this.options.dir));
      } while (this.again && !this.closed);
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async apply(next: OnionState): Promise<void> {
    if (this.closed) return;
    const previous = this.state;
    this.state =
      next.status === 'waiting' && previous?.status === 'known' && next.problem === 'NO_HOSTNAME' ? previous : next;
    const log = this.options.logger;
    const dirAppeared =
      previous?.status === 'waiting' &&
      previous.problem === 'MISSING_DIR' &&
      (next.status === 'known' || next.problem !== 'MISSING_DIR');
    // chokidar does not see into a folder created after it started: watch the new folder.
    if (dirAppeared)
      this.startWatcher().then(
        () => this.refreshInBackground(),
        (err: unknown) => this.options.logger.error({ err }, 'watching the new folder failed'),
      );
    if (next.status === 'known') {
      this.stopRecheck();
      if (previous?.status === 'known' && previous.address === next.address) return;
      if (previous?.status === 'known') {
        log.warn(
          { previous: previous.address, onion: next.address },
          'onion address changed (keys restored or replaced)',
        );
      } else {
        log.info({ onion: next.address }, 'onion address found');
      }
      this.emit('address', next.address);
      return;
    }
    if (previous?.status === 'known' && next.problem === 'NO_HOSTNAME') {
      log.warn({ problem: next.problem }, `${next.detail}; keeping the last known address`);
      return;
    }
    // While unknown, look again regularly (a missing folder, or events chokidar cannot give).
    this.startRecheck();
    if (previous?.status !== 'waiting' || previous.problem !== next.problem) {
      const level = next.problem === 'NO_HOSTNAME' ? 'info' : 'error';
      log[level]({ problem: next.problem }, next.detail);
    }
  }
}
