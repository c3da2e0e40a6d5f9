/**
 * A deliberately small WebSocket client for the load generator (RFC 6455, client side only).
 *
 * Why not the `ws` client: the load generator shares the machine with the server, so each reply
 * must cost the client much less than it costs the server. This client frames requests once up
 * front (zero masking key, so the payload bytes stay as they are), writes many frames per syscall,
 * and reads replies by looking at frame headers and a prefix, without an event per frame.
 * The servers under test are unchanged `ws` servers; the same client drives the echo baseline and
 * the registry, so their ratio is fair.
 */
import { connect } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP_TEXT = 0x1;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_HANDSHAKE_BYTES = 16_384;

/** A masked client frame with an all-zero masking key (allowed by RFC 6455: the mask is a no-op). */
export function clientFrame(payload, opcode = OP_TEXT) {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const len = body.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(6);
    header[1] = 0x80 | len;
  } else if (len < 65_536) {
    header = Buffer.alloc(8);
    header[1] = 0x80 | 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(14);
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = 0x80 | opcode;
  return Buffer.concat([header, body]);
}

/** True when buf[start..] begins with the bytes of `prefix`. */
export function hasPrefix(buf, start, end, prefix) {
  if (end - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i += 1) if (buf[start + i] !== prefix[i]) return false;
  return true;
}

const CLOSE_NORMAL = (() => {
  const code = Buffer.alloc(2);
  code.writeUInt16BE(1000);
  return clientFrame(code, OP_CLOSE);
})();

/**
 * One client connection. `onText(buf, start, end)` sees every text frame (the bytes are only valid
 * during the call); `onBurst()` runs after each socket read, so callers can answer a whole read with
 * one write. Without an `onText`, frames queue as strings for `next()`.
 */
export class WireConnection {
  constructor(socket) {
    this.socket = socket;
    this.pending = null;
    this.onText = null;
    this.onBurst = null;
    this.onClose = null;
    this.queue = [];
    this.waiter = null;
    this.closed = false;
    this.closeCode = null;
    this.pings = 0;
    socket.on('data', (chunk) => this.read(chunk));
    socket.on('close', () => {
      this.closed = true;
      this.wake();
      if (this.onClose !== null) this.onClose(this.closeCode);
    });
  }

  /**
   * Connects and completes the opening handshake; rejects on any failure or after `timeoutMs`.
   * `readableHighWaterMark`: what the socket reads ahead into this process once paused (Node's
   * default, 64 KiB, would let a "non-reader" swallow that much before the kernel pushes back).
   */
  static open({ port, host = '127.0.0.1', localAddress, timeoutMs = 10_000, readableHighWaterMark }) {
    return new Promise((resolve, reject) => {
      const key = randomBytes(16).toString('base64');
      const expected = createHash('sha1')
        .update(key + ACCEPT_GUID)
        .digest('base64');
      const socket = connect({ port, host, localAddress, noDelay: true, readableHighWaterMark });
      let head = Buffer.alloc(0);
      const fail = (err) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error(`handshake timed out after ${timeoutMs} ms`)), timeoutMs);
      socket.on('error', (err) => fail(err));
      socket.on('close', () => fail(new Error('closed during handshake')));
      const onData = (chunk) => {
        head = Buffer.concat([head, chunk]);
        const at = head.indexOf(HEADER_END);
        if (at < 0) {
          if (head.length > MAX_HANDSHAKE_BYTES) fail(new Error('handshake response too large'));
          return;
        }
        const text = head.subarray(0, at).toString('latin1');
        if (!text.startsWith('HTTP/1.1 101')) return fail(new Error(`upgrade refused: ${text.split('\r\n')[0]}`));
        const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(text);
        if (accept === null || accept[1] !== expected) return fail(new Error('bad Sec-WebSocket-Accept'));
        clearTimeout(timer);
        socket.removeAllListeners('data');
        socket.removeAllListeners('close');
        socket.removeAllListeners('error');
        socket.on('error', () => {});
        const conn = new WireConnection(socket);
        resolve(conn);
        const rest = head.subarray(at + HEADER_END.length);
        if (rest.length > 0) conn.read(rest);
      };
      socket.on('data', onData);
      socket.write(
        `GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  }

  read(chunk) {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    let off = 0;
    for (;;) {
      const left = buf.length - off;
      if (left < 2) break;
      const b0 = buf[off];
      const b1 = buf[off + 1];
      let len = b1 & 0x7f;
      let header = 2;
      if (len === 126) {
        if (left < 4) break;
        len = buf.readUInt16BE(off + 2);
        header = 4;
      } else if (len === 127) {
        if (left < 10) break;
        len = Number(buf.readBigUInt64BE(off + 2));
        header = 10;
      }
      if ((b1 & 0x80) !== 0) {
        this.destroy();
        return;
      }
      if (left < header + len) break;
      const start = off + header;
      const end = start + len;
      off = end;
      const opcode = b0 & 0x0f;
      if (opcode === OP_TEXT || opcode === 0x2 || opcode === 0x0) this.text(buf, start, end);
      else if (opcode === OP_PING) {
        this.pings += 1;
        if (!this.closed) this.socket.write(clientFrame(Buffer.from(buf.subarray(start, end)), OP_PONG));
      } else if (opcode === OP_CLOSE) {
        this.closeCode = len >= 2 ? buf.readUInt16BE(start) : 1005;
        this.socket.end();
      }
    }
    this.pending = off < buf.length ? Buffer.from(buf.subarray(off)) : null;
    if (this.onBurst !== null) this.onBurst();
  }

  text(buf, start, end) {
    if (this.onText !== null) {
      this.onText(buf, start, end);
      return;
    }
    this.queue.push(buf.toString('utf8', start, end));
    this.wake();
  }

  wake() {
    const waiter = this.waiter;
    this.waiter = null;
    if (waiter !== null) waiter();
  }

  /** The next queued text frame as a string; rejects when the connection closes or on timeout. */
  async next(timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.queue.length > 0) return this.queue.shift();
      if (this.closed) throw new Error(`connection closed (code ${String(this.closeCode)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  send(frameBytes) {
    if (!this.closed) this.socket.write(frameBytes);
  }

  sendJson(value) {
    this.send(clientFrame(JSON.stringify(value)));
  }

  /** Sends a close frame (1000) and waits, at most `timeoutMs`, for the TCP connection to end. */
  close(timeoutMs = 5_000) {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.destroy();
        resolve();
      }, timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.write(CLOSE_NORMAL);
    });
  }

  destroy() {
    this.socket.destroy();
  }
}
