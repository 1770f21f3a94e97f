/**
 * Closed-loop load for the bench commands: `concurrency` workers, each sending its next
 * streaming request as soon as the previous one ends, until a duration or request count is
 * reached. Every request is timed by the same client as the TTFT probe (src/vllm/stream.ts),
 * so bench numbers and probe numbers mean the same thing; bench counts token events without
 * parsing them (countOnly) and needs no AbortSignal per request.
 */
import { performance } from 'node:perf_hooks';
import type { VllmClient } from '../vllm/client.js';
import { deriveTimings, streamingBody, type Outcome } from '../vllm/stream.js';

export interface RequestRecord {
  /** ms since the load started */
  start: number;
  end: number;
  outcome: Outcome;
  ttft?: number;
  e2e: number;
  promptTokens?: number;
  outputTokens?: number;
  cachedTokens?: number;
  detail?: string;
}

export interface LoadTarget {
  client: VllmClient;
  model: string;
}

export interface LoadOptions {
  concurrency: number;
  /** Stop starting requests after this many ms (closed loop: in-flight ones finish). */
  durationMs?: number;
  /** Or after this many requests in total. */
  requests?: number;
  /** Builds the body for request number i (prompt, salt…); model, stream flags are added. */
  body: (i: number) => Record<string, unknown>;
  timeoutMs: number;
  signal: AbortSignal;
  onProgress?: (done: number) => void;
}

/** Runs the load and returns one record per finished request, in completion order. */
export async function runLoad(target: LoadTarget, opts: LoadOptions): Promise<RequestRecord[]> {
  const records: RequestRecord[] = [];
  const t0 = performance.now();
  let issued = 0;
  const more = () => !opts.signal.aborted && (opts.requests === undefined || issued < opts.requests) && (opts.durationMs === undefined || performance.now() - t0 < opts.durationMs);
  const worker = async () => {
    while (more()) {
      const i = issued++;
      const r = await target.client.stream({ path: '/v1/completions', body: streamingBody(target.model, opts.body(i)), signal: opts.signal, timeoutMs: opts.timeoutMs, countOnly: true });
      if (r.aborted) return;
      const t = deriveTimings(r);
      const rec: RequestRecord = { start: r.startedAt - t0, end: r.endedAt - t0, outcome: r.outcome, e2e: t.e2e };
      if (t.ttft !== undefined) rec.ttft = t.ttft;
      if (r.usage?.prompt_tokens !== undefined) rec.promptTokens = r.usage.prompt_tokens;
      if (r.usage?.completion_tokens !== undefined) rec.outputTokens = r.usage.completion_tokens;
      const cached = r.usage?.cached_tokens;
      if (typeof cached === 'number') rec.cachedTokens = cached;
      if (r.detail) rec.detail = r.detail;
      records.push(rec);
      opts.onProgress?.(records.length);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return records;
}

/** A deterministic filler prompt of roughly `words` words. */
export function fillerPrompt(words: number, seed = 0): string {
  const vocab = ['system', 'latency', 'token', 'cache', 'batch', 'queue', 'model', 'server', 'request', 'stream', 'memory', 'block', 'prefix', 'decode', 'prefill', 'engine'];
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(vocab[(i * 7 + seed * 13) % vocab.length]!);
  return out.join(' ');
}
