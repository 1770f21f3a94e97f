/**
 * Grafana dashboards generated from code (`vllm-probe dashboards --out grafana/dashboards`), so
 * the SLO line matches the config and every panel query is listed for the dead-panel test
 * (test/e2e/prometheus.test.ts evaluates each one against a real Prometheus).
 *
 * Conventions: a datasource variable (no hard-coded UIDs), `instance` and `model` variables,
 * rates over $__rate_interval, percentiles from histogram_quantile over summed buckets, a
 * "vLLM restart" annotation from vllm_probe_target_restarts_total.
 */
// Type-only: tsc checks the generated JSON against Grafana's own dashboard schema types.
import type { Dashboard, DataQuery, FieldConfigSource, Panel, RowPanel, ThresholdsConfig, ValueMap, ValueMapping } from '@grafana/schema';
import type { Config } from '../config.js';

export interface PanelQuery {
  expr: string;
  legend: string;
  /** Instant query (bar gauges and tables of the latest values). */
  instant?: boolean;
}
export interface PanelSpec {
  title: string;
  description: string;
  type: 'timeseries' | 'stat' | 'gauge' | 'bargauge' | 'table';
  unit: string;
  queries: PanelQuery[];
  /** Grid width (of 24) and height. */
  w?: number;
  h?: number;
  thresholds?: Array<{ value: number | null; color: string }>;
  /** Draw the thresholds on a time series as lines (e.g. the 0.95 KV-usage line). */
  thresholdLines?: boolean;
  /** Value → word and colour (stat panels showing a state as a number). */
  mappings?: Array<{ value: number; text: string; color: string }>;
  min?: number;
  max?: number;
  /** Tables: one row per label set, the instant queries merged; column titles by field name. */
  columns?: Record<string, string>;
  /** Tables: the column sorted on, worst first. */
  sortBy?: string;
  /** What the panel says instead of "No data" (a signal older vLLM versions do not export). */
  noValue?: string;
}

/** The words on a panel whose vLLM family is missing from older versions (0.26.0 has none of it). */
export const NEWER_VLLM_SIGNAL = 'not exported by this vLLM (0.32 has it, 0.26 does not)';

/**
 * The /status verdict as a number per instance, worst last, so a stat tile can map it to a
 * word and a colour: 0 healthy, 1 unknown, 2 degraded, 3 unhealthy.
 */
export const VERDICT_VALUES = [
  { value: 0, text: 'healthy', color: 'green' },
  { value: 1, text: 'unknown', color: 'text' },
  { value: 2, text: 'degraded', color: 'orange' },
  { value: 3, text: 'unhealthy', color: 'red' },
] as const;
export interface RowSpec {
  title: string;
  panels: PanelSpec[];
}
export interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  rows: RowSpec[];
}

const F = 'instance=~"$instance",model=~"$model"';
const I = 'instance=~"$instance"';
/** The "vLLM restarts" annotation on every dashboard. */
export const RESTART_ANNOTATION_EXPR = `changes(vllm_probe_target_restarts_total{${I}}[2m]) > 0`;
const q = (expr: string, legend: string): PanelQuery => ({ expr, legend });
const quantiles = (metric: string, filter: string, by = '') =>
  [0.5, 0.95, 0.99].map((p) => q(`histogram_quantile(${p}, sum by (le${by ? `, ${by}` : ''}) (rate(${metric}_bucket{${filter}}[$__rate_interval])))`, `p${p * 100}${by ? ` {{${by}}}` : ''}`));

export function dashboardSpecs(config: Config): DashboardSpec[] {
  const ttftSlo = config.slo.ttft.threshold;
  const overview: DashboardSpec = {
    uid: 'vllm-probe-overview',
    title: 'vLLM on-call overview (vllm-probe)',
    description: 'Is vLLM serving within its SLOs right now? Verdict, client-side TTFT against the SLO, probe outcomes and error budget.',
    rows: [
      {
        title: 'Verdict',
        panels: [
          {
            title: '/status verdict',
            description: 'The verdict of vllm-probe /status per instance: healthy, degraded, unhealthy, or unknown before the first probe finished. curl <sidecar>:9470/status?format=text for the reason.',
            type: 'stat',
            unit: 'none',
            w: 6,
            queries: [q(`max by (instance) (${VERDICT_VALUES.map((v) => `(vllm_probe_status{${I},status="${v.text}"} == 1) * ${v.value}`).join(' or ')})`, '{{instance}}')],
            mappings: [...VERDICT_VALUES],
            thresholds: [{ value: null, color: 'green' }, { value: 2, color: 'orange' }, { value: 3, color: 'red' }],
          },
          {
            title: 'Diagnosed state',
            description: 'The state /status names now (healthy, saturated, kv_pressure, crashed, asleep, misconfigured …), per instance; docs/runbook.md has a section for each. Synthetic probes skipped while vLLM sleeps are counted in vllm_probe_probes_skipped_total.',
            type: 'table',
            unit: 'none',
            w: 6,
            queries: [q(`max by (instance, state) (vllm_probe_state{${I}} == 1)`, '{{instance}} {{state}}'), q(`sum by (instance, probe, reason) (increase(vllm_probe_probes_skipped_total{${I}}[$__range]))`, '{{instance}} {{probe}} skipped: {{reason}}')],
          },
          {
            title: 'Probe success (last run)',
            description: 'Whether the last synthetic probe of each kind succeeded.',
            type: 'stat',
            unit: 'bool_yes_no',
            w: 6,
            queries: [q(`min by (probe) (vllm_probe_probe_success{${F}})`, '{{probe}}')],
            thresholds: [{ value: null, color: 'red' }, { value: 1, color: 'green' }],
          },
          {
            title: 'Error budget remaining (30-day SLOs)',
            description: 'Share of each SLO error budget left over the SLO period (recording rule slo:period_error_budget_remaining:ratio).',
            type: 'stat',
            unit: 'percentunit',
            w: 6,
            queries: [q(`min by (slo) (slo:period_error_budget_remaining:ratio{${F}})`, '{{slo}}')],
            thresholds: [{ value: null, color: 'red' }, { value: 0.25, color: 'orange' }, { value: 0.5, color: 'green' }],
          },
          {
            title: 'Burn rate (5m)',
            description: 'Error ratio over 5 minutes divided by the error budget: 1 spends the budget exactly over the period, 14.4 pages.',
            type: 'stat',
            unit: 'none',
            w: 6,
            queries: [q(`max by (slo) (slo:current_burn_rate:ratio{${F}})`, '{{slo}}')],
            thresholds: [{ value: null, color: 'green' }, { value: 1, color: 'orange' }, { value: 6, color: 'red' }],
          },
        ],
      },
      {
        title: 'Latency and outcomes',
        panels: [
          {
            title: 'Client-side TTFT against the SLO',
            description: `Time to first token measured by the TTFT probe; the SLO line is ${ttftSlo} s (slo.ttft.threshold).`,
            type: 'timeseries',
            unit: 's',
            w: 12,
            queries: [...quantiles('vllm_probe_time_to_first_token_seconds', `${F},probe="ttft"`), q(`vector(${ttftSlo})`, 'SLO')],
          },
          {
            title: 'Probe outcomes',
            description: 'Probe requests per second by outcome; anything but success counts against availability.',
            type: 'timeseries',
            unit: 'reqps',
            w: 12,
            queries: [q(`sum by (outcome) (rate(vllm_probe_requests_total{${F}}[$__rate_interval]))`, '{{outcome}}')],
          },
          {
            title: 'SLI error ratio by window',
            description: 'Error ratio of each SLO over the burn-rate windows (recording rules slo:sli_error:ratio_rate*).',
            type: 'timeseries',
            unit: 'percentunit',
            w: 12,
            queries: [q(`max by (slo) (slo:sli_error:ratio_rate1h{${F}})`, '{{slo}} 1h'), q(`max by (slo) (slo:sli_error:ratio_rate5m{${F}})`, '{{slo}} 5m')],
          },
          {
            title: 'vLLM reachable',
            description: 'GET /health answered 200 (1) or not (0).',
            type: 'timeseries',
            unit: 'bool',
            w: 12,
            queries: [q(`max by (instance) (vllm_probe_target_up{${I}})`, '{{instance}}')],
          },
        ],
      },
    ],
  };

  const detail: DashboardSpec = {
    uid: 'vllm-probe-detail',
    title: 'vLLM detail (vllm-probe)',
    description: 'Why is it slow? Token latencies, cold vs warm, prefix caching, engine state, server- vs client-side TTFT and the GPUs.',
    rows: [
      {
        title: 'Token latencies (client side)',
        panels: [
          { title: 'Inter-token latency', description: 'Gap between streamed content chunks of the TTFT probe.', type: 'timeseries', unit: 's', w: 8, queries: quantiles('vllm_probe_inter_token_latency_seconds', F) },
          { title: 'Time per output token', description: '(E2E - TTFT) / (completion tokens - 1) per probe.', type: 'timeseries', unit: 's', w: 8, queries: quantiles('vllm_probe_time_per_output_token_seconds', F) },
          {
            title: 'End-to-end probe duration',
            description: `Whole request time of successful probes; the SLO line is ${config.slo.e2e.threshold} s (slo.e2e.threshold).`,
            type: 'timeseries',
            unit: 's',
            w: 8,
            queries: [...quantiles('vllm_probe_request_duration_seconds', `${F},outcome="success"`), q(`vector(${config.slo.e2e.threshold})`, 'SLO')],
          },
          {
            title: 'Cold vs warm TTFT (mean over the range)',
            description: 'Mean TTFT of the first probes after a vLLM restart (cold) against all others (warm). Empty for cold until a restart happened in the range.',
            type: 'stat',
            unit: 's',
            w: 12,
            queries: [q(`sum by (phase) (increase(vllm_probe_time_to_first_token_seconds_sum{${F}}[$__range])) / sum by (phase) (increase(vllm_probe_time_to_first_token_seconds_count{${F}}[$__range]))`, '{{phase}}')],
          },
          {
            title: 'Server-side vs client-side TTFT (p95)',
            description: "vLLM's own TTFT histogram (all traffic) next to the TTFT probe's client-side TTFT; the gap is network, proxy and tokenisation.",
            type: 'timeseries',
            unit: 's',
            w: 12,
            queries: [
              q(`histogram_quantile(0.95, sum by (le) (rate(vllm_probe_engine_time_to_first_token_seconds_bucket{${F}}[$__rate_interval])))`, 'server p95'),
              q(`histogram_quantile(0.95, sum by (le) (rate(vllm_probe_time_to_first_token_seconds_bucket{${F},probe="ttft"}[$__rate_interval])))`, 'client p95'),
            ],
          },
          {
            title: 'TTFT probe split: vLLM\'s own TTFT, queue and the gap (p95)',
            description:
              "Per probe, from the metrics object vLLM returns with --enable-per-request-metrics: vLLM's own TTFT (queue + prefill), its queue time, and client TTFT minus vLLM's (network, HTTP server, tokenisation). A growing gap with a flat server TTFT points outside the engine. Empty without the flag.",
            type: 'timeseries',
            unit: 's',
            w: 12,
            queries: [
              q(`histogram_quantile(0.95, sum by (le) (rate(vllm_probe_server_time_to_first_token_seconds_bucket{${F},probe="ttft"}[$__rate_interval])))`, 'vLLM TTFT p95'),
              q(`histogram_quantile(0.95, sum by (le) (rate(vllm_probe_server_queue_time_seconds_bucket{${F},probe="ttft"}[$__rate_interval])))`, 'queue p95'),
              q(`histogram_quantile(0.95, sum by (le) (rate(vllm_probe_ttft_gap_seconds_bucket{${F},probe="ttft"}[$__rate_interval])))`, 'gap p95'),
            ],
          },
          {
            title: 'TTFT probe: share spent queued (p95)',
            description: "Share of the probe's client TTFT spent waiting in vLLM's scheduler queue (--enable-per-request-metrics). Near 0 on an idle server; high means the replica is full, not slow.",
            type: 'timeseries',
            unit: 'percentunit',
            w: 12,
            min: 0,
            max: 1,
            queries: [q(`histogram_quantile(0.95, sum by (le) (rate(vllm_probe_ttft_queue_share_ratio_bucket{${F},probe="ttft"}[$__rate_interval])))`, 'queue share p95')],
          },
        ],
      },
      {
        title: 'Prefix caching',
        panels: [
          {
            title: 'Prefix probe TTFT: hit vs miss',
            description: 'Median TTFT of requests reusing a shared prefix (hit) and of forced misses, per prefix size.',
            type: 'timeseries',
            unit: 's',
            w: 6,
            queries: [q(`histogram_quantile(0.5, sum by (le, cache, prefix_tokens) (rate(vllm_probe_prefix_time_to_first_token_seconds_bucket{${F}}[$__rate_interval])))`, '{{cache}} P={{prefix_tokens}}')],
          },
          {
            title: 'Prefix speedup',
            description: 'Miss TTFT / hit TTFT per prefix size: 4× means a cache hit reaches the first token four times sooner.',
            type: 'timeseries',
            unit: 'suffix:×',
            w: 6,
            min: 0,
            queries: [q(`vllm_probe_prefix_speedup_ratio{${F}}`, 'P={{prefix_tokens}}')],
          },
          {
            title: 'Prefix saved fraction: measured vs predicted',
            description: 'Share of TTFT a cache hit saves, against the P/(P+S) prediction for prefix P and suffix S (0 to 1).',
            type: 'timeseries',
            unit: 'percentunit',
            w: 6,
            min: 0,
            max: 1,
            queries: [q(`vllm_probe_prefix_saved_fraction_ratio{${F}}`, 'measured P={{prefix_tokens}}'), q(`vllm_probe_prefix_predicted_saved_fraction_ratio{${F}}`, 'predicted P={{prefix_tokens}}')],
          },
          {
            title: 'Engine prefix-cache hit ratio',
            description: 'rate(hits) / rate(queries) from vLLM /metrics, all traffic.',
            type: 'timeseries',
            unit: 'percentunit',
            w: 6,
            queries: [
              q(
                // V0 engines export the ratio itself instead of the counters.
                `sum by (instance) (rate(vllm_probe_engine_prefix_cache_hits_total{${F}}[$__rate_interval])) / sum by (instance) (rate(vllm_probe_engine_prefix_cache_queries_total{${F}}[$__rate_interval])) or max by (instance) (vllm_probe_engine_v0_prefix_cache_hit_ratio{${F}})`,
                '{{instance}}',
              ),
            ],
          },
          {
            title: 'Prefix probe: cached share of prompt tokens',
            description: 'Prompt tokens the server said were cached (usage.prompt_tokens_details.cached_tokens) over prompt tokens sent, per prefix-probe request kind: hits should be near the prefix share, misses near 0.',
            type: 'timeseries',
            unit: 'percentunit',
            w: 6,
            queries: [q(`sum by (cache) (rate(vllm_probe_prefix_cached_tokens_total{${F}}[$__rate_interval])) / sum by (cache) (rate(vllm_probe_prefix_prompt_tokens_total{${F}}[$__rate_interval]))`, '{{cache}}')],
          },
          {
            title: 'Prefix hits with nothing cached',
            description: 'Prefix-probe hit requests per second for which the server reported no cached tokens although the prefix was just sent: prefix caching off, evicted, or the count not reported.',
            type: 'timeseries',
            unit: 'reqps',
            w: 6,
            queries: [q(`sum by (instance) (rate(vllm_probe_prefix_uncached_hits_total{${F}}[$__rate_interval]))`, '{{instance}}')],
          },
          {
            title: 'Prefix caching enabled',
            description: 'Whether vLLM runs with prefix caching (from vllm:cache_config_info).',
            type: 'stat',
            unit: 'bool_yes_no',
            w: 3,
            queries: [q(`max by (instance) (vllm_probe_engine_prefix_caching_enabled{${F}})`, '{{instance}}')],
          },
          {
            title: 'Cache-hit granularity',
            description: 'Tokens per prefix-cache hit step (cache_hit_alignment_tokens, else block_size): a shared prefix is reused in whole steps only.',
            type: 'stat',
            unit: 'short',
            w: 3,
            queries: [q(`max by (instance) (vllm_probe_engine_cache_hit_alignment_tokens{${F}})`, '{{instance}}')],
          },
          {
            title: 'Cached prompt tokens by tier',
            description: 'Cached prompt tokens per second by the tier that supplied them: device (GPU), host (CPU offload), disk, p2p (another instance).',
            type: 'timeseries',
            unit: 'suffix: tok/s',
            w: 6,
            queries: [q(`sum by (source) (rate(vllm_probe_engine_prompt_tokens_cached_by_source_total{${F}}[$__rate_interval]))`, '{{source}}')],
            noValue: NEWER_VLLM_SIGNAL,
          },
          {
            title: 'Cross-instance prefix-cache hit ratio',
            description: 'Hits over queries in the KV-connector (cross-instance) prefix cache; no value without a KV connector.',
            type: 'timeseries',
            unit: 'percentunit',
            w: 6,
            queries: [q(`sum by (instance) (rate(vllm_probe_engine_external_prefix_cache_hits_total{${F}}[$__rate_interval])) / sum by (instance) (rate(vllm_probe_engine_external_prefix_cache_queries_total{${F}}[$__rate_interval]))`, '{{instance}}')],
          },
        ],
      },
      {
        title: 'Engine',
        panels: [
          {
            title: 'KV-cache usage',
            description: `Share of KV-cache blocks in use (vllm:kv_cache_usage_perc); /status degrades above ${config.status.kv_cache_usage_degraded} (status.kv_cache_usage_degraded): requests queue and running ones get preempted.`,
            type: 'timeseries',
            unit: 'percentunit',
            w: 6,
            min: 0,
            max: 1,
            queries: [q(`vllm_probe_engine_kv_cache_usage_ratio{${F}}`, '{{instance}}')],
            thresholds: [{ value: null, color: 'green' }, { value: config.status.kv_cache_usage_degraded, color: 'red' }],
            thresholdLines: true,
          },
          {
            title: 'Requests running / waiting',
            description: 'Scheduled requests and the queue.',
            type: 'timeseries',
            unit: 'short',
            w: 6,
            queries: [q(`vllm_probe_engine_requests_running{${F}}`, 'running {{instance}}'), q(`vllm_probe_engine_requests_waiting{${F}}`, 'waiting {{instance}}')],
          },
          { title: 'Preemptions', description: 'Preemptions per second: KV pressure evicting running sequences.', type: 'timeseries', unit: 'ops', w: 6, queries: [q(`rate(vllm_probe_engine_preemptions_total{${F}}[$__rate_interval])`, '{{instance}}')] },
          {
            title: 'Queue, prefill and decode time (mean)',
            description: 'Server-side phase times per request.',
            type: 'timeseries',
            unit: 's',
            w: 6,
            queries: ['queue_time', 'prefill_time', 'decode_time'].map((p) =>
              q(`sum(rate(vllm_probe_engine_request_${p}_seconds_sum{${F}}[$__rate_interval])) / sum(rate(vllm_probe_engine_request_${p}_seconds_count{${F}}[$__rate_interval]))`, p.replace('_time', '')),
            ),
          },
          { title: 'Token throughput', description: 'Prompt and generated tokens per second (all traffic).', type: 'timeseries', unit: 'suffix: tok/s', w: 12, queries: [q(`rate(vllm_probe_engine_prompt_tokens_total{${F}}[$__rate_interval])`, 'prompt'), q(`rate(vllm_probe_engine_generation_tokens_total{${F}}[$__rate_interval])`, 'generation')] },
          { title: 'KV-cache capacity', description: 'num_gpu_blocks x block_size.', type: 'stat', unit: 'short', w: 6, queries: [q(`vllm_probe_engine_kv_cache_capacity_tokens{${F}}`, '{{instance}}')] },
          {
            title: 'Admission rejections (load shed)',
            description: 'Requests vLLM refused with HTTP 503 because a queue limit was reached (--max-num-queued-reqs / --max-num-queued-tokens), per second by reason. Non-zero: add replicas or raise the limits.',
            type: 'timeseries',
            unit: 'reqps',
            w: 6,
            queries: [q(`sum by (instance, reason) (rate(vllm_probe_engine_admission_rejections_total{${F}}[$__rate_interval]))`, '{{reason}} {{instance}}')],
            noValue: NEWER_VLLM_SIGNAL,
          },
          {
            title: 'Prompt tokens by source',
            description: "Where prompt tokens' KV came from, per second: local_compute (prefilled here), local_cache_hit (this instance's prefix cache), external_kv_transfer (a KV connector).",
            type: 'timeseries',
            unit: 'suffix: tok/s',
            w: 6,
            queries: [q(`sum by (source) (rate(vllm_probe_engine_prompt_tokens_by_source_total{${F}}[$__rate_interval]))`, '{{source}}')],
          },
          { title: 'Engine wedged', description: '1 per signature (no_token_after_headers, frozen_counters, queue_stuck) while /health is 200 and the engine makes no progress; docs/runbook.md says what each means.', type: 'stat', unit: 'bool_yes_no', w: 6, queries: [q(`max by (instance) (vllm_probe_engine_wedged{${F}})`, '{{instance}}')] },
          {
            title: 'Waiting requests by reason',
            description: 'Why queued requests wait: capacity (no room in the batch or KV cache), deferred (LoRA budget, KV transfer), other.',
            type: 'timeseries',
            unit: 'short',
            w: 6,
            queries: [q(`sum by (reason) (vllm_probe_engine_requests_waiting_by_reason{${F}})`, '{{reason}}')],
          },
          {
            title: 'KV-cache max concurrency',
            description: 'Requests of max_model_len tokens that fit in the KV cache at once, as vLLM computes it.',
            type: 'stat',
            unit: 'short',
            w: 6,
            queries: [q(`max by (instance) (vllm_probe_engine_kv_cache_max_concurrency{${F}})`, '{{instance}}')],
          },
          {
            title: 'Preemptions per finished request (mean)',
            description: 'How often a finished request was preempted on average (vllm:request_num_preemptions): above 0, KV pressure is recomputing work.',
            type: 'timeseries',
            unit: 'short',
            w: 6,
            queries: [q(`sum by (instance) (rate(vllm_probe_engine_request_preemptions_sum{${F}}[$__rate_interval])) / sum by (instance) (rate(vllm_probe_engine_request_preemptions_count{${F}}[$__rate_interval]))`, '{{instance}}')],
            noValue: NEWER_VLLM_SIGNAL,
          },
          {
            title: 'vLLM version and metric schema',
            description: 'GET /version and which metric generation its /metrics follows (v0, v1-early, v1).',
            type: 'table',
            unit: 'none',
            w: 6,
            queries: [{ expr: `max by (instance, model, version, schema) (vllm_probe_engine_info{${F}})`, legend: '{{version}}', instant: true }],
            columns: { instance: 'Instance', model: 'Model', version: 'vLLM', schema: 'Schema', Value: 'Info' },
          },
        ],
      },
      {
        title: 'GPU',
        panels: [
          {
            title: 'GPU memory used / free',
            description: 'nvidia-smi memory.used (excludes reserved), memory.free, memory.reserved (driver and firmware) and what the vLLM processes use.',
            type: 'timeseries',
            unit: 'bytes',
            w: 8,
            queries: [
              q(`vllm_probe_gpu_memory_used_bytes{${I}}`, 'used GPU {{gpu}}'),
              q(`vllm_probe_gpu_memory_free_bytes{${I}}`, 'free GPU {{gpu}}'),
              q(`vllm_probe_gpu_memory_reserved_bytes{${I}}`, 'reserved GPU {{gpu}}'),
              q(`vllm_probe_gpu_process_memory_used_bytes{${I}}`, 'vLLM processes GPU {{gpu}}'),
            ],
          },
          {
            title: 'GPU memory headroom',
            description: `Free share of GPU memory; /status degrades under ${config.status.gpu_memory_headroom_degraded * 100} %.`,
            type: 'gauge',
            unit: 'percentunit',
            w: 4,
            queries: [q(`vllm_probe_gpu_memory_free_bytes{${I}} / vllm_probe_gpu_memory_total_bytes{${I}}`, 'GPU {{gpu}}')],
            thresholds: [{ value: null, color: 'red' }, { value: config.status.gpu_memory_headroom_degraded, color: 'orange' }, { value: 0.15, color: 'green' }],
          },
          {
            title: 'GPU utilisation',
            description: 'utilization.gpu (kernel busy time) and utilization.memory (device memory read or written).',
            type: 'timeseries',
            unit: 'percentunit',
            w: 4,
            queries: [q(`vllm_probe_gpu_utilization_ratio{${I}}`, 'kernels GPU {{gpu}}'), q(`vllm_probe_gpu_memory_utilization_ratio{${I}}`, 'memory bus GPU {{gpu}}')],
          },
          { title: 'GPU power', description: 'Draw against the enforced limit.', type: 'timeseries', unit: 'watt', w: 4, queries: [q(`vllm_probe_gpu_power_draw_watts{${I}}`, 'draw GPU {{gpu}}'), q(`vllm_probe_gpu_power_limit_watts{${I}}`, 'limit GPU {{gpu}}')] },
          {
            title: 'GPU temperature',
            description: 'Core and HBM (memory) temperature; HBM where the board reports it.',
            type: 'timeseries',
            unit: 'celsius',
            w: 4,
            queries: [
              // One query: HBM temperature is N/A on some boards, and the panel must not go dark for it.
              q(`label_replace(vllm_probe_gpu_temperature_celsius{${I}}, "sensor", "core", "", "") or label_replace(vllm_probe_gpu_memory_temperature_celsius{${I}}, "sensor", "HBM", "", "")`, '{{sensor}} GPU {{gpu}}'),
            ],
          },
          {
            title: 'GPU clocks',
            description: 'Current SM and memory clocks: an SM clock far below its usual value under load is throttling (power, thermal).',
            type: 'timeseries',
            unit: 'hertz',
            w: 6,
            queries: [q(`vllm_probe_gpu_sm_clock_hertz{${I}}`, 'SM GPU {{gpu}}'), q(`vllm_probe_gpu_memory_clock_hertz{${I}}`, 'memory GPU {{gpu}}')],
          },
          {
            title: 'GPU performance state',
            description: 'P-state: 0 is maximum performance, up to 15 minimum; a loaded GPU should be at P0.',
            type: 'timeseries',
            unit: 'none',
            w: 6,
            queries: [q(`vllm_probe_gpu_pstate{${I}}`, 'GPU {{gpu}}')],
          },
          {
            title: 'Uncorrected ECC errors',
            description: 'Uncorrected ECC errors since the driver loaded (volatile): any is an alert (VllmGpuEccUncorrectedErrors); the GPU needs a reset or replacement.',
            type: 'stat',
            unit: 'short',
            w: 4,
            queries: [q(`vllm_probe_gpu_ecc_uncorrected_volatile_errors{${I}}`, 'GPU {{gpu}}')],
            thresholds: [{ value: null, color: 'green' }, { value: 1, color: 'red' }],
          },
          {
            title: 'GPUs',
            description: 'Each GPU: model, driver and PCI bus id (nvidia-smi).',
            type: 'table',
            unit: 'none',
            w: 8,
            queries: [{ expr: `max by (instance, gpu, name, driver_version, pci_bus_id) (vllm_probe_gpu_info{${I}})`, legend: '{{name}}', instant: true }],
            columns: { instance: 'Instance', gpu: 'GPU', name: 'Model', driver_version: 'Driver', pci_bus_id: 'PCI bus', Value: 'Info' },
          },
        ],
      },
      {
        title: 'Host and vLLM processes',
        panels: [
          {
            title: 'vLLM processes',
            description: 'Processes matching gpu.process_match (API server, engine cores). 0: none visible from the sidecar (shareProcessNamespace: true).',
            type: 'timeseries',
            unit: 'short',
            w: 6,
            queries: [q(`sum by (instance) (vllm_probe_vllm_processes{${F}})`, '{{instance}}')],
          },
          {
            title: 'vLLM process CPU',
            description: 'CPU cores the vLLM processes use (user + system): tokenisation and scheduling run here.',
            type: 'timeseries',
            unit: 'short',
            w: 6,
            queries: [q(`sum by (instance) (rate(vllm_probe_vllm_process_cpu_seconds_total{${F}}[$__rate_interval]))`, '{{instance}}')],
          },
          {
            title: 'vLLM process resident memory',
            description: 'Resident host memory of the vLLM processes, summed.',
            type: 'timeseries',
            unit: 'bytes',
            w: 6,
            queries: [q(`sum by (instance) (vllm_probe_vllm_process_resident_memory_bytes{${F}})`, '{{instance}}')],
          },
          {
            title: 'Host CPU busy',
            description: 'Host CPU busy share over all cores: tokenisation and scheduling compete with everything else on the host.',
            type: 'timeseries',
            unit: 'percentunit',
            w: 6,
            queries: [q(`vllm_probe_host_cpu_utilization_ratio{${I}}`, 'CPU busy {{instance}}')],
          },
          {
            title: 'Host memory available',
            description: 'MemAvailable: vLLM swap space and CPU KV offload live in host memory.',
            type: 'timeseries',
            unit: 'bytes',
            w: 6,
            queries: [q(`vllm_probe_host_memory_available_bytes{${I}}`, '{{instance}}')],
          },
          {
            title: 'Environment',
            description: 'The snapshot taken at start and after each vLLM restart: vLLM version, model, max_model_len, GPU, driver, kernel and the launch flags that matter.',
            type: 'table',
            unit: 'none',
            w: 18,
            queries: [{ expr: `max by (instance, vllm_version, model, max_model_len, gpu, driver_version, kernel, launch_flags) (vllm_probe_environment_info{${F}})`, legend: '{{vllm_version}}', instant: true }],
            columns: { instance: 'Instance', vllm_version: 'vLLM', model: 'Model', max_model_len: 'max_model_len', gpu: 'GPU', driver_version: 'Driver', kernel: 'Kernel', launch_flags: 'Launch flags', Value: 'Info' },
          },
        ],
      },
      {
        title: 'vllm-probe health',
        panels: [
          { title: 'Data sources up', description: 'vLLM /metrics scrape, nvidia-smi and host collectors.', type: 'timeseries', unit: 'bool', w: 12, queries: [q(`vllm_probe_source_up{${I}}`, '{{source}}')] },
          {
            title: 'Source errors by reason',
            description: 'Failed reads per second by reason.',
            type: 'timeseries',
            unit: 'ops',
            w: 12,
            queries: [q(`sum by (source, reason) (rate(vllm_probe_source_errors_total{${I}}[$__rate_interval]))`, '{{source}} {{reason}}')],
          },
          {
            title: 'Source read time',
            description: 'How long the last read of each source took; near its timeout means the next one may fail.',
            type: 'timeseries',
            unit: 's',
            w: 6,
            queries: [q(`max by (source) (vllm_probe_source_duration_seconds{${I}})`, '{{source}}')],
          },
          {
            title: 'Data age',
            description: 'Seconds since the last successful read of each source: the age of what the panels show.',
            type: 'timeseries',
            unit: 's',
            w: 6,
            queries: [q(`max by (source) (time() - vllm_probe_source_last_success_timestamp_seconds{${I}})`, '{{source}}')],
          },
          {
            title: 'Config reload',
            description: 'Whether the last config (re)load succeeded; after a failed one the previous config stays in use (alert VllmProbeConfigReloadFailed). The age is since the last successful load.',
            type: 'stat',
            unit: 'bool_yes_no',
            w: 6,
            queries: [q(`min by (instance) (vllm_probe_config_last_reload_successful{${I}})`, 'loaded {{instance}}')],
            thresholds: [{ value: null, color: 'red' }, { value: 1, color: 'green' }],
          },
          {
            title: 'Config loaded',
            description: 'When the config in use was loaded (start, SIGHUP or POST /-/reload).',
            type: 'stat',
            unit: 'dateTimeFromNow',
            w: 6,
            queries: [q(`max by (instance) (vllm_probe_config_last_reload_success_timestamp_seconds{${I}}) * 1000`, '{{instance}}')],
          },
          {
            title: 'Probe run time (last run)',
            description: 'How long the last run of each probe took, whatever its outcome; compare with the probe timeout.',
            type: 'timeseries',
            unit: 's',
            w: 6,
            queries: [q(`max by (probe) (vllm_probe_probe_duration_seconds{${F}})`, '{{probe}}')],
          },
          {
            title: 'Since the last successful probe',
            description: 'Seconds since each probe last succeeded: more than a few intervals means it is failing.',
            type: 'stat',
            unit: 's',
            w: 6,
            queries: [q(`max by (probe) (time() - vllm_probe_last_success_timestamp_seconds{${F}})`, '{{probe}}')],
          },
          {
            title: 'Tokens the probes cost',
            description: 'Input and output tokens per second the synthetic probes send to and get from vLLM: their share of its load.',
            type: 'timeseries',
            unit: 'suffix: tok/s',
            w: 6,
            queries: [q(`sum by (probe, token_type) (rate(vllm_probe_probe_tokens_total{${F}}[$__rate_interval]))`, '{{probe}} {{token_type}}')],
          },
          {
            title: 'Model served',
            description: 'Whether /v1/models lists the model probed (target.model, else the first served): 0 means requests for it fail.',
            type: 'stat',
            unit: 'bool_yes_no',
            w: 6,
            queries: [q(`min by (model) (vllm_probe_model_served{${F}})`, '{{model}}')],
            thresholds: [{ value: null, color: 'red' }, { value: 1, color: 'green' }],
          },
        ],
      },
    ],
  };
  return [overview, detail];
}

/** Units, thresholds, value mappings, and the SLO series drawn as a dashed red line. */
function fieldConfig(p: PanelSpec): FieldConfigSource {
  const mappings: ValueMapping[] | undefined = p.mappings && [{ type: 'value' as ValueMap['type'], options: Object.fromEntries(p.mappings.map((m, index) => [String(m.value), { text: m.text, color: m.color, index }])) }];
  const sloSeries = p.queries.some((x) => x.legend === 'SLO');
  return {
    defaults: {
      unit: p.unit,
      ...(p.min !== undefined ? { min: p.min } : {}),
      ...(p.max !== undefined ? { max: p.max } : {}),
      ...(p.thresholds ? { thresholds: { mode: 'absolute' as ThresholdsConfig['mode'], steps: p.thresholds } } : {}),
      ...(mappings ? { mappings } : {}),
      ...(p.thresholdLines ? { custom: { thresholdsStyle: { mode: 'line' } } } : {}),
      ...(p.noValue ? { noValue: p.noValue } : {}),
    },
    overrides: sloSeries
      ? [
          {
            matcher: { id: 'byName', options: 'SLO' },
            properties: [
              { id: 'color', value: { mode: 'fixed', fixedColor: 'red' } },
              { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
            ],
          },
        ]
      : [],
  };
}

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

function panelOptions(p: PanelSpec): Panel['options'] {
  if (p.type === 'timeseries') return { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } };
  if (p.type === 'table') return { showHeader: true, ...(p.sortBy ? { sortBy: [{ displayName: p.sortBy, desc: true }] } : {}) };
  return {
    reduceOptions: { calcs: ['lastNotNull'] },
    ...(p.type === 'bargauge' ? { orientation: 'horizontal', displayMode: 'gradient' } : {}),
    ...(p.mappings ? { colorMode: 'background', textMode: 'value_and_name' } : {}),
  };
}

/** Lays rows of panels out on Grafana's 24-column grid, each row under its collapsible header. */
export function renderPanels(rows: RowSpec[]): Array<Panel | RowPanel> {
  const ds = DATASOURCE;
  const panels: Array<Panel | RowPanel> = [];
  let id = 1;
  let y = 0;
  for (const row of rows) {
    panels.push({ type: 'row', id: id++, title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y++;
    let x = 0;
    let rowHeight = 0;
    for (const p of row.panels) {
      const w = p.w ?? 12;
      const h = p.h ?? (p.type === 'timeseries' ? 8 : 5);
      if (x + w > 24) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      const panel: Panel = {
        type: p.type,
        id: id++,
        title: p.title,
        description: p.description,
        datasource: ds,
        gridPos: { h, w, x, y },
        fieldConfig: fieldConfig(p),
        options: panelOptions(p),
        targets: p.queries.map((query, i) => ({
          refId: String.fromCharCode(65 + i),
          datasource: ds,
          expr: query.expr,
          legendFormat: query.legend,
          ...(query.instant ? { instant: true, range: false } : {}),
          ...(p.type === 'table' ? { format: 'table' } : {}),
        })),
      };
      if (p.columns) {
        // One row per label set: the instant tables joined on their labels, columns renamed.
        panel.transformations = [
          { id: 'merge', options: {} },
          { id: 'organize', options: { excludeByName: { Time: true }, renameByName: p.columns } },
        ];
      }
      panels.push(panel);
      x += w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return panels;
}

/** A query variable over label values, All selectable. */
export const labelVariable = (name: string, label: string, query: string) => ({ name, label, type: 'query' as const, datasource: DATASOURCE, query: { query, refId: name }, includeAll: true, multi: true, allValue: '.*', refresh: 2 as const });

/** The parts every generated dashboard shares: schema, time range, refresh, tags, the datasource variable. */
export function dashboardFrame(spec: DashboardSpec, extra: { tags?: string[]; variables: NonNullable<Dashboard['templating']>['list']; annotations?: Dashboard['annotations'] }): Dashboard {
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ['vllm', 'vllm-probe', ...(extra.tags ?? [])],
    timezone: 'utc',
    editable: true,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-3h', to: 'now' },
    ...(extra.annotations ? { annotations: extra.annotations } : {}),
    templating: { list: [{ name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', hide: 0 }, ...(extra.variables ?? [])] },
    panels: renderPanels(spec.rows),
  };
}

/** Renders one spec as Grafana dashboard JSON (schemaVersion 39). */
export function renderDashboard(spec: DashboardSpec): Dashboard {
  return dashboardFrame(spec, {
    annotations: {
      list: [
        {
          name: 'vLLM restarts',
          datasource: DATASOURCE,
          enable: true,
          iconColor: 'orange',
          // The Prometheus data source's annotation query (Grafana ≥ 9 "target" form).
          target: { refId: 'restarts', expr: RESTART_ANNOTATION_EXPR, titleFormat: 'vLLM restarted', textFormat: '{{instance}}' } as DataQuery,
        },
      ],
    },
    variables: [labelVariable('instance', 'Instance', 'label_values(vllm_probe_build_info, instance)'), labelVariable('model', 'Model', 'label_values(vllm_probe_requests_total{instance=~"$instance"}, model)')],
  });
}

/** Every panel query of every dashboard, for the dead-panel test. */
export function allPanelQueries(config: Config): Array<{ dashboard: string; panel: string; expr: string; noValue?: string }> {
  return dashboardSpecs(config).flatMap((d) => d.rows.flatMap((r) => r.panels.flatMap((p) => p.queries.map((query) => ({ dashboard: d.uid, panel: p.title, expr: query.expr, ...(p.noValue ? { noValue: p.noValue } : {}) })))));
}
