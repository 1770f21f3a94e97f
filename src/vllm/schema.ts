/**
 * Maps one vLLM /metrics exposition, of any generation, onto one model (pure).
 *
 * Generations (see docs/metrics.md and the vLLM interface reference §3):
 *  - v0:       vllm:gpu_cache_usage_perc, gauge vllm:gpu_prefix_cache_hit_rate (-1 = no data);
 *  - v1-early: vllm:gpu_prefix_cache_{queries,hits}_total counters (blocks before ≈ v0.9);
 *  - v1:       vllm:kv_cache_usage_perc, vllm:prefix_cache_{queries,hits}_total in tokens.
 * Where deprecated and new families are both present only the new one is read, so nothing is
 * counted twice. Counters and histograms are summed over the `engine` label; KV usage is
 * averaged. A value whose source is absent is null — never 0, never -1.
 */
import type { Exposition, Family, Sample } from './exposition.js';

export type VllmSchema = 'v0' | 'v1-early' | 'v1';

/** Reasons vLLM rejects a request at admission (vLLM 0.32 `--max-num-queued-reqs/-tokens`). */
export const ADMISSION_REASONS = ['max_num_queued_reqs', 'max_num_queued_tokens'] as const;
/** Why waiting requests wait (vllm:num_requests_waiting_by_reason, ≈ v0.19+). */
export const WAITING_REASONS = ['capacity', 'deferred'] as const;
/** Where prompt tokens came from (vllm:prompt_tokens_by_source_total, ≈ v0.16+). */
export const PROMPT_SOURCES = ['local_compute', 'local_cache_hit', 'external_kv_transfer'] as const;
/** Which cache tier supplied cached prompt tokens (vllm:prompt_tokens_cached_by_source_total). */
export const CACHE_TIERS = ['device', 'host', 'p2p', 'disk', 'external_unspecified'] as const;
/** Label values outside the closed sets above are summed under this one, so labels stay bounded. */
export const OTHER = 'other';

/** Counts keyed by a closed label set (plus `other`); null when the family is absent. */
export type ByLabel<K extends string> = Partial<Record<K | typeof OTHER, number>>;

/** How the exposition spelled vLLM's names, so a renaming pipeline is visible (explain-metrics). */
export interface Naming {
  /** `vllm:` as vLLM writes it, or `vllm_` as some pipelines store it. */
  prefix: 'vllm:' | 'vllm_' | null;
  /** `_total` on counter samples (text 0.0.4 / OpenMetrics 1.0) or none (OpenMetrics 2.0). */
  counters: '_total' | 'no _total' | null;
}

export interface EngineSnapshot {
  schema: VllmSchema | null;
  naming: Naming;
  engines: number | null;
  kv_cache_usage_ratio: number | null;
  prefix_cache_enabled: boolean | null;
  prefix_cache_queries: number | null;
  prefix_cache_hits: number | null;
  prefix_cache_unit: 'tokens' | 'blocks' | null;
  /** V0 only: the hit-rate gauge as reported, null when it says -1 (no data). */
  v0_prefix_cache_hit_rate: number | null;
  /** KV-connector (cross-instance) prefix cache, tokens (≈ v0.11.1+). */
  external_prefix_cache_queries: number | null;
  external_prefix_cache_hits: number | null;
  requests_running: number | null;
  requests_waiting: number | null;
  requests_waiting_by_reason: ByLabel<(typeof WAITING_REASONS)[number]> | null;
  /** Requests refused with 503 by a queue limit, summed over API servers. */
  admission_rejections: ByLabel<(typeof ADMISSION_REASONS)[number]> | null;
  preemptions: number | null;
  prompt_tokens: number | null;
  prompt_tokens_by_source: ByLabel<(typeof PROMPT_SOURCES)[number]> | null;
  prompt_tokens_cached: number | null;
  prompt_tokens_cached_by_source: ByLabel<(typeof CACHE_TIERS)[number]> | null;
  generation_tokens: number | null;
  /**
   * KV capacity in tokens, summed over engines: vLLM's own kv_cache_size_tokens when its
   * cache_config_info carries it (right for hybrid models), else num_gpu_blocks × block_size.
   */
  kv_cache_capacity_tokens: number | null;
  kv_cache_capacity_source: 'kv_cache_size_tokens' | 'num_gpu_blocks x block_size' | null;
  /** vLLM's kv_cache_max_concurrency (requests of max_model_len tokens that fit), summed over engines. */
  kv_cache_max_concurrency: number | null;
  /** Token granularity at which prefix-cache hits land; null when vLLM does not say. */
  cache_hit_alignment_tokens: number | null;
  block_size: number | null;
  model_names: string[];
  /** Unix seconds, from process_start_time_seconds (absent in multiprocess mode). */
  process_start_time_seconds: number | null;
  /** Sum of vllm:iteration_tokens_total_count: advances on every engine step. */
  engine_steps: number | null;
  /** Requests vLLM finished successfully (vllm:request_success_total, every finished_reason). */
  requests_succeeded: number | null;
  /**
   * vllm:engine_sleep_state (0.26+, sleep mode): 'awake', or the sleep level when the
   * engine sleeps on purpose (`POST /sleep?level=1|2`); 'waking' when the gauge says awake but
   * /is_sleeping still says true (between a level-2 wake-up's steps: set by the collector);
   * null when vLLM does not export it.
   */
  sleep_state: 'awake' | 'weights_offloaded' | 'discard_all' | 'waking' | null;
  histograms: {
    time_to_first_token: HistogramSnapshot | null;
    e2e_latency: HistogramSnapshot | null;
    queue_time: HistogramSnapshot | null;
    prefill_time: HistogramSnapshot | null;
    decode_time: HistogramSnapshot | null;
    inter_token_latency: HistogramSnapshot | null;
    num_preemptions: HistogramSnapshot | null;
  };
}

function first(expo: Exposition, ...names: string[]): Family | undefined {
  for (const name of names) {
    const f = expo.get(name);
    if (f && f.samples.length > 0) return f;
  }
  return undefined;
}

const finite = (s: Sample) => Number.isFinite(s.value);

function sum(family: Family | undefined, sampleName?: string): number | null {
  if (!family) return null;
  const samples = family.samples.filter((s) => (sampleName ? s.name === sampleName : true) && finite(s));
  return samples.length ? samples.reduce((a, s) => a + s.value, 0) : null;
}

function mean(family: Family | undefined): number | null {
  const total = sum(family);
  const n = family?.samples.filter(finite).length ?? 0;
  return total === null || n === 0 ? null : total / n;
}

/** Sums a family by one label into a closed set of keys; values outside it go to `other`. */
function byLabel<K extends string>(family: Family | undefined, label: string, known: readonly K[]): ByLabel<K> | null {
  if (!family) return null;
  const out: ByLabel<K> = {};
  for (const k of known) out[k] = 0;
  let seen = false;
  for (const s of family.samples) {
    if (!finite(s) || s.labels[label] === undefined) continue;
    const key = (known as readonly string[]).includes(s.labels[label]) ? (s.labels[label] as K) : OTHER;
    out[key] = (out[key] ?? 0) + s.value;
    seen = true;
  }
  return seen ? out : null;
}

/** One scrape of a source histogram: cumulative counts per upper bound (+Inf included). */
export interface HistogramSnapshot {
  buckets: Array<{ le: number; count: number }>;
  sum: number;
  count: number;
}

/** Sums a histogram family across engines into one cumulative snapshot. */
export function histogramSnapshot(family: Family | undefined): HistogramSnapshot | null {
  if (!family || family.type !== 'histogram') return null;
  const buckets = new Map<number, number>();
  let count = 0;
  let total = 0;
  let seen = false;
  for (const s of family.samples) {
    if (s.name.endsWith('_bucket') && s.labels.le !== undefined) {
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      if (Number.isNaN(le)) continue;
      buckets.set(le, (buckets.get(le) ?? 0) + s.value);
      seen = true;
    } else if (s.name.endsWith('_count')) count += s.value;
    else if (s.name.endsWith('_sum')) total += s.value;
  }
  if (!seen) return null;
  return { buckets: [...buckets].sort((a, b) => a[0] - b[0]).map(([le, c]) => ({ le, count: c })), sum: total, count };
}

/**
 * Rewrites the names a pipeline or a newer text format may use back to the ones vLLM writes
 * (pure; returns a new map). Two spellings are accepted:
 *  - `vllm_` instead of `vllm:` (remote-write and federation pipelines that drop colons); our
 *    own `vllm_probe_` series are never renamed, and a `vllm:` family wins over its `vllm_` twin;
 *  - counters whose family carries no `_total`: OpenMetrics 1.0 declares `# TYPE x counter` for
 *    samples `x_total`, OpenMetrics 2.0 drops the automatic suffix from the samples as well.
 * The result is keyed as text format 0.0.4 would be: counter families and samples `…_total`.
 */
export function canonicaliseNames(expo: Exposition): { expo: Exposition; naming: Naming } {
  const out: Exposition = new Map();
  const naming: Naming = { prefix: null, counters: null };
  const colon = (name: string) => (name.startsWith('vllm_') && !name.startsWith('vllm_probe_') ? `vllm:${name.slice(5)}` : name);
  for (const family of expo.values()) {
    if (family.name.startsWith('vllm:')) naming.prefix = 'vllm:';
    else if (naming.prefix === null && family.name.startsWith('vllm_') && !family.name.startsWith('vllm_probe_')) naming.prefix = 'vllm_';
  }
  for (const family of expo.values()) {
    let name = family.name;
    let rename = (sample: string) => sample;
    if (naming.prefix === 'vllm_' || (name.startsWith('vllm_') && !expo.has(colon(name)))) {
      const renamed = colon(name);
      if (renamed !== name) {
        name = renamed;
        rename = (sample) => colon(sample);
      }
    }
    if (family.type === 'counter' && name.startsWith('vllm:')) {
      if (name.endsWith('_total')) naming.counters ??= '_total';
      else {
        const base = name;
        name = `${base}_total`;
        const inner = rename;
        rename = (sample) => {
          const n = inner(sample);
          return n === base ? `${base}_total` : n;
        };
        const om2 = family.samples.some((s) => colon(s.name) === base);
        naming.counters = om2 ? 'no _total' : (naming.counters ?? '_total');
      }
    }
    if (out.has(name) && (out.get(name)!.samples.length > 0 || family.samples.length === 0)) continue;
    out.set(name, { ...family, name, samples: family.samples.map((s) => ({ ...s, name: rename(s.name) })) });
  }
  return { expo: out, naming };
}

function detectSchema(expo: Exposition): VllmSchema | null {
  const has = (n: string) => (expo.get(n)?.samples.length ?? 0) > 0;
  if (has('vllm:kv_cache_usage_perc') || has('vllm:prefix_cache_queries_total')) return 'v1';
  if (has('vllm:gpu_prefix_cache_queries_total')) return 'v1-early';
  if (has('vllm:gpu_prefix_cache_hit_rate') || has('vllm:num_requests_swapped') || has('vllm:cpu_cache_usage_perc')) return 'v0';
  const vllmFamilies = [...expo.values()].filter((f) => f.name.startsWith('vllm:') && f.samples.length);
  if (vllmFamilies.length === 0) return null;
  // gpu_cache_usage_perc alone: V1 before v0.8.3 had no engine label either; the engine label
  // settles it when present, otherwise V0 is the safer reading (no prefix counters to read).
  return vllmFamilies.some((f) => f.samples.some((s) => 'engine' in s.labels)) ? 'v1-early' : 'v0';
}

/** A cache_config_info label as a number; null for "None", "" or anything not numeric. */
function numericLabel(v: string | undefined): number | null {
  if (v === undefined || v === '' || v === 'None') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/**
 * The engine's sleep state: asleep when any engine says awake = 0 (every engine of a server
 * sleeps and wakes together); the level from the state that reads 1.
 */
function sleepState(family: Family | undefined): EngineSnapshot['sleep_state'] {
  if (!family) return null;
  const value = (state: string) => family.samples.filter((x) => x.labels.sleep_state === state && finite(x));
  const awake = value('awake');
  if (awake.length === 0) return null;
  if (awake.every((x) => x.value >= 1)) return 'awake';
  return value('discard_all').some((x) => x.value >= 1) ? 'discard_all' : 'weights_offloaded';
}

export function normaliseVllmMetrics(input: Exposition): EngineSnapshot {
  const { expo, naming } = canonicaliseNames(input);
  const schema = detectSchema(expo);
  const vllmFamilies = [...expo.values()].filter((f) => f.name.startsWith('vllm:') && !f.name.endsWith('_created'));
  const engineIds = new Set<string>();
  const models = new Set<string>();
  for (const f of vllmFamilies) {
    for (const s of f.samples) {
      if (s.labels.engine !== undefined) engineIds.add(s.labels.engine);
      if (s.labels.model_name !== undefined) models.add(s.labels.model_name);
    }
  }

  let prefixQueries: Family | undefined;
  let prefixHits: Family | undefined;
  let unit: EngineSnapshot['prefix_cache_unit'] = null;
  const current = first(expo, 'vllm:prefix_cache_queries_total');
  if (current) {
    prefixQueries = current;
    prefixHits = first(expo, 'vllm:prefix_cache_hits_total');
    unit = 'tokens';
  } else {
    const early = first(expo, 'vllm:gpu_prefix_cache_queries_total');
    if (early) {
      prefixQueries = early;
      prefixHits = first(expo, 'vllm:gpu_prefix_cache_hits_total');
      // Before ≈ v0.9.0 these counted blocks; the HELP text says which.
      unit = /token/i.test(early.help ?? '') ? 'tokens' : 'blocks';
    }
  }

  let v0HitRate: number | null = null;
  const v0Gauge = first(expo, 'vllm:gpu_prefix_cache_hit_rate');
  if (v0Gauge && !prefixQueries) {
    const valid = v0Gauge.samples.filter((s) => finite(s) && s.value >= 0);
    v0HitRate = valid.length ? valid.reduce((a, s) => a + s.value, 0) / valid.length : null;
  }

  // cache_config_info: one series per engine; capacities add up over data-parallel engines.
  let blocksCapacity: number | null = null;
  let sizeTokens: number | null = null;
  let maxConcurrency: number | null = null;
  let alignment: number | null = null;
  let blockSize: number | null = null;
  let prefixEnabled: boolean | null = null;
  const cacheInfo = first(expo, 'vllm:cache_config_info');
  if (cacheInfo) {
    let blocksTotal = 0;
    let blocksComplete = true;
    let sizeTotal = 0;
    let sizeComplete = true;
    let concurrencyTotal = 0;
    let concurrencyComplete = true;
    for (const s of cacheInfo.samples) {
      const blocks = numericLabel(s.labels.num_gpu_blocks);
      const size = numericLabel(s.labels.block_size);
      if (size !== null && size > 0) blockSize = size;
      if (blocks !== null && size !== null) blocksTotal += blocks * size;
      else blocksComplete = false;
      const tokens = numericLabel(s.labels.kv_cache_size_tokens);
      if (tokens !== null) sizeTotal += tokens;
      else sizeComplete = false;
      const concurrency = numericLabel(s.labels.kv_cache_max_concurrency);
      if (concurrency !== null) concurrencyTotal += concurrency;
      else concurrencyComplete = false;
      const align = numericLabel(s.labels.cache_hit_alignment_tokens);
      if (align !== null && align > 0) alignment = align;
      if (s.labels.enable_prefix_caching === 'True') prefixEnabled = true;
      else if (s.labels.enable_prefix_caching === 'False' && prefixEnabled === null) prefixEnabled = false;
    }
    blocksCapacity = blocksComplete ? blocksTotal : null;
    sizeTokens = sizeComplete ? sizeTotal : null;
    maxConcurrency = concurrencyComplete ? concurrencyTotal : null;
  }

  const running = first(expo, 'vllm:num_requests_running');
  return {
    schema,
    naming,
    engines: schema === null ? null : Math.max(1, engineIds.size),
    kv_cache_usage_ratio: mean(first(expo, 'vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc')),
    prefix_cache_enabled: prefixEnabled,
    prefix_cache_queries: sum(prefixQueries),
    prefix_cache_hits: sum(prefixHits),
    prefix_cache_unit: unit,
    v0_prefix_cache_hit_rate: v0HitRate,
    external_prefix_cache_queries: sum(first(expo, 'vllm:external_prefix_cache_queries_total')),
    external_prefix_cache_hits: sum(first(expo, 'vllm:external_prefix_cache_hits_total')),
    requests_running: sum(running),
    requests_waiting: sum(first(expo, 'vllm:num_requests_waiting')),
    requests_waiting_by_reason: byLabel(first(expo, 'vllm:num_requests_waiting_by_reason'), 'reason', WAITING_REASONS),
    admission_rejections: byLabel(first(expo, 'vllm:admission_rejections_total'), 'reason', ADMISSION_REASONS),
    preemptions: sum(first(expo, 'vllm:num_preemptions_total')),
    prompt_tokens: sum(first(expo, 'vllm:prompt_tokens_total')),
    prompt_tokens_by_source: byLabel(first(expo, 'vllm:prompt_tokens_by_source_total'), 'source', PROMPT_SOURCES),
    prompt_tokens_cached: sum(first(expo, 'vllm:prompt_tokens_cached_total')),
    prompt_tokens_cached_by_source: byLabel(first(expo, 'vllm:prompt_tokens_cached_by_source_total'), 'source', CACHE_TIERS),
    generation_tokens: sum(first(expo, 'vllm:generation_tokens_total')),
    kv_cache_capacity_tokens: sizeTokens ?? blocksCapacity,
    kv_cache_capacity_source: sizeTokens !== null ? 'kv_cache_size_tokens' : blocksCapacity !== null ? 'num_gpu_blocks x block_size' : null,
    kv_cache_max_concurrency: maxConcurrency,
    cache_hit_alignment_tokens: alignment,
    block_size: blockSize,
    model_names: [...models].sort(),
    process_start_time_seconds: sum(first(expo, 'process_start_time_seconds')),
    engine_steps: sum(first(expo, 'vllm:iteration_tokens_total'), 'vllm:iteration_tokens_total_count'),
    requests_succeeded: sum(first(expo, 'vllm:request_success_total')),
    sleep_state: sleepState(first(expo, 'vllm:engine_sleep_state')),
    histograms: {
      time_to_first_token: histogramSnapshot(first(expo, 'vllm:time_to_first_token_seconds')),
      e2e_latency: histogramSnapshot(first(expo, 'vllm:e2e_request_latency_seconds')),
      queue_time: histogramSnapshot(first(expo, 'vllm:request_queue_time_seconds')),
      prefill_time: histogramSnapshot(first(expo, 'vllm:request_prefill_time_seconds')),
      decode_time: histogramSnapshot(first(expo, 'vllm:request_decode_time_seconds')),
      inter_token_latency: histogramSnapshot(first(expo, 'vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds')),
      num_preemptions: histogramSnapshot(first(expo, 'vllm:request_num_preemptions')),
    },
  };
}

/** Per-key increase between two readings of a labelled counter; the whole value after a reset. */
export function labelDelta<K extends string>(now: ByLabel<K> | null, before: ByLabel<K> | null): Partial<Record<K | typeof OTHER, number>> | null {
  if (!now) return null;
  const out: Partial<Record<string, number>> = {};
  for (const [k, v] of Object.entries(now) as Array<[string, number]>) {
    const b = (before as Record<string, number> | null)?.[k];
    out[k] = b === undefined || v < b ? v : v - b;
  }
  return out as Partial<Record<K | typeof OTHER, number>>;
}

/** The sum over labels of a ByLabel reading or delta (0 for null). */
export const sumByLabel = (by: Partial<Record<string, number>> | null): number => (by ? Object.values(by).reduce<number>((a, v) => a + (v ?? 0), 0) : 0);
const pct = (part: number, whole: number) => `${whole > 0 ? ((part / whole) * 100).toFixed(0) : '0'} %`;

/**
 * "52 % computed, 48 % from the local prefix cache, 0 % KV transfer; cached tokens: device 100 %"
 * for a window's deltas of vllm:prompt_tokens_by_source / _cached_by_source; undefined without data.
 * The collector's prefix_sources check and the prefix-cache probe's wording use it.
 */
export function describeCacheTiers(bySource: Partial<Record<string, number>> | null, cachedByTier: Partial<Record<string, number>> | null): string | undefined {
  const prompt = sumByLabel(bySource);
  if (!bySource || prompt === 0) return undefined;
  const words: Record<string, string> = { local_compute: 'computed', local_cache_hit: 'local prefix-cache hits', external_kv_transfer: 'KV transfer', other: 'other sources' };
  const parts = Object.entries(bySource)
    .filter(([k, v]) => (v ?? 0) > 0 || k !== OTHER)
    .map(([k, v]) => `${pct(v ?? 0, prompt)} ${words[k] ?? k}`);
  const tiers = describeTierShares(cachedByTier);
  return `${prompt} prompt tokens: ${parts.join(', ')}${tiers ? `; cached tokens by tier: ${tiers}` : ''}`;
}

/** "device 90 %, host 10 %": the tiers that served cached prompt tokens; undefined when none did. */
export function describeTierShares(cachedByTier: Partial<Record<string, number>> | null): string | undefined {
  const cached = sumByLabel(cachedByTier);
  if (!cachedByTier || cached === 0) return undefined;
  return Object.entries(cachedByTier).filter(([, v]) => (v ?? 0) > 0).map(([k, v]) => `${k} ${pct(v ?? 0, cached)}`).join(', ');
}

/** vLLM's default bounds (vllm/v1/metrics/buckets.py, unchanged since ≈ v0.8.4). */
export const VLLM_DEFAULT_BOUNDS = {
  time_to_first_token: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560],
  request_latency: [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680],
  inter_token_latency: [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80],
} as const;

/** The finite upper bounds of a histogram snapshot. */
export function finiteBounds(h: HistogramSnapshot): number[] {
  return h.buckets.map((b) => b.le).filter((le) => Number.isFinite(le));
}

/**
 * A latency SLO (share of requests within `threshold` seconds) read off a server histogram.
 * When the threshold is a bound the share is exact. Otherwise the true share lies between the
 * shares at the bounds either side (`min`, `max`); `ratio` is the share at the nearest bound
 * and `error` the widest it can be off (max - min). Pure; `h` may be cumulative or a delta.
 */
export interface SloFromBuckets {
  threshold: number;
  exact: boolean;
  /** Largest bound below the threshold and smallest above it (null past either end). */
  lower: number | null;
  upper: number | null;
  nearest: number | null;
  requests: number;
  ratio: number | null;
  min: number | null;
  max: number | null;
  error: number | null;
}

export function sloFromBuckets(h: HistogramSnapshot, threshold: number): SloFromBuckets {
  const bounds = h.buckets.filter((b) => Number.isFinite(b.le));
  const at = bounds.find((b) => Math.abs(b.le - threshold) <= 1e-9 * Math.max(1, threshold));
  const below = [...bounds].reverse().find((b) => b.le < threshold) ?? null;
  const above = bounds.find((b) => b.le > threshold) ?? null;
  const share = (b: { count: number } | null, fallback: number) => (h.count > 0 ? (b ? b.count : fallback) / h.count : null);
  if (at) {
    const ratio = share(at, 0);
    return { threshold, exact: true, lower: at.le, upper: at.le, nearest: at.le, requests: h.count, ratio, min: ratio, max: ratio, error: ratio === null ? null : 0 };
  }
  // Past the last finite bound only +Inf (everything) is above; before the first, nothing is below.
  const min = share(below, 0);
  const max = share(above, h.count);
  const nearestBucket = below && above ? (threshold - below.le <= above.le - threshold ? below : above) : (below ?? above);
  const ratio = nearestBucket ? share(nearestBucket, 0) : null;
  return {
    threshold,
    exact: false,
    lower: below?.le ?? null,
    upper: above?.le ?? null,
    nearest: nearestBucket?.le ?? null,
    requests: h.count,
    ratio,
    min,
    max,
    error: min === null || max === null ? null : max - min,
  };
}

/** The difference of two cumulative snapshots with the same bounds (a window), or null after a reset. */
export function histogramDelta(now: HistogramSnapshot, before: HistogramSnapshot | undefined): HistogramSnapshot | null {
  if (!before) return now;
  if (now.count < before.count || now.buckets.map((b) => b.le).join() !== before.buckets.map((b) => b.le).join()) return null;
  return {
    buckets: now.buckets.map((b, i) => ({ le: b.le, count: Math.max(0, b.count - before.buckets[i]!.count) })),
    sum: Math.max(0, now.sum - before.sum),
    count: now.count - before.count,
  };
}

const sameBounds = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]!) < 1e-12);

/** One server histogram's bounds, and whether they are vLLM's defaults or --custom-histogram-buckets. */
function describeBounds(h: HistogramSnapshot | null, defaults: readonly number[]) {
  if (!h) return null;
  const bounds = finiteBounds(h);
  return { bounds, custom: !sameBounds(bounds, defaults) };
}

/**
 * The `explain-metrics` view: the normalised scalars (no raw histograms), the server's own
 * bucket bounds, and — given SLO thresholds — how each maps onto those bounds.
 */
export function explainSnapshot(s: EngineSnapshot, slo?: { ttft?: number; e2e?: number }) {
  const h = s.histograms;
  const slos: Record<string, SloFromBuckets | null> = {};
  if (slo?.ttft !== undefined) slos.ttft = h.time_to_first_token ? sloFromBuckets(h.time_to_first_token, slo.ttft) : null;
  if (slo?.e2e !== undefined) slos.e2e = h.e2e_latency ? sloFromBuckets(h.e2e_latency, slo.e2e) : null;
  return {
    schema: s.schema,
    naming: s.naming,
    engines: s.engines,
    kv_cache_usage_ratio: s.kv_cache_usage_ratio,
    prefix_cache_enabled: s.prefix_cache_enabled,
    prefix_cache_queries: s.prefix_cache_queries,
    prefix_cache_hits: s.prefix_cache_hits,
    prefix_cache_unit: s.prefix_cache_unit,
    v0_prefix_cache_hit_rate: s.v0_prefix_cache_hit_rate,
    external_prefix_cache_queries: s.external_prefix_cache_queries,
    external_prefix_cache_hits: s.external_prefix_cache_hits,
    requests_running: s.requests_running,
    requests_waiting: s.requests_waiting,
    requests_waiting_by_reason: s.requests_waiting_by_reason,
    admission_rejections: s.admission_rejections,
    preemptions: s.preemptions,
    request_preemptions_observed: h.num_preemptions ? h.num_preemptions.count : null,
    prompt_tokens: s.prompt_tokens,
    prompt_tokens_by_source: s.prompt_tokens_by_source,
    prompt_tokens_cached: s.prompt_tokens_cached,
    prompt_tokens_cached_by_source: s.prompt_tokens_cached_by_source,
    generation_tokens: s.generation_tokens,
    kv_cache_capacity_tokens: s.kv_cache_capacity_tokens,
    kv_cache_capacity_source: s.kv_cache_capacity_source,
    kv_cache_max_concurrency: s.kv_cache_max_concurrency,
    cache_hit_alignment_tokens: s.cache_hit_alignment_tokens,
    block_size: s.block_size,
    model_names: s.model_names,
    process_start_time_seconds: s.process_start_time_seconds,
    requests_succeeded: s.requests_succeeded,
    sleep_state: s.sleep_state,
    server_buckets: {
      time_to_first_token: describeBounds(h.time_to_first_token, VLLM_DEFAULT_BOUNDS.time_to_first_token),
      e2e_latency: describeBounds(h.e2e_latency, VLLM_DEFAULT_BOUNDS.request_latency),
      queue_time: describeBounds(h.queue_time, VLLM_DEFAULT_BOUNDS.request_latency),
      inter_token_latency: describeBounds(h.inter_token_latency, VLLM_DEFAULT_BOUNDS.inter_token_latency),
    },
    ...(slo ? { slo_vs_server_buckets: slos } : {}),
  };
}
