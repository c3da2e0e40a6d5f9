/** What the peer client commands share: their I/O, the common options, and staying connected. */
import type { ParsedArgs } from './args.js';
import { usageError } from './args.js';
import {
  parseSocksAddress,
  type RegistryClient,
  type RegistryClientOptions,
  type RegistryEvent,
  type SocksProxy,
} from '../client/index.js';

const DEFAULT_TIMEOUT_SECONDS = 60;

export interface TextSink {
  write(text: string): unknown;
}

/** Where a command reads its environment and writes; tests pass their own. */
export interface ClientIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Ends `register` and `watch`; by default Ctrl-C (SIGINT) or SIGTERM. */
  readonly signal?: AbortSignal;
}

export interface Common {
  readonly url: string;
  readonly socks: SocksProxy | undefined;
  readonly timeoutMs: number;
  readonly json: boolean;
}

export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const value = args.options.get(name);
  return typeof value === 'string' ? value : undefined;
}

export function readCommon(args: ParsedArgs, env: ClientIo['env']): Common {
  const url = stringOption(args, 'registry') ?? env.P2P_REGISTRY_URL;
  if (url === undefined || url.trim() === '') {
    throw usageError(
      'no registry given: pass --registry ws://<onion>:<port>/ or set P2P_REGISTRY_URL (`p2p-registry onion` on the ' +
        'registry host prints it)',
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw usageError(`--registry "${url}" is not a URL: use ws://<onion>:<port>/`);
  }
  if (parsed.protocol !== 'ws:') throw usageError(`--registry must be a ws:// URL, got "${url}"`);

  const socksText = stringOption(args, 'socks') ?? env.P2P_SOCKS;
  let socks: SocksProxy | undefined;
  if (socksText !== undefined && socksText.trim() !== '') {
    socks = parseSocksAddress(socksText);
    if (socks === undefined)
      throw usageError(
        `--socks must be <host>:<port>, e.g. 127.0.0.1:9050, or <user>:<password>@<host>:<port> (tor isolates ` +
          `streams by them), got ` +
          `"${withoutCredentials(socksText)}"`,
      );
  }
  if (socks === undefined && parsed.hostname.toLowerCase().endsWith('.onion')) {
    throw usageError(
      `${parsed.hostname} is an onion address: pass --socks <host>:<port> (tor's SocksPort, e.g. 127.0.0.1:9050) or ` +
        `set P2P_SOCKS`,
    );
  }

  const timeoutText = stringOption(args, 'timeout');
  let timeoutMs = DEFAULT_TIMEOUT_SECONDS * 1000;
  if (timeoutText !== undefined) {
    const seconds = Number(timeoutText);
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) {
      throw usageError(`--timeout must be a number of seconds from 0 to 3600, got "${timeoutText}"`);
    }
    timeoutMs = Math.round(seconds * 1000);
  }
  return { url: parsed.href, socks, timeoutMs, json: args.options.get('json') === true };
}

export function clientOptions(common: Common, extra: Partial<RegistryClientOptions> = {}): RegistryClientOptions {
  return {
    url: common.url,
    ...(common.socks === undefined ? {} : { socks: common.socks }),
    connectTimeoutMs: common.timeoutMs,
    reconnect: false,
    ...extra,
  };
}

export function json(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

/** The signal that ends a long-running command, and how to stop listening for it. */
function stopSignal(io: ClientIo): { readonly signal: AbortSignal; dispose(): void } {
  if (io.signal !== undefined) return { signal: io.signal, dispose: () => undefined };
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  // `once`: a second Ctrl-C falls through to the default handler and ends the process at once.
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}

/**
 * Keeps a client running until the signal fires (exit 0, or what `onStop` returns: it runs before
 * the client closes) or the client closes for good (exit 1). Reports connection changes on stderr,
 * and on stdout as JSON lines when `printEvents`.
 */
export async function stayConnected(
  client: RegistryClient,
  io: ClientIo,
  printEvents: boolean,
  onStop?: () => Promise<number>,
): Promise<number> {
  const stop = stopSignal(io);
  client.on('disconnected', ({ code, willReconnect }) => {
    io.stderr.write(
      `connection to the registry lost (close code ${code})${willReconnect ? '' : ': not reconnecting'}\n`,
    );
  });
  client.on('reconnecting', ({ attempt, delayMs, error }) => {
    const why = error === null ? '' : ` (last attempt: ${error.message})`;
    io.stderr.write(`reconnecting in ${(delayMs / 1000).toFixed(1)} s, attempt ${attempt}${why}\n`);
  });
  client.on('reconnected', ({ registered, subscribed }) => {
    const again = registered === null ? '' : `; registered again as ${registered.nickname}`;
    io.stderr.write(`reconnected${again}\n`);
    if (printEvents) io.stdout.write(json({ type: 'reconnected', registered: registered !== null, subscribed }));
  });
  if (printEvents) client.on('event', (event: RegistryEvent) => io.stdout.write(json(event)));

  try {
    const ended = await new Promise<number | 'stopped'>((resolve) => {
      if (stop.signal.aborted) {
        resolve('stopped');
        return;
      }
      stop.signal.addEventListener('abort', () => resolve('stopped'), { once: true });
      client.on('registration_lost', (err) => {
        io.stderr.write(`p2p-registry: the registration could not be restored: ${err.code}: ${err.message}\n`);
        resolve(1);
      });
      client.on('closed', (err) => {
        if (err === null) resolve(0);
        else {
          const hint = err.code === 'REPLACED' ? ' (is another client running with the same --key?)' : '';
          io.stderr.write(`p2p-registry: ${err.code}: ${err.message}${hint}\n`);
          resolve(1);
        }
      });
    });
    if (ended !== 'stopped') return ended;
    return onStop === undefined ? 0 : await onStop();
  } finally {
    stop.dispose();
    await client.close();
  }
}

/** A --socks value as usage errors show it: never its user and password. */
function withoutCredentials(socksText: string): string {
  return socksText.includes('@') ? `<credentials>@${socksText.slice(socksText.lastIndexOf('@') + 1)}` : socksText;
}
