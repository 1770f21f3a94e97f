/**
 * The probe contract. A probe kind is one file exporting a `ProbeKindSpec`, one entry in the
 * `probers` map (./index.ts) and one config block; the scheduler times it, applies its
 * timeout, records the generic metrics from its `ProbeResult` and sets its /status checks.
 * A probe keeps its state in the instance `create()` returns, never at module level, and
 * never writes /status itself.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import type { Verdict } from '../status.js';
import type { TargetTracker } from '../target.js';
import type { VllmClient } from '../vllm/client.js';
import type { Outcome, Usage } from '../vllm/stream.js';

export interface ProbeContext {
  /** Aborts on shutdown or timeout; for side reads (tokenize, /metrics). The probe must stop promptly. */
  signal: AbortSignal;
  /** Aborts on shutdown only: pass it to streams, which time themselves with `timeoutMs`, so a
   *  timeout is counted as a timeout and only shutdown discards a result. */
  shutdown: AbortSignal;
  /** Milliseconds left for this run; pass to every request the probe makes. */
  timeoutMs: number;
  log: Logger;
  config: Config;
  client: VllmClient;
  tracker: TargetTracker;
  /** For the probe's own observations (TTFT histograms…); the generic series are the scheduler's. */
  metrics: Metrics;
}

/** One HTTP request a probe made, for requests_total / request_duration / tokens. */
export interface RequestRecord {
  outcome: Outcome;
  seconds: number;
  usage?: Usage;
}

/** A verdict a probe reaches about the server, set on /status by the scheduler. */
export interface CheckVerdict {
  name: string;
  status: Verdict;
  reason: string;
}

/**
 * Resolves with success=false for anything the server did wrong; throws only for bugs in this
 * daemon. `aborted` means shutdown interrupted it and nothing should be counted.
 */
export interface ProbeResult {
  success: boolean;
  outcome: Outcome;
  detail?: string;
  aborted?: boolean;
  /** Every request made, in order. */
  requests: RequestRecord[];
  /** Client TTFT in seconds of the probe's main request, for the latency check. */
  ttftSeconds?: number;
  /** Mean gap between streamed tokens of that request, seconds (the fleet endpoint's ITL gauge). */
  itlSeconds?: number;
  /** That request from sending to the end of its response, seconds (the fleet endpoint's E2E gauge). */
  e2eSeconds?: number;
  /** Verdicts on the kind's own checks (see ProbeKindSpec.checks). */
  checks?: CheckVerdict[];
  /** The server asked us to come back later (Retry-After): skip runs until then. */
  retryAfterSeconds?: number;
}

export interface ProbeInstance {
  run(ctx: ProbeContext): Promise<ProbeResult>;
}

export interface ProbeKindSpec<C> {
  /** /status checks this kind reports on, besides its own `probe_<kind>` line. */
  readonly checks: readonly string[];
  /** What a failed run leaves us unable to judge, in words for those checks. */
  readonly describe: string;
  create(config: C): ProbeInstance;
  /** Kind-specific series to create at 0 for a model (the generic ones are created for all). */
  preinitialise?(metrics: Metrics, model: string): void;
}

/** The record of one request from a finished stream. */
export function requestRecord(outcome: Outcome, seconds: number, usage: Usage | undefined): RequestRecord {
  return usage ? { outcome, seconds, usage } : { outcome, seconds };
}
