/**
 * Test support: a real registry server on 127.0.0.1:0 with a temp HiddenServiceDir, a raw protocol
 * client that records every frame, and peer identities generated in the test.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, sign, constants, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { WebSocket, type ClientOptions, type RawData } from 'ws';
import { buildConfig, type Config } from '../../server/src/server/config/config.js';
import { createLogger } from '../../server/src/server/logger.js';
import { onionAddressFromPublicKey } from '../../server/src/protocol/onion-address.js';
import { addressProofPayload, registrationPayload } from '../../server/src/protocol/signing.js';
import { startServer, type RegistryServer, type StartOptions } from '../../server/src/server/start-server.js';
import type { Clock } from '../../server/src/store/claim-store.js';
import { fetchHealth } from '../../server/src/cli/health-check.js';
import { checkServerMessage } from './message-schemas.js';

export type Frame = Record<string, unknown> & { type: string };

export interface TestServer {
  readonly server: RegistryServer;
  readonly config: Config;
  readonly url: string;
  readonly port: number;
  /** The operator listener's unix socket ([Host] OperatorSocket), in a temp folder of its own. */
  readonly operatorSocket: string;
  /** GET /healthz on the operator listener: its status code and JSON body. */
  health(): Promise<{ status: number; body: Record<string, unknown> }>;
  readonly hiddenServiceDir: string;
  /** The onion address written to `hiddenServiceDir/hostname`, or null when none was written. */
  readonly onion: string | null;
  /** The claim database ([Store] Database). */
  readonly database: string;
  /**
   * Stops the server and removes the temp HiddenServiceDir (and the temp database it made); safe to call more than
   * once.
   */
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** The hostname file's content; a fresh random onion by default, null to write no hostname file. */
  hostname?: string | null;
  /** Extra [HiddenService] settings. */
  hiddenService?: Record<string, string | number>;
  /**
   * The port to listen on (127.0.0.1); 0 (the default) picks a free one. Pass a stopped server's port to restart it
   * there.
   */
  port?: number;
  /** [Claims] settings (ClaimDays, ClaimAfterSeconds). */
  claims?: Record<string, string | number>;
  /**
   * The claim database; a fresh one in a temp folder by default (removed by close). Pass a stopped
   * server's `database` to restart it on the same claims (the test then removes it).
   */
  database?: string;
  /** The claim store's clock. */
  now?: Clock;
  /** Further [Store] settings (a cluster's LeaseSeconds, PasswordFile). */
  store?: Record<string, string | number>;
  /** [Log] level (silent by default). */
  logLevel?: 'silent' | 'info' | 'debug';
  /** Where the log goes (stdout by default), e.g. a logSink() for assertions. */
  logDestination?: NodeJS.WritableStream;
  /** [Log] SummarySeconds. */
  logSummarySeconds?: number;
  /** How often live registrations' last-seen is written. */
  touchIntervalMs?: number;
  /**
   * A claim store in place of the configured one (StartOptions.openStore): one that fails, never answers, or a test's
   * wrapper of it.
   */
  openStore?: StartOptions['openStore'];
}

export function tempDir(prefix = 'registry-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A fresh, valid v3 onion address (from a random Ed25519 key). */
export function randomOnion(): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  return onionAddressFromPublicKey(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
}

export async function startTestServer(
  registry: Record<string, string | number> = {},
  options: TestServerOptions = {},
): Promise<TestServer> {
  const hiddenServiceDir = tempDir('hs-');
  const hostname = options.hostname === undefined ? randomOnion() : options.hostname;
  if (hostname !== null) writeFileSync(join(hiddenServiceDir, 'hostname'), `${hostname}\n`);
  const databaseDir = options.database === undefined ? tempDir('claims-') : undefined;
  const database = options.database ?? join(databaseDir as string, 'registry.db');
  const operatorDir = tempDir('operator-');
  const operatorSocket = join(operatorDir, 'operator.sock');
  const sections = {
    Host: { HOST: '127.0.0.1', PORT: String(options.port ?? 0), OperatorSocket: operatorSocket },
    HiddenService: {
      HiddenServiceDir: hiddenServiceDir,
      HiddenServicePort: '80',
      ...stringify(options.hiddenService ?? {}),
    },
    Registry: stringify(registry),
    Store: { Database: database, ...stringify(options.store ?? {}) },
    Claims: stringify(options.claims ?? {}),
    Log: {
      level: options.logLevel ?? 'silent',
      ...(options.logSummarySeconds === undefined ? {} : { SummarySeconds: String(options.logSummarySeconds) }),
    },
  };
  const config = buildConfig(sections, {});
  const server = await startServer(config, createLogger(options.logLevel ?? 'silent', options.logDestination), {
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.touchIntervalMs === undefined ? {} : { touchIntervalMs: options.touchIntervalMs }),
    ...(options.openStore === undefined ? {} : { openStore: options.openStore }),
  });
  const port = (server.address as AddressInfo).port;
  return {
    server,
    config,
    port,
    url: `ws://127.0.0.1:${port}/`,
    operatorSocket,
    async health() {
      const { status, body } = await fetchHealth(operatorSocket);
      return { status, body: JSON.parse(body) as Record<string, unknown> };
    },
    hiddenServiceDir,
    onion: hostname,
    database,
    async close() {
      await server.close();
      rmSync(hiddenServiceDir, { recursive: true, force: true });
      rmSync(operatorDir, { recursive: true, force: true });
      if (databaseDir !== undefined) rmSync(databaseDir, { recursive: true, force: true });
    },
  };
}

function stringify(values: Record<string, string | number>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, String(v)]));
}

/** A peer's keys, and the onion address it registers. */
export interface Identity {
  readonly publicKeyPem: string;
  readonly privateKey: KeyObject;
  readonly keyType: 'ed25519' | 'rsa';
  readonly address: string;
}

/** An onion service's identity key and its v3 address (what tor's hs_ed25519_secret_key stands for). */
export interface OnionService {
  readonly address: string;
  readonly privateKey: KeyObject;
}

export function onionService(): OnionService {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    address: onionAddressFromPublicKey(publicKey.export({ format: 'der', type: 'spki' }).subarray(12)),
    privateKey,
  };
}

export function ed25519Identity(address = randomOnion()): Identity {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    privateKey,
    keyType: 'ed25519',
    address,
  };
}

/** The address proof (PROTOCOL.md "Address proof") of `identity` for `service`'s address, over `challenge`. */
export function signAddressProof(
  service: OnionService,
  identity: Identity,
  challenge: string,
  address = service.address,
): string {
  const der = createPublicKey(identity.publicKeyPem).export({ format: 'der', type: 'spki' });
  return sign(null, Buffer.from(addressProofPayload(challenge, address, der), 'utf8'), service.privateKey).toString(
    'base64',
  );
}

export function rsaIdentity(bits = 2048, address = randomOnion()): Identity {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    privateKey,
    keyType: 'rsa',
    address,
  };
}

/** Signs the registration payload as PROTOCOL.md says (RSA: PSS, SHA-256, maximum salt like the Python client). */
export function signRegistration(
  identity: Identity,
  challenge: string,
  nickname: string,
  address: string,
  port: number,
): string {
  const payload = Buffer.from(registrationPayload(challenge, nickname, address, port), 'utf8');
  const signature =
    identity.keyType === 'ed25519'
      ? sign(null, payload, identity.privateKey)
      : sign('sha256', payload, {
          key: identity.privateKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN,
        });
  return signature.toString('base64');
}

/**
 * A protocol client that keeps every frame it receives, for assertions. Every frame from the server
 * is checked against docs/asyncapi.yaml; the first one that does not match is thrown by the next
 * waitFor (and so by connect and request), so that a test cannot pass over an off-schema frame.
 */
export class RawClient {
  readonly frames: Frame[] = [];
  /** Every server frame that did not match its schema, in order of arrival. */
  readonly schemaErrors: Error[] = [];
  readonly ws: WebSocket;
  private waiters: Array<() => void> = [];
  private nextId = 1;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  constructor(url: string, options: ClientOptions = {}) {
    this.ws = new WebSocket(url, options);
    this.ws.on('error', () => {});
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.wake();
      });
    });
    this.ws.on('message', (data, isBinary) => {
      this.frames.push(this.receive(data, isBinary));
      this.wake();
    });
  }

  /** The frame as recorded; anything off-schema (binary, not JSON, not an object) also lands in schemaErrors. */
  private receive(data: RawData, isBinary: boolean): Frame {
    if (isBinary) {
      this.schemaErrors.push(new Error('server sent a binary frame: the protocol has text frames only'));
      return { type: '<binary>' };
    }
    const text = data.toString();
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      this.schemaErrors.push(new Error(`server sent a frame that is not JSON: ${text.slice(0, 200)}`));
      return { type: '<not json>', text };
    }
    try {
      checkServerMessage(frame);
    } catch (err) {
      this.schemaErrors.push(err instanceof Error ? err : new Error(String(err)));
    }
    return typeof frame === 'object' && frame !== null && !Array.isArray(frame)
      ? (frame as Frame)
      : { type: '<not an object>', value: frame };
  }

  static async connect(url: string, options: ClientOptions = {}): Promise<RawClient> {
    const client = new RawClient(url, options);
    await client.opened;
    await client.waitFor((f) => f.type === 'hello');
    return client;
  }

  get hello(): Frame {
    const hello = this.frames.find((f) => f.type === 'hello');
    if (hello === undefined) throw new Error('no hello yet');
    return hello;
  }

  get challenge(): string {
    return this.hello.challenge as string;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Waits for the first frame (from `from` on) that matches. Each frame is tried once, as it
   * arrives: rescanning every frame on every arrival made a wait for the last of 16,000 events
   * quadratic, long enough to time out while the frames were all there.
   */
  async waitFor(match: (frame: Frame) => boolean, timeoutMs = 5_000, from = 0): Promise<Frame> {
    let next = from;
    let found: Frame | undefined;
    await this.waitUntil(
      () => {
        for (; found === undefined && next < this.frames.length; next += 1) {
          if (match(this.frames[next]!)) found = this.frames[next];
        }
        return found !== undefined;
      },
      timeoutMs,
      'a matching frame',
    );
    return found!;
  }

  /**
   * Waits until `condition` (over the frames as a whole, e.g. a count) holds: tried now and once
   * after each batch of frames arrives, never once per frame already received.
   */
  async waitUntil(condition: () => boolean, timeoutMs = 5_000, what = 'a condition on the frames'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const offSchema = this.schemaErrors[0];
      if (offSchema !== undefined) throw offSchema;
      if (condition()) return;
      if (this.ws.readyState === WebSocket.CLOSED)
        throw new Error(`connection closed while waiting for ${what}; ${this.describeFrames()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.describeFrames()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** What arrived, short enough for a failure message: the count by type, then the last frames. */
  private describeFrames(): string {
    const byType: Record<string, number> = {};
    for (const f of this.frames) byType[String(f.type)] = (byType[String(f.type)] ?? 0) + 1;
    return (
      `got ${this.frames.length} frames ${JSON.stringify(byType)}, the last: ` +
      `${JSON.stringify(this.frames.slice(-5)).slice(0, 2_000)}`
    );
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** Sends a request with a fresh id and resolves with the reply carrying that id. */
  async request(body: Record<string, unknown>, timeoutMs = 5_000): Promise<Frame> {
    const id = this.nextId++;
    const from = this.frames.length;
    this.ws.send(JSON.stringify({ ...body, id }));
    return this.waitFor((f) => f.id === id, timeoutMs, from);
  }

  async register(
    identity: Identity,
    nickname: string,
    port = 5050,
    address = identity.address,
    extra: Record<string, unknown> = {},
  ): Promise<Frame> {
    return this.request({
      type: 'register',
      nickname,
      address,
      port,
      publicKey: identity.publicKeyPem,
      signature: signRegistration(identity, this.challenge, nickname, address, port),
      ...extra,
    });
  }

  /** Registers with an address proof made with `service`'s key for `service.address`. */
  async registerProven(identity: Identity, service: OnionService, nickname: string, port = 5050): Promise<Frame> {
    return this.register(identity, nickname, port, service.address, {
      addressProof: signAddressProof(service, identity, this.challenge),
    });
  }

  events(): Frame[] {
    return this.frames.filter((f) => f.type === 'peer_joined' || f.type === 'peer_left');
  }

  close(): void {
    this.ws.close();
  }
}

export function randomNickname(prefix = 'peer'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
