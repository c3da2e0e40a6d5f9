/**
 * One WebSocket to the registry: opened directly or through its own SOCKS agent, greeted by the
 * hello (checked before anything else is read), watched for liveness, closed with a grace period.
 * A Connection is used once; reconnecting opens a new one (connection-race.ts opens them).
 */
import { WebSocket } from 'ws';
import { CloseCode, RegistryError } from '../protocol/errors.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import type { FrameData } from '../protocol/json-frame.js';
import { decodeFrame, readHello, type Frame, type Hello } from '../protocol/reply-parser.js';
import { Liveness } from './liveness.js';
import type { ClientSettings } from './options.js';
import type { SocksAgent, SocksProxy } from './socks5.js';

const CLOSE_GRACE_MS = 1_000;
/** A full `list` page of 1000 peers with RSA-8192 keys stays well below this. */
const MAX_PAYLOAD_BYTES = 8 * 1024 * 1024;

/** What a greeted connection hands on: every frame after the hello, and its close. */
export interface ConnectionHandlers {
  onFrame(connection: RegistryConnection, frame: Frame): void;
  onClose(connection: RegistryConnection, code: number, reason: string): void;
}

/** A connection's handlers while it is one attempt among others to connect. */
export interface AttemptHandlers extends ConnectionHandlers {
  /** The hello was accepted: called before `ready` resolves and before any later frame is handed on. */
  onGreeted(connection: RegistryConnection): void;
}

export interface AttemptOptions {
  /** Opens the connection through the SOCKS proxy; the connection destroys it when it closes. */
  readonly agent: SocksAgent | undefined;
  /** Time to receive the hello. */
  readonly timeoutMs: number;
}

/** Turns a failure to connect (ws, net or SOCKS error) into a RegistryError that says what to do. */
export function connectError(err: Error, url: string, socks: SocksProxy | undefined): RegistryError {
  if (err instanceof RegistryError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const via = socks === undefined ? '' : ' through the SOCKS proxy';
  let hint = 'check the URL and that the registry is running';
  if (code === 'ECONNREFUSED') hint = 'nothing listens there: is the registry running, and the port right?';
  else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') hint = 'the host name does not resolve';
  else if (/Unexpected server response: 404/.test(err.message))
    hint = "that is an HTTP server but not the registry's WebSocket path: use ws://host:port/";
  else if (/Unexpected server response: 503/.test(err.message))
    hint = 'the registry is at its connection limit: retry later';
  return new RegistryError(
    'CONNECT_FAILED',
    `cannot connect to the registry at ${url}${via}: ${err.message}; ${hint}`,
    { cause: err },
  );
}

/** The greeting a first frame holds, or why it is not an acceptable one. */
function readGreeting(url: string, frame: Frame | undefined): Hello | RegistryError {
  const hello = frame === undefined ? undefined : readHello(frame);
  if (hello === undefined)
    return new RegistryError('BAD_RESPONSE', `${url} did not greet with a registry hello: is it the registry?`);
  if (hello.protocol !== PROTOCOL_VERSION) {
    return new RegistryError(
      'PROTOCOL_MISMATCH',
      `the registry speaks protocol ${hello.protocol}, this client ${PROTOCOL_VERSION}: upgrade the client`,
    );
  }
  return hello;
}

export class RegistryConnection {
  /** Resolves with the hello; rejects with why the connection failed before it. */
  readonly ready: Promise<Hello>;
  /** Frames, pings and pongs received: a request that times out with none since it was sent is a dead link. */
  received = 0;
  /** The greeting, once received. */
  hello: Hello | null = null;
  private readonly ws: WebSocket;
  private readonly liveness: Liveness;

  constructor(
    private readonly settings: ClientSettings,
    private readonly handlers: AttemptHandlers,
    { agent, timeoutMs }: AttemptOptions,
  ) {
    this.ws = new WebSocket(settings.url, {
      ...(agent === undefined ? {} : { agent }),
      handshakeTimeout: timeoutMs,
      perMessageDeflate: false,
      maxPayload: MAX_PAYLOAD_BYTES,
    });
    this.liveness = new Liveness(this.ws, settings.livenessTimeoutMs);
    this.ws.on('ping', () => this.touch());
    this.ws.on('pong', () => this.touch());
    // Closed before its SOCKS handshake completed, the agent still holds that socket: let it go.
    if (agent !== undefined) this.ws.once('close', () => agent.destroy());
    this.ready = this.handshake(timeoutMs);
  }

  /** Greeted and not closing: requests may be sent. */
  get isOpen(): boolean {
    return this.hello !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(message: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(message));
  }

  /** Drops the connection at once; its close follows. */
  terminate(): void {
    this.ws.terminate();
  }

  /** Closes with 1000, or drops the connection when it does not close within the grace period. */
  async close(): Promise<void> {
    this.liveness.stop();
    const ws = this.ws;
    if (ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const grace = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
      ws.once('close', () => {
        clearTimeout(grace);
        resolve();
      });
      if (ws.readyState === WebSocket.OPEN) ws.close(CloseCode.NORMAL, 'client closing');
      else ws.terminate();
    });
  }

  private touch(): void {
    this.received += 1;
    this.liveness.touch();
  }

  /** Waits for the hello; after it, frames and the close go to the handlers. */
  private handshake(timeoutMs: number): Promise<Hello> {
    const { url, socks } = this.settings;
    const ws = this.ws;
    return new Promise<Hello>((resolve, reject) => {
      let failure: RegistryError | null = null;
      const fail = (err: RegistryError): void => {
        failure ??= err;
        if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
      };
      const timer = setTimeout(() => {
        const tor = socks === undefined ? '' : ' and that tor has bootstrapped';
        fail(
          new RegistryError(
            'TIMEOUT',
            `no hello from the registry at ${url} within ${timeoutMs} ms: check the URL${tor}, or retry`,
          ),
        );
      }, timeoutMs);

      ws.on('error', (err) => {
        if (this.hello === null) failure ??= connectError(err, url, socks);
        // After the hello, ws closes the socket itself and 'close' reports it.
      });
      ws.on('message', (data) => {
        if (this.hello !== null) {
          this.onFrame(data);
          return;
        }
        const hello = readGreeting(url, decodeFrame(data));
        if (hello instanceof RegistryError) {
          fail(hello);
          return;
        }
        clearTimeout(timer);
        this.hello = hello;
        this.liveness.start();
        this.handlers.onGreeted(this);
        resolve(hello);
      });
      ws.on('close', (code, reason) => {
        this.liveness.stop();
        if (this.hello !== null) {
          this.handlers.onClose(this, code, reason.toString('utf8'));
          return;
        }
        clearTimeout(timer);
        reject(
          failure ??
            new RegistryError(
              'CONNECT_FAILED',
              `the registry at ${url} closed the connection before its hello (close code ${code})`,
            ),
        );
      });
    });
  }

  private onFrame(data: FrameData): void {
    this.touch();
    const frame = decodeFrame(data);
    if (frame !== undefined) this.handlers.onFrame(this, frame);
  }
}
