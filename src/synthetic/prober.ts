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
import type { Outcome, StreamResult, Usage } from '../vllm/stream.js';
import type { KeySource } from './request.js';

/** How a probe request ended, for the wedge detector. */
export interface RequestEnd {
  gotToken: boolean;
  /** Response headers arrived. */
  headers: boolean;
  timedOut: boolean;
  timeoutS: number;
}

/** Told about every probe request: which ones wait for a token, and how they ended. */
export interface RequestWatcher {
  requestStarted(): (end: RequestEnd) => void;
}

/** For runs nobody watches (a fleet /probe request). */
export const UNWATCHED: RequestWatcher = { requestStarted: () => () => undefined };

/** Streams a request with the watcher told about it. */
export async function watchedStream(ctx: ProbeContext, req: Parameters<ProbeContext['client']['stream']>[0]): Promise<StreamResult> {
  const end = ctx.watcher.requestStarted();
  const r = await ctx.client.stream(req);
  end({ gotToken: r.tokenAt.length > 0, headers: r.headersAt !== undefined, timedOut: r.outcome === 'timeout_before_first_token' || r.outcome === 'timeout_mid_stream', timeoutS: req.timeoutMs / 1000 });
  return r;
}

export interface ProbeContext {
  /** Aborts on shutdown or timeout; for side reads (tokenize, /metrics). The probe must stop promptly. */
  signal: AbortSignal;
  /** Aborts on shutdown only: pass it to streams, which time themselves with `timeoutMs`, so a
   *  timeout is counted as a timeout and only shutdown discards a result. */
  shutdown: AbortSignal;
  /** Milliseconds left for this run; pass to every request the probe makes. */
  timeoutMs: number;
  log: Logger;
  /** Where the API key comes from, named when vLLM refuses it. */
  keySource: KeySource;
  /** The thresholds a kind's own checks are judged against (status.*). */
  thresholds: Config['status'];
  client: VllmClient;
  tracker: TargetTracker;
  /** For the probe's own observations (TTFT histograms…); the generic series are the scheduler's. */
  metrics: Metrics;
  watcher: RequestWatcher;
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
  /** HTTP status of the failed request, when it got an answer (401, 404, 500 …). */
  status?: number;
  /** The server asked us to come back later (Retry-After): skip runs until then. */
  retryAfterSeconds?: number;
  /** X-Request-Id of the failed request, logged with the failure so it can be found in vLLM's logs. */
  requestId?: string;
}

export interface ProbeInstance {
  run(ctx: ProbeContext): Promise<ProbeResult>;
}

export interface ProbeKindSpec<C> {
  /** Whether it sends inference to the engine (not sent while vLLM sleeps on purpose). */
  readonly sendsInference: boolean;
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
