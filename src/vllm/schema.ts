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

export interface EngineSnapshot {
  schema: VllmSchema | null;
  engines: number | null;
  kv_cache_usage_ratio: number | null;
  prefix_cache_enabled: boolean | null;
  prefix_cache_queries: number | null;
  prefix_cache_hits: number | null;
  prefix_cache_unit: 'tokens' | 'blocks' | null;
  /** V0 only: the hit-rate gauge as reported, null when it says -1 (no data). */
  v0_prefix_cache_hit_rate: number | null;
  requests_running: number | null;
  requests_waiting: number | null;
  preemptions: number | null;
  prompt_tokens: number | null;
  generation_tokens: number | null;
  kv_cache_capacity_tokens: number | null;
  block_size: number | null;
  model_names: string[];
  /** Unix seconds, from process_start_time_seconds (absent in multiprocess mode). */
  process_start_time_seconds: number | null;
  /** Sum of vllm:iteration_tokens_total_count: advances on every engine step. */
  engine_steps: number | null;
  histograms: {
    time_to_first_token: HistogramSnapshot | null;
    queue_time: HistogramSnapshot | null;
    prefill_time: HistogramSnapshot | null;
    decode_time: HistogramSnapshot | null;
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

/** Sums a histogram family across engines into one cumulative snapshot. */
/** One scrape of a source histogram: cumulative counts per upper bound (+Inf included). */
export interface HistogramSnapshot {
  buckets: Array<{ le: number; count: number }>;
  sum: number;
  count: number;
}

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

export function normaliseVllmMetrics(expo: Exposition): EngineSnapshot {
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

  let capacity: number | null = null;
  let blockSize: number | null = null;
  let prefixEnabled: boolean | null = null;
  const cacheInfo = first(expo, 'vllm:cache_config_info');
  if (cacheInfo) {
    let total = 0;
    let complete = true;
    for (const s of cacheInfo.samples) {
      const blocks = Number(s.labels.num_gpu_blocks);
      const size = Number(s.labels.block_size);
      if (Number.isFinite(size) && size > 0) blockSize = size;
      if (Number.isFinite(blocks) && Number.isFinite(size) && s.labels.num_gpu_blocks !== '' && s.labels.num_gpu_blocks !== 'None') total += blocks * size;
      else complete = false;
      if (s.labels.enable_prefix_caching === 'True') prefixEnabled = true;
      else if (s.labels.enable_prefix_caching === 'False' && prefixEnabled === null) prefixEnabled = false;
    }
    capacity = complete ? total : null;
  }
  if (prefixEnabled === null && v0Gauge) prefixEnabled = null;

  const running = first(expo, 'vllm:num_requests_running');
  return {
    schema,
    engines: schema === null ? null : Math.max(1, engineIds.size),
    kv_cache_usage_ratio: mean(first(expo, 'vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc')),
    prefix_cache_enabled: prefixEnabled,
    prefix_cache_queries: sum(prefixQueries),
    prefix_cache_hits: sum(prefixHits),
    prefix_cache_unit: unit,
    v0_prefix_cache_hit_rate: v0HitRate,
    requests_running: sum(running),
    requests_waiting: sum(first(expo, 'vllm:num_requests_waiting')),
    preemptions: sum(first(expo, 'vllm:num_preemptions_total')),
    prompt_tokens: sum(first(expo, 'vllm:prompt_tokens_total')),
    generation_tokens: sum(first(expo, 'vllm:generation_tokens_total')),
    kv_cache_capacity_tokens: capacity,
    block_size: blockSize,
    model_names: [...models].sort(),
    process_start_time_seconds: sum(first(expo, 'process_start_time_seconds')),
    engine_steps: sum(first(expo, 'vllm:iteration_tokens_total'), 'vllm:iteration_tokens_total_count'),
    histograms: {
      time_to_first_token: histogramSnapshot(first(expo, 'vllm:time_to_first_token_seconds')),
      queue_time: histogramSnapshot(first(expo, 'vllm:request_queue_time_seconds')),
      prefill_time: histogramSnapshot(first(expo, 'vllm:request_prefill_time_seconds')),
      decode_time: histogramSnapshot(first(expo, 'vllm:request_decode_time_seconds')),
    },
  };
}

/** The `explain-metrics` view: the normalised scalars, without the histograms. */
export function explainSnapshot(s: EngineSnapshot) {
  return {
    schema: s.schema,
    engines: s.engines,
    kv_cache_usage_ratio: s.kv_cache_usage_ratio,
    prefix_cache_enabled: s.prefix_cache_enabled,
    prefix_cache_queries: s.prefix_cache_queries,
    prefix_cache_hits: s.prefix_cache_hits,
    prefix_cache_unit: s.prefix_cache_unit,
    v0_prefix_cache_hit_rate: s.v0_prefix_cache_hit_rate,
    requests_running: s.requests_running,
    requests_waiting: s.requests_waiting,
    preemptions: s.preemptions,
    prompt_tokens: s.prompt_tokens,
    generation_tokens: s.generation_tokens,
    kv_cache_capacity_tokens: s.kv_cache_capacity_tokens,
    block_size: s.block_size,
    model_names: s.model_names,
    process_start_time_seconds: s.process_start_time_seconds,
  };
}
