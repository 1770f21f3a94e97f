/**
 * Every metric this daemon exports, bound to one Registry passed in by the composition root.
 * Bucket lists start from the OTel GenAI lists (see docs/metrics.md) and every configured SLO
 * threshold is merged in as an exact bound, so `rate(x_bucket{le="<threshold>"})` always exists.
 */
import { Counter, Gauge, Histogram, type Registry } from './prom-client.js';
import type { Config } from './config.js';
import { ReexportedHistogram } from './reexported-histogram.js';

import { OUTCOMES } from './vllm/stream.js';
export { OUTCOMES, type Outcome } from './vllm/stream.js';

/** OTel gen_ai.server.time_to_first_token bounds plus a tail for overloaded servers. */
export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
/** OTel gen_ai.server.time_per_output_token bounds. */
export const TOKEN_LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];
/** OTel gen_ai.client.operation.duration bounds (powers of two from 10 ms). */
export const DURATION_BUCKETS = Array.from({ length: 14 }, (_, i) => Number((0.01 * 2 ** i).toFixed(2)));

/** Merges thresholds into a bucket list as exact bounds; sorted, without duplicates. */
export function withThresholds(base: number[], thresholds: number[]): number[] {
  return [...new Set([...base, ...thresholds])].sort((a, b) => a - b);
}

export const GPU_GAUGES = {
  memory_total_bytes: 'Total GPU memory in bytes (nvidia-smi memory.total).',
  memory_used_bytes:
    'GPU memory in use in bytes as nvidia-smi reports memory.used, which excludes memory.reserved (NVML\'s v1 used includes it; its v2 struct does not).',
  memory_free_bytes: 'Free GPU memory in bytes (nvidia-smi memory.free).',
  memory_reserved_bytes: 'GPU memory reserved by the driver and firmware in bytes (nvidia-smi memory.reserved).',
  utilization_ratio: 'Fraction of the last sample period in which a kernel ran on the GPU, 0-1 (nvidia-smi utilization.gpu).',
  memory_utilization_ratio: 'Fraction of the last sample period in which device memory was read or written, 0-1 (nvidia-smi utilization.memory).',
  power_draw_watts: 'Power draw in watts (nvidia-smi power.draw, or power.draw.instant where supported).',
  power_limit_watts: 'Enforced power limit in watts (nvidia-smi enforced.power.limit, else power.limit).',
  temperature_celsius: 'GPU core temperature in degrees Celsius (nvidia-smi temperature.gpu).',
  memory_temperature_celsius: 'HBM temperature in degrees Celsius (nvidia-smi temperature.memory).',
  sm_clock_hertz: 'Current SM clock in hertz (nvidia-smi clocks.current.sm).',
  memory_clock_hertz: 'Current memory clock in hertz (nvidia-smi clocks.current.memory).',
  pstate: 'Performance state, 0 (P0, maximum) to 15 (P15, minimum) (nvidia-smi pstate).',
  ecc_uncorrected_volatile_errors: 'Uncorrected ECC errors since the driver loaded (nvidia-smi ecc.errors.uncorrected.volatile.total).',
} as const;
export type GpuGaugeName = keyof typeof GPU_GAUGES;

const PER_TARGET = Symbol('perTarget');

/**
 * Marks a family that describes one target as probes see it. A central daemon keeps exactly
 * these in each static target's registry (src/fleet/targets.ts), so a probe family cannot be
 * dropped from central mode by forgetting a list; test/fleet/per-target-families.test.ts checks
 * that every family a probe run writes is marked.
 */
function perTarget<M extends object>(metric: M): M {
  return Object.assign(metric, { [PER_TARGET]: true });
}

/** The names of the families marked per target, in definition order. */
export function perTargetFamilies(metrics: Metrics): string[] {
  // prom-client's metric classes have `name` at run time but not in their types.
  return (Object.values(metrics) as unknown[])
    .filter((m): m is { name: string } => typeof m === 'object' && m !== null && PER_TARGET in m)
    .map((m) => m.name);
}

export function createMetrics(registry: Registry, config: Config) {
  const registers = [registry];
  const probeLabels = ['probe', 'model'] as const;
  const ttftBuckets = withThresholds(TTFT_BUCKETS, [config.slo.ttft.threshold, config.slo.ttft.critical_threshold]);
  const e2eBuckets = withThresholds(DURATION_BUCKETS, [config.slo.e2e.threshold, config.slo.e2e.critical_threshold]);
  const gpuGauges = Object.fromEntries(
    Object.entries(GPU_GAUGES).map(([name, help]) => [
      name,
      new Gauge({ name: `vllm_probe_gpu_${name}`, help, labelNames: ['gpu', 'uuid'] as const, registers }),
    ]),
  ) as Record<GpuGaugeName, Gauge<'gpu' | 'uuid'>>;

  return {
    buildInfo: new Gauge({
      name: 'vllm_probe_build_info',
      help: 'Always 1; labels carry the vllm-probe version and the Node.js version running it.',
      labelNames: ['version', 'node_version'] as const,
      registers,
    }),
    configReloadSuccessful: new Gauge({
      name: 'vllm_probe_config_last_reload_successful',
      help: 'Whether the last config (re)load succeeded (1) or failed and the previous config is still in use (0).',
      registers,
    }),
    configReloadTimestamp: new Gauge({
      name: 'vllm_probe_config_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last successful config load.',
      registers,
    }),

    // Synthetic probes (client-side view of the target).
    requests: perTarget(new Counter({
      name: 'vllm_probe_requests_total',
      help: 'Synthetic probe requests sent to vLLM, by outcome (closed set; every outcome starts at 0). Denominator of the availability and latency SLIs.',
      labelNames: [...probeLabels, 'outcome'] as const,
      registers,
    })),
    timeToFirstToken: perTarget(new Histogram({
      name: 'vllm_probe_time_to_first_token_seconds',
      help: 'Client-side time from sending a probe request to the first streamed chunk carrying content (successful probes only). phase="cold" marks the first probes after a vLLM restart.',
      labelNames: [...probeLabels, 'phase'] as const,
      buckets: ttftBuckets,
      registers,
    })),
    interTokenLatency: perTarget(new Histogram({
      name: 'vllm_probe_inter_token_latency_seconds',
      help: 'Client-side gap between consecutive streamed content chunks of a probe (one observation per gap).',
      labelNames: probeLabels,
      buckets: TOKEN_LATENCY_BUCKETS,
      registers,
    })),
    timePerOutputToken: perTarget(new Histogram({
      name: 'vllm_probe_time_per_output_token_seconds',
      help: 'Client-side (end-to-end minus TTFT) / (completion_tokens - 1) per successful probe, completion_tokens from the usage chunk.',
      labelNames: probeLabels,
      buckets: TOKEN_LATENCY_BUCKETS,
      registers,
    })),
    requestDuration: perTarget(new Histogram({
      name: 'vllm_probe_request_duration_seconds',
      help: 'Client-side time from sending a probe request to the end of its response, for every outcome.',
      labelNames: [...probeLabels, 'outcome'] as const,
      buckets: e2eBuckets,
      registers,
    })),
    probeTokens: perTarget(new Counter({
      name: 'vllm_probe_probe_tokens_total',
      help: 'Tokens the synthetic probes cost the target, from the usage chunk (token_type is "input" or "output").',
      labelNames: [...probeLabels, 'token_type'] as const,
      registers,
    })),
    modelPresent: perTarget(new Gauge({
      name: 'vllm_probe_model_served',
      help: 'Models probe: whether /v1/models lists the model we probe (target.model, else the first served model): 1 yes, 0 no.',
      labelNames: ['model'] as const,
      registers,
    })),
    probeSuccess: perTarget(new Gauge({
      name: 'vllm_probe_probe_success',
      help: 'Whether the last run of the probe succeeded (1) or not (0).',
      labelNames: probeLabels,
      registers,
    })),
    probeDuration: perTarget(new Gauge({
      name: 'vllm_probe_probe_duration_seconds',
      help: 'How long the last run of the probe took, in seconds.',
      labelNames: probeLabels,
      registers,
    })),
    lastSuccess: perTarget(new Gauge({
      name: 'vllm_probe_last_success_timestamp_seconds',
      help: 'Unix time of the last successful run of the probe.',
      labelNames: probeLabels,
      registers,
    })),
    targetRestarts: perTarget(new Counter({
      name: 'vllm_probe_target_restarts_total',
      help: 'vLLM restarts seen: process_start_time_seconds on its /metrics changed, or it became reachable after being unreachable.',
      registers,
    })),
    targetUp: new Gauge({
      name: 'vllm_probe_target_up',
      help: 'Whether vLLM answered GET /health with 200 at the last check (1) or not (0).',
      registers,
    }),
    statusVerdict: new Gauge({
      name: 'vllm_probe_status',
      help: 'The /status verdict as a one-hot gauge: 1 for the current status, 0 for the others.',
      labelNames: ['status'] as const,
      registers,
    }),
    probesSkipped: perTarget(new Counter({
      name: 'vllm_probe_probes_skipped_total',
      help: 'Scheduled synthetic probes not sent, by reason (asleep: vLLM sleeps on purpose, inference would queue until it wakes; traffic: mode when_idle and vLLM\'s own counters show real requests being served; retry_after: vLLM asked to come back later).',
      labelNames: ['probe', 'reason'] as const,
      registers,
    })),
    diagnosisState: new Gauge({
      name: 'vllm_probe_state',
      help: "The replica's diagnosed state as a one-hot gauge (healthy, saturated, kv_pressure, crashed, asleep, misconfigured …; docs/runbook.md has one section each).",
      labelNames: ['state'] as const,
      registers,
    }),

    // Prefix-cache probe.
    prefixTimeToFirstToken: perTarget(new Histogram({
      name: 'vllm_probe_prefix_time_to_first_token_seconds',
      help: 'Client-side TTFT of the prefix probe; cache="hit" repeats a shared prefix, cache="miss" forces a miss (cache_salt or a leading nonce).',
      labelNames: ['model', 'cache', 'prefix_tokens'] as const,
      buckets: ttftBuckets,
      registers,
    })),
    prefixSpeedup: perTarget(new Gauge({
      name: 'vllm_probe_prefix_speedup_ratio',
      help: 'Last prefix-probe cycle: miss TTFT divided by mean hit TTFT (above 1 means the cache helps).',
      labelNames: ['model', 'prefix_tokens'] as const,
      registers,
    })),
    prefixSavedFraction: perTarget(new Gauge({
      name: 'vllm_probe_prefix_saved_fraction_ratio',
      help: 'Last prefix-probe cycle: measured TTFT saved by the cache, 1 - hit/miss.',
      labelNames: ['model', 'prefix_tokens'] as const,
      registers,
    })),
    prefixPredictedSavedFraction: perTarget(new Gauge({
      name: 'vllm_probe_prefix_predicted_saved_fraction_ratio',
      help: 'Saved fraction predicted by the prefill model P/(P+S) for the measured prefix P and suffix S token counts.',
      labelNames: ['model', 'prefix_tokens'] as const,
      registers,
    })),
    prefixCachedTokens: perTarget(new Counter({
      name: 'vllm_probe_prefix_cached_tokens_total',
      help: 'Prompt tokens the server reported as cached (usage.prompt_tokens_details.cached_tokens) on prefix-probe requests.',
      labelNames: ['model', 'cache'] as const,
      registers,
    })),
    prefixPromptTokens: perTarget(new Counter({
      name: 'vllm_probe_prefix_prompt_tokens_total',
      help: 'Prompt tokens sent by prefix-probe requests (usage.prompt_tokens).',
      labelNames: ['model', 'cache'] as const,
      registers,
    })),
    prefixUncachedHits: perTarget(new Counter({
      name: 'vllm_probe_prefix_uncached_hits_total',
      help: 'Prefix-probe hit requests that the server said had no cached tokens although their prefix was just sent.',
      labelNames: ['model'] as const,
      registers,
    })),

    // Health of each data source this daemon reads (vLLM /metrics, nvidia-smi, host).
    sourceUp: new Gauge({
      name: 'vllm_probe_source_up',
      help: 'Whether the last read of the source succeeded (1) or failed (0).',
      labelNames: ['source'] as const,
      registers,
    }),
    sourceDuration: new Gauge({
      name: 'vllm_probe_source_duration_seconds',
      help: 'How long the last read of the source took, in seconds.',
      labelNames: ['source'] as const,
      registers,
    }),
    sourceLastSuccess: new Gauge({
      name: 'vllm_probe_source_last_success_timestamp_seconds',
      help: 'Unix time of the last successful read of the source.',
      labelNames: ['source'] as const,
      registers,
    }),
    sourceErrors: new Counter({
      name: 'vllm_probe_source_errors_total',
      help: 'Failed reads of a source by reason (closed set: timeout, connect_error, http_status, too_large, parse_error, missing_binary, exit_status, unparsable, no_gpu, no_procfs, not_visible, internal).',
      labelNames: ['source', 'reason'] as const,
      registers,
    }),

    // vLLM engine state, normalised from the target's /metrics across vLLM versions.
    engineInfo: new Gauge({
      name: 'vllm_probe_engine_info',
      help: 'Always 1; labels carry the vLLM version (GET /version) and which metric schema its /metrics follows (v0, v1-early, v1).',
      labelNames: ['model', 'version', 'schema'] as const,
      registers,
    }),
    engineKvCacheUsage: new Gauge({
      name: 'vllm_probe_engine_kv_cache_usage_ratio',
      help: 'KV-cache usage 0-1, averaged over engines (vllm:kv_cache_usage_perc, or vllm:gpu_cache_usage_perc before v0.10).',
      labelNames: ['model'] as const,
      registers,
    }),
    engineKvCacheCapacity: new Gauge({
      name: 'vllm_probe_engine_kv_cache_capacity_tokens',
      help: 'KV-cache capacity in tokens from vllm:cache_config_info, summed over engines: kv_cache_size_tokens where vLLM reports it (right for hybrid models), else num_gpu_blocks x block_size.',
      labelNames: ['model'] as const,
      registers,
    }),
    enginePrefixCachingEnabled: new Gauge({
      name: 'vllm_probe_engine_prefix_caching_enabled',
      help: 'Whether vLLM runs with prefix caching on (1) or off (0), from vllm:cache_config_info enable_prefix_caching.',
      labelNames: ['model'] as const,
      registers,
    }),
    engineRequestsRunning: new Gauge({
      name: 'vllm_probe_engine_requests_running',
      help: 'Requests in model execution batches, summed over engines (vllm:num_requests_running).',
      labelNames: ['model'] as const,
      registers,
    }),
    engineRequestsWaiting: new Gauge({
      name: 'vllm_probe_engine_requests_waiting',
      help: 'Requests waiting to be scheduled, summed over engines (vllm:num_requests_waiting).',
      labelNames: ['model'] as const,
      registers,
    }),
    enginePrefixCacheQueries: new Counter({
      name: 'vllm_probe_engine_prefix_cache_queries_total',
      help: 'Prefix-cache lookups from vllm:prefix_cache_queries_total (or the gpu_ variant), accumulated from scrape deltas so vLLM restarts never make it go backwards; unit is in the unit label (tokens, or blocks before v0.9).',
      labelNames: ['model', 'unit'] as const,
      registers,
    }),
    enginePrefixCacheHits: new Counter({
      name: 'vllm_probe_engine_prefix_cache_hits_total',
      help: 'Prefix-cache hits from vllm:prefix_cache_hits_total (or the gpu_ variant), accumulated from scrape deltas; divide its rate by the queries rate for the hit ratio.',
      labelNames: ['model', 'unit'] as const,
      registers,
    }),
    enginePrefixCacheHitRatio: new Gauge({
      name: 'vllm_probe_engine_v0_prefix_cache_hit_ratio',
      help: 'V0 engines only: vllm:gpu_prefix_cache_hit_rate as reported (absent while vLLM reports -1, no data). V1 engines export hits and queries counters instead.',
      labelNames: ['model'] as const,
      registers,
    }),
    enginePreemptions: new Counter({
      name: 'vllm_probe_engine_preemptions_total',
      help: 'Preemptions from vllm:num_preemptions_total, accumulated from scrape deltas.',
      labelNames: ['model'] as const,
      registers,
    }),
    enginePromptTokens: new Counter({
      name: 'vllm_probe_engine_prompt_tokens_total',
      help: 'Prefill tokens processed from vllm:prompt_tokens_total, accumulated from scrape deltas.',
      labelNames: ['model'] as const,
      registers,
    }),
    engineGenerationTokens: new Counter({
      name: 'vllm_probe_engine_generation_tokens_total',
      help: 'Generated tokens from vllm:generation_tokens_total, accumulated from scrape deltas.',
      labelNames: ['model'] as const,
      registers,
    }),
    engineWedged: perTarget(new Gauge({
      name: 'vllm_probe_engine_wedged',
      help: 'Whether vLLM looks wedged (1) by one signature while /health is 200: no_token_after_headers (probe requests accepted, no token before their timeout, 2 in a row), frozen_counters (token and step counters still while requests wait), queue_stuck (requests wait, none runs, nothing generated).',
      labelNames: ['model', 'signature'] as const,
      registers,
    })),
    engineTimeToFirstToken: new ReexportedHistogram({
      name: 'vllm_probe_engine_time_to_first_token_seconds',
      help: 'Server-side TTFT from vllm:time_to_first_token_seconds, re-exported with vLLM\'s own bounds from scrape deltas (reset-safe).',
      registers,
    }),
    engineQueueTime: new ReexportedHistogram({
      name: 'vllm_probe_engine_request_queue_time_seconds',
      help: 'Server-side time in the WAITING phase from vllm:request_queue_time_seconds, re-exported from scrape deltas.',
      registers,
    }),
    enginePrefillTime: new ReexportedHistogram({
      name: 'vllm_probe_engine_request_prefill_time_seconds',
      help: 'Server-side time in the PREFILL phase from vllm:request_prefill_time_seconds, re-exported from scrape deltas.',
      registers,
    }),
    engineDecodeTime: new ReexportedHistogram({
      name: 'vllm_probe_engine_request_decode_time_seconds',
      help: 'Server-side time in the DECODE phase from vllm:request_decode_time_seconds, re-exported from scrape deltas.',
      registers,
    }),

    // vLLM 0.32 signals (issue 19): overload, where prompt tokens come from, vLLM's own KV sizing.
    engineAdmissionRejections: new Counter({
      name: 'vllm_probe_engine_admission_rejections_total',
      help: 'Requests vLLM refused with HTTP 503 because a queue limit was reached (--max-num-queued-reqs, --max-num-queued-tokens), from vllm:admission_rejections_total, accumulated from scrape deltas; reason is max_num_queued_reqs, max_num_queued_tokens or other.',
      labelNames: ['model', 'reason'] as const,
      registers,
    }),
    engineRequestsWaitingByReason: new Gauge({
      name: 'vllm_probe_engine_requests_waiting_by_reason',
      help: 'Waiting requests by why they wait, summed over engines (vllm:num_requests_waiting_by_reason): capacity (no room in the batch or KV cache), deferred (LoRA budget, KV transfer, blocked), or other.',
      labelNames: ['model', 'reason'] as const,
      registers,
    }),
    enginePromptTokensBySource: new Counter({
      name: 'vllm_probe_engine_prompt_tokens_by_source_total',
      help: 'Prompt tokens by where their KV came from (vllm:prompt_tokens_by_source_total), accumulated from scrape deltas: local_compute (prefilled here), local_cache_hit (this instance\'s prefix cache), external_kv_transfer (a KV connector), or other.',
      labelNames: ['model', 'source'] as const,
      registers,
    }),
    enginePromptTokensCachedBySource: new Counter({
      name: 'vllm_probe_engine_prompt_tokens_cached_by_source_total',
      help: 'Cached prompt tokens by the cache tier that supplied them (vllm:prompt_tokens_cached_by_source_total), accumulated from scrape deltas: device (GPU memory), host (CPU offload), disk, p2p (another instance), external_unspecified, or other.',
      labelNames: ['model', 'source'] as const,
      registers,
    }),
    engineExternalPrefixCacheQueries: new Counter({
      name: 'vllm_probe_engine_external_prefix_cache_queries_total',
      help: 'Prompt tokens looked up in the cross-instance (KV connector) prefix cache, from vllm:external_prefix_cache_queries_total, accumulated from scrape deltas (stays 0 without a KV connector).',
      labelNames: ['model'] as const,
      registers,
    }),
    engineExternalPrefixCacheHits: new Counter({
      name: 'vllm_probe_engine_external_prefix_cache_hits_total',
      help: 'Prompt tokens found in the cross-instance (KV connector) prefix cache, from vllm:external_prefix_cache_hits_total, accumulated from scrape deltas.',
      labelNames: ['model'] as const,
      registers,
    }),
    engineKvCacheMaxConcurrency: new Gauge({
      name: 'vllm_probe_engine_kv_cache_max_concurrency',
      help: 'How many requests of max_model_len tokens fit in the KV cache at once, as vLLM computes it (kv_cache_max_concurrency in vllm:cache_config_info), summed over engines.',
      labelNames: ['model'] as const,
      registers,
    }),
    engineCacheHitAlignment: new Gauge({
      name: 'vllm_probe_engine_cache_hit_alignment_tokens',
      help: 'Token granularity at which prefix-cache hits land (cache_hit_alignment_tokens in vllm:cache_config_info, else block_size): a shared prefix shorter than a multiple of it is partly recomputed.',
      labelNames: ['model'] as const,
      registers,
    }),
    engineRequestPreemptions: new ReexportedHistogram({
      name: 'vllm_probe_engine_request_preemptions',
      help: 'Times each finished request was preempted, from vllm:request_num_preemptions, re-exported with vLLM\'s own bounds from scrape deltas (the first bucket, le=1, holds never and once preempted requests together).',
      registers,
    }),
    engineSloBucketBound: new Gauge({
      name: 'vllm_probe_engine_slo_bucket_bound_seconds',
      help: 'The bounds of vLLM\'s own latency histogram either side of each configured SLO threshold (slo is ttft or e2e, side is lower or upper; both equal the threshold when it is a bound). Use them as le in server-side SLO queries when vLLM runs with --custom-histogram-buckets.',
      labelNames: ['model', 'slo', 'side'] as const,
      registers,
    }),

    // TTFT decomposition (vLLM --enable-per-request-metrics): client TTFT against vLLM's own.
    probeServerTimeToFirstToken: perTarget(new Histogram({
      name: 'vllm_probe_server_time_to_first_token_seconds',
      help: 'vLLM\'s own view of a probe\'s time to first token, queue_time_ms + time_to_first_token_ms from the response\'s metrics object (needs --enable-per-request-metrics; vLLM counts from when the engine queued the request).',
      labelNames: probeLabels,
      buckets: ttftBuckets,
      registers,
    })),
    probeServerQueueTime: perTarget(new Histogram({
      name: 'vllm_probe_server_queue_time_seconds',
      help: 'Time a probe request waited in vLLM\'s scheduler queue, queue_time_ms from the response\'s metrics object (needs --enable-per-request-metrics).',
      labelNames: probeLabels,
      buckets: ttftBuckets,
      registers,
    })),
    probeTtftGap: perTarget(new Histogram({
      name: 'vllm_probe_ttft_gap_seconds',
      help: 'Client TTFT minus vLLM\'s own TTFT for the same probe: network, HTTP server, tokenisation and client time outside the engine (needs --enable-per-request-metrics).',
      labelNames: probeLabels,
      buckets: ttftBuckets,
      registers,
    })),
    probeTtftQueueShare: perTarget(new Histogram({
      name: 'vllm_probe_ttft_queue_share_ratio',
      help: 'Share of a probe\'s client TTFT spent waiting in vLLM\'s scheduler queue, 0-1 (queue_time_ms / client TTFT; needs --enable-per-request-metrics).',
      labelNames: probeLabels,
      buckets: [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1],
      registers,
    })),

    // GPUs, from nvidia-smi.
    gpu: gpuGauges,
    gpuInfo: new Gauge({
      name: 'vllm_probe_gpu_info',
      help: 'Always 1; static identity of each GPU from nvidia-smi (join on uuid).',
      labelNames: ['gpu', 'uuid', 'name', 'driver_version', 'pci_bus_id'] as const,
      registers,
    }),
    gpuProcessMemory: new Gauge({
      name: 'vllm_probe_gpu_process_memory_used_bytes',
      help: 'GPU memory used by the matched vLLM process(es) on each GPU, summed, from nvidia-smi --query-compute-apps used_gpu_memory; 0 when no vLLM process is on the GPU, absent when the process list could not be read.',
      labelNames: ['gpu', 'uuid'] as const,
      registers,
    }),
    vllmProcessCpuSeconds: new Counter({
      name: 'vllm_probe_vllm_process_cpu_seconds_total',
      help: 'CPU time (user + system) of the matched vLLM processes from /proc/<pid>/stat, summed and accumulated per pid so exits and restarts never move it back; rate() gives cores in use.',
      labelNames: ['model'] as const,
      registers,
    }),
    vllmProcessResidentMemory: new Gauge({
      name: 'vllm_probe_vllm_process_resident_memory_bytes',
      help: 'Resident memory of the matched vLLM processes from /proc/<pid>/status VmRSS, summed.',
      labelNames: ['model'] as const,
      registers,
    }),
    vllmProcesses: new Gauge({
      name: 'vllm_probe_vllm_processes',
      help: 'How many processes match gpu.process_match (API server and engine processes); 0 when none is visible, e.g. a sidecar without a shared PID namespace.',
      labelNames: ['model'] as const,
      registers,
    }),
    environmentInfo: new Gauge({
      name: 'vllm_probe_environment_info',
      help: 'Always 1; the environment snapshot taken at start and after every vLLM restart: vLLM version, model, max_model_len, GPU, driver, kernel and the vLLM launch flags that matter (when its process is visible).',
      labelNames: ['vllm_version', 'model', 'max_model_len', 'gpu', 'driver_version', 'kernel', 'launch_flags'] as const,
      registers,
    }),
    hostCpuUtilization: new Gauge({
      name: 'vllm_probe_host_cpu_utilization_ratio',
      help: 'Host CPU busy fraction 0-1 across all cores between two collections, from /proc/stat (tokenisation and scheduling in vLLM run on the CPU).',
      registers,
    }),
    hostMemoryAvailable: new Gauge({
      name: 'vllm_probe_host_memory_available_bytes',
      help: 'Host memory available to new allocations in bytes, MemAvailable from /proc/meminfo (vLLM swap space and CPU KV offload live here).',
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * The series of one GET /probe answer (fleet mode), bound to a registry made for that request,
 * as blackbox_exporter's probe_success / probe_duration_seconds. Gauges only: every answer is
 * one probe, and Prometheus keeps the history.
 */
export function createProbeEndpointMetrics(registry: Registry) {
  const registers = [registry];
  return {
    success: new Gauge({ name: 'vllm_probe_success', help: 'GET /probe: whether this probe of the target succeeded (1) or not (0).', registers }),
    duration: new Gauge({ name: 'vllm_probe_duration_seconds', help: 'GET /probe: how long this probe took, in seconds, every request of the module included.', registers }),
    outcome: new Gauge({
      name: 'vllm_probe_outcome',
      help: 'GET /probe: the outcome of this probe as a one-hot gauge over the closed set of outcomes (1 for the outcome, 0 for the others).',
      labelNames: ['outcome'] as const,
      registers,
    }),
    ttft: new Gauge({ name: 'vllm_probe_ttft_seconds', help: 'GET /probe: client-side time to first token of the probe\'s streaming request, in seconds (successful probes only).', registers }),
    itl: new Gauge({ name: 'vllm_probe_itl_seconds', help: 'GET /probe: mean client-side gap between streamed tokens of the probe\'s streaming request, in seconds (successful probes only).', registers }),
    e2e: new Gauge({ name: 'vllm_probe_e2e_seconds', help: 'GET /probe: client-side time from sending the probe\'s streaming request to the end of its response, in seconds (successful probes only).', registers }),
  };
}
export type ProbeEndpointMetrics = ReturnType<typeof createProbeEndpointMetrics>;

/** Creates every probe × outcome series at 0 so rate() sees the first failure. */
export function preinitialiseProbeSeries(metrics: Metrics, probe: string, model: string): void {
  for (const outcome of OUTCOMES) {
    metrics.requests.labels({ probe, model, outcome }).inc(0);
  }
  metrics.probeTokens.labels({ probe, model, token_type: 'input' }).inc(0);
  metrics.probeTokens.labels({ probe, model, token_type: 'output' }).inc(0);
}
