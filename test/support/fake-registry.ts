/**
 * Test support: a fake registry that speaks PROTOCOL.md revision 2 (or, with `revision: 1`, only
 * revision 1) over a real WebSocket on 127.0.0.1:0, for the peer client's tests while the real
 * server does not (yet) do everything. It checks what a client sends (signature and address
 * proof), answers as told, and records every request; a test scripts the rest through
 * `responders` and `send`. Its hello and its own answers are checked against docs/asyncapi.yaml,
 * so it speaks the documented frames; scripted ones are sent as given (tests send odd ones).
 */
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { parseOnionAddress } from '../../server/src/protocol/onion-address.js';
import { registrationPayload } from '../../server/src/protocol/signing.js';
import { checkServerMessage } from './message-schemas.js';

export type FakeFrame = Record<string, unknown>;

export const REV2_LIMITS = {
  maxMessageBytes: 16_384,
  heartbeatSeconds: 30,
  requestsPerSecond: 20,
  requestBurst: 40,
  maxListLimit: 1000,
  claimDays: 30,
  claimAfterSeconds: 600,
} as const;

export interface FakeConnection {
  readonly ws: WebSocket;
  readonly challenge: string;
  readonly requests: FakeFrame[];
  /** The close code, once the connection closed. */
  closedWith: number | null;
}

/** Answers one request: a frame to send (its `id` is filled in), or undefined for the default answer. */
export type Responder = (request: FakeFrame, connection: FakeConnection) => FakeFrame | undefined;

export interface FakeRegistryOptions {
  readonly revision?: 1 | 2;
  readonly claimAfterSeconds?: number;
  /** Connections (0-based, in order of arrival) whose hello waits for `greet`, like a stalled backend's. */
  readonly holdHello?: (index: number) => boolean;
}

/** Whether a register request's address proof verifies (PROTOCOL.md rev 2, "Address proof"). */
export function addressProofVerifies(request: FakeFrame, challenge: string): boolean {
  const { address, publicKey, addressProof } = request;
  if (typeof address !== 'string' || typeof publicKey !== 'string' || typeof addressProof !== 'string') return false;
  const onion = parseOnionAddress(address);
  if (!onion.ok) return false;
  const digest = createHash('sha256')
    .update(createPublicKey(publicKey).export({ type: 'spki', format: 'der' }))
    .digest('hex');
  const payload = Buffer.from(`p2p-tor-chat/address/v1\n${challenge}\n${address}\n${digest}`, 'utf8');
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: onion.publicKey.toString('base64url') },
    format: 'jwk',
  });
  return verify(null, payload, key, Buffer.from(addressProof, 'base64'));
}

function signatureVerifies(request: FakeFrame, challenge: string): boolean {
  const { nickname, address, port, publicKey, signature } = request;
  if (typeof nickname !== 'string' || typeof address !== 'string' || typeof port !== 'number') return false;
  if (typeof publicKey !== 'string' || typeof signature !== 'string') return false;
  const payload = Buffer.from(registrationPayload(challenge, nickname, address, port), 'utf8');
  return verify(null, payload, createPublicKey(publicKey), Buffer.from(signature, 'base64'));
}

/** docs/asyncapi.yaml describes this project's (revision-2) server: a revision-1 fake is not checked. */
function checked(frame: FakeFrame, revision: 1 | 2 = 2): FakeFrame {
  if (revision === 2) checkServerMessage(frame);
  return frame;
}

export class FakeRegistry {
  readonly connections: FakeConnection[] = [];
  /** Scripted answers, tried first; one that answers undefined leaves it to the default. */
  readonly responders: Responder[] = [];
  private readonly failures: Error[] = [];
  private readonly wss: WebSocketServer;

  private constructor(
    wss: WebSocketServer,
    private readonly options: FakeRegistryOptions,
  ) {
    this.wss = wss;
    wss.on('connection', (ws) => this.accept(ws));
  }

  static async start(options: FakeRegistryOptions = {}): Promise<FakeRegistry> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    return new FakeRegistry(wss, options);
  }

  get port(): number {
    return (this.wss.address() as AddressInfo).port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  get latest(): FakeConnection {
    const connection = this.connections.at(-1);
    if (connection === undefined) throw new Error('no client has connected to the fake registry');
    return connection;
  }

  /** Every request of a type, over all connections. */
  requestsOf(type: string): FakeFrame[] {
    return this.connections.flatMap((c) => c.requests.filter((r) => r.type === type));
  }

  /** Sends an unasked frame on the latest connection. */
  send(frame: FakeFrame, connection: FakeConnection = this.latest): void {
    connection.ws.send(JSON.stringify(frame));
  }

  /** Sends a held hello. */
  greet(connection: FakeConnection): void {
    const rev2 = this.options.revision !== 1;
    const limits = rev2
      ? { ...REV2_LIMITS, claimAfterSeconds: this.options.claimAfterSeconds ?? 600 }
      : { maxMessageBytes: 16_384 };
    const features = rev2 ? { features: ['claims', 'address-proof'] } : {};
    connection.ws.send(
      JSON.stringify(
        checked(
          { type: 'hello', protocol: 1, challenge: connection.challenge, onion: null, ...features, limits },
          rev2 ? 2 : 1,
        ),
      ),
    );
  }

  /** Stops the fake; throws the first failure of its own (e.g. a frame the schemas refuse). */
  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    if (this.failures.length > 0) throw this.failures[0];
  }

  private accept(ws: WebSocket): void {
    const connection: FakeConnection = {
      ws,
      challenge: randomBytes(32).toString('base64url'),
      requests: [],
      closedWith: null,
    };
    const index = this.connections.push(connection) - 1;
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      connection.closedWith = code;
    });
    if (this.options.holdHello?.(index) !== true) this.greet(connection);
    ws.on('message', (data) => {
      try {
        this.onRequest(connection, JSON.parse(String(data)) as FakeFrame);
      } catch (err) {
        // Surfaced by close(): a fake that cannot answer must fail the test, not hang it.
        this.failures.push(err as Error);
        ws.close(1011, 'fake registry failed');
      }
    });
  }

  private onRequest(connection: FakeConnection, request: FakeFrame): void {
    connection.requests.push(request);
    let answer: FakeFrame | undefined;
    for (const responder of this.responders) answer ??= responder(request, connection);
    const id = request.id ?? null;
    connection.ws.send(
      JSON.stringify(
        answer === undefined
          ? checked({ ...this.answer(request, connection), id }, this.options.revision ?? 2)
          : { ...answer, id },
      ),
    );
  }

  private answer(request: FakeFrame, connection: FakeConnection): FakeFrame {
    const rev2 = this.options.revision !== 1;
    switch (request.type) {
      case 'register': {
        if (!signatureVerifies(request, connection.challenge))
          return { type: 'error', code: 'BAD_SIGNATURE', message: 'bad signature' };
        const proven = request.addressProof !== undefined;
        if (rev2 && proven && !addressProofVerifies(request, connection.challenge)) {
          return { type: 'error', code: 'BAD_ADDRESS_PROOF', message: 'bad proof' };
        }
        const onion = parseOnionAddress(String(request.address));
        const peer = {
          nickname: request.nickname,
          address: onion.ok ? onion.address : request.address,
          port: request.port,
          publicKey: String(request.publicKey).trimEnd(),
          keyType: 'ed25519',
          registeredAt: new Date().toISOString(),
          ...(rev2 ? { addressVerified: proven } : {}),
        };
        return { type: 'registered', peer, ...(rev2 ? { claim: null } : {}) };
      }
      case 'unregister':
        return { type: 'unregistered' };
      case 'subscribe':
        return { type: 'subscribed' };
      case 'ping':
        return { type: 'pong' };
      default:
        return { type: 'error', code: 'UNKNOWN_TYPE', message: 'unknown type' };
    }
  }
}

/** A fake registry that `defer` (cleanupsAfterEach) closes after the test. */
export async function deferredFakeRegistry(
  defer: (cleanup: () => Promise<void>) => void,
  options: FakeRegistryOptions = {},
): Promise<FakeRegistry> {
  const fake = await FakeRegistry.start(options);
  defer(() => fake.close());
  return fake;
}
