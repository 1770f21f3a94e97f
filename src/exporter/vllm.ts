/**
 * Collector for the target itself: GET /health, GET /version (after each restart) and
 * GET /metrics, normalised by vllm-schema.ts and re-exported under vllm_probe_engine_*.
 *
 * Counters are re-exported as our own counters incremented by the difference between scrapes,
 * so a vLLM restart (its counters start again at 0) never makes ours go backwards. Also feeds
 * restart detection (process_start_time_seconds) and the wedged-engine check for /status.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import type { StatusBoard, Verdict } from '../status.js';
import type { TargetTracker } from '../target.js';
import type { VllmClient } from '../vllm/client.js';
import { type Collector } from './collector.js';
import { SourceError } from '../errors.js';
import { ExpositionError, parseExpositionAsync } from '../vllm/exposition.js';
import { normaliseVllmMetrics, type EngineSnapshot } from '../vllm/schema.js';
import type { WedgeDetector } from '../wedge.js';

/** Turns successive readings of a monotonic counter into non-negative increments. */
export class CounterDeltas {
  private readonly last = new Map<string, number>();

  /** Increment since the previous reading; 0 for the first; the whole value after a reset. */
  delta(key: string, value: number | null): number {
    if (value === null || !Number.isFinite(value)) return 0;
    const previous = this.last.get(key);
    this.last.set(key, value);
    if (previous === undefined) return 0;
    return value >= previous ? value - previous : value;
  }
}

/** The client throws SourceErrors; anything else is a bug, reported as internal. */
function networkReason(err: unknown): SourceError {
  return err instanceof SourceError ? err : new SourceError('internal', (err as Error).message, { cause: err });
}

export class VllmCollector implements Collector {
  readonly name = 'vllm_metrics';
  readonly errorReasons = ['timeout', 'connect_error', 'http_status', 'too_large', 'parse_error', 'internal'] as const;
  /** The last successful normalised scrape, for /status and the prefix probe. */
  lastSnapshot: EngineSnapshot | undefined;
  private readonly deltas = new CounterDeltas();
  private versionFor: number | undefined = -1;

  constructor(
    private readonly config: Config,
    private readonly client: VllmClient,
    private readonly tracker: TargetTracker,
    private readonly metrics: Metrics,
    private readonly status: StatusBoard,
    private readonly wedge: WedgeDetector,
    private readonly log: Logger,
    /** Called once per vLLM process (at start and after each restart), e.g. for the environment snapshot. */
    private readonly onNewProcess: () => void = () => undefined,
  ) {}

  /** Sets a check of this source; it reads unknown when three intervals pass without a new verdict. */
  private mark(name: string, verdict: Verdict, reason: string): void {
    this.status.set(name, verdict, reason, this.config.scrape.interval * 3 + this.config.scrape.timeout);
  }

  async collect(signal: AbortSignal): Promise<void> {
    await this.checkHealth(signal);
    let res;
    try {
      res = await this.client.metrics(signal);
    } catch (err) {
      throw networkReason(err);
    }
    if (res.truncated) throw new SourceError('too_large', `/metrics is larger than ${this.client.maxResponseBytes} bytes (target.max_response_bytes)`);
    if (res.status !== 200) throw new SourceError('http_status', `/metrics answered HTTP ${res.status}`);
    let snapshot: EngineSnapshot;
    try {
      snapshot = normaliseVllmMetrics(await parseExpositionAsync(res.body));
    } catch (err) {
      if (err instanceof ExpositionError) throw new SourceError('parse_error', `/metrics is not valid Prometheus text: ${err.message}`, { cause: err });
      throw err;
    }
    if (snapshot.schema === null) {
      throw new SourceError('parse_error', res.body.trim() === '' ? '/metrics is empty' : '/metrics has no vllm:* families (is --disable-log-stats set, or is this not vLLM?)');
    }
    if (!this.tracker.configuredModel && !this.tracker.discoveredModel && snapshot.model_names.length === 1) {
      this.tracker.discoveredModel = snapshot.model_names[0];
    }
    this.tracker.observeProcessStart(snapshot.process_start_time_seconds ?? undefined);
    if (this.versionFor !== this.tracker.processStartTime) {
      await this.readVersion(signal, snapshot);
      this.onNewProcess();
    }
    this.apply(snapshot);
    this.mark('vllm_metrics', 'healthy', `vLLM /metrics scraped (${snapshot.schema} schema, ${snapshot.engines} engine${snapshot.engines === 1 ? '' : 's'})`);
  }

  private async checkHealth(signal: AbortSignal): Promise<void> {
    let ok = false;
    let detail: string | undefined;
    try {
      const res = await this.client.health(signal);
      ok = res.status === 200;
      detail = ok ? undefined : `/health answered HTTP ${res.status}`;
    } catch (err) {
      const e = networkReason(err);
      if (e.reason === 'timeout') throw e;
      detail = e.message;
      this.metrics.targetUp.set(0);
      this.tracker.observeReachable(false, detail);
      this.wedge.observeHealth(false);
      throw e;
    }
    this.metrics.targetUp.set(ok ? 1 : 0);
    this.wedge.observeHealth(ok);
    // An answering server is reachable even when it says the engine is dead (503).
    this.tracker.observeReachable(true, undefined);
    // Degraded, not unhealthy: the TTFT probe's hysteresis decides when a dead engine is unhealthy.
    if (!ok) this.mark('vllm_health', 'degraded', `vLLM ${detail} (engine dead or starting)`);
    else this.mark('vllm_health', 'healthy', 'vLLM /health answers 200');
  }

  private async readVersion(signal: AbortSignal, snapshot: EngineSnapshot): Promise<void> {
    try {
      const version = await this.client.version(signal);
      if (version !== undefined) this.tracker.version = version;
      this.versionFor = this.tracker.processStartTime;
    } catch {
      // Version is decoration; try again next scrape.
    }
    this.metrics.engineInfo.reset();
    this.metrics.engineInfo.labels({ model: this.tracker.model, version: this.tracker.version ?? '', schema: snapshot.schema ?? '' }).set(1);
  }

  private apply(s: EngineSnapshot): void {
    const m = this.metrics;
    const model = { model: this.tracker.model };
    const setOrRemove = (gauge: { labels: (l: typeof model) => { set: (v: number) => void }; remove: (l: typeof model) => void }, value: number | null) =>
      value === null ? gauge.remove(model) : gauge.labels(model).set(value);
    setOrRemove(m.engineKvCacheUsage, s.kv_cache_usage_ratio);
    setOrRemove(m.engineKvCacheCapacity, s.kv_cache_capacity_tokens);
    setOrRemove(m.enginePrefixCachingEnabled, s.prefix_cache_enabled === null ? null : s.prefix_cache_enabled ? 1 : 0);
    setOrRemove(m.engineRequestsRunning, s.requests_running);
    setOrRemove(m.engineRequestsWaiting, s.requests_waiting);
    setOrRemove(m.enginePrefixCacheHitRatio, s.v0_prefix_cache_hit_rate);
    if (s.prefix_cache_unit) {
      const labels = { ...model, unit: s.prefix_cache_unit };
      m.enginePrefixCacheQueries.labels(labels).inc(this.deltas.delta('prefix_queries', s.prefix_cache_queries));
      m.enginePrefixCacheHits.labels(labels).inc(this.deltas.delta('prefix_hits', s.prefix_cache_hits));
    }
    m.enginePreemptions.labels(model).inc(this.deltas.delta('preemptions', s.preemptions));
    m.enginePromptTokens.labels(model).inc(this.deltas.delta('prompt_tokens', s.prompt_tokens));
    m.engineGenerationTokens.labels(model).inc(this.deltas.delta('generation_tokens', s.generation_tokens));
    const h = s.histograms;
    if (h.time_to_first_token) m.engineTimeToFirstToken.update(model, h.time_to_first_token);
    if (h.queue_time) m.engineQueueTime.update(model, h.queue_time);
    if (h.prefill_time) m.enginePrefillTime.update(model, h.prefill_time);
    if (h.decode_time) m.engineDecodeTime.update(model, h.decode_time);
    this.wedge.observeScrape(s);
    this.checkKvUsage(s);
    this.lastSnapshot = s;
  }

  private checkKvUsage(s: EngineSnapshot): void {
    const limit = this.config.status.kv_cache_usage_degraded;
    if (s.kv_cache_usage_ratio === null) {
      this.status.clear('kv_cache');
      return;
    }
    const pct = (v: number) => `${(v * 100).toFixed(0)} %`;
    const waiting = s.requests_waiting ?? 0;
    if (s.kv_cache_usage_ratio >= limit) {
      this.mark('kv_cache', 'degraded', `KV cache ${pct(s.kv_cache_usage_ratio)} full (threshold ${pct(limit)}), ${waiting} requests waiting`);
    } else {
      this.mark('kv_cache', 'healthy', `KV cache ${pct(s.kv_cache_usage_ratio)} full`);
    }
  }

  markStale(error: Error): void {
    const model = { model: this.tracker.model };
    for (const g of [this.metrics.engineKvCacheUsage, this.metrics.engineRequestsRunning, this.metrics.engineRequestsWaiting, this.metrics.enginePrefixCacheHitRatio]) {
      g.remove(model);
    }
    this.lastSnapshot = undefined;
    this.wedge.scrapeFailed();
    // Not cleared: a check that disappears reads as "nothing wrong"; say it cannot be judged.
    this.mark('kv_cache', 'unknown', `cannot judge KV cache usage: ${error instanceof SourceError ? error.message : 'scrape failed'}`);
    const reason = error instanceof SourceError ? error.message : `internal error: ${error.message}`;
    // Unreachable vLLM is already the TTFT probe's story; a scrape problem alone is degraded.
    this.mark('vllm_metrics', 'degraded', `vLLM /metrics scrape failing: ${reason}`);
    if (error instanceof SourceError && error.reason === 'connect_error') {
      this.mark('vllm_health', 'degraded', `vLLM /health unreachable: ${error.message.replace(/^.*cannot reach vLLM: /, '')}`);
    }
    this.log.debug({ err: error.message }, 'engine series dropped after failed scrape');
  }
}
