import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli.js';
import { describe, expect, test } from 'vitest';
import { EngineMetrics } from '../../src/emulator/engine-metrics.js';
import { parseExposition } from '../../src/vllm/exposition.js';
import { explainSnapshot, normaliseVllmMetrics, sloFromBuckets } from '../../src/vllm/schema.js';

const explain = (text: string) => explainSnapshot(normaliseVllmMetrics(parseExposition(text)));
const fixture = (name: string) => readFileSync(`test/fixtures/vllm/${name}`, 'utf8');

describe('normaliseVllmMetrics', () => {
  test('V0: gauge hit rate, gpu_cache_usage_perc, no engine label', () => {
    expect(explain(fixture('v0-handwritten.txt'))).toMatchObject({
      schema: 'v0',
      engines: 1,
      kv_cache_usage_ratio: 0.4215,
      prefix_cache_enabled: true,
      prefix_cache_queries: null,
      prefix_cache_hits: null,
      prefix_cache_unit: null,
      v0_prefix_cache_hit_rate: 0.6275,
      requests_running: 3,
      requests_waiting: 2,
      preemptions: 7,
      prompt_tokens: 1234567,
      generation_tokens: 456789,
      kv_cache_capacity_tokens: 7281 * 16,
      block_size: 16,
      model_names: ['meta-llama/Llama-3.1-8B-Instruct'],
      process_start_time_seconds: null,
    });
  });

  test('V0 hit rate of -1 means no data: null, never -1', () => {
    const text = fixture('v0-handwritten.txt').replace('gpu_prefix_cache_hit_rate{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.6275', 'gpu_prefix_cache_hit_rate{model_name="meta-llama/Llama-3.1-8B-Instruct"} -1.0');
    expect(explain(text).v0_prefix_cache_hit_rate).toBeNull();
  });

  test('early V1: block-counted prefix counters summed over two engines, KV usage averaged', () => {
    expect(explain(fixture('v1-early-handwritten.txt'))).toMatchObject({
      schema: 'v1-early',
      engines: 2,
      kv_cache_usage_ratio: 0.4,
      prefix_cache_enabled: true,
      prefix_cache_queries: 1600,
      prefix_cache_hits: 400,
      prefix_cache_unit: 'blocks',
      v0_prefix_cache_hit_rate: null,
      requests_running: 6,
      requests_waiting: 1,
      preemptions: 3,
      prompt_tokens: null,
      generation_tokens: 8000,
      kv_cache_capacity_tokens: null, // num_gpu_blocks="None"
      block_size: 16,
      model_names: ['Qwen/Qwen2.5-7B'],
      process_start_time_seconds: null,
    });
  });

  test('current V1 with deprecated gpu_ families alongside: the new ones only, nothing double-counted', () => {
    const text = [
      '# TYPE vllm:kv_cache_usage_perc gauge',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25',
      '# TYPE vllm:gpu_cache_usage_perc gauge',
      'vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.25',
      '# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.',
      '# TYPE vllm:prefix_cache_queries_total counter',
      'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 800.0',
      '# TYPE vllm:prefix_cache_hits_total counter',
      'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 200.0',
      '# HELP vllm:gpu_prefix_cache_queries_total GPU prefix cache queries, in terms of number of queried tokens. DEPRECATED: Use vllm:prefix_cache_queries instead.',
      '# TYPE vllm:gpu_prefix_cache_queries_total counter',
      'vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} 800.0',
      '# TYPE vllm:gpu_prefix_cache_hits_total counter',
      'vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} 200.0',
      '# TYPE vllm:some_future_family_total counter',
      'vllm:some_future_family_total{engine="0",model_name="m",new_label="x"} 5.0',
    ].join('\n');
    const e = explain(text);
    expect(e.schema).toBe('v1');
    expect(e.prefix_cache_queries).toBe(800);
    expect(e.prefix_cache_hits).toBe(200);
    expect(e.prefix_cache_unit).toBe('tokens');
    expect(e.kv_cache_usage_ratio).toBe(0.25);
    expect(e.kv_cache_capacity_tokens).toBeNull();
  });

  test('the emulator exposition reads as current V1 with capacity from cache_config_info', () => {
    const m = new EngineMetrics('emu', 4096, { blockSize: 16, numGpuBlocks: 1000, prefixCaching: true }, 1_700_000_000);
    m.counters.prefix_cache_queries = 100;
    m.counters.prefix_cache_hits = 64;
    m.running = 2;
    const e = explain(m.render());
    expect(e).toMatchObject({ schema: 'v1', engines: 1, kv_cache_capacity_tokens: 16000, prefix_cache_enabled: true, prefix_cache_queries: 100, prefix_cache_hits: 64, requests_running: 2, model_names: ['emu'], process_start_time_seconds: 1_700_000_000 });
  });

  test('an exposition with no vllm:* family has no schema and null values', () => {
    const e = explain('# TYPE python_info gauge\npython_info{version="3.12"} 1.0\n');
    expect(e.schema).toBeNull();
    expect(e.engines).toBeNull();
    expect(e.kv_cache_usage_ratio).toBeNull();
  });

  test('the real vLLM 0.32.0 capture (CPU build, tiny model) gives exact values', () => {
    expect(explain(fixture('metrics-v0.32.0.txt'))).toMatchObject({
      schema: 'v1',
      engines: 1,
      kv_cache_usage_ratio: 0,
      prefix_cache_enabled: true,
      prefix_cache_queries: 2330,
      prefix_cache_hits: 1024,
      prefix_cache_unit: 'tokens',
      v0_prefix_cache_hit_rate: null,
      requests_running: 0,
      requests_waiting: 0,
      preemptions: 0,
      prompt_tokens: 2330,
      generation_tokens: 80,
      kv_cache_capacity_tokens: 1024 * 128,
      block_size: 128,
      model_names: ['tiny-llama'],
      // the capture's own process_start_time_seconds line, in Go exponent form
      process_start_time_seconds: Number(/^process_start_time_seconds (\S+)$/m.exec(fixture('metrics-v0.32.0.txt'))![1]),
    });
  });

  test('vLLM 0.26.0 (CUDA, H200) reads as V1 like the 0.32.0 CPU capture', () => {
    const e = explain(fixture('metrics-v0.26.0-cuda.txt'));
    expect(e.schema).toBe('v1');
    expect(e.kv_cache_capacity_tokens).toBe(399_216); // 24,951 blocks × 16 (GPU block size)
    expect(e.block_size).toBe(16);
    expect(e.model_names).toEqual(['tiny-llama']);
    expect(e.prefix_cache_enabled).toBe(true);
    expect(e.prefix_cache_hits).toBeGreaterThan(0);
    expect(e.prefix_cache_queries).toBeGreaterThan(e.prefix_cache_hits!);
    expect(e.process_start_time_seconds).toBeGreaterThan(1.7e9);
  });

  test('every saved real capture parses and reads as V1', () => {
    const real = readdirSync('test/fixtures/vllm').filter((f) => /^metrics-v[\d.]+(-[\w-]+)?\.txt$/.test(f));
    expect(real.length).toBeGreaterThanOrEqual(1);
    for (const f of real) {
      const e = explain(fixture(f));
      expect(e.schema, f).toBe('v1');
      expect(e.kv_cache_capacity_tokens, f).toBeGreaterThan(0);
      expect(e.model_names.length, f).toBe(1);
    }
  });

  test('old generations have none of the new signals: null, never 0', () => {
    for (const f of ['v0-handwritten.txt', 'v1-early-handwritten.txt']) {
      const e = explain(fixture(f));
      expect(e.admission_rejections, f).toBeNull();
      expect(e.prompt_tokens_by_source, f).toBeNull();
      expect(e.prompt_tokens_cached_by_source, f).toBeNull();
      expect(e.kv_cache_max_concurrency, f).toBeNull();
      expect(e.cache_hit_alignment_tokens, f).toBeNull();
      expect(e.request_preemptions_observed, f).toBeNull();
    }
    expect(explain(fixture('v0-handwritten.txt')).kv_cache_capacity_source).toBe('num_gpu_blocks x block_size');
  });
});

describe('the signals vLLM 0.32.0 added', () => {
  test('the real capture: admission rejections, waiting by reason, prompt sources, cache tiers, KV capacity as vLLM computes it', () => {
    expect(explain(fixture('metrics-v0.32.0.txt'))).toMatchObject({
      naming: { prefix: 'vllm:', counters: '_total' },
      admission_rejections: { max_num_queued_reqs: 0, max_num_queued_tokens: 0 },
      requests_waiting_by_reason: { capacity: 0, deferred: 0 },
      prompt_tokens_by_source: { local_compute: 1306, local_cache_hit: 1024, external_kv_transfer: 0 },
      prompt_tokens_cached: 1024,
      prompt_tokens_cached_by_source: { device: 1024, host: 0, p2p: 0, disk: 0, external_unspecified: 0 },
      external_prefix_cache_queries: 0,
      external_prefix_cache_hits: 0,
      kv_cache_capacity_tokens: 131072,
      kv_cache_capacity_source: 'kv_cache_size_tokens',
      kv_cache_max_concurrency: 32,
      // the CPU build prints "None": hits then land on block_size (128)
      cache_hit_alignment_tokens: null,
      request_preemptions_observed: 6,
      server_buckets: { time_to_first_token: { custom: false } },
    });
  });

  test('a server started with --max-num-queued-reqs 2 and --custom-histogram-buckets: rejections counted, its own TTFT bounds read', () => {
    const e = explain(fixture('metrics-v0.32.0-custom-buckets.txt'));
    expect(e.admission_rejections).toEqual({ max_num_queued_reqs: 12, max_num_queued_tokens: 0 });
    expect(e.server_buckets.time_to_first_token).toEqual({ bounds: [0.1, 0.3, 1, 3], custom: true });
    expect(e.server_buckets.e2e_latency?.custom).toBe(false);
  });

  test('a hybrid model: kv_cache_size_tokens wins over blocks x block size; two engines add up', () => {
    const info = (engine: string) =>
      `vllm:cache_config_info{block_size="16",cache_hit_alignment_tokens="64",enable_prefix_caching="True",engine="${engine}",kv_cache_max_concurrency="2.5",kv_cache_size_tokens="20480",num_gpu_blocks="4000"} 1.0`;
    const e = explain(['# TYPE vllm:kv_cache_usage_perc gauge', 'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5', '# TYPE vllm:cache_config_info gauge', info('0'), info('1')].join('\n'));
    expect(e.kv_cache_capacity_tokens).toBe(40960);
    expect(e.kv_cache_capacity_source).toBe('kv_cache_size_tokens');
    expect(e.kv_cache_max_concurrency).toBe(5);
    expect(e.cache_hit_alignment_tokens).toBe(64);
  });

  test('label values outside the known sets are summed under "other", so re-exported labels stay bounded', () => {
    const e = explain(
      [
        '# TYPE vllm:kv_cache_usage_perc gauge',
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5',
        '# TYPE vllm:prompt_tokens_cached_by_source_total counter',
        'vllm:prompt_tokens_cached_by_source_total{engine="0",model_name="m",source="device"} 10.0',
        'vllm:prompt_tokens_cached_by_source_total{engine="0",model_name="m",source="cxl"} 4.0',
        'vllm:prompt_tokens_cached_by_source_total{engine="0",model_name="m",source="nvme"} 3.0',
      ].join('\n'),
    );
    expect(e.prompt_tokens_cached_by_source).toEqual({ device: 10, host: 0, p2p: 0, disk: 0, external_unspecified: 0, other: 7 });
  });
});

describe('names other pipelines and formats use', () => {
  const { naming: _n, ...reference } = explain(fixture('metrics-v0.32.0.txt'));

  test('the real capture with every vllm: renamed vllm_ reads exactly the same', () => {
    const { naming, ...renamed } = explain(fixture('metrics-v0.32.0.txt').replaceAll('vllm:', 'vllm_'));
    expect(naming).toEqual({ prefix: 'vllm_', counters: '_total' });
    expect(renamed).toEqual(reference);
  });

  test('OpenMetrics 1.0 (counter family without _total) and 2.0 (samples without _total) read the same as text 0.0.4', () => {
    const om = (withTotal: boolean) =>
      [
        '# TYPE vllm:kv_cache_usage_perc gauge',
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25',
        '# TYPE vllm:prefix_cache_queries counter',
        '# HELP vllm:prefix_cache_queries Prefix cache queries, in terms of number of queried tokens.',
        `vllm:prefix_cache_queries${withTotal ? '_total' : ''}{engine="0",model_name="m"} 800.0 # {trace_id="abc"} 1.0 1700000000.5`,
        'vllm:prefix_cache_queries_created{engine="0",model_name="m"} 1700000000.0',
        '# TYPE vllm:prefix_cache_hits counter',
        `vllm:prefix_cache_hits${withTotal ? '_total' : ''}{engine="0",model_name="m"} 200.0`,
        '# TYPE vllm:admission_rejections counter',
        `vllm:admission_rejections${withTotal ? '_total' : ''}{model_name="m",reason="max_num_queued_reqs"} 3.0 1700000001.250`,
        '# EOF',
      ].join('\n');
    for (const [withTotal, counters] of [[true, '_total'], [false, 'no _total']] as const) {
      const e = explain(om(withTotal));
      expect(e.naming).toEqual({ prefix: 'vllm:', counters });
      expect(e).toMatchObject({ schema: 'v1', prefix_cache_queries: 800, prefix_cache_hits: 200, prefix_cache_unit: 'tokens', admission_rejections: { max_num_queued_reqs: 3 } });
    }
  });
});

describe('an SLO threshold against the server\'s bucket bounds', () => {
  const h = { buckets: [{ le: 0.1, count: 10 }, { le: 0.3, count: 60 }, { le: 1, count: 90 }, { le: Infinity, count: 100 }], sum: 30, count: 100 };

  test('a threshold that is a bound is exact', () => {
    expect(sloFromBuckets(h, 0.3)).toMatchObject({ exact: true, ratio: 0.6, error: 0 });
  });

  test('between two bounds: the share at the nearest one, and the bounds of the truth', () => {
    expect(sloFromBuckets(h, 0.5)).toMatchObject({ exact: false, lower: 0.3, upper: 1, nearest: 0.3, ratio: 0.6, min: 0.6, max: 0.9 });
    expect(sloFromBuckets(h, 0.5).error).toBeCloseTo(0.3);
    expect(sloFromBuckets(h, 0.9)).toMatchObject({ nearest: 1, ratio: 0.9 });
  });

  test('past the last finite bound only +Inf is above; no requests means no ratio', () => {
    expect(sloFromBuckets(h, 5)).toMatchObject({ lower: 1, upper: null, min: 0.9, max: 1, ratio: 0.9 });
    expect(sloFromBuckets({ buckets: h.buckets.map((b) => ({ ...b, count: 0 })), sum: 0, count: 0 }, 0.5)).toMatchObject({ requests: 0, ratio: null });
  });

  test('explain-metrics on the custom-bucket capture: TTFT 0.5 s is not a bound there (0.3 and 1.0 are), e2e 2.5 s is', () => {
    const e = explainSnapshot(normaliseVllmMetrics(parseExposition(fixture('metrics-v0.32.0-custom-buckets.txt'))), { ttft: 0.5, e2e: 2.5 });
    expect(e.slo_vs_server_buckets?.ttft).toMatchObject({ exact: false, lower: 0.3, upper: 1, nearest: 0.3, requests: 11, ratio: 1, error: 0 });
    expect(e.slo_vs_server_buckets?.e2e).toMatchObject({ exact: true, ratio: 1 });
  });
});

describe('vllm-probe explain-metrics', () => {
  async function explainCli(...args: string[]) {
    let out = '';
    let err = '';
    const code = await runCli(['explain-metrics', ...args], { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: new AbortController().signal, env: {} });
    return { code, err, json: code === 0 ? (JSON.parse(out) as Record<string, any>) : undefined };
  }

  test('on the vLLM 0.32.0 (CPU) capture it reports the new signals and the SLO thresholds against the server bounds', async () => {
    const { code, json } = await explainCli('test/fixtures/vllm/metrics-v0.32.0.txt');
    expect(code).toBe(0);
    expect(json).toMatchObject({
      naming: { prefix: 'vllm:', counters: '_total' },
      admission_rejections: { max_num_queued_reqs: 0, max_num_queued_tokens: 0 },
      prompt_tokens_by_source: { local_cache_hit: 1024 },
      prompt_tokens_cached_by_source: { device: 1024 },
      kv_cache_capacity_source: 'kv_cache_size_tokens',
      kv_cache_max_concurrency: 32,
      server_buckets: { time_to_first_token: { custom: false } },
      // default slo.ttft.threshold 0.5 s and slo.e2e.threshold 2.5 s are vLLM default bounds
      slo_vs_server_buckets: { ttft: { threshold: 0.5, exact: true }, e2e: { threshold: 2.5, exact: true } },
    });
  });

  test('--config takes the thresholds from a config; one between two custom bounds is reported with its error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'explain-'));
    writeFileSync(join(dir, 'c.yaml'), 'slo:\n  ttft:\n    threshold: 200ms\n');
    const { code, json } = await explainCli('--config', join(dir, 'c.yaml'), 'test/fixtures/vllm/metrics-v0.32.0-custom-buckets.txt');
    expect(code).toBe(0);
    expect(json!.admission_rejections.max_num_queued_reqs).toBe(12);
    expect(json!.slo_vs_server_buckets.ttft).toMatchObject({ threshold: 0.2, exact: false, lower: 0.1, upper: 0.3, requests: 11 });
    expect(json!.slo_vs_server_buckets.ttft.min).toBeCloseTo(10 / 11);
    expect(json!.slo_vs_server_buckets.ttft.max).toBe(1);
  });

  // From the H200 run of the GPU issue (docs/gpu-results).
  test('on the vLLM 0.26.0 (CUDA) capture it reports the signals that version has, and null for those it predates', async () => {
    const { code, json } = await explainCli('test/fixtures/vllm/metrics-v0.26.0-cuda.txt');
    expect(code).toBe(0);
    expect(json).toMatchObject({
      schema: 'v1',
      naming: { prefix: 'vllm:', counters: '_total' },
      requests_waiting_by_reason: { capacity: 0, deferred: 0 },
      prompt_tokens_by_source: { local_compute: 282792, local_cache_hit: 641168, external_kv_transfer: 0 },
      kv_cache_capacity_tokens: 399_216,
      kv_cache_capacity_source: 'kv_cache_size_tokens',
      kv_cache_max_concurrency: 97.46484375,
      // added after 0.26: absent, not 0
      admission_rejections: null,
      prompt_tokens_cached_by_source: null,
      cache_hit_alignment_tokens: null,
      request_preemptions_observed: null,
      server_buckets: { time_to_first_token: { custom: false }, e2e_latency: { custom: false } },
      slo_vs_server_buckets: { ttft: { exact: true }, e2e: { exact: true } },
    });
    expect(json!.prompt_tokens_cached).toBe(641168);
  });
});
