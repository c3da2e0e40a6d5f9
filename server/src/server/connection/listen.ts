/**
 * Binding an HTTP server to a configured listener, TCP or unix socket, for both listeners (the
 * public one, http-admission.ts, and the operator's, operator-listener.ts). A unix socket replaces
 * a stale one of a previous run and gets its mode; a failure names the setting and what to do.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Listen } from '../config/config.js';

export interface ListenSetting {
  /** How config.ini names the setting, for messages, e.g. "[Host] OperatorSocket". */
  readonly name: string;
  /** The unix socket's mode (who else may connect). */
  readonly socketMode: number;
}

/** Listens on `listen`; returns the bound address (a TCP address, or the socket's path). */
export async function listenOn(server: Server, listen: Listen, setting: ListenSetting): Promise<AddressInfo | string> {
  if (listen.kind === 'unix') await clearStaleSocket(listen.path, setting);
  try {
    await bind(server, listen);
  } catch (err) {
    const where = listen.kind === 'unix' ? listen.path : `${listen.host}:${listen.port}`;
    throw new Error(
      `cannot listen on ${where} (${setting.name}): ${(err as Error).message}: ` +
        `${remedy((err as NodeJS.ErrnoException).code, setting)}`,
      { cause: err },
    );
  }
  if (listen.kind === 'unix') await chmod(listen.path, setting.socketMode);
  return server.address() as AddressInfo | string;
}

/** `unix:<path>` or `<host>:<port>`, as the logs show a listener. */
export function describeAddress(address: AddressInfo | string): string {
  return typeof address === 'string' ? `unix:${address}` : `${address.address}:${address.port}`;
}

function remedy(code: string | undefined, setting: ListenSetting): string {
  // libuv reports a missing folder of a unix socket as EACCES.
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM')
    return `its folder must exist and be writable by the server's user: create it, or change ${setting.name}`;
  if (code === 'EADDRINUSE') return `another process listens there: stop it, or change ${setting.name}`;
  return `fix ${setting.name}`;
}

function bind(server: Server, listen: Listen): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (listen.kind === 'unix') server.listen(listen.path, done);
    else server.listen(listen.port, listen.host, done);
  });
}

/** Removes a socket file left by a previous run; refuses to delete anything that is not a socket. */
async function clearStaleSocket(path: string, setting: ListenSetting): Promise<void> {
  try {
    const info = await lstat(path);
    if (!info.isSocket()) throw new Error(`${path} exists and is not a socket: remove it or change ${setting.name}`);
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
