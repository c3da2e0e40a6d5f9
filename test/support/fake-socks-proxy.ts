/**
 * Test support: a tiny SOCKS5 server on 127.0.0.1:0 that stands in for tor's SocksPort. No auth or
 * RFC 1929, CONNECT by DOMAINNAME, routed to 127.0.0.1:<port>, refused with a reply code, or left
 * unanswered (as tor leaves a stream while it waits on a dead introduction point). It records
 * every CONNECT and every login, and counts the client sockets still open.
 */
import { once } from 'node:events';
import { createServer, connect as netConnect, type AddressInfo, type Socket } from 'node:net';

export interface SocksRequest {
  readonly atyp: number;
  readonly host: string;
  readonly port: number;
}

export interface SocksLogin {
  readonly methods: number[];
  readonly username?: string;
  readonly password?: string;
}

/** Where a CONNECT goes: a local port, a refusal (after `afterMs`, default at once), or no answer at all. */
export type SocksRoute = number | { readonly reply: number; readonly afterMs?: number } | 'stall';

export interface FakeSocksProxyOptions {
  readonly route: (request: SocksRequest) => SocksRoute;
  /** Method the proxy selects (0xff: none acceptable). */
  readonly method?: number;
  /** Bytes the "destination" sends in the same write as the success reply. */
  readonly early?: Buffer;
  /**
   * RFC 1929: the proxy selects username/password when offered, and takes these credentials only,
   * or any ('any', as tor does: to tor they are an isolation label).
   */
  readonly accepts?: { readonly username: string; readonly password: string } | 'any';
}

export interface FakeSocksProxy {
  readonly port: number;
  readonly requests: SocksRequest[];
  readonly logins: SocksLogin[];
  /** Client connections not closed yet. */
  readonly openSockets: number;
  close(): Promise<void>;
}

function accepted(options: FakeSocksProxyOptions, login: SocksLogin): boolean {
  const { accepts } = options;
  if (accepts === 'any') return true;
  return accepts !== undefined && login.username === accepts.username && login.password === accepts.password;
}

/** What the proxy does with one client connection. */
function serve(client: Socket, options: FakeSocksProxyOptions, requests: SocksRequest[], logins: SocksLogin[]): void {
  client.on('error', () => undefined);
  let buffer = Buffer.alloc(0);
  let stage: 'greeting' | 'auth' | 'request' | 'done' = 'greeting';
  let methods: number[] = [];
  const onData = (chunk: Buffer): void => {
    buffer = Buffer.concat([buffer, chunk]);
    if (stage === 'greeting') {
      if (buffer.length < 2 || buffer.length < 2 + (buffer[1] ?? 0)) return;
      methods = [...buffer.subarray(2, 2 + (buffer[1] ?? 0))];
      buffer = buffer.subarray(2 + methods.length);
      const method = options.method ?? (options.accepts !== undefined && methods.includes(0x02) ? 0x02 : 0x00);
      client.write(Buffer.of(5, method));
      if (method === 0x02) stage = 'auth';
      else if (method !== 0x00) return void client.end();
      else {
        logins.push({ methods });
        stage = 'request';
      }
    }
    if (stage === 'auth') {
      const userLength = buffer[1] ?? 0;
      if (buffer.length < 3 + userLength || buffer.length < 3 + userLength + (buffer[2 + userLength] ?? 0)) return;
      const passLength = buffer[2 + userLength] ?? 0;
      const login = {
        methods,
        username: buffer.subarray(2, 2 + userLength).toString('utf8'),
        password: buffer.subarray(3 + userLength, 3 + userLength + passLength).toString('utf8'),
      };
      logins.push(login);
      buffer = buffer.subarray(3 + userLength + passLength);
      const ok = buffer.length === 0 && accepted(options, login);
      client.write(Buffer.of(1, ok ? 0 : 1));
      if (!ok) return void client.end();
      stage = 'request';
    }
    if (stage === 'request') {
      if (buffer.length < 5) return;
      const atyp = buffer[3] ?? 0;
      const length = buffer[4] ?? 0;
      if (buffer.length < 7 + length) return;
      const host = buffer.subarray(5, 5 + length).toString('utf8');
      const port = buffer.readUInt16BE(5 + length);
      stage = 'done';
      client.off('data', onData);
      const request = { atyp, host, port };
      requests.push(request);
      const route = options.route(request);
      if (route === 'stall') return;
      if (typeof route !== 'number') {
        const refuse = (): void => void client.end(Buffer.of(5, route.reply, 0, 1, 0, 0, 0, 0, 0, 0));
        if (route.afterMs === undefined) refuse();
        else {
          const timer = setTimeout(refuse, route.afterMs);
          client.on('close', () => clearTimeout(timer));
        }
        return;
      }
      const upstream = netConnect({ host: '127.0.0.1', port: route }, () => {
        const reply = Buffer.of(5, 0, 0, 1, 127, 0, 0, 1, 0, 0);
        client.write(options.early === undefined ? reply : Buffer.concat([reply, options.early]));
        client.pipe(upstream).pipe(client);
      });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
    }
  };
  client.on('data', onData);
}

export async function startFakeSocksProxy(options: FakeSocksProxyOptions): Promise<FakeSocksProxy> {
  const requests: SocksRequest[] = [];
  const logins: SocksLogin[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    serve(client, options, requests, logins);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    logins,
    get openSockets() {
      return sockets.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
