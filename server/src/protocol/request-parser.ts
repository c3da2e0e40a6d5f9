/**
 * The one parser that turns a frame from a peer into a typed request or the coded error to answer.
 * Everything from the socket is `unknown` until it passes through parseRequest.
 */
import { isUtf8 } from 'node:buffer';
import { ErrorCode, RegistryError } from './errors.js';
import { frameBytes, isRecord } from './json-frame.js';
import { MAX_ID_LENGTH, MAX_LIST_LIMIT, type Request, type RequestId } from './messages.js';

/**
 * JSON arrays and objects a plain request fits in. A request is one flat object, but unknown fields
 * may carry anything; JSON.parse pays for each container, so a full frame of nested or sibling
 * arrays is the dearest frame a flood can send. Past this many, a
 * frame costs more of the connection's request budget and draws on the server's
 * JsonContainersPerSecond (see requestCost).
 */
export const MAX_JSON_CONTAINERS = 256;

/** A frame that could not be turned into a request: the error to answer, with the id if readable. */
export interface ParseFailure {
  readonly id: RequestId;
  readonly error: RegistryError;
}

export type ParseResult = { readonly ok: true; readonly request: Request } | ({ readonly ok: false } & ParseFailure);

function fail(id: RequestId, code: ErrorCode, message: string): ParseResult {
  return { ok: false, id, error: new RegistryError(code, message) };
}

/** Occurrences of `byte` in `bytes`, counting no further than `limit + 1`. */
function countUpTo(bytes: Buffer, byte: number, limit: number): number {
  let count = 0;
  let at = bytes.indexOf(byte);
  while (at !== -1 && count <= limit) {
    count += 1;
    at = bytes.indexOf(byte, at + 1);
  }
  return count;
}

/** '[' and '{' outside JSON strings: the arrays and objects JSON.parse would build. */
function containersOutsideStrings(bytes: Buffer): number {
  let count = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i += 1) {
    const byte = bytes[i];
    if (inString) {
      if (byte === 0x5c)
        i += 1; // an escape: the next byte cannot end the string
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) inString = true;
    else if (byte === 0x5b || byte === 0x7b) count += 1;
  }
  return count;
}

/**
 * Request-budget tokens a frame costs, known before it is parsed: one per MAX_JSON_CONTAINERS
 * arrays and objects, at least one (so 1 for every real request). Counting is a few indexOf calls;
 * only a frame past the limit is scanned byte by byte, to leave out brackets inside strings.
 */
export function requestCost(bytes: Buffer): number {
  if (bytes.length <= MAX_JSON_CONTAINERS) return 1;
  if (countUpTo(bytes, 0x5b, MAX_JSON_CONTAINERS) + countUpTo(bytes, 0x7b, MAX_JSON_CONTAINERS) <= MAX_JSON_CONTAINERS)
    return 1;
  return Math.max(1, Math.ceil(containersOutsideStrings(bytes) / MAX_JSON_CONTAINERS));
}

function hasByteOrderMark(bytes: Buffer): boolean {
  return bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
}

/** Reads a field of a given JSON type; own properties only, so `__proto__` tricks see nothing. */
function field(body: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(body, name) ? body[name] : undefined;
}

/** A wrong field inside parseRequest: answered as BAD_REQUEST with the request's id. */
function fieldError(message: string): RegistryError {
  return new RegistryError(ErrorCode.BAD_REQUEST, message);
}

function requireString(body: Record<string, unknown>, name: string): string {
  const value = field(body, name);
  if (value === undefined) throw fieldError(`missing field "${name}"`);
  if (typeof value !== 'string') throw fieldError(`field "${name}" must be a string`);
  return value;
}

function optionalString(body: Record<string, unknown>, name: string): string | null {
  const value = field(body, name);
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw fieldError(`field "${name}" must be a string`);
  return value;
}

function optionalBoolean(body: Record<string, unknown>, name: string): boolean {
  const value = field(body, name);
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw fieldError(`field "${name}" must be true or false`);
  return value;
}

function requireNumber(body: Record<string, unknown>, name: string): number {
  const value = field(body, name);
  if (value === undefined) throw fieldError(`missing field "${name}"`);
  if (typeof value !== 'number') throw fieldError(`field "${name}" must be a number`);
  return value;
}

function readId(body: Record<string, unknown>): RequestId | RegistryError {
  const id = field(body, 'id');
  if (id === undefined || id === null) return null;
  if (typeof id === 'string') {
    return id.length <= MAX_ID_LENGTH ? id : fieldError(`"id" must be at most ${MAX_ID_LENGTH} characters`);
  }
  if (typeof id === 'number' && Number.isSafeInteger(id)) return id;
  return fieldError('"id" must be a string or an integer');
}

function readBody(type: string, id: RequestId, body: Record<string, unknown>): Request | ParseResult {
  switch (type) {
    case 'register':
      return {
        type,
        id,
        nickname: requireString(body, 'nickname'),
        address: requireString(body, 'address'),
        port: requireNumber(body, 'port'),
        publicKey: requireString(body, 'publicKey'),
        signature: requireString(body, 'signature'),
        addressProof: optionalString(body, 'addressProof'),
      };
    case 'lookup':
      return { type, id, nickname: requireString(body, 'nickname') };
    case 'list': {
      const after = optionalString(body, 'after');
      const rawLimit = field(body, 'limit');
      let limit = MAX_LIST_LIMIT;
      if (rawLimit !== undefined && rawLimit !== null) {
        if (typeof rawLimit !== 'number' || !Number.isInteger(rawLimit) || rawLimit < 1 || rawLimit > MAX_LIST_LIMIT) {
          throw fieldError(`"limit" must be an integer from 1 to ${MAX_LIST_LIMIT}`);
        }
        limit = rawLimit;
      }
      return { type, id, after, limit };
    }
    case 'unregister':
      return { type, id, release: optionalBoolean(body, 'release') };
    case 'subscribe':
    case 'ping':
      return { type, id };
    default:
      return fail(id, ErrorCode.UNKNOWN_TYPE, `unknown request type "${type.slice(0, 32)}"`);
  }
}

/** Turns one text frame (raw bytes) into a request or the coded error to answer with. */
export function parseRequest(data: Buffer | ArrayBuffer | Buffer[]): ParseResult {
  const bytes = frameBytes(data);
  // Checked without decoding first: garbage is common in a flood, and a throwing decoder is slow.
  if (!isUtf8(bytes)) return fail(null, ErrorCode.BAD_JSON, 'frame is not valid UTF-8');
  // A leading byte order mark is not part of the JSON text (as a UTF-8 decoder would drop it).
  const text = bytes.toString('utf8', hasByteOrderMark(bytes) ? 3 : 0);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return fail(null, ErrorCode.BAD_JSON, 'frame is not valid JSON');
  }
  if (!isRecord(body)) return fail(null, ErrorCode.BAD_JSON, 'frame must be a JSON object');

  const id = readId(body);
  if (id instanceof RegistryError) return fail(null, ErrorCode.BAD_REQUEST, id.message);
  const type = field(body, 'type');
  if (type === undefined) return fail(id, ErrorCode.BAD_REQUEST, 'missing field "type"');
  if (typeof type !== 'string') return fail(id, ErrorCode.BAD_REQUEST, 'field "type" must be a string');
  try {
    const result = readBody(type, id, body);
    return 'ok' in result ? result : { ok: true, request: result };
  } catch (err) {
    if (err instanceof RegistryError && err.code === ErrorCode.BAD_REQUEST)
      return fail(id, ErrorCode.BAD_REQUEST, err.message);
    throw err;
  }
}
