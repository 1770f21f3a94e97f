import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { EngineMetrics } from '../../src/emulator/engine-metrics.js';
import { parseExposition } from '../../src/vllm/exposition.js';
import { explainSnapshot, normaliseVllmMetrics } from '../../src/vllm/schema.js';

const explain = (text: string) => explainSnapshot(normaliseVllmMetrics(parseExposition(text)));
const fixture = (name: string) => readFileSync(`test/fixtures/vllm/${name}`, 'utf8');

describe('normaliseVllmMetrics', () => {
  test('V0: gauge hit rate, gpu_cache_usage_perc, no engine label', () => {
    expect(explain(fixture('v0-handwritten.txt'))).toEqual({
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
    expect(explain(fixture('v1-early-handwritten.txt'))).toEqual({
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
    expect(explain(fixture('metrics-v0.32.0.txt'))).toEqual({
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
    const real = readdirSync('test/fixtures/vllm').filter((f) => /^metrics-v[\d.]+(-[a-z]+)?\.txt$/.test(f));
    expect(real.length).toBeGreaterThanOrEqual(1);
    for (const f of real) {
      const e = explain(fixture(f));
      expect(e.schema, f).toBe('v1');
      expect(e.kv_cache_capacity_tokens, f).toBeGreaterThan(0);
      expect(e.model_names.length, f).toBe(1);
    }
  });
});
