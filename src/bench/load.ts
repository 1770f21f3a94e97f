/**
 * Closed-loop load for the bench commands: `concurrency` workers, each sending its next
 * streaming request as soon as the previous one ends, until a duration or request count is
 * reached. Every request is timed by the same client as the TTFT probe (src/vllm/stream.ts), so
 * bench numbers and probe numbers mean the same thing; bench counts token events without
 * parsing them (countOnly).
 *
 * A run that keeps failing stops itself: after `maxConsecutiveFailures` failures in a row no
 * worker starts another request, and the result says why (`stopped`). Between a failure and
 * the worker's next request there is a growing pause (100 ms doubling up to 2 s), so a dead or
 * misconfigured server is not hammered with thousands of requests a second.
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
  /** Why it failed, in words: "HTTP 404: The model `x` does not exist." */
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
  /** Stop the whole load after this many failed requests in a row (default 5). */
  maxConsecutiveFailures?: number;
  /** First pause after a failure in ms, doubled per further failure up to 2 s (default 100). */
  backoffMs?: number;
}

export interface LoadResult {
  records: RequestRecord[];
  /** Set when the load stopped early because requests kept failing. */
  stopped?: { failures: number; reason: string };
}

const MAX_BACKOFF_MS = 2000;

/**
 * Runs the load and returns one record per finished request, in completion order, and
 * `stopped` when it ended early on `maxConsecutiveFailures` failures in a row (default 5).
 */
export async function runLoadChecked(target: LoadTarget, opts: LoadOptions): Promise<LoadResult> {
  const limit = opts.maxConsecutiveFailures ?? 5;
  const backoff = opts.backoffMs ?? 100;
  const records: RequestRecord[] = [];
  const t0 = performance.now();
  let issued = 0;
  let failuresInARow = 0;
  let stopped: LoadResult['stopped'];
  const more = () => !opts.signal.aborted && !stopped && (opts.requests === undefined || issued < opts.requests) && (opts.durationMs === undefined || performance.now() - t0 < opts.durationMs);
  // Each worker's requests listen on the worker's own signal, and one listener on the caller's
  // aborts them all: with every request on the shared signal, each add and remove walked all
  // 2,000 listeners (7 % of the CPU at 2,000 streams, docs/benchmarks.md R9).
  const workers = new Set<AbortController>();
  const abortAll = () => {
    for (const w of workers) w.abort(opts.signal.reason);
  };
  opts.signal.addEventListener('abort', abortAll, { once: true });
  const worker = async () => {
    const own = new AbortController();
    workers.add(own);
    try {
      await work(own.signal);
    } finally {
      workers.delete(own);
    }
  };
  const work = async (signal: AbortSignal) => {
    let myFailures = 0;
    while (more()) {
      const i = issued++;
      const r = await target.client.stream({ path: '/v1/completions', body: streamingBody(target.model, opts.body(i)), signal, timeoutMs: opts.timeoutMs, countOnly: true });
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
      if (rec.outcome === 'success') {
        failuresInARow = 0;
        myFailures = 0;
        continue;
      }
      failuresInARow++;
      myFailures++;
      if (failuresInARow >= limit) {
        stopped ??= { failures: failuresInARow, reason: describeFailure(rec) };
        return;
      }
      // A server that sheds load says when to come back (Retry-After); otherwise back off.
      if (r.retryAfterSeconds !== undefined && backoff > 0) await pause(Math.min(60_000, r.retryAfterSeconds * 1000), signal);
      else if (backoff > 0) await pause(Math.min(MAX_BACKOFF_MS, backoff * 2 ** (myFailures - 1)), signal);
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    opts.signal.removeEventListener('abort', abortAll);
  }
  return stopped ? { records, stopped } : { records };
}

/**
 * The plain load (benchmarks/ use it to measure the client): every request runs whatever
 * happens, no pause after failures; one record per finished request, in completion order.
 */
export async function runLoad(target: LoadTarget, opts: LoadOptions): Promise<RequestRecord[]> {
  return (await runLoadChecked(target, { maxConsecutiveFailures: Infinity, backoffMs: 0, ...opts })).records;
}

/** One failed request in words: the outcome, then vLLM's status and message when there is one. */
export function describeFailure(r: Pick<RequestRecord, 'outcome' | 'detail'>): string {
  return r.detail ? `${r.outcome.replaceAll('_', ' ')}: ${r.detail}` : r.outcome.replaceAll('_', ' ');
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * A prompt of `words` words whose first words are unique to request `seed`, so no two
 * requests share a cacheable prefix (vLLM caches whole 16-token blocks from the start of the
 * prompt: a shared opening would be served from the prefix cache and skew TTFT).
 */
export function fillerPrompt(words: number, seed = 0, runId = ''): string {
  const vocab = ['system', 'latency', 'token', 'cache', 'batch', 'queue', 'model', 'server', 'request', 'stream', 'memory', 'block', 'prefix', 'decode', 'prefill', 'engine'];
  const out: string[] = [`Request ${runId ? `${runId}-` : ''}${seed}:`];
  for (let i = 1; i < words; i++) out.push(vocab[(i * 7 + seed * 13) % vocab.length]!);
  return out.slice(0, Math.max(1, words)).join(' ');
}
