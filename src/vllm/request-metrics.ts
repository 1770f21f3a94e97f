/**
 * vLLM's per-request timing (`--enable-per-request-metrics`, seen in vLLM 0.32.0) and how a
 * probe's client TTFT splits against it. Pure.
 *
 * vLLM puts a `metrics` object on the usage chunk of a stream (only when the usage chunk is
 * requested) and on JSON bodies: `time_to_first_token_ms`, `generation_time_ms`,
 * `queue_time_ms`, `mean_itl_ms`, `tokens_per_second` (vllm/entrypoints/generate/base/serving.py
 * build_per_request_timing_metrics). Its `time_to_first_token_ms` counts from *scheduling*, not
 * arrival: the engine's view of TTFT is queue time + that.
 */

/** vLLM's timing of one request, in milliseconds (tokens/s for the rate); a missing field is absent. */
export interface ServerRequestTiming {
  time_to_first_token_ms?: number;
  queue_time_ms?: number;
  generation_time_ms?: number;
  mean_itl_ms?: number;
  tokens_per_second?: number;
}

const FIELDS = ['time_to_first_token_ms', 'queue_time_ms', 'generation_time_ms', 'mean_itl_ms', 'tokens_per_second'] as const;

/**
 * Reads the `metrics` object of a parsed chunk or JSON body. Undefined when there is none (the
 * server runs without the flag, or the usage chunk was not requested) or none of its fields is a
 * finite, non-negative number; unknown keys (speculative_decoding…) are ignored.
 */
export function readRequestMetrics(body: unknown): ServerRequestTiming | undefined {
  const m = (body as { metrics?: unknown } | null | undefined)?.metrics;
  if (typeof m !== 'object' || m === null) return undefined;
  const out: ServerRequestTiming = {};
  for (const k of FIELDS) {
    const v = (m as Record<string, unknown>)[k];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) out[k] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

/** A probe's TTFT split, in seconds (the share 0-1). */
export interface TtftSplit {
  /** vLLM's TTFT from when its engine queued the request: queue + scheduled → first token. */
  server: number;
  queue: number;
  /** Client TTFT − server TTFT: network, HTTP server, tokenisation and client; never below 0. */
  gap: number;
  /** queue / client TTFT, 0-1. */
  queueShare: number;
}

/** Splits a client TTFT (seconds) with vLLM's timing; undefined without both TTFT and queue time. */
export function splitTtft(clientTtft: number, timing: ServerRequestTiming | undefined): TtftSplit | undefined {
  if (!timing || timing.time_to_first_token_ms === undefined || timing.queue_time_ms === undefined || !(clientTtft > 0)) return undefined;
  const queue = timing.queue_time_ms / 1000;
  const server = queue + timing.time_to_first_token_ms / 1000;
  return { server, queue, gap: Math.max(0, clientTtft - server), queueShare: Math.min(1, queue / clientTtft) };
}
