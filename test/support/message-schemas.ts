/**
 * Test support: the message schemas of docs/asyncapi.yaml, compiled with ajv, and checks that a
 * frame matches the schema of its `type`. The document is the one source of the schemas; nothing
 * here restates them.
 *
 * Which messages go which way is read from the document's operations (the registry server is the
 * application it describes): a `receive` operation's messages are client requests, its reply
 * messages and every `send` operation's messages are server messages.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';

export const ASYNCAPI_PATH = fileURLToPath(new URL('../../docs/asyncapi.yaml', import.meta.url));

/** Base URI under which components/schemas are registered with ajv (as `definitions`). */
const SCHEMAS_ID = 'urn:p2p-tor-chat-registry:asyncapi-schemas';
const COMPONENT_SCHEMA_REF = '#/components/schemas/';
/** Annotations of the document that ajv does not know; they validate nothing. */
const EXTENSION_KEYWORDS = ['x-revision', 'x-planned'];
/** What Date.prototype.toISOString and other RFC 3339 writers produce. */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

export type Direction = 'client' | 'server';

export interface MessageExample {
  readonly name: string;
  readonly payload: unknown;
}

/** One entry of components/messages, with the schema of its payload compiled. */
export interface CompiledMessage {
  readonly name: string;
  readonly direction: Direction;
  readonly payload: unknown;
  readonly examples: readonly MessageExample[];
  readonly validate: ValidateFunction;
}

export interface MessageSchemas {
  /** The parsed document, as plain data. */
  readonly document: Record<string, unknown>;
  /** Messages by name (equal to their `type`), per direction. */
  readonly client: ReadonlyMap<string, CompiledMessage>;
  readonly server: ReadonlyMap<string, CompiledMessage>;
  /** Compiles any schema of the document (its `#/components/schemas/…` references resolve). */
  compile(schema: unknown): ValidateFunction;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (!isRecord(value)) throw new Error(`${ASYNCAPI_PATH}: ${where} must be a mapping`);
  return value;
}

/** Follows a local reference (`#/a/b`), and the references it lands on, through the document. */
export function resolveRef(document: Record<string, unknown>, ref: string): unknown {
  const seen = new Set<string>();
  let current = ref;
  for (;;) {
    if (!current.startsWith('#/'))
      throw new Error(`${ASYNCAPI_PATH}: only local references are used, got "${current}"`);
    if (seen.has(current)) throw new Error(`${ASYNCAPI_PATH}: reference cycle at "${current}"`);
    seen.add(current);
    let target: unknown = document;
    for (const raw of current.slice(2).split('/')) {
      const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
      if (!isRecord(target) || !Object.hasOwn(target, key))
        throw new Error(`${ASYNCAPI_PATH}: "${ref}" points at nothing`);
      target = target[key];
    }
    const next = isRecord(target) ? target.$ref : undefined;
    if (typeof next !== 'string') return target;
    current = next;
  }
}

/** A copy of a schema whose component references point at the schemas registered with ajv. */
function retarget(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(retarget);
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (key === '$ref' && typeof inner === 'string') {
      if (!inner.startsWith(COMPONENT_SCHEMA_REF))
        throw new Error(`${ASYNCAPI_PATH}: a schema may only reference components/schemas, got "${inner}"`);
      out[key] = `${SCHEMAS_ID}#/definitions/${inner.slice(COMPONENT_SCHEMA_REF.length)}`;
    } else out[key] = retarget(inner);
  }
  return out;
}

function createAjv(schemas: Record<string, unknown>): Ajv {
  // Strict, so that a misspelt keyword in the document is an error rather than a silent no-op;
  // union types (`[string, "null"]`) are plain draft-07 and used on purpose.
  const ajv = new Ajv({ strict: true, allowUnionTypes: true, allErrors: true });
  ajv.addVocabulary(EXTENSION_KEYWORDS);
  ajv.addFormat('date-time', {
    type: 'string',
    validate: (text: string) => DATE_TIME.test(text) && !Number.isNaN(Date.parse(text)),
  });
  ajv.addSchema({ $id: SCHEMAS_ID, definitions: retarget(schemas) });
  return ajv;
}

function examplesOf(message: Record<string, unknown>, name: string): MessageExample[] {
  const examples = message.examples ?? [];
  if (!Array.isArray(examples)) throw new Error(`${ASYNCAPI_PATH}: messages.${name}.examples must be a list`);
  return examples.map((example: unknown, index) => {
    const entry = record(example, `messages.${name}.examples[${index}]`);
    return { name: typeof entry.name === 'string' ? entry.name : String(index), payload: entry.payload };
  });
}

/** Message names (their `type`s) per direction, from the operations. */
function directions(document: Record<string, unknown>): Map<string, Direction> {
  const found = new Map<string, Direction>();
  const mark = (refs: unknown, direction: Direction, where: string): void => {
    if (!Array.isArray(refs)) throw new Error(`${ASYNCAPI_PATH}: ${where} must be a list`);
    for (const ref of refs) {
      const target = isRecord(ref) && typeof ref.$ref === 'string' ? resolveRef(document, ref.$ref) : ref;
      const name = record(target, where).name;
      if (typeof name !== 'string') throw new Error(`${ASYNCAPI_PATH}: a message of ${where} has no name`);
      if (found.get(name) !== undefined && found.get(name) !== direction)
        throw new Error(`${ASYNCAPI_PATH}: message "${name}" is sent both ways`);
      found.set(name, direction);
    }
  };
  for (const [id, raw] of Object.entries(record(document.operations, 'operations'))) {
    const operation = record(raw, `operations.${id}`);
    const incoming = operation.action === 'receive';
    mark(operation.messages, incoming ? 'client' : 'server', `operations.${id}.messages`);
    if (operation.reply !== undefined)
      mark(record(operation.reply, `operations.${id}.reply`).messages, 'server', `operations.${id}.reply.messages`);
  }
  return found;
}

function load(): MessageSchemas {
  const document = record(parse(readFileSync(ASYNCAPI_PATH, 'utf8')), 'the document');
  const components = record(document.components, 'components');
  const ajv = createAjv(record(components.schemas, 'components.schemas'));
  const compile = (schema: unknown): ValidateFunction => ajv.compile(record(retarget(schema), 'a schema'));
  const direction = directions(document);
  const client = new Map<string, CompiledMessage>();
  const server = new Map<string, CompiledMessage>();
  for (const [key, raw] of Object.entries(record(components.messages, 'components.messages'))) {
    const message = record(raw, `components.messages.${key}`);
    const name = message.name;
    if (typeof name !== 'string') throw new Error(`${ASYNCAPI_PATH}: components.messages.${key} has no name`);
    const way = direction.get(name);
    if (way === undefined) throw new Error(`${ASYNCAPI_PATH}: message "${name}" is in no operation`);
    const compiled: CompiledMessage = {
      name,
      direction: way,
      payload: message.payload,
      examples: examplesOf(message, name),
      validate: compile(message.payload),
    };
    (way === 'client' ? client : server).set(name, compiled);
  }
  return { document, client, server, compile };
}

let cache: MessageSchemas | undefined;

/** The compiled schemas; the document is read and compiled once per process. */
export function messageSchemas(): MessageSchemas {
  cache ??= load();
  return cache;
}

function abbreviate(frame: unknown): string {
  const text = JSON.stringify(frame) ?? String(frame);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

function check(direction: Direction, frame: unknown): void {
  const messages = messageSchemas()[direction];
  if (!isRecord(frame)) throw new Error(`${direction} frame is not a JSON object: ${abbreviate(frame)}`);
  const type = frame.type;
  if (typeof type !== 'string') throw new Error(`${direction} frame has no string "type": ${abbreviate(frame)}`);
  const message = messages.get(type);
  if (message === undefined)
    throw new Error(`${direction} message type "${type}" is not in docs/asyncapi.yaml: ${abbreviate(frame)}`);
  if (!message.validate(frame)) {
    const errors = (message.validate.errors ?? []).map(
      (e) =>
        `${e.instancePath || '/'} ` +
        `${e.message ?? e.keyword}${e.params === undefined ? '' : ` ${JSON.stringify(e.params)}`}`,
    );
    throw new Error(
      `${direction} message "${type}" does not match docs/asyncapi.yaml: ${errors.join('; ')}; frame: ` +
        `${abbreviate(frame)}`,
    );
  }
}

/** Throws, naming the type and ajv's errors, unless `frame` is a server message of docs/asyncapi.yaml. */
export function checkServerMessage(frame: unknown): void {
  check('server', frame);
}

/** Throws, naming the type and ajv's errors, unless `frame` is a client request of docs/asyncapi.yaml. */
export function checkClientMessage(frame: unknown): void {
  check('client', frame);
}
