/**
 * What happens to one frame: binary refusal, the request budgets and the strike rule, parsing, and
 * the dispatch of the request to its handler. Every request gets exactly one reply (registrations
 * get theirs from the Registrar once the signature is checked).
 */
import type { RawData } from 'ws';
import { RegistryError } from '../../protocol/errors.js';
import { frameBytes } from '../../protocol/json-frame.js';
import {
  NICKNAME_PATTERN,
  type ListRequest,
  type LookupRequest,
  type Request,
  type RequestId,
} from '../../protocol/messages.js';
import { parseRequest, requestCost, type ParseResult } from '../../protocol/request-parser.js';
import type { Budgets } from '../scheduling/budgets.js';
import type { RegistryLimits } from '../config/config.js';
import type { PeerConnection } from '../connection/peer-connection.js';
import type { EventHub } from './event-hub.js';
import { backlogLength } from '../scheduling/fair-scheduler.js';
import type { OpenConnections } from '../connection/open-connections.js';
import type { PeerTable } from './peer-table.js';
import type { Registrar } from './registration.js';
import type { PeerOwner } from './roster.js';
import { CLOSINGS, REFUSALS, refuse, type Refusal } from './refusals.js';
import type { RequestCounts } from '../../metrics/request-counts.js';

/** The limits Dispatch reads: its slice of the configuration. */
export type DispatchLimits = Pick<RegistryLimits, 'rateLimitPerSecond' | 'rateLimitBurst' | 'rateLimitStrikes'>;

export interface DispatcherOptions {
  readonly limits: DispatchLimits;
  readonly budgets: Budgets;
  readonly peers: PeerTable<PeerOwner>;
  readonly hub: EventHub;
  readonly registrar: Registrar;
  readonly connections: OpenConnections;
  readonly counts: RequestCounts;
}

export class Dispatcher {
  private readonly limits: DispatchLimits;
  private readonly budgets: Budgets;
  private readonly peers: PeerTable<PeerOwner>;
  private readonly hub: EventHub;
  private readonly registrar: Registrar;
  private readonly connections: OpenConnections;
  private readonly counts: RequestCounts;

  constructor(options: DispatcherOptions) {
    this.counts = options.counts;
    this.limits = options.limits;
    this.budgets = options.budgets;
    this.peers = options.peers;
    this.hub = options.hub;
    this.registrar = options.registrar;
    this.connections = options.connections;
  }

  /**
   * Handles one frame of `conn` (the fair scheduler decides when). A bug in it is caught here, where
   * it is known to concern this connection: answered INTERNAL, and the connection alone is closed.
   */
  handleFrame(conn: PeerConnection, data: RawData, isBinary: boolean): void {
    try {
      this.handle(conn, data, isBinary);
    } catch (err) {
      conn.log.error({ err }, 'frame handling failed');
      try {
        conn.reply(null, refuse(REFUSALS.internal));
      } catch (again) {
        conn.log.error({ err: again }, 'frame handling failed, and so did its answer: dropping the connection');
        conn.terminate();
      }
    }
  }

  private handle(conn: PeerConnection, data: RawData, isBinary: boolean): void {
    if (conn.closing) return;
    if (isBinary) {
      conn.reply(null, refuse(REFUSALS.binaryFrame));
      conn.close(CLOSINGS.binaryFrame);
      return;
    }
    const parsed = this.chargeAndParse(conn, frameBytes(data));
    if (parsed === undefined) return;
    // One request that finds a token takes back one strike, not all: a steady flood above the rate
    // gets a token now and then and would otherwise never be closed.
    if (conn.strikes > 0) conn.strikes -= 1;
    if (!parsed.ok) {
      conn.reply(parsed.id, parsed.error);
      return;
    }
    this.connections.markActive(conn);
    const started = performance.now();
    conn.requestStartedAt = started;
    try {
      this.dispatch(conn, parsed.request);
    } catch (err) {
      const error = err instanceof RegistryError ? err : refuse(REFUSALS.internal);
      if (error !== err) conn.log.error({ err }, 'request failed');
      this.count(parsed.request.type, started, error.code);
      conn.reply(parsed.request.id, error);
      return;
    }
    this.count(parsed.request.type, started, null);
  }

  /**
   * Counts a request answered here (a registration answered later is the registrar's to count):
   * plain increments, no allocation (metrics/request-counts.ts).
   */
  private count(type: Request['type'], started: number, refusedWith: string | null): void {
    const { counts } = this;
    if (type === 'register') {
      if (refusedWith !== null) counts.registrationRefused(refusedWith, started);
      return;
    }
    if (refusedWith === null) counts.answered(type);
    else counts.failed(type);
    if (type === 'lookup') counts.durations.lookup.observeSince(started);
    else if (type === 'list') counts.durations.list.observeSince(started);
  }

  /**
   * Charges the frame to the budgets and parses it; undefined when it was refused (answered). A
   * plain request is parsed first, so that even its RATE_LIMITED reply carries its id. A frame of
   * many arrays and objects is paid for first (the connection's budget, then the server's); one
   * that either cannot cover is not read at all.
   */
  private chargeAndParse(conn: PeerConnection, bytes: Buffer): ParseResult | undefined {
    const cost = requestCost(bytes);
    if (cost === 1) {
      const parsed = parseRequest(bytes);
      if (conn.bucket.take()) return parsed;
      this.refuseOverBudget(
        conn,
        parsed.ok ? parsed.request.id : parsed.id,
        REFUSALS.overRate(this.limits.rateLimitPerSecond),
        conn.bucket.msUntil(),
      );
      return undefined;
    }
    if (!this.budgets.takeRequest(conn.bucket, cost)) {
      this.refuseOverBudget(
        conn,
        null,
        REFUSALS.overRateUnread(this.limits.rateLimitPerSecond, cost),
        conn.bucket.msUntil(cost),
      );
      return undefined;
    }
    // Like the signature budget: shared by everyone, so refusing here adds no strike.
    const retryAfterMs = this.budgets.takeContainers(conn, cost);
    if (retryAfterMs > 0) {
      conn.reply(null, refuse(REFUSALS.serverBusyParsing, retryAfterMs));
      return undefined;
    }
    return parseRequest(bytes);
  }

  /**
   * Answers `count` frames that came past the connection's full queue (fair-scheduler.ts), in
   * their place among the replies. They were not read, so their ids are unknown (null), and each is
   * a strike: the queue is the connection's own doing.
   */
  refuseExcess(conn: PeerConnection, count: number): void {
    const refusal = REFUSALS.queueFull(backlogLength(this.limits));
    const retryAfterMs = conn.bucket.msUntil(count);
    for (let i = 0; i < count && !conn.closing; i += 1) this.refuseOverBudget(conn, null, refusal, retryAfterMs);
  }

  /** The strike rule: refused requests that outnumber accepted ones by RateLimitStrikes close it. */
  private refuseOverBudget(conn: PeerConnection, id: RequestId, refusal: Refusal, retryAfterMs: number): void {
    conn.strikes += 1;
    if (conn.strikes >= this.limits.rateLimitStrikes) {
      conn.reply(id, refuse(REFUSALS.overRateClosing));
      conn.close(CLOSINGS.overBudget);
      return;
    }
    conn.reply(id, refuse(refusal, retryAfterMs));
  }

  private dispatch(conn: PeerConnection, request: Request): void {
    switch (request.type) {
      case 'ping':
        conn.send({ type: 'pong', id: request.id });
        return;
      case 'lookup':
        return this.lookup(conn, request);
      case 'list':
        return this.list(conn, request);
      case 'subscribe':
        // No cap: a subscriber's memory is bounded by the output limits, like any reader's.
        this.hub.subscribe(conn);
        conn.send({ type: 'subscribed', id: request.id });
        return;
      case 'unregister':
        // revision 2: replies once the claim is deleted
        if (request.release) return this.registrar.release(conn, request.id);
        return this.registrar.unregister(conn, request.id);
      case 'register':
        return this.registrar.register(conn, request);
    }
  }

  /** Replies are spliced from each peer's cached JSON: no re-serialising on the hot path. */
  private lookup(conn: PeerConnection, request: LookupRequest): void {
    const found = NICKNAME_PATTERN.test(request.nickname) ? this.peers.lookup(request.nickname) : undefined;
    if (found === undefined) throw refuse(REFUSALS.notFound);
    conn.sendText(`{"type":"peer","id":${JSON.stringify(request.id)},"peer":${found.json}}`);
  }

  private list(conn: PeerConnection, request: ListRequest): void {
    const page = this.peers.list(request.after, request.limit);
    const peers = page.entries.map((entry) => entry.json).join(',');
    conn.sendText(
      `{"type":"peers","id":${JSON.stringify(request.id)},"peers":[${peers}],"next":${JSON.stringify(page.next)}}`,
    );
  }
}
