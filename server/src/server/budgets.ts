/**
 * Request budgets: each connection's own (RateLimitPerSecond, RateLimitBurst) and the server-wide
 * ones shared by every connection (SignatureChecksPerSecond, JsonContainersPerSecond). A refusal
 * from a server-wide budget is no strike: a connection cannot help that others use it up.
 */
import { MAX_JSON_CONTAINERS } from '../protocol/request-parser.js';
import type { RegistryLimits } from './config.js';
import { TokenBucket } from './token-bucket.js';

export class Budgets {
  private readonly signatureChecks: TokenBucket;
  /** Parsing of frames of many arrays and objects, in requestCost tokens. */
  private readonly containers: TokenBucket;
  private readonly containerTokensPerSecond: number;

  constructor(private readonly limits: RegistryLimits) {
    this.containerTokensPerSecond = limits.jsonContainersPerSecond / MAX_JSON_CONTAINERS;
    this.containers = new TokenBucket(this.containerTokensPerSecond, this.containerTokensPerSecond);
    this.signatureChecks = new TokenBucket(limits.signatureChecksPerSecond, limits.signatureChecksPerSecond);
  }

  /** A new connection's own request budget. */
  connectionBucket(): TokenBucket {
    return new TokenBucket(this.limits.rateLimitPerSecond, this.limits.rateLimitBurst);
  }

  /** Charges a frame of `cost` requestCost tokens to its connection; never more than a full burst. */
  takeRequest(bucket: TokenBucket, cost: number): boolean {
    return bucket.take(Math.min(cost, this.limits.rateLimitBurst));
  }

  /** Charges a frame of many arrays and objects to the server; never more than a second's worth. */
  takeContainers(cost: number): boolean {
    return this.containers.take(Math.min(cost, this.containerTokensPerSecond));
  }

  /** One signature check (and the key parse before it). */
  takeSignatureCheck(): boolean {
    return this.signatureChecks.take();
  }
}
