/**
 * Request budgets: each connection's own (RateLimitPerSecond, RateLimitBurst) and the server-wide
 * ones (SignatureChecksPerSecond, JsonContainersPerSecond), shared fairly between the connections
 * that want them (fair-share.ts). A refusal from a server-wide budget is no strike: a connection
 * cannot help that others use it up; it carries retryAfterMs, when a retry can succeed.
 */
import { MAX_JSON_CONTAINERS } from '../../protocol/request-parser.js';
import type { RegistryLimits } from '../config/config.js';
import { FairShare } from './fair-share.js';
import { TokenBucket } from './token-bucket.js';

/** A point check, in units of the signature budget (a key read and its signature check). */
const POINT_CHECK_UNITS = 4;

export class Budgets {
  private readonly signatureChecks: FairShare<object>;
  /** Parsing of frames of many arrays and objects, in requestCost tokens. */
  private readonly containers: FairShare<object>;
  private readonly containerTokensPerSecond: number;

  constructor(
    private readonly limits: Pick<
      RegistryLimits,
      'rateLimitPerSecond' | 'rateLimitBurst' | 'signatureChecksPerSecond' | 'jsonContainersPerSecond'
    >,
  ) {
    this.containerTokensPerSecond = limits.jsonContainersPerSecond / MAX_JSON_CONTAINERS;
    this.containers = new FairShare(this.containerTokensPerSecond);
    this.signatureChecks = new FairShare(limits.signatureChecksPerSecond);
  }

  /** A new connection's own request budget. */
  connectionBucket(): TokenBucket {
    return new TokenBucket(this.limits.rateLimitPerSecond, this.limits.rateLimitBurst);
  }

  /** Charges a frame of `cost` requestCost tokens to its connection; never more than a full burst. */
  takeRequest(bucket: TokenBucket, cost: number): boolean {
    return bucket.take(Math.min(cost, this.limits.rateLimitBurst));
  }

  /**
   * Charges a frame of many arrays and objects to the server's share of `conn`; never more than a
   * second's worth. 0 when granted, else the milliseconds until a retry can succeed.
   */
  takeContainers(conn: object, cost: number): number {
    return this.containers.take(conn, Math.min(cost, this.containerTokensPerSecond));
  }

  /** One signature check (and the key parse before it): 0 when granted, else retryAfterMs. */
  takeSignatureCheck(conn: object): number {
    return this.signatureChecks.take(conn);
  }

  /**
   * A registration's checks, taken before any of them runs: reading its key and checking its
   * signature (one unit), and (erratum 1) `pointChecks` checks of Ed25519 points, each of which
   * costs the main thread as much as several key reads. Never more than a second's worth, so that
   * a small budget still admits a registration a second. 0 when granted, else retryAfterMs.
   */
  takeRegistrationChecks(conn: object, pointChecks: number): number {
    return this.take(conn, 1 + pointChecks * POINT_CHECK_UNITS);
  }

  /** Point checks found needed only once the key was read (an Ed25519 key in an unusual layout). */
  takePointChecks(conn: object, pointChecks: number): number {
    return pointChecks === 0 ? 0 : this.take(conn, pointChecks * POINT_CHECK_UNITS);
  }

  private take(conn: object, units: number): number {
    return this.signatureChecks.take(conn, Math.min(units, this.limits.signatureChecksPerSecond));
  }
}
