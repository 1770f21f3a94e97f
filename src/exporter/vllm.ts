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
import { connectFailure } from '../diagnosis/evidence.js';
import { SourceError } from '../errors.js';
import { ExpositionError, parseExpositionAsync } from '../vllm/exposition.js';
import { ADMISSION_REASONS, CACHE_TIERS, describeCacheTiers, histogramDelta, labelDelta, normaliseVllmMetrics, OTHER, PROMPT_SOURCES, sloFromBuckets, sumByLabel, type ByLabel, type EngineSnapshot, type HistogramSnapshot } from '../vllm/schema.js';
import type { WedgeDetector } from '../wedge.js';

/** Turns successive readings of a monotonic counter into non-negative increments. */
export class CounterDeltas {
  private readonly last = new Map<string, number>();

  /**
   * Increment since the previous reading; 0 for the first; the whole value after a reset (a
   * reading below the previous one, or any reading after `restarted()`). A missing or
   * non-finite reading adds 0 and keeps the previous one.
   */
  delta(key: string, value: number | null): number {
    if (value === null || !Number.isFinite(value)) return 0;
    const previous = this.last.get(key);
    this.last.set(key, value);
    if (previous === undefined) return 0;
    return value >= previous ? value - previous : value;
  }

  /**
   * vLLM restarted (its process start time changed): every counter counts from 0 again, so
   * the next reading of each is all new, also one that is already above the old value (the
   * new process served more between two scrapes than the old one had counted).
   */
  restarted(): void {
    for (const key of this.last.keys()) this.last.set(key, 0);
  }
}

/** Past snapshots within the status window, so /status can speak of "the last 5m" rather than since start. */
class SnapshotWindow {
  private readonly entries: Array<{ at: number; s: EngineSnapshot }> = [];

  constructor(private readonly seconds: number) {}

  /** Adds `s` and returns the oldest snapshot still inside the window (the baseline for deltas). */
  push(s: EngineSnapshot, at = Date.now()): EngineSnapshot {
    this.entries.push({ at, s });
    // Keep one entry at or before the window start so the delta covers the whole window.
    while (this.entries.length > 2 && this.entries[1]!.at <= at - this.seconds * 1000) this.entries.shift();
    return this.entries[0]!.s;
  }

  /** Seconds between the baseline and now. */
  span(at = Date.now()): number {
    return this.entries.length ? (at - this.entries[0]!.at) / 1000 : 0;
  }

  clear(): void {
    this.entries.length = 0;
  }
}

const windowWords = (seconds: number) => (seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`);

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
  private readonly window: SnapshotWindow;
  /** The overload, prefix_sources and server_slo checks this vLLM has data for (cleared when a family disappears). */
  private readonly judged = new Set<string>();
  /** The engine slept since /is_sleeping last said false. */
  private sleptLately = false;

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
  ) {
    this.window = new SnapshotWindow(config.status.window);
  }

  /** Sets a check of this source; it reads unknown when three intervals pass without a new verdict. */
  private mark(name: string, verdict: Verdict, reason: string): void {
    this.status.set(name, verdict, reason, this.config.scrape.interval * 3 + this.config.scrape.timeout);
    if (verdict !== 'unknown') this.judged.add(name);
  }

  /** Removes a check whose source family this vLLM does not have (an older version). */
  private drop(name: string): void {
    this.status.clear(name);
    this.judged.delete(name);
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
    if (res.status !== 200) throw new SourceError('http_status', `/metrics answered HTTP ${res.status}`, { status: res.status });
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
    // Between the steps of a level-2 wake-up the gauge already says awake while requests still
    // queue: ask /is_sleeping after any sleep, until it says false.
    if (snapshot.sleep_state !== null && snapshot.sleep_state !== 'awake') this.sleptLately = true;
    else if (this.sleptLately && snapshot.sleep_state === 'awake') {
      const sleeping = await this.client.isSleeping(signal).catch(() => undefined);
      if (sleeping === true) snapshot.sleep_state = 'waking';
      else this.sleptLately = false;
    }
    if (!this.tracker.configuredModel && !this.tracker.discoveredModel && snapshot.model_names.length === 1) {
      this.tracker.discoveredModel = snapshot.model_names[0];
    }
    const startedBefore = this.tracker.processStartTime;
    this.tracker.observeProcessStart(snapshot.process_start_time_seconds ?? undefined);
    // The tracker's rule for a new process (a start time moved by more than 0.5 s).
    if (startedBefore !== undefined && Math.abs((this.tracker.processStartTime ?? startedBefore) - startedBefore) > 0.5) this.deltas.restarted();
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
    let res: { status: number };
    try {
      res = await this.client.health(signal);
      ok = res.status === 200;
      detail = ok ? undefined : `/health answered HTTP ${res.status}`;
    } catch (err) {
      const e = networkReason(err);
      this.status.evidence.health({ at: Date.now(), failure: e.reason === 'timeout' ? 'timeout' : (connectFailure('connect_error', e.message) ?? 'other'), detail: e.message });
      if (e.reason === 'timeout') throw e;
      detail = e.message;
      this.metrics.targetUp.set(0);
      this.tracker.observeReachable(false, detail);
      this.wedge.observeHealth(false);
      throw e;
    }
    this.status.evidence.health({ at: Date.now(), status: res.status });
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
    this.applyAdmissionAndCacheFamilies(s);
    const baseline = this.window.push(s);
    this.status.evidence.scrape(Date.now(), s);
    this.wedge.observeScrape(s);
    this.checkKvUsage(s);
    this.checkOverload(s, baseline);
    this.checkCacheTiers(s, baseline);
    this.checkServerSlo(s, baseline);
    this.lastSnapshot = s;
  }

  /** The vLLM 0.32 families: overload, prompt sources, cache tiers, vLLM's own KV sizing. */
  private applyAdmissionAndCacheFamilies(s: EngineSnapshot): void {
    const m = this.metrics;
    const model = this.tracker.model;
    const counterByLabel = <K extends string>(
      counter: { labels: (l: { model: string } & Record<string, string>) => { inc: (v: number) => void } },
      label: 'reason' | 'source',
      key: string,
      by: ByLabel<K> | null,
      known: readonly K[],
    ) => {
      if (!by) return;
      // Known values start at 0 so rate() sees the first rejection; `other` only once it occurs.
      for (const k of [...known, ...(by[OTHER as K] !== undefined ? [OTHER] : [])]) {
        counter.labels({ model, [label]: k }).inc(this.deltas.delta(`${key}:${k}`, (by as Record<string, number>)[k] ?? 0));
      }
    };
    counterByLabel(m.engineAdmissionRejections, 'reason', 'admission', s.admission_rejections, ADMISSION_REASONS);
    counterByLabel(m.enginePromptTokensBySource, 'source', 'prompt_source', s.prompt_tokens_by_source, PROMPT_SOURCES);
    counterByLabel(m.enginePromptTokensCachedBySource, 'source', 'cached_tier', s.prompt_tokens_cached_by_source, CACHE_TIERS);
    if (s.external_prefix_cache_queries !== null) {
      m.engineExternalPrefixCacheQueries.labels({ model }).inc(this.deltas.delta('external_prefix_queries', s.external_prefix_cache_queries));
      m.engineExternalPrefixCacheHits.labels({ model }).inc(this.deltas.delta('external_prefix_hits', s.external_prefix_cache_hits));
    }
    m.engineRequestsWaitingByReason.reset();
    for (const [reason, v] of Object.entries(s.requests_waiting_by_reason ?? {})) m.engineRequestsWaitingByReason.labels({ model, reason }).set(v ?? 0);
    const set = (g: { labels: (l: { model: string }) => { set: (v: number) => void }; remove: (l: { model: string }) => void }, v: number | null) =>
      v === null ? g.remove({ model }) : g.labels({ model }).set(v);
    set(m.engineKvCacheMaxConcurrency, s.kv_cache_max_concurrency);
    set(m.engineCacheHitAlignment, s.cache_hit_alignment_tokens ?? (s.prefix_cache_enabled ? s.block_size : null));
    if (s.histograms.num_preemptions) m.engineRequestPreemptions.update({ model }, s.histograms.num_preemptions);
    const slo = this.config.slo;
    m.engineSloBucketBound.reset();
    for (const [name, threshold, h] of [['ttft', slo.ttft.threshold, s.histograms.time_to_first_token], ['e2e', slo.e2e.threshold, s.histograms.e2e_latency]] as const) {
      if (!h) continue;
      const r = sloFromBuckets(h, threshold);
      if (r.lower !== null) m.engineSloBucketBound.labels({ model, slo: name, side: 'lower' }).set(r.lower);
      if (r.upper !== null) m.engineSloBucketBound.labels({ model, slo: name, side: 'upper' }).set(r.upper);
    }
  }

  /** Admission rejections (503 from --max-num-queued-reqs/-tokens) in the window: vLLM is shedding load. */
  private checkOverload(s: EngineSnapshot, baseline: EngineSnapshot): void {
    if (!s.admission_rejections) {
      this.drop('overload');
      return;
    }
    const rejected = labelDelta(s.admission_rejections, baseline === s ? null : baseline.admission_rejections);
    const n = baseline === s ? 0 : sumByLabel(rejected);
    const seconds = Math.max(1, Math.round(this.window.span()));
    const over = windowWords(Math.min(this.config.status.window, seconds));
    const waiting = s.requests_waiting_by_reason;
    const queue = `${s.requests_running ?? 0} running, ${s.requests_waiting ?? 0} waiting${waiting ? ` (${Object.entries(waiting).map(([k, v]) => `${v ?? 0} ${k}`).join(', ')})` : ''}`;
    if (n > 0) {
      const why = Object.entries(rejected ?? {}).filter(([, v]) => (v ?? 0) > 0).map(([k, v]) => `${v} by ${k === 'max_num_queued_reqs' ? '--max-num-queued-reqs' : k === 'max_num_queued_tokens' ? '--max-num-queued-tokens' : k}`).join(', ');
      this.mark('overload', 'degraded', `vLLM is shedding load: ${n} request${n === 1 ? '' : 's'} refused with HTTP 503 in the last ${over} (${why}); ${queue}`);
    } else {
      this.mark('overload', 'healthy', `vLLM refused no request at admission in the last ${over}; ${queue}`);
    }
  }

  /** Where prompt tokens came from over the window (computed, local cache, KV transfer; cache tiers). */
  private checkCacheTiers(s: EngineSnapshot, baseline: EngineSnapshot): void {
    const first = baseline === s;
    const words = describeCacheTiers(
      labelDelta(s.prompt_tokens_by_source, first ? null : baseline.prompt_tokens_by_source),
      labelDelta(s.prompt_tokens_cached_by_source, first ? null : baseline.prompt_tokens_cached_by_source),
    );
    const over = first ? 'since vLLM started' : `in the last ${windowWords(Math.min(this.config.status.window, Math.max(1, Math.round(this.window.span()))))}`;
    if (!s.prompt_tokens_by_source) this.drop('prefix_sources');
    else this.mark('prefix_sources', 'healthy', words === undefined ? `no prompt tokens ${over}` : `${words} (${over})`);
  }

  /**
   * The server-side TTFT SLO from vLLM's own histogram over the window. When the threshold is
   * not one of vLLM's bounds (--custom-histogram-buckets) this says so and reads the nearest
   * bound, with the range the true share lies in. Degraded only when even the upper end of
   * that range misses the objective, with enough requests to mean something.
   */
  private checkServerSlo(s: EngineSnapshot, baseline: EngineSnapshot): void {
    const now = s.histograms.time_to_first_token;
    if (!now) {
      this.drop('server_slo');
      return;
    }
    const { threshold, objective } = this.config.slo.ttft;
    const delta: HistogramSnapshot | null = baseline === s ? null : histogramDelta(now, baseline.histograms.time_to_first_token ?? undefined);
    const r = sloFromBuckets(delta ?? now, threshold);
    const over = delta ? `in the last ${windowWords(Math.min(this.config.status.window, Math.max(1, Math.round(this.window.span()))))}` : 'since vLLM started';
    const p = (v: number | null) => (v === null ? '?' : `${(v * 100).toFixed(1)} %`);
    const t = `${threshold} s`;
    const bounds = r.exact ? '' : `${t} is not one of vLLM's TTFT bucket bounds (nearest ${[r.lower, r.upper].filter((b) => b !== null).map((b) => `${b} s`).join(' and ')}; --custom-histogram-buckets?): `;
    let reason: string;
    if (r.requests === 0) reason = `${bounds}no requests finished ${over}`;
    else if (r.exact) reason = `vLLM's own TTFT: ${p(r.ratio)} of ${r.requests} requests ${over} within ${t} (objective ${p(objective)})`;
    else reason = `${bounds}${p(r.ratio)} of ${r.requests} requests ${over} within the nearest bound ${r.nearest} s; the share within ${t} lies between ${p(r.min)} and ${p(r.max)} (error up to ${((r.error ?? 0) * 100).toFixed(1)} points; objective ${p(objective)})`;
    const breached = r.requests >= 20 && r.max !== null && r.max < objective;
    this.mark('server_slo', breached ? 'degraded' : 'healthy', reason);
  }

  private checkKvUsage(s: EngineSnapshot): void {
    const limit = this.config.status.kv_cache_usage_degraded;
    if (s.kv_cache_usage_ratio === null) {
      this.status.clear('kv_cache');
      return;
    }
    const pct = (v: number) => `${(v * 100).toFixed(0)} %`;
    const waiting = s.requests_waiting ?? 0;
    // vLLM 0.32 says its capacity itself (kv_cache_size_tokens, right for hybrid models) and how
    // many max_model_len requests fit at once (kv_cache_max_concurrency): the safe concurrency.
    const of = s.kv_cache_capacity_tokens !== null ? ` of ${s.kv_cache_capacity_tokens} tokens` : '';
    const fits = s.kv_cache_max_concurrency !== null
      ? `; room for ${Number(s.kv_cache_max_concurrency.toFixed(1))} requests of max_model_len at once (vLLM's kv_cache_max_concurrency), ${s.requests_running ?? 0} running`
      : '';
    if (s.kv_cache_usage_ratio >= limit) {
      this.mark('kv_cache', 'degraded', `KV cache ${pct(s.kv_cache_usage_ratio)} full${of} (threshold ${pct(limit)}), ${waiting} requests waiting${fits}`);
    } else {
      this.mark('kv_cache', 'healthy', `KV cache ${pct(s.kv_cache_usage_ratio)} full${of}${fits}`);
    }
  }

  markStale(error: Error): void {
    const model = { model: this.tracker.model };
    for (const g of [this.metrics.engineKvCacheUsage, this.metrics.engineRequestsRunning, this.metrics.engineRequestsWaiting, this.metrics.enginePrefixCacheHitRatio, this.metrics.engineKvCacheMaxConcurrency, this.metrics.engineCacheHitAlignment]) {
      g.remove(model);
    }
    this.metrics.engineRequestsWaitingByReason.reset();
    this.metrics.engineSloBucketBound.reset();
    this.lastSnapshot = undefined;
    this.window.clear();
    // As kv_cache: checks we had say they cannot be judged rather than disappear.
    const why = error instanceof SourceError ? error.message : 'scrape failed';
    for (const [check, what] of [['overload', 'admission rejections'], ['prefix_sources', 'where prompt tokens come from'], ['server_slo', "vLLM's own TTFT SLO"]] as const) {
      if (this.judged.has(check)) this.mark(check, 'unknown', `cannot judge ${what}: ${why}`);
    }
    this.wedge.scrapeFailed();
    this.status.evidence.scrapeFailed(Date.now(), why);
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
