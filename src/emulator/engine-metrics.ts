/**
 * The emulator's /metrics: vLLM V1 family names, types, labels, bucket bounds and HELP texts
 * (vLLM interface reference §2), rendered the way prometheus_client does in single-API-server
 * mode: counters as `<base>_total` followed by a `<base>_created` gauge family, histograms with
 * cumulative buckets, `_count`, `_sum` and `_created`, labels sorted, Python float formatting.
 */
import { floatToGoString, pythonRepr } from './pyfloat.js';

const TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];
const TOK = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
const LAT = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];
const ITER = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
/** vLLM's bucket families (vllm/v1/metrics/buckets.py), the keys of --custom-histogram-buckets. */
export const BUCKET_FAMILIES = ['request_latency', 'time_to_first_token', 'inter_token_latency', 'iteration_tokens', 'request_params_n', 'request_num_preemptions', 'request_tokens', 'kv_cache_residency'] as const;
export type BucketFamily = (typeof BUCKET_FAMILIES)[number];
export type CustomBuckets = Partial<Record<BucketFamily, number[]>>;

/**
 * Validates a --custom-histogram-buckets value as vLLM's ObservabilityConfig does: known family
 * keys, non-empty lists of finite numbers above 0, strictly increasing. Throws with vLLM's wording.
 */
export function parseCustomBuckets(value: unknown): CustomBuckets {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('custom_histogram_buckets: expected a JSON object mapping bucket family to a list of bounds');
  const out: CustomBuckets = {};
  for (const [family, buckets] of Object.entries(value)) {
    if (!(BUCKET_FAMILIES as readonly string[]).includes(family)) {
      throw new Error(`custom_histogram_buckets: unknown bucket family '${family}'; known families: ${[...BUCKET_FAMILIES].sort().join(', ')}`);
    }
    if (!Array.isArray(buckets) || buckets.length === 0) throw new Error(`custom_histogram_buckets['${family}']: bucket list must not be empty`);
    for (const [i, b] of buckets.entries()) {
      if (typeof b !== 'number' || !Number.isFinite(b) || b <= 0) throw new Error(`custom_histogram_buckets['${family}']: bound ${String(b)} must be finite and greater than 0`);
      if (i > 0 && b <= (buckets[i - 1] as number)) throw new Error(`custom_histogram_buckets['${family}']: bounds must be strictly increasing`);
    }
    out[family as BucketFamily] = buckets as number[];
  }
  return out;
}

/** vLLM's "1-2-5" series up to max_model_len. */
function oneTwoFive(max: number): number[] {
  const out: number[] = [];
  for (let scale = 1; ; scale *= 10) {
    for (const m of [1, 2, 5]) {
      if (m * scale > max) return out;
      out.push(m * scale);
    }
  }
}

type Labels = Record<string, string>;

class HistogramState {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly bounds: number[]) {
    this.counts = bounds.map(() => 0);
  }
  observe(v: number): void {
    this.bounds.forEach((b, i) => {
      if (v <= b) this.counts[i]!++;
    });
    this.sum += v;
    this.count++;
  }
}

export const FINISHED_REASONS = ['abort', 'error', 'length', 'repetition', 'stop'] as const;

/**
 * The two metric sets captured from a real vLLM: 0.26.0 (CUDA, the H200 run) and 0.32.0 (CPU).
 * A version up to 0.26 gets the 0.26.0 set, any later one the 0.32.0 set: the versions in
 * between were never captured, so where each newer family first appeared is not known here.
 */
export type MetricSet = '0.26.0' | '0.32.0';
export function metricSetOf(version: string): MetricSet {
  const m = /^(\d+)\.(\d+)/.exec(version);
  return m && (Number(m[1]) === 0 && Number(m[2]) <= 26) ? '0.26.0' : '0.32.0';
}

export class EngineMetrics {
  readonly createdAt: number;
  running = 0;
  waiting = 0;
  kvUsage = 0;
  /** vllm:engine_sleep_state, one value per sleep_state label, as AsyncLLM's record_sleep_state sets them. */
  sleepState = { awake: 1, weights_offloaded: 0, discard_all: 0 };
  readonly counters = {
    prompt_tokens: 0,
    generation_tokens: 0,
    num_preemptions: 0,
    prefix_cache_queries: 0,
    prefix_cache_hits: 0,
    external_prefix_cache_queries: 0,
    external_prefix_cache_hits: 0,
    mm_cache_queries: 0,
    mm_cache_hits: 0,
    prompt_tokens_cached: 0,
  };
  readonly bySource = { local_compute: 0, local_cache_hit: 0, external_kv_transfer: 0 };
  readonly success: Record<(typeof FINISHED_REASONS)[number], number> = { abort: 0, error: 0, length: 0, repetition: 0, stop: 0 };
  /** Requests refused with 503 at admission (--max-num-queued-reqs / --max-num-queued-tokens). */
  readonly admissionRejections = { max_num_queued_reqs: 0, max_num_queued_tokens: 0 };
  readonly h;

  constructor(
    readonly model: string,
    readonly maxModelLen: number,
    readonly cacheConfig: { blockSize: number; numGpuBlocks: number; prefixCaching: boolean },
    readonly processStartTime: number,
    /** --custom-histogram-buckets: a family listed here replaces vLLM's default bounds. */
    readonly customBuckets: CustomBuckets = {},
    readonly metricSet: MetricSet = '0.32.0',
  ) {
    this.createdAt = processStartTime + 5;
    const b = (family: BucketFamily, defaults: number[]) => customBuckets[family] ?? defaults;
    const r = b('request_tokens', oneTwoFive(maxModelLen));
    const lat = b('request_latency', LAT);
    const tok = b('inter_token_latency', TOK);
    this.h = {
      time_to_first_token_seconds: new HistogramState(b('time_to_first_token', TTFT)),
      inter_token_latency_seconds: new HistogramState(tok),
      request_time_per_output_token_seconds: new HistogramState(tok),
      e2e_request_latency_seconds: new HistogramState(lat),
      request_queue_time_seconds: new HistogramState(lat),
      request_inference_time_seconds: new HistogramState(lat),
      request_prefill_time_seconds: new HistogramState(lat),
      request_decode_time_seconds: new HistogramState(lat),
      request_prompt_tokens: new HistogramState(r),
      request_generation_tokens: new HistogramState(r),
      request_prefill_kv_computed_tokens: new HistogramState(r),
      request_max_num_generation_tokens: new HistogramState(r),
      request_params_max_tokens: new HistogramState(r),
      request_params_n: new HistogramState(b('request_params_n', [1, 2, 5, 10, 20])),
      iteration_tokens_total: new HistogramState(b('iteration_tokens', ITER)),
      request_num_preemptions: new HistogramState(b('request_num_preemptions', [1, 2, 3, 4, 5, 10, 20])),
    };
  }

  render(): string {
    const base: Labels = { engine: '0', model_name: this.model };
    const out: string[] = [];
    const fmtLabels = (l: Labels) => {
      const keys = Object.keys(l).sort();
      return keys.length ? `{${keys.map((k) => `${k}="${l[k]!.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`).join(',')}}` : '';
    };
    const created = (name: string, help: string, series: Labels[]) => {
      out.push(`# HELP ${name}_created ${help}`, `# TYPE ${name}_created gauge`);
      for (const l of series) out.push(`${name}_created${fmtLabels(l)} ${floatToGoString(this.createdAt)}`);
    };
    const gauge = (name: string, help: string, series: Array<[Labels, number]>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
      for (const [l, v] of series) out.push(`${name}${fmtLabels(l)} ${floatToGoString(v)}`);
    };
    const counter = (name: string, help: string, series: Array<[Labels, number]>) => {
      out.push(`# HELP ${name}_total ${help}`, `# TYPE ${name}_total counter`);
      for (const [l, v] of series) out.push(`${name}_total${fmtLabels(l)} ${floatToGoString(v)}`);
      created(name, help, series.map(([l]) => l));
    };
    const histogram = (name: string, help: string, h: HistogramState) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
      h.bounds.forEach((b, i) => out.push(`${name}_bucket${fmtLabels({ ...base, le: floatToGoString(b) })} ${floatToGoString(h.counts[i]!)}`));
      out.push(`${name}_bucket${fmtLabels({ ...base, le: '+Inf' })} ${floatToGoString(h.count)}`);
      out.push(`${name}_count${fmtLabels(base)} ${floatToGoString(h.count)}`);
      out.push(`${name}_sum${fmtLabels(base)} ${floatToGoString(h.sum)}`);
      created(name, help, [base]);
    };

    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    gauge('process_virtual_memory_bytes', 'Virtual memory size in bytes.', [[{}, mem.rss + mem.external]]);
    gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', [[{}, mem.rss]]);
    gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', [[{}, this.processStartTime]]);
    out.push('# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.', '# TYPE process_cpu_seconds_total counter', `process_cpu_seconds_total ${floatToGoString(Math.round((cpu.user + cpu.system) / 1e4) / 100)}`);
    const c = this.counters;
    counter('vllm:estimated_flops_per_gpu', 'Estimated number of floating point operations per GPU (for Model Flops Utilization calculations).', [[base, 0]]);
    counter('vllm:estimated_read_bytes_per_gpu', 'Estimated number of bytes read from memory per GPU (for Model Flops Utilization calculations).', [[base, 0]]);
    counter('vllm:estimated_write_bytes_per_gpu', 'Estimated number of bytes written to memory per GPU (for Model Flops Utilization calculations).', [[base, 0]]);
    gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', [[base, this.running]]);
    gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', [[base, this.waiting]]);
    gauge('vllm:num_requests_waiting_by_reason', "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all reasons equals vllm:num_requests_waiting.", [
      [{ ...base, reason: 'capacity' }, this.waiting],
      [{ ...base, reason: 'deferred' }, 0],
    ]);
    gauge('vllm:engine_sleep_state', 'Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.', [
      [{ ...base, sleep_state: 'awake' }, this.sleepState.awake],
      [{ ...base, sleep_state: 'weights_offloaded' }, this.sleepState.weights_offloaded],
      [{ ...base, sleep_state: 'discard_all' }, this.sleepState.discard_all],
    ]);
    gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', [[base, this.kvUsage]]);
    counter('vllm:prefix_cache_queries', 'Prefix cache queries, in terms of number of queried tokens.', [[base, c.prefix_cache_queries]]);
    counter('vllm:prefix_cache_hits', 'Prefix cache hits, in terms of number of cached tokens.', [[base, c.prefix_cache_hits]]);
    counter('vllm:external_prefix_cache_queries', 'External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.', [[base, c.external_prefix_cache_queries]]);
    counter('vllm:external_prefix_cache_hits', 'External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.', [[base, c.external_prefix_cache_hits]]);
    counter('vllm:mm_cache_queries', 'Multi-modal cache queries, in terms of number of queried items.', [[base, c.mm_cache_queries]]);
    counter('vllm:mm_cache_hits', 'Multi-modal cache hits, in terms of number of cached items.', [[base, c.mm_cache_hits]]);
    counter('vllm:num_preemptions', 'Cumulative number of preemption from the engine.', [[base, c.num_preemptions]]);
    counter('vllm:prompt_tokens', 'Number of prefill tokens processed.', [[base, c.prompt_tokens]]);
    counter(
      'vllm:prompt_tokens_by_source',
      'Number of prompt tokens by source.',
      (Object.keys(this.bySource) as Array<keyof typeof this.bySource>).map((s) => [{ ...base, source: s }, this.bySource[s]]),
    );
    counter('vllm:prompt_tokens_cached', 'Number of cached prompt tokens (local + external).', [[base, c.prompt_tokens_cached]]);
    const since032 = this.metricSet === '0.32.0';
    if (since032) counter(
      'vllm:prompt_tokens_cached_by_source',
      'Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host (offloaded to DRAM), disk, p2p (transferred from another vLLM instance) or external_unspecified. Counted at admission; sums to vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.',
      (['device', 'host', 'p2p', 'disk', 'external_unspecified'] as const).map((src) => [{ ...base, source: src }, src === 'device' ? c.prefix_cache_hits : 0]),
    );
    counter('vllm:generation_tokens', 'Number of generation tokens processed.', [[base, c.generation_tokens]]);
    counter('vllm:request_success', 'Count of successfully processed requests.', FINISHED_REASONS.map((r) => [{ ...base, finished_reason: r }, this.success[r]]));
    // No engine label on this one in v0.32.0: admission happens in the API server.
    if (since032) counter('vllm:admission_rejections', 'Number of admission attempts rejected by a queue limit, by reason.', [
      [{ model_name: this.model, reason: 'max_num_queued_reqs' }, this.admissionRejections.max_num_queued_reqs],
      [{ model_name: this.model, reason: 'max_num_queued_tokens' }, this.admissionRejections.max_num_queued_tokens],
    ]);
    const h = this.h;
    histogram('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', h.request_prompt_tokens);
    histogram('vllm:request_generation_tokens', 'Number of generation tokens processed.', h.request_generation_tokens);
    histogram('vllm:iteration_tokens_total', 'Histogram of number of tokens per engine_step.', h.iteration_tokens_total);
    histogram('vllm:request_max_num_generation_tokens', 'Histogram of maximum number of requested generation tokens.', h.request_max_num_generation_tokens);
    histogram('vllm:request_params_n', 'Histogram of the n request parameter.', h.request_params_n);
    histogram('vllm:request_params_max_tokens', 'Histogram of the max_tokens request parameter.', h.request_params_max_tokens);
    histogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', h.time_to_first_token_seconds);
    histogram('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', h.inter_token_latency_seconds);
    histogram('vllm:request_time_per_output_token_seconds', 'Histogram of time_per_output_token_seconds per request.', h.request_time_per_output_token_seconds);
    histogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', h.e2e_request_latency_seconds);
    histogram('vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', h.request_queue_time_seconds);
    histogram('vllm:request_inference_time_seconds', 'Histogram of time spent in RUNNING phase for request.', h.request_inference_time_seconds);
    histogram('vllm:request_prefill_time_seconds', 'Histogram of time spent in PREFILL phase for request.', h.request_prefill_time_seconds);
    histogram('vllm:request_decode_time_seconds', 'Histogram of time spent in DECODE phase for request.', h.request_decode_time_seconds);
    if (since032) histogram('vllm:request_num_preemptions', 'Histogram of the number of times a request was preempted.', h.request_num_preemptions);
    histogram('vllm:request_prefill_kv_computed_tokens', 'Histogram of new KV tokens computed during prefill (excluding cached tokens).', h.request_prefill_kv_computed_tokens);
    gauge('vllm:cache_config_info', 'Information of the LLMEngine CacheConfig', [[this.cacheConfigLabels(), 1]]);
    return `${out.join('\n')}\n`;
  }

  /** cache_config_info's labels as each captured version has them (open-ended upstream; readers must not depend on them). */
  private cacheConfigLabels(): Labels {
    const cc = this.cacheConfig;
    const both: Labels = {
      _block_size_resolved: 'True',
      block_size: String(cc.blockSize),
      cache_dtype: 'auto',
      enable_prefix_caching: cc.prefixCaching ? 'True' : 'False',
      engine: '0',
      gpu_memory_utilization: '0.9',
      is_attention_free: 'False',
      kv_cache_dtype_skip_layers: '[]',
      kv_cache_max_concurrency: pythonRepr((cc.numGpuBlocks * cc.blockSize) / this.maxModelLen),
      kv_cache_memory_bytes: 'None',
      kv_cache_size_tokens: String(cc.numGpuBlocks * cc.blockSize),
      kv_offloading_backend: 'native',
      kv_offloading_size: 'None',
      kv_sharing_fast_prefill: 'False',
      mamba_block_size: 'None',
      mamba_cache_dtype: 'auto',
      mamba_cache_mode: 'none',
      mamba_page_size_padded: 'None',
      mamba_ssm_cache_dtype: 'float32',
      num_cpu_blocks: 'None',
      num_gpu_blocks: String(cc.numGpuBlocks),
      num_gpu_blocks_override: 'None',
      prefix_caching_hash_algo: 'sha256',
      prefix_match_unit: 'None',
      skip_page_size_padded: 'None',
      sliding_window: 'None',
      user_specified_block_size: 'False',
    };
    if (this.metricSet === '0.26.0') return { ...both, calculate_kv_scales: 'False', mamba_ssm_cache_dtype: 'auto', user_specified_mamba_block_size: 'False' };
    return {
      ...both,
      cache_hit_alignment_tokens: 'None',
      effective_attention_block_size: String(cc.blockSize),
      enable_mamba_shared_prefix_checkpoint: 'False',
      hash_block_size: 'None',
      kv_cache_layout: 'None',
      prefix_cache_retention_interval: '0',
      replayssm_buffer_len: '16',
      swa_bounded_replay: 'True',
      use_kda_recoverssm: 'False',
      use_replayssm: 'False',
    };
  }
}
