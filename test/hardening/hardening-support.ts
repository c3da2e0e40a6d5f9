/**
 * Test support for the hardening suite: a guard that records unhandled rejections and uncaught
 * exceptions, a hand-rolled WebSocket client on a raw TCP socket (to send frames `ws` refuses to
 * build, and to stop reading), a client frame encoder and a server frame decoder, and the spec's
 * catalog of replies.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { Frame } from '../support/registry-harness.js';
import { ErrorCode } from '../../server/src/protocol/errors.js';
import { waitUntil } from '../support/wait.js';

/** Error codes PROTOCOL.md lets a peer receive: the catalog's protocol codes but INTERNAL, which is a bug. */
export const SPEC_ERROR_CODES: ReadonlySet<string> = new Set(
  Object.values(ErrorCode).filter((code) => code !== ErrorCode.INTERNAL),
);

export { logSink } from '../support/log-sink.js';

/**
 * Close codes the server may use on a misbehaving connection: the spec's 1003/1008/1009, and 1002,
 * which `ws` sends on its own for a frame that breaks RFC 6455 (unmasked, reserved bits or opcodes,
 * an oversized control frame, a bad close code). 1002 is the RFC's answer to a framing error and no
 * conforming client can trigger it, so the suite accepts it (SECURITY.md says so too).
 */
export const ABUSE_CLOSE_CODES: ReadonlySet<number> = new Set([1002, 1003, 1008, 1009]);

/** Records every unhandledRejection and uncaughtException while a suite runs. */
export interface ProcessErrorGuard {
  readonly errors: unknown[];
  dispose(): void;
}

export function guardProcessErrors(): ProcessErrorGuard {
  const errors: unknown[] = [];
  const onRejection = (reason: unknown): void => {
    errors.push(reason);
  };
  const onException = (err: unknown): void => {
    errors.push(err);
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    errors,
    dispose() {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}

export const Opcode = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

export interface ClientFrameSpec {
  readonly opcode: number;
  readonly payload: Buffer;
  readonly fin?: boolean;
  /** RSV1-3 as a 3-bit number. */
  readonly rsv?: number;
  /** Clients must mask; false builds a frame the server must refuse. */
  readonly masked?: boolean;
  /** Announce this length instead of the payload's (a lie the server must survive). */
  readonly declaredLength?: bigint | undefined;
}

/** Encodes one client-to-server WebSocket frame, malformed on request. */
export function encodeClientFrame(spec: ClientFrameSpec): Buffer {
  const fin = spec.fin ?? true;
  const rsv = spec.rsv ?? 0;
  const masked = spec.masked ?? true;
  const length = spec.declaredLength ?? BigInt(spec.payload.length);
  const head: number[] = [(fin ? 0x80 : 0) | ((rsv & 0x7) << 4) | (spec.opcode & 0xf)];
  const maskBit = masked ? 0x80 : 0;
  let extended = Buffer.alloc(0);
  if (length < 126n) head.push(maskBit | Number(length));
  else if (length < 65_536n) {
    head.push(maskBit | 126);
    extended = Buffer.alloc(2);
    extended.writeUInt16BE(Number(length));
  } else {
    head.push(maskBit | 127);
    extended = Buffer.alloc(8);
    extended.writeBigUInt64BE(BigInt.asUintN(64, length));
  }
  if (!masked) return Buffer.concat([Buffer.from(head), extended, spec.payload]);
  const mask = randomBytes(4);
  const body = Buffer.alloc(spec.payload.length);
  for (let i = 0; i < body.length; i += 1) body[i] = (spec.payload[i] as number) ^ (mask[i & 3] as number);
  return Buffer.concat([Buffer.from(head), extended, mask, body]);
}

export interface ServerFrame {
  readonly opcode: number;
  readonly fin: boolean;
  readonly payload: Buffer;
}

/** Splits the server's byte stream into frames (the server never masks and never fragments). */
export class ServerFrameDecoder {
  private pending = Buffer.alloc(0);

  push(chunk: Buffer): ServerFrame[] {
    this.pending = Buffer.concat([this.pending, chunk]);
    const frames: ServerFrame[] = [];
    for (;;) {
      if (this.pending.length < 2) break;
      const b0 = this.pending[0] as number;
      const b1 = this.pending[1] as number;
      let length = b1 & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.pending.length < 4) break;
        length = this.pending.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.pending.length < 10) break;
        length = Number(this.pending.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.pending.length < offset + length) break;
      frames.push({
        opcode: b0 & 0x0f,
        fin: (b0 & 0x80) !== 0,
        payload: this.pending.subarray(offset, offset + length),
      });
      this.pending = this.pending.subarray(offset + length);
    }
    return frames;
  }
}

export function upgradeRequest(port: number, path = '/'): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`
  );
}

/**
 * A WebSocket client written by hand on a TCP socket: it can send any bytes after the handshake,
 * and it can stop reading (the kernel buffers fill and the server's `bufferedAmount` grows).
 */
export class RawSocketClient {
  readonly socket: Socket;
  /** Text frames from the server, parsed. */
  readonly frames: Frame[] = [];
  /** The server's close code, once it sent a close frame. */
  closeCode: number | undefined;
  /** Bytes the server sent before the 101 (an HTTP refusal), or the whole reply if it never upgraded. */
  httpResponse = '';
  upgraded = false;
  readonly closed: Promise<void>;
  private readonly decoder = new ServerFrameDecoder();
  private headerBuffer = Buffer.alloc(0);

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  /** Connects and sends `request` (default: a valid upgrade), then `extra` bytes in the same write. */
  static open(port: number, request?: string | Buffer, extra: Buffer = Buffer.alloc(0)): RawSocketClient {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const client = new RawSocketClient(socket);
    const head = request === undefined ? Buffer.from(upgradeRequest(port)) : Buffer.from(request);
    socket.write(Buffer.concat([head, extra]));
    return client;
  }

  /** Connects, upgrades, and waits for the server's hello. */
  static async connect(port: number): Promise<RawSocketClient> {
    const client = RawSocketClient.open(port);
    await waitUntil("the server's hello on a raw socket", () => client.frames.length > 0 || client.socket.destroyed, {
      timeoutMs: 5_000,
      intervalMs: 2,
      describe: () => `HTTP so far: ${JSON.stringify(client.httpResponse)}`,
    });
    if (client.frames[0]?.type !== 'hello') throw new Error(`no hello: ${client.httpResponse}`);
    return client;
  }

  private onData(chunk: Buffer): void {
    if (!this.upgraded) {
      this.headerBuffer = Buffer.concat([this.headerBuffer, chunk]);
      const end = this.headerBuffer.indexOf('\r\n\r\n');
      if (end < 0) {
        this.httpResponse = this.headerBuffer.toString('latin1');
        return;
      }
      const head = this.headerBuffer.subarray(0, end).toString('latin1');
      if (!head.startsWith('HTTP/1.1 101')) {
        this.httpResponse = this.headerBuffer.toString('latin1');
        return;
      }
      this.httpResponse = head;
      this.upgraded = true;
      chunk = this.headerBuffer.subarray(end + 4);
    }
    for (const frame of this.decoder.push(chunk)) {
      if (frame.opcode === Opcode.TEXT) this.frames.push(JSON.parse(frame.payload.toString('utf8')) as Frame);
      else if (frame.opcode === Opcode.CLOSE)
        this.closeCode = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005;
      else if (frame.opcode === Opcode.PING)
        this.write(encodeClientFrame({ opcode: Opcode.PONG, payload: frame.payload }));
    }
  }

  get challenge(): string {
    return (this.frames[0] as Frame).challenge as string;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  sendText(text: string | Buffer): void {
    this.write(encodeClientFrame({ opcode: Opcode.TEXT, payload: Buffer.from(text) }));
  }

  /** Stops reading: the server's writes pile up in the kernel, then in its own buffer. */
  stopReading(): void {
    this.socket.pause();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Percentile (0-100) of a list of numbers, nearest-rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n >>= 8) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function der(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

function derInteger(magnitude: Buffer): Buffer {
  return der(0x02, (magnitude[0] as number) & 0x80 ? Buffer.concat([Buffer.from([0]), magnitude]) : magnitude);
}

/**
 * A PEM SubjectPublicKeyInfo for an RSA key with any modulus and exponent: how an attacker sends
 * keys no honest generator makes (too large, or with a public exponent that makes checks costly).
 */
export function rsaPublicKeyPem(modulus: Buffer, exponent: Buffer): string {
  const rsaAlgorithm = Buffer.from('300d06092a864886f70d0101010500', 'hex');
  const rsaKey = der(0x30, Buffer.concat([derInteger(modulus), derInteger(exponent)]));
  const spki = der(0x30, Buffer.concat([rsaAlgorithm, der(0x03, Buffer.concat([Buffer.from([0]), rsaKey]))]));
  const lines = spki.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PUBLIC KEY-----\n${lines.join('\n')}\n-----END PUBLIC KEY-----\n`;
}

/** A random odd number of exactly `bits` bits (a modulus nobody can sign for; parsing does not care). */
export function randomModulus(bits: number): Buffer {
  const bytes = randomBytes(Math.ceil(bits / 8));
  const topBits = bits % 8 === 0 ? 8 : bits % 8;
  bytes[0] = ((bytes[0] as number) & ((1 << topBits) - 1)) | (1 << (topBits - 1));
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) | 1;
  return bytes;
}
