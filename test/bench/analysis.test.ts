import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { coldWarmSummary, findKnee, markdownTable, MIN_SAMPLES_P95, predictedSavedFraction, sloTarget, sloTargetText, summariseLevel, toCsv, type LevelResult } from '../../src/bench/analysis.js';
import { kvBytesPerToken, PREFIX_CSV_HEADER, sequencesThatFit, splitCommand, SWEEP_CSV_HEADER } from '../../src/bench/commands.js';
import { analyseKvScaling, kvPoolKnob, kvShapeFromConfig, modelDirFromLaunch, readModelDir, type KvScalingRow } from '../../src/bench/kv-scaling.js';
import { recommend, type ReportInputs } from '../../src/bench/report.js';
import { flagsThatMatter } from '../../src/vllm/environment.js';
import type { RequestRecord } from '../../src/bench/load.js';
import { runCli } from '../../src/cli.js';
import { linearFit, percentile } from '../../src/stats.js';
import { startEmulator } from '../helpers/daemon.js';

describe('percentiles (linear interpolation, as numpy)', () => {
  test.each([
    [[1, 2, 3, 4], 0.5, 2.5],
    [[1, 2, 3, 4], 0.95, 3.85],
    [[10], 0.99, 10],
    [[3, 1, 2], 0, 1],
    [[3, 1, 2], 1, 3],
    [[0, 10], 0.25, 2.5],
  ])('%j at %d = %d', (xs, q, want) => expect(percentile(xs, q)).toBeCloseTo(want, 12));
  test('no data is undefined, not 0', () => expect(percentile([], 0.5)).toBeUndefined());
});

const level = (concurrency: number, tok: number, p95: number): LevelResult => ({
  concurrency,
  requests: 100,
  errors: 0,
  durationS: 10,
  reqPerS: tok / 64,
  outputTokPerS: tok,
  ttft: { p95 },
  e2e: { p95: p95 + 1 },
});

describe('knee finder (segmented regression of tok/s on log2 concurrency)', () => {
  test('the breakpoint of the two best-fitting lines, when the gain per doubling after it drops under a quarter', () => {
    const levels = [level(1, 100, 0.02), level(2, 200, 0.02), level(4, 390, 0.03), level(8, 740, 0.04), level(16, 790, 0.3), level(32, 800, 0.9), level(64, 795, 2.0)];
    const knee = findKnee(levels);
    expect(knee?.concurrency).toBe(8);
    expect(knee?.reason).toBe('segmented regression of output tok/s on log2(concurrency) breaks at 8: +211 tok/s per doubling up to it, +17.5 tok/s per doubling after (under 25 % of the gain before); from 8 to 64 throughput goes 740 → 795 tok/s while p95 TTFT goes 40 ms → 2.00 s');
  });
  test('no knee while throughput gains as much per doubling to the last level', () => {
    expect(findKnee([level(1, 100, 0.02), level(2, 200, 0.02), level(4, 400, 0.03)])).toBeUndefined();
    expect(findKnee([level(1, 100, 0.02), level(2, 200, 0.02), level(4, 300, 0.03), level(8, 390, 0.03)])).toBeUndefined();
  });
  test('a plateau is a knee even when latency stays flat (more concurrency buys nothing)', () => {
    expect(findKnee([level(1, 100, 0.02), level(2, 800, 0.02), level(4, 800, 0.02), level(8, 801, 0.02)])?.concurrency).toBe(2);
  });
  test('too few levels give no knee', () => expect(findKnee([level(1, 100, 0.02), level(2, 100, 0.5)])).toBeUndefined());
});

describe('concurrency target within the TTFT SLO', () => {
  // The sweep from issue 24: 16 is the last level within 500 ms; 32 and 64 break it.
  const sweep = [level(1, 125, 0.03), level(2, 250, 0.04), level(4, 500, 0.06), level(8, 802, 0.2), level(16, 1003, 0.345), level(32, 1040, 0.62), level(64, 1050, 1.4)];
  test('the highest measured level within the SLO, with its numbers and the first level that breaks it', () => {
    const t = sloTarget(sweep, 0.5);
    expect(t.kind === 'target' && t.level.concurrency).toBe(16);
    expect(sloTargetText(t, 0.5)).toBe('The highest concurrency within the TTFT SLO (p95 ≤ 500 ms) is 16 (345 ms, 1,003 tok/s); concurrency 32 breaks it (620 ms).');
  });
  test(`levels with fewer than ${MIN_SAMPLES_P95} requests or with failures do not count; none left is "not enough data"`, () => {
    const few = sweep.map((l) => ({ ...l, requests: 6 }));
    const t = sloTarget(few, 0.5);
    expect(t.kind).toBe('not-enough-data');
    expect(sloTargetText(t, 0.5)).toMatch(/^Not enough data for a concurrency target: no level has 20 successful requests without failures/);
    const mixed = sloTarget([...sweep.slice(0, 4), { ...sweep[4]!, errors: 1 }, ...sweep.slice(5)], 0.5);
    expect(mixed.kind === 'target' && mixed.level.concurrency).toBe(8);
    expect(sloTargetText(mixed, 0.5)).toContain('Not counted: concurrency 16 (1 failed requests)');
  });
  test('nothing within the SLO says so with the lowest level', () => {
    expect(sloTargetText(sloTarget([level(1, 10, 0.9), level(2, 20, 1.5)], 0.5), 0.5)).toBe('No measured concurrency is within the TTFT SLO (p95 ≤ 500 ms): already at concurrency 1 p95 TTFT is 900 ms.');
  });
});

describe('level summaries', () => {
  test('warm-up requests are excluded and errors counted', () => {
    const recs: RequestRecord[] = [
      { start: 0, end: 900, outcome: 'success', ttft: 5, e2e: 0.9, outputTokens: 10 }, // warm-up: excluded
      { start: 1000, end: 2000, outcome: 'success', ttft: 0.1, e2e: 1, outputTokens: 10 },
      { start: 1000, end: 3000, outcome: 'success', ttft: 0.3, e2e: 2, outputTokens: 10 },
      { start: 1500, end: 2500, outcome: 'http_5xx', e2e: 1 },
    ];
    const l = summariseLevel(2, recs, 1000);
    expect(l.requests).toBe(2);
    expect(l.errors).toBe(1);
    expect(l.durationS).toBe(2);
    expect(l.reqPerS).toBe(1);
    expect(l.outputTokPerS).toBe(10);
    expect(l.ttft.mean).toBeCloseTo(0.2, 12);
    expect(l.ttft.p50).toBeCloseTo(0.2, 12);
  });
});

describe('formulas', () => {
  test('predicted saved fraction P/(P+S)', () => expect(predictedSavedFraction(1024, 32)).toBeCloseTo(1024 / 1056, 12));
  test('cold/warm: warm_1 is the request right after the cold one; spread and factor over the steady state', () => {
    const s = coldWarmSummary(2, 0.9, [0.5, 0.4, 0.6, 0.5, 0.5]);
    expect(s).toMatchObject({ cold: 2, warm1: 0.9, min: 0.4, median: 0.5, max: 0.6, coldWarmFactor: 4 });
    expect(s.spreadPct).toBeCloseTo(40, 9);
  });
  test('KV bytes per token = 2 × layers × kv_heads × head_dim × dtype bytes (Llama-3-8B: 128 KiB)', () => {
    expect(kvBytesPerToken({ layers: 32, kvHeads: 8, headDim: 128, dtypeBytes: 2 })).toBe(131072);
  });
  test('sequences that fit are block-rounded', () => {
    expect(sequencesThatFit(65536, 4096, 16)).toBe(16);
    expect(sequencesThatFit(65536, 4100, 16)).toBe(15);
    expect(sequencesThatFit(131072, 1000, 128)).toBe(128);
  });
  test('least-squares fit', () => {
    const f = linearFit([{ x: 1, y: 3 }, { x: 2, y: 5 }, { x: 3, y: 7 }])!;
    expect(f.slope).toBeCloseTo(2, 12);
    expect(f.intercept).toBeCloseTo(1, 12);
    expect(f.r2).toBeCloseTo(1, 12);
    expect(linearFit([{ x: 1, y: 1 }, { x: 1, y: 2 }])).toBeUndefined();
  });
});

describe('kv-scaling analysis', () => {
  const row = (len: number, mem: number | null, cap: number, kvBytes: number | null): KvScalingRow => ({
    max_model_len: len,
    gpu_mem_before_start_bytes: mem === null ? null : 1e9,
    gpu_mem_after_start_bytes: mem,
    gpu_mem_after_first_request_bytes: mem,
    kv_cache_capacity_tokens: cap,
    block_size: 16,
    num_gpu_blocks: cap / 16,
    kv_cache_memory_bytes: kvBytes,
    max_concurrency_at_max_model_len: Math.floor(cap / len),
  });
  test('bytes per token from kv_cache_memory_bytes, slope from GPU memory, step changes flagged', () => {
    const a = analyseKvScaling([row(1024, 10e9, 100_000, 13.1e9), row(2048, 10.5e9, 105_000, 13.755e9), row(4096, 20e9, 110_000, 14.41e9)]);
    expect(a.bytes_per_token).toBeCloseTo(131000, 0);
    expect(a.gpu_memory_slope_bytes_per_token).toBeCloseTo(1e6, -4);
    expect(a.step_changes).toEqual(['GPU memory after start changes 90 % from max_model_len 2048 to 4096']);
  });
  test('without a GPU the GPU columns stay null and the slope is null', () => {
    const a = analyseKvScaling([row(1024, null, 131072, 1073741824), row(2048, null, 131072, 1073741824)]);
    expect(a.gpu_memory_slope_bytes_per_token).toBeNull();
    expect(a.bytes_per_token).toBe(8192);
    expect(a.step_changes).toEqual([]);
  });
});

describe('kv-scaling bytes per KV token without kv_cache_memory_bytes (vLLM V1 reports None)', () => {
  // The 8B Llama shape of scripts/gpu/gen_model.py (--shape l8b), as its config.json says it.
  const l8bConfig = { num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, hidden_size: 4096, torch_dtype: 'bfloat16' };
  // A flat-capacity run like vLLM 0.26.0 on an H200 at --gpu-memory-utilization 0.45:
  // 399,216 KV tokens at every max-model-len, GPU memory readings present in every row.
  const GiB = 2 ** 30;
  const flat = (len: number): KvScalingRow => ({
    max_model_len: len,
    gpu_mem_before_start_bytes: 0.5 * GiB,
    gpu_mem_after_start_bytes: 0.5 * GiB + 13.08 * GiB + 399_216 * 131_072 + 1.2 * GiB,
    gpu_mem_after_first_request_bytes: 0.5 * GiB + 13.08 * GiB + 399_216 * 131_072 + 1.2 * GiB,
    kv_cache_capacity_tokens: 399_216,
    block_size: 16,
    num_gpu_blocks: 24_951,
    kv_cache_memory_bytes: null,
    max_concurrency_at_max_model_len: Math.floor(399_216 / len),
  });
  const rows = [1024, 2048, 4096, 8192].map(flat);
  test('the shape formula from config.json: 32 × 8 × 128 × 2 × 2 = 131072 B', () => {
    expect(kvShapeFromConfig(l8bConfig)).toEqual({ layers: 32, kvHeads: 8, headDim: 128, dtypeBytes: 2 });
    expect(kvShapeFromConfig({ ...l8bConfig, head_dim: undefined })).toEqual({ layers: 32, kvHeads: 8, headDim: 128, dtypeBytes: 2 });
    expect(kvShapeFromConfig({ ...l8bConfig, num_key_value_heads: undefined })?.kvHeads).toBe(32);
    expect(kvShapeFromConfig(l8bConfig, 'fp8')?.dtypeBytes).toBe(1);
    expect(kvShapeFromConfig({ text_config: l8bConfig })?.layers).toBe(32);
    expect(kvShapeFromConfig({ num_hidden_layers: 2 })).toBeNull();
  });
  test('falls back to the model shape, checks it against GPU memory minus weights, and explains the missing slope', () => {
    const a = analyseKvScaling(rows, { shape: kvShapeFromConfig(l8bConfig), weightsBytes: 13.08 * GiB, modelDir: '/tmp/models/l8b' });
    expect(a.bytes_per_token).toBe(131_072);
    expect(a.bytes_per_token_source).toBe('model shape (config.json)');
    // the memory route over-counts by the CUDA context etc.: within 5 % here
    expect(Math.abs(a.bytes_per_token_from_gpu_memory! / 131_072 - 1)).toBeLessThan(0.05);
    expect(a.bytes_per_token_checks.join(' ')).toMatch(/32 layers × 8 kv heads × 128 head_dim × 2 × 2 bytes = 131072 B/);
    expect(a.gpu_memory_slope_bytes_per_token).toBeNull();
    expect(a.slope_note).toMatch(/KV capacity is the same in every run/);
    expect(a.slope_note).not.toMatch(/no GPU memory readings/);
  });
  test('without config.json: GPU memory minus weights, named as the source', () => {
    const a = analyseKvScaling(rows, { weightsBytes: 13.08 * GiB });
    expect(a.bytes_per_token_source).toBe('GPU memory minus weights');
    expect(a.bytes_per_token!).toBeGreaterThan(131_072);
    expect(a.bytes_per_token! / 131_072).toBeLessThan(1.05);
  });
  test('kv_cache_memory_bytes wins when vLLM reports it, and is checked against the shape', () => {
    const a = analyseKvScaling(rows.map((r) => ({ ...r, kv_cache_memory_bytes: 399_216 * 131_072 })), { shape: kvShapeFromConfig(l8bConfig) });
    expect(a.bytes_per_token_source).toBe('kv_cache_memory_bytes');
    expect(a.bytes_per_token_checks[0]).toMatch(/: 0\.0 %/);
  });
  test('nothing known: null with no source', () => {
    const a = analyseKvScaling(rows.map((r) => ({ ...r, gpu_mem_before_start_bytes: null, gpu_mem_after_start_bytes: null, gpu_mem_after_first_request_bytes: null })));
    expect(a.bytes_per_token).toBeNull();
    expect(a.bytes_per_token_source).toBeNull();
    expect(a.slope_note).toBe('no GPU memory readings');
  });
  test('the real H200 run (vLLM 0.26.0, 8B shape, 0.45 of memory): 131072 B/token, GPU memory within 5 %', () => {
    const dir = 'test/fixtures/bench/kv-scaling-h200-l8b';
    const [head, ...lines] = readFileSync(join(dir, 'kv_cache_scaling.csv'), 'utf8').trim().split('\n');
    const keys = head!.split(',');
    const real = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [keys[i], v === '' ? null : Number(v)])) as unknown as KvScalingRow);
    expect(real.map((r) => r.kv_cache_capacity_tokens)).toEqual([399_216, 399_216, 399_216, 399_216]);
    const shape = readModelDir(dir).shape; // config.json as gen_model.py wrote it (no weights here)
    const a = analyseKvScaling(real, { shape, weightsBytes: 14_035_576_008 /* model.safetensors on the device */ });
    expect(a.bytes_per_token).toBe(131_072);
    expect(a.bytes_per_token_source).toBe('model shape (config.json)');
    expect(Math.abs(a.bytes_per_token_from_gpu_memory! / 131_072 - 1)).toBeLessThan(0.05);
    expect(a.gpu_memory_slope_bytes_per_token).toBeNull();
    expect(a.slope_note).toMatch(/same in every run/);
  });
  test('the model dir from a launch command line and from a model folder', () => {
    expect(modelDirFromLaunch(['vllm', 'serve', '/m/x', '--max-model-len', '1024'])).toBe('/m/x');
    expect(modelDirFromLaunch(['python3', '-m', 'vllm.entrypoints.openai.api_server', '--model', '/m/y'])).toBe('/m/y');
    expect(modelDirFromLaunch(['python3', '-m', 'vllm.entrypoints.openai.api_server', '--model=/m/z'])).toBe('/m/z');
    expect(modelDirFromLaunch(['scripts/gpu/vllm-server', 'start', '/m/w', '--enforce-eager'])).toBe('/m/w');
    const dir = mkdtempSync(join(tmpdir(), 'kvmodel-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(l8bConfig));
    writeFileSync(join(dir, 'model-00001-of-00002.safetensors'), Buffer.alloc(1000));
    writeFileSync(join(dir, 'model-00002-of-00002.safetensors'), Buffer.alloc(24));
    expect(readModelDir(dir)).toEqual({ shape: { layers: 32, kvHeads: 8, headDim: 128, dtypeBytes: 2 }, weightsBytes: 1024 });
    expect(readModelDir(join(dir, 'nope'))).toEqual({ shape: null, weightsBytes: null });
  });
});

describe('report recommendations (each rule on recorded inputs, each naming its source)', () => {
  const base: ReportInputs = { want: { concurrency: 8, context: 4096 } };
  test('max-model-len when 8 × 4K fits', () => {
    const r = recommend({ ...base, kv: { capacity_tokens: 65536, block_size: 16, max_model_len: 8192, bytes_per_token: 131072 } }).find((x) => x.topic === 'max-model-len')!;
    expect(r.recommendation).toMatch(/^--max-model-len 8192 or lower: 8 concurrent sequences of 4096 tokens need 32768 of the 65536 KV tokens/);
    expect(r.from).toContain('bench kv');
  });
  test('max-model-len when 8 × 4K does not fit', () => {
    const r = recommend({ ...base, kv: { capacity_tokens: 16384, block_size: 16, max_model_len: 4096, bytes_per_token: null } }).find((x) => x.topic === 'max-model-len')!;
    expect(r.recommendation).toMatch(/^8 × 4096-token sequences do not fit: the KV cache holds 16384 tokens \(2048 per sequence\)/);
    expect(r.recommendation).toContain('lower the wanted concurrency to 4');
  });
  test('no concurrency target from a sweep with failed requests', () => {
    const r = recommend({ ...base, sweep: { levels: [{ concurrency: 4, requests: 8, outputTokPerS: 100, reqPerS: 1, ttft: { p95: 0.1 }, e2e: {}, errors: 2 }], knee: null, conclusion_withheld: ['concurrency 4: no conclusion: 2 of 10 requests failed'] } }).find((x) => x.topic === 'concurrency target')!;
    expect(r.recommendation).toMatch(/^None: requests failed during the sweep \(concurrency 4: no conclusion/);
  });
  // The sweep the issue describes: p95 TTFT 345 ms at 16, 64 breaks the 500 ms SLO.
  const issueSweep = { levels: [level(1, 125, 0.03), level(4, 500, 0.06), level(16, 1003, 0.345), level(64, 1050, 1.4)], knee: null, ttft_slo_s: 0.5 };
  test('concurrency target: the highest level within the TTFT SLO, with its numbers; the knee when there is one', () => {
    const r = recommend({ ...base, sweep: issueSweep }).find((x) => x.topic === 'concurrency target')!;
    expect(r.recommendation).toMatch(/^The highest concurrency within the TTFT SLO \(p95 ≤ 500 ms\) is 16 \(345 ms, 1,003 tok\/s\); concurrency 64 breaks it \(1\.40 s\)\. Run at up to 16 concurrent requests per replica/);
    expect(r.recommendation).toContain('No throughput knee in the measured range');
    expect(r.from).toContain('segmented regression');
    const withKnee = recommend({ ...base, sweep: { ...issueSweep, knee: { concurrency: 16, reason: 'flat after 16' } } }).find((x) => x.topic === 'concurrency target')!;
    expect(withKnee.recommendation).toContain('Throughput knee at concurrency 16 (flat after 16).');
  });
  test('TTFT alert: 1.5 × the highest normal p95 (at or below the target), rounded up, never below it; says when it passes the SLO', () => {
    const alert = recommend({ ...base, sweep: issueSweep }).find((x) => x.topic === 'health check: TTFT')!;
    // 345 ms × 1.5 = 518 ms → 0.75 s: above every p95 the sweep measured at 1, 4 and 16.
    expect(alert.recommendation).toMatch(/^Alert when probe TTFT p95 over 5 min exceeds 0\.75 s \(slo\.ttft\.threshold: 0\.75s in the vllm-probe config\)\. This is above the TTFT SLO \(500 ms\)/);
    expect(alert.from).toBe('bench sweep: 1.5 × the highest p95 TTFT measured at or below the concurrency target (345 ms at concurrency 16) = 518 ms, rounded up to the next of 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2 … s');
    // A noisy lower level with a higher p95 than the target's is still normal load: the threshold covers it.
    const noisy = recommend({ ...base, sweep: { ...issueSweep, levels: [level(1, 125, 0.03), level(4, 500, 0.4), level(16, 1003, 0.2), level(64, 1050, 1.4)] } }).find((x) => x.topic === 'health check: TTFT')!;
    expect(noisy.recommendation).toContain('exceeds 0.75 s');
    expect(noisy.from).toContain('(400 ms at concurrency 4)');
  });
  test('TTFT alert without a sweep, or from too few samples: not enough data, no number', () => {
    expect(recommend(base).find((x) => x.topic === 'health check: TTFT')!.recommendation).toMatch(/^Not enough data/);
    const few = { ...issueSweep, levels: issueSweep.levels.map((l) => ({ ...l, requests: 6 })) };
    const r = recommend({ ...base, sweep: few }).find((x) => x.topic === 'health check: TTFT')!;
    expect(r.recommendation).toMatch(/^No threshold derived: Not enough data/);
    expect(r.recommendation).not.toMatch(/exceeds/);
  });
  test('prefix caching on with the measured speedup, or no gain', () => {
    const rows = (cache: number, none: number) => ({ rows: [{ mode: 'no_cache', prefix_regime: 1024, concurrency: 8, mean_ttft_s: none }, { mode: 'cache', prefix_regime: 1024, concurrency: 8, mean_ttft_s: cache }] });
    expect(recommend({ ...base, prefix: rows(0.05, 0.2) }).find((x) => x.topic === 'prefix caching')!.recommendation).toMatch(/^Keep prefix caching on .* cut mean TTFT 4\.0× at P=1024 \(concurrency 8\).*P\/\(P\+S\)/);
    expect(recommend({ ...base, prefix: rows(0.2, 0.2) }).find((x) => x.topic === 'prefix caching')!.recommendation).toMatch(/^Prefix caching gave no measurable TTFT gain \(best 1\.00×\)/);
    // A cell with failed requests is no evidence either way: no prefix-caching rule at all.
    const failed = rows(0.05, 0.2);
    failed.rows[1] = { ...failed.rows[1]!, errors: 3 } as never;
    expect(recommend({ ...base, prefix: failed }).find((x) => x.topic === 'prefix caching')).toBeUndefined();
  });
  test('cold start from cold-warm; health checks listed', () => {
    const r = recommend({ ...base, coldWarm: { ttft: { cold: 1.2, median: 0.05, coldWarmFactor: 24, spreadPct: 5 }, e2e: { median: 0.4 } }, sweep: issueSweep });
    expect(r.find((x) => x.topic === 'health check: cold start')!.recommendation).toContain('24.0× the warm TTFT');
    expect(r.filter((x) => x.topic.startsWith('health check')).length).toBeGreaterThanOrEqual(4);
  });
  test('the KV pool knob: GPU visible, vLLM on CPU (process visible, no GPU), or unknown', () => {
    expect(kvPoolKnob({ gpus: [{ name: 'H100', memory_total_bytes: 1, driver_version: '1' }], launch_flags: null })).toBe('--gpu-memory-utilization');
    expect(kvPoolKnob({ gpus: null, launch_flags: ['--max-model-len 4096'] })).toBe('VLLM_CPU_KVCACHE_SPACE (vLLM on CPU)');
    expect(kvPoolKnob({ gpus: null, launch_flags: null })).toBe('--gpu-memory-utilization on a GPU (VLLM_CPU_KVCACHE_SPACE on CPU)');
  });
  test('max-model-len on CPU names VLLM_CPU_KVCACHE_SPACE, not --gpu-memory-utilization', () => {
    const environment = { gpus: null, launch_flags: ['--max-model-len 4096'] } as unknown as ReportInputs['environment'];
    const r = recommend({ ...base, environment, kv: { capacity_tokens: 16384, block_size: 16, max_model_len: 4096, bytes_per_token: null } }).find((x) => x.topic === 'max-model-len')!;
    expect(r.recommendation).toContain('more memory (VLLM_CPU_KVCACHE_SPACE (vLLM on CPU))');
    expect(r.recommendation).not.toContain('gpu-memory-utilization');
  });
});

describe('CSV and command-line helpers', () => {
  test('CSV quoting and the canonical headers', () => {
    expect(toCsv(['a', 'b'], [['x,y', 1.5], [null, 'say "hi"']])).toBe('a,b\n"x,y",1.5\n,"say ""hi"""\n');
    expect(PREFIX_CSV_HEADER.join(',')).toBe('mode,prefix_regime,concurrency,mean_ttft_s,p95_ttft_s,mean_e2e_s,p95_e2e_s,req_s,tok_s,notes');
    expect(SWEEP_CSV_HEADER[0]).toBe('concurrency');
    expect(markdownTable(['a'], [[1]])).toBe('| a |\n| --- |\n| 1 |\n');
  });
  test('commands are split without a shell', () => {
    expect(splitCommand(`scripts/real-vllm/restart --port 8000 --api-key 'a b' ""`)).toEqual(['scripts/real-vllm/restart', '--port', '8000', '--api-key', 'a b', '']);
    expect(splitCommand('echo $(rm -rf /) ; ls')).toEqual(['echo', '$(rm', '-rf', '/)', ';', 'ls']);
    expect(() => splitCommand('a "b')).toThrow(/unbalanced quote/);
  });
  test('launch flags that matter are picked from argv', () => {
    expect(flagsThatMatter(['python', '-m', 'vllm.entrypoints.openai.api_server', '--model', 'm', '--max-model-len', '4096', '--enforce-eager', '--gpu-memory-utilization=0.9', '--port', '8000'])).toEqual(['--max-model-len 4096', '--enforce-eager', '--gpu-memory-utilization=0.9']);
  });
});

describe('bench against the emulator', () => {
  let emu: Awaited<ReturnType<typeof startEmulator>>;
  beforeAll(async () => {
    emu = await startEmulator({ model: 'bench-model', maxNumSeqs: 4, itlMs: 20, coldStartMs: 150, batchSlowdown: 0 }); // ~1 s requests: client turnaround stays small next to them even on a busy CI machine
  });
  afterAll(() => emu.close());
  const cli = async (args: string[]) => {
    let out = '';
    let err = '';
    const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: new AbortController().signal, env: {} });
    return { code, out, err };
  };
  test('sweep finds the knee at the emulator capacity (max-num-seqs 4)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'sweep-'));
    const r = await cli(['bench', 'sweep', '--target', emu.url, '--concurrency', '1,2,4,8,16', '--duration', '3s', '--warmup', '500ms', '--max-tokens', '48', '--out', out, '--json']);
    expect(r.code, r.err).toBe(0);
    const s = JSON.parse(r.out) as { knee: { concurrency: number } | null };
    expect(s.knee?.concurrency).toBe(4);
    const csv = readFileSync(join(out, 'concurrency_sweep.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe(SWEEP_CSV_HEADER.join(','));
    expect(csv).toHaveLength(6);
    expect(readFileSync(join(out, 'concurrency_sweep.md'), 'utf8')).toContain('**Knee at concurrency 4**');
    expect(readFileSync(join(out, 'concurrency_sweep.md'), 'utf8')).toContain('## Environment');
  }, 30_000);

  test('prefix writes the seed CSV, cache rows faster than forced misses', async () => {
    const out = mkdtempSync(join(tmpdir(), 'prefix-'));
    const r = await cli(['bench', 'prefix', '--target', emu.url, '--regimes', '512,2048', '--concurrency', '1,2', '--requests', '6', '--max-tokens', '4', '--out', out, '--json']);
    expect(r.code, r.err).toBe(0);
    const rows = (JSON.parse(r.out) as { rows: Array<Record<string, string | number>> }).rows;
    expect(rows).toHaveLength(8);
    for (const regime of [512, 2048]) {
      const get = (mode: string) => Number(rows.find((x) => x.mode === mode && x.prefix_regime === regime && x.concurrency === 1)!.mean_ttft_s);
      expect(get('cache')).toBeLessThan(get('no_cache'));
    }
    expect(readFileSync(join(out, 'prefix_caching_results.csv'), 'utf8').split('\n')[0]).toBe(PREFIX_CSV_HEADER.join(','));
  }, 30_000);

  test('prefix --baseline: no_cache rows come from a second server with prefix caching off', async () => {
    const baseline = await startEmulator({ model: 'bench-model', prefixCaching: false, coldStartMs: 0 });
    try {
      const r = await cli(['bench', 'prefix', '--target', emu.url, '--baseline', baseline.url, '--regimes', '1024', '--concurrency', '1', '--requests', '4', '--max-tokens', '2', '--out', mkdtempSync(join(tmpdir(), 'pb-')), '--json']);
      expect(r.code, r.err).toBe(0);
      const rows = (JSON.parse(r.out) as { rows: Array<Record<string, string | number>> }).rows;
      const none = rows.find((x) => x.mode === 'no_cache')!;
      expect(String(none.notes)).toContain(`baseline server ${baseline.url} (prefix caching off)`);
      expect(String(none.notes)).toMatch(/mean cached 0\//);
      expect(Number(rows.find((x) => x.mode === 'cache')!.mean_ttft_s)).toBeLessThan(Number(none.mean_ttft_s));
    } finally {
      await baseline.close();
    }
  });

  test('kv answers the seed question; unknown experiments and bad flags exit 2', async () => {
    const r = await cli(['bench', 'kv', '--target', emu.url, '--out', mkdtempSync(join(tmpdir(), 'kv-')), '--json', '--context', '4096', '--want-concurrency', '8']);
    expect(r.code, r.err).toBe(0);
    expect((JSON.parse(r.out) as { answer: string }).answer).toBe('Room for 8 concurrent 4096-token sequences? Yes: 16 fit in 65536 KV tokens.');
    expect((await cli(['bench', 'nope', '--target', emu.url])).code).toBe(2);
    const bad = await cli(['bench', 'sweep', '--target', emu.url, '--concurrency', '1,x']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--concurrency: expected a comma-separated list of positive integers, got "1,x"');
  });

  test('cold-warm with a restart command, then report combines the outputs', async () => {
    const root = mkdtempSync(join(tmpdir(), 'report-'));
    const restart = `node -e "fetch('${emu.url}/_emulator/restart',{method:'POST'}).then(r=>process.exit(r.ok?0:1))"`;
    const cw = await cli(['bench', 'cold-warm', '--target', emu.url, '--restart-cmd', restart, '--runs', '3', '--max-tokens', '8', '--out', join(root, 'cw'), '--json']);
    expect(cw.code, cw.err).toBe(0);
    const s = JSON.parse(cw.out) as { ttft: { cold: number; median: number; coldWarmFactor: number } };
    expect(s.ttft.cold).toBeGreaterThan(s.ttft.median); // the emulator's cold-start penalty
    const kv = await cli(['bench', 'kv', '--target', emu.url, '--out', join(root, 'kv')]);
    expect(kv.code).toBe(0);
    const rep = await cli(['bench', 'report', '--in', root]);
    expect(rep.code, rep.err).toBe(0);
    const md = readFileSync(join(root, 'report.md'), 'utf8');
    expect(md).toContain(`## Target ${emu.url}`);
    expect(md).toContain('### Environment');
    expect(md).toContain('### First-cut configuration');
    expect(md).toContain('| max-model-len |');
    expect(md).toContain('| health check: cold start |');
  }, 30_000);
});
