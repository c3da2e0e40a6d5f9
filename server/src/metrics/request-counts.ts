/**
 * Requests by type and result, registrations by result, and the durations of register, lookup and
 * list: plain numbers in structures made once, so that counting a request allocates nothing. The
 * dispatcher counts the requests it answers at once; the registrar the registrations it answers
 * later. Prometheus reads them when it scrapes (registry-metrics.ts).
 */
import { ErrorCode } from '../protocol/errors.js';
import type { Request } from '../protocol/messages.js';
import { LatencyHistogram } from './latency-histogram.js';

export type RequestType = Request['type'];
export const REQUEST_TYPES: readonly RequestType[] = ['ping', 'lookup', 'list', 'subscribe', 'unregister', 'register'];
const INDEX: Readonly<Record<RequestType, number>> = {
  ping: 0,
  lookup: 1,
  list: 2,
  subscribe: 3,
  unregister: 4,
  register: 5,
};

/** Every protocol error code, each with its count (all present from the start: a stable shape). */
export type CodeCounts = Record<string, number>;

export function zeroCodeCounts(): CodeCounts {
  const counts: CodeCounts = {};
  for (const code of Object.keys(ErrorCode)) counts[code] = 0;
  return counts;
}

export class RequestCounts {
  /** Requests answered with their result, by type (INDEX). */
  readonly ok = new Float64Array(REQUEST_TYPES.length);
  /** Requests answered with an error, by type. */
  readonly refused = new Float64Array(REQUEST_TYPES.length);
  readonly durations = {
    register: new LatencyHistogram(),
    lookup: new LatencyHistogram(),
    list: new LatencyHistogram(),
  } as const;
  registered = 0;
  /** Registrations refused, by error code. */
  readonly registrationRefusals: CodeCounts = zeroCodeCounts();

  answered(type: RequestType): void {
    const i = INDEX[type];
    this.ok[i] = (this.ok[i] as number) + 1;
  }

  failed(type: RequestType): void {
    const i = INDEX[type];
    this.refused[i] = (this.refused[i] as number) + 1;
  }

  /** A registration answered `registered`, `startedMs` after its request was dispatched. */
  registration(startedMs: number): void {
    this.registered += 1;
    this.answered('register');
    this.durations.register.observeSince(startedMs);
  }

  /** A registration refused with `code`. */
  registrationRefused(code: string, startedMs: number): void {
    if (code in this.registrationRefusals)
      this.registrationRefusals[code] = (this.registrationRefusals[code] as number) + 1;
    this.failed('register');
    this.durations.register.observeSince(startedMs);
  }

  /** Counts of `type`: [ok, refused]. */
  countsOf(type: RequestType): readonly [number, number] {
    const i = INDEX[type];
    return [this.ok[i] as number, this.refused[i] as number];
  }
}
