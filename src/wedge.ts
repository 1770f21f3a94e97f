/**
 * Names a wedged engine: vLLM's API server still answers /health 200 while the engine makes no
 * progress (operators see exactly this: EngineCore hung or stopped, `num_requests_running` 0).
 * Three signatures, each a named reason in the `engine_progress` check and a label on
 * vllm_probe_engine_wedged:
 *
 * - `no_token_after_headers`: probe requests were accepted (response headers sent) but got no
 *   token before their timeout, N in a row, while /health is 200;
 * - `frozen_counters`: vLLM's token and step counters did not move across scrapes while probe
 *   requests were waiting for tokens, or while vLLM says requests run — whatever
 *   `num_requests_running` says;
 * - `queue_stuck`: requests wait (and more keep coming) while none runs and nothing is generated.
 *
 * Fed by the probe scheduler (request outcomes), the /metrics collector (snapshots) and /health.
 */
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';
import type { StatusBoard, Verdict } from './status.js';
import type { RequestEnd, RequestWatcher } from './synthetic/prober.js';
import type { EngineSnapshot } from './vllm/schema.js';

export const WEDGE_SIGNATURES = ['no_token_after_headers', 'frozen_counters', 'queue_stuck'] as const;
export type WedgeSignature = (typeof WEDGE_SIGNATURES)[number];

/** Probe requests in a row that must stall after headers before the first signature fires. */
const STALLS_IN_A_ROW = 2;
/** Counters must stay still this long (and for the scrapes below) before frozen_counters or
 *  queue_stuck fire: one long prefill of someone else's prompt freezes them for seconds. */
const MIN_FROZEN_MS = 20_000;

interface Counters {
  generation: number | null;
  steps: number | null;
}

export class WedgeDetector implements RequestWatcher {
  private healthOk: boolean | undefined;
  private stallsInARow = 0;
  private lastStallTimeoutS = 0;
  /** Probe requests waiting for a first token right now: id → start time (ms). */
  private readonly waiting = new Map<number, number>();
  private nextId = 0;
  /** A probe request ended without a token after waiting since this time (ms), in this scrape window. */
  private stalledInWindow = false;
  private lastScrapeMs: number | undefined;
  private last: Counters | undefined;
  private lastWaiting: number | null = null;
  private frozenScrapes = 0;
  private stuckScrapes = 0;
  private frozenSinceMs: number | undefined;
  private lastSnapshot: EngineSnapshot | undefined;
  private labelledModel: string | undefined;
  /** When the current run of stalled probe requests began (the first one's start). */
  private stallRunStartedMs: number | undefined;
  /** Start of the last scrape window in which the counters moved. */
  private lastMoveWindowStartMs: number | undefined;
  private stuckSinceMs: number | undefined;

  constructor(
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly status: StatusBoard,
    private readonly model: () => string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Marks a probe request as waiting for its first token; call the result when it ends. */
  requestStarted(): (end: RequestEnd) => void {
    const id = this.nextId++;
    const startedMs = this.now();
    this.waiting.set(id, startedMs);
    return ({ gotToken, headers, timedOut, timeoutS }) => {
      this.waiting.delete(id);
      if (gotToken) {
        this.stallsInARow = 0;
        // A token is progress, whatever the last scrape said: the counters catch up one scrape later.
        this.frozenScrapes = 0;
        this.frozenSinceMs = undefined;
        this.stuckScrapes = 0;
        this.stuckSinceMs = undefined;
      } else if (headers && timedOut) {
        if (this.stallsInARow === 0) this.stallRunStartedMs = startedMs;
        this.stallsInARow++;
        this.lastStallTimeoutS = timeoutS;
        this.stalledInWindow = true;
      } else {
        this.stallsInARow = 0; // a different failure (refused, 5xx): not this story
      }
      this.judge();
    };
  }

  observeHealth(ok: boolean): void {
    this.healthOk = ok;
    if (!ok) this.reset();
    this.judge();
  }

  /** One successful /metrics scrape. */
  observeScrape(s: EngineSnapshot): void {
    const now = this.now();
    const counters: Counters = { generation: s.generation_tokens, steps: s.engine_steps };
    const moved = !this.last || (['generation', 'steps'] as const).some((k) => counters[k] !== null && counters[k] !== this.last![k]);
    // Evidence that work was pending over the window: a probe waited across the whole window,
    // or one ended in it without a token, or vLLM itself says requests run or wait.
    const windowStart = this.lastScrapeMs ?? now;
    const waitedAcross = [...this.waiting.values()].some((t) => t <= windowStart);
    const pending = waitedAcross || this.stalledInWindow || (s.requests_running ?? 0) + (s.requests_waiting ?? 0) > 0;
    if (this.last && !moved && pending) {
      this.frozenSinceMs ??= windowStart;
      this.frozenScrapes++;
    } else if (moved) {
      this.frozenScrapes = 0;
      this.frozenSinceMs = undefined;
    }
    if (this.last && moved) this.lastMoveWindowStartMs = windowStart;
    const waiting = s.requests_waiting ?? 0;
    const stuck = this.last !== undefined && !moved && waiting > 0 && (s.requests_running ?? 0) === 0 && (this.lastWaiting === null || waiting >= this.lastWaiting);
    this.stuckScrapes = stuck ? this.stuckScrapes + 1 : 0;
    this.stuckSinceMs = stuck ? (this.stuckSinceMs ?? windowStart) : undefined;
    this.lastWaiting = s.requests_waiting;
    this.last = counters;
    this.lastScrapeMs = now;
    this.stalledInWindow = false;
    this.lastSnapshot = s;
    this.judge();
  }

  /** The scrape failed: its counters cannot be compared across the gap. */
  scrapeFailed(): void {
    this.last = undefined;
    this.lastSnapshot = undefined;
    this.frozenScrapes = 0;
    this.stuckScrapes = 0;
    this.frozenSinceMs = undefined;
    this.judge();
  }

  private reset(): void {
    this.stallsInARow = 0;
    this.frozenScrapes = 0;
    this.stuckScrapes = 0;
    this.frozenSinceMs = undefined;
    this.stuckSinceMs = undefined;
  }

  /** The signatures that hold now, each with its words. */
  private signatures(): Array<[WedgeSignature, string]> {
    if (this.healthOk !== true) return [];
    const out: Array<[WedgeSignature, string]> = [];
    const s = this.lastSnapshot;
    const inFlight = s ? ` (vLLM reports ${s.requests_running ?? '?'} running, ${s.requests_waiting ?? '?'} waiting)` : '';
    // Probes stalled, but the engine generated for someone else meanwhile: busy, not wedged.
    const movedSinceStalls = this.lastMoveWindowStartMs !== undefined && this.stallRunStartedMs !== undefined && this.lastMoveWindowStartMs >= this.stallRunStartedMs;
    if (this.stallsInARow >= STALLS_IN_A_ROW && !movedSinceStalls) {
      out.push(['no_token_after_headers', `the last ${this.stallsInARow} probe requests got response headers and no token within ${Number(this.lastStallTimeoutS.toFixed(1))} s`]);
    }
    const need = Math.max(2, Math.ceil(this.config.scrape.wedge_scrapes / 2));
    const longEnough = (since: number | undefined) => since !== undefined && this.now() - since >= MIN_FROZEN_MS;
    if (this.frozenScrapes >= need && longEnough(this.frozenSinceMs)) {
      const seconds = this.frozenSinceMs !== undefined ? Math.round((this.now() - this.frozenSinceMs) / 1000) : this.frozenScrapes * this.config.scrape.interval;
      out.push(['frozen_counters', `vLLM's token and step counters have not moved for ${seconds} s (${this.frozenScrapes} scrapes) while requests waited for tokens${inFlight}`]);
    }
    if (this.stuckScrapes >= need && longEnough(this.stuckSinceMs)) {
      out.push(['queue_stuck', `${s?.requests_waiting ?? '?'} requests wait and none runs; nothing generated for ${this.stuckScrapes} scrapes`]);
    }
    return out;
  }

  private judge(): void {
    const found = this.signatures();
    const model = this.model();
    if (model !== this.labelledModel) {
      this.metrics.engineWedged.reset(); // the model was discovered: no series left under the old name
      this.labelledModel = model;
    }
    for (const sig of WEDGE_SIGNATURES) this.metrics.engineWedged.labels({ model, signature: sig }).set(found.some(([f]) => f === sig) ? 1 : 0);
    this.status.evidence.wedge(found.map(([signature, words]) => ({ signature, words })), this.now());
    const staleAfter = this.config.scrape.interval * 3 + this.config.scrape.timeout;
    if (found.length) {
      // Without vLLM's counters (no scrapes: a central daemon's targets), probes queued behind a
      // full engine stall the same way as probes sent to a stopped one: say both.
      const blind = !this.config.scrape.enabled;
      const what = blind ? 'engine wedged or saturated' : 'engine wedged';
      const words = found.map(([, w]) => w).join('; and ');
      this.status.set('engine_progress', 'unhealthy', `${what}: /health 200 but ${words}${blind ? " (without vLLM's /metrics a stopped engine and a full one look the same)" : ''}`, staleAfter);
      return;
    }
    const s = this.lastSnapshot;
    if (!this.config.scrape.enabled) {
      this.status.clear('engine_progress'); // nothing to judge progress on besides the signature above
      return;
    }
    if (this.healthOk === false) {
      this.status.set('engine_progress', 'unknown', 'cannot judge engine progress: /health is not 200', staleAfter);
      return;
    }
    if (!s) {
      this.status.set('engine_progress', 'unknown', 'cannot judge engine progress: no /metrics scrape to compare yet', staleAfter);
      return;
    }
    const inFlight = `${s.requests_running ?? 0} running, ${s.requests_waiting ?? 0} waiting`;
    let verdict: Verdict = 'healthy';
    let reason = `vLLM engine progressing (${inFlight})`;
    // Probes that waited while the engine generated for others waited in a queue: not a stall.
    const movedSinceStalls = this.lastMoveWindowStartMs !== undefined && this.stallRunStartedMs !== undefined && this.lastMoveWindowStartMs >= this.stallRunStartedMs;
    if (this.frozenScrapes > 0 || (this.stallsInARow > 0 && !movedSinceStalls)) {
      verdict = 'degraded';
      reason = `no token counted yet: ${this.stallsInARow ? `${this.stallsInARow} probe request(s) got headers but no token` : `counters unchanged for ${this.frozenScrapes} scrape(s) with work pending`}, watching for a wedge (${inFlight})`;
    } else if (this.stallsInARow > 0) {
      reason = `vLLM engine progressing: generation counters move; ${this.stallsInARow} probe request(s) waited behind other work (${inFlight})`;
    }
    this.status.set('engine_progress', verdict, reason, staleAfter);
  }
}
