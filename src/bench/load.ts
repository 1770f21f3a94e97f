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
 *
 * At most STARTS_PER_TURN requests begin in one turn of the event loop; the rest wait for the
 * next turn. With fixed-length streams every worker ends and restarts in the same instant
 * (issue 28: 2,000 streams of 150 tokens at 10 tokens/s ended together every 15 s, and
 * building and writing 2,000 requests in one turn stalled the loop for 160–194 ms, moving the
 * TTFT of every request whose first token arrived meanwhile). Spread over turns, the restarts
 * fall out of step and stay out of step. A request's clock starts when it is handed to undici,
 * so the wait for a turn is not in its TTFT.
 *
 * The load measures its own event-loop delay (`clientDelay`): a stalled loop time-stamps
 * tokens late, so a report can say when the client, not the server, could have moved a figure.
 */
import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import type { VllmClient } from '../vllm/client.js';
import { streamingBody, type Outcome } from '../vllm/stream.js';

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
  /** The client's event-loop delay is recorded from this many ms after the start (default 0). */
  warmupMs?: number;
  /** Stop the whole load after this many failed requests in a row (default 5). */
  maxConsecutiveFailures?: number;
  /** First pause after a failure in ms, doubled per further failure up to 2 s (default 100). */
  backoffMs?: number;
}

export interface LoadResult {
  records: RequestRecord[];
  /** Set when the load stopped early because requests kept failing. */
  stopped?: { failures: number; reason: string };
  /** This process's event-loop delay while the load ran (after `warmupMs`). */
  clientDelay: ClientDelay;
}

/**
 * The load client's own event-loop delay (perf_hooks monitorEventLoopDelay, 1 ms resolution;
 * delay = recorded interval − 1 ms), in ms. A token that arrives during a delay of D ms is
 * time-stamped up to D ms late.
 */
export interface ClientDelay {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Intervals recorded; 0 when the load was shorter than the resolution. */
  samples: number;
}

const MAX_BACKOFF_MS = 2000;
/** Most requests begun in one event-loop turn: ~3 ms of request building and writing at ~0.1 ms each. */
export const STARTS_PER_TURN = 32;
const ELD_RESOLUTION_MS = 1;

/**
 * Runs the load and returns one record per finished request, in completion order, the
 * client's own event-loop delay, and `stopped` when it ended early on `maxConsecutiveFailures`
 * failures in a row (default 5).
 */
/**
 * A load client allowed one core (taskset, a one-CPU cpuset) scavenges on its main thread.
 * V8's parallel scavenge hands parts of each young-generation GC to helper threads; on the same
 * core they run only when the main thread is descheduled, and it waits for them: at 2,000
 * streams, scavenges of 17–42 ms and event-loop stalls of 43–64 ms, one or two per 15 s, each
 * added to the TTFT of every stream whose token arrived meanwhile (TTFT p99 17 ms against 5.5 ms
 * without; docs/benchmarks.md, benchmark 2b; issue 28). With more cores the helpers shorten the
 * pause, so they stay. V8 reads this flag at each scavenge, so setting it now is safe (the
 * --single-threaded-gc that would also cover marking cannot be set after start-up).
 */
export function scavengeOnMainThreadIfOneCore(cores = availableParallelism()): boolean {
  if (cores > 1) return false;
  setFlagsFromString('--no-parallel-scavenge');
  return true;
}

export async function runLoadChecked(target: LoadTarget, opts: LoadOptions): Promise<LoadResult> {
  scavengeOnMainThreadIfOneCore();
  const limit = opts.maxConsecutiveFailures ?? 5;
  const backoff = opts.backoffMs ?? 100;
  const records: RequestRecord[] = [];
  const gate = new StartGate(STARTS_PER_TURN);
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  const warm = opts.warmupMs ?? 0;
  const eldStart = warm > 0 ? setTimeout(() => eld.enable(), warm) : (eld.enable(), undefined);
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
      await gate.turn();
      if (!more()) return;
      const i = issued++;
      const r = await target.client.stream({ path: '/v1/completions', body: streamingBody(target.model, opts.body(i)), signal, timeoutMs: opts.timeoutMs, countOnly: true });
      if (r.aborted) return;
      // TTFT and E2E only (deriveTimings would also build the inter-token gaps, unused here).
      const rec: RequestRecord = { start: r.startedAt - t0, end: r.endedAt - t0, outcome: r.outcome, e2e: (r.endedAt - r.startedAt) / 1000 };
      const first = r.tokenAt[0];
      if (first !== undefined) rec.ttft = (first - r.startedAt) / 1000;
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
    clearTimeout(eldStart);
    eld.disable();
  }
  const clientDelay = delayOf(eld);
  return stopped ? { records, stopped, clientDelay } : { records, clientDelay };
}

function delayOf(eld: ReturnType<typeof monitorEventLoopDelay>): ClientDelay {
  if (eld.count === 0) return { p50Ms: 0, p99Ms: 0, maxMs: 0, samples: 0 };
  const ms = (ns: number) => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS);
  return { p50Ms: ms(eld.percentile(50)), p99Ms: ms(eld.percentile(99)), maxMs: ms(eld.max), samples: eld.count };
}

/**
 * Lets at most `perTurn` callers through per event-loop turn; the others are let through, in
 * arrival order, `perTurn` at a time on the following turns (setImmediate: after the I/O of
 * each turn, so token arrivals are handled in between).
 */
class StartGate {
  private used = 0;
  private readonly waiting: Array<() => void> = [];
  private armed = false;

  constructor(private readonly perTurn: number) {}

  turn(): Promise<void> | void {
    if (this.used < this.perTurn && this.waiting.length === 0) {
      this.used++;
      this.arm();
      return;
    }
    this.arm();
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    setImmediate(this.next);
  }

  private readonly next = (): void => {
    this.armed = false;
    const batch = this.waiting.splice(0, this.perTurn);
    this.used = batch.length;
    for (const release of batch) release();
    if (this.used > 0) this.arm();
  };
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
