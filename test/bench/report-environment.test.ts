/**
 * Every number in its context: each run keeps its own environment, and the report shows what
 * the runs of a target shared once and what differed run by run, never the newest run's
 * setting for every run (issue 24: kv-scaling's restart at max_model_len 1024 was shown as the
 * environment of four runs made at 4096).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { runCli } from '../../src/cli.js';
import type { EnvironmentSnapshot } from '../../src/vllm/environment.js';

const env = (at: string, maxModelLen: number, flags: string[]): EnvironmentSnapshot => ({
  collected_at: at,
  vllm_probe_version: '0.1.0',
  target: 'http://127.0.0.1:18300',
  vllm_version: '0.32.0',
  model: 'tiny-llama',
  max_model_len: maxModelLen,
  block_size: 16,
  num_gpu_blocks: 2048,
  kv_cache_capacity_tokens: 32768,
  kv_cache_memory_bytes: 2 ** 30,
  prefix_caching: true,
  gpu_memory_utilization: 0.92,
  gpus: null,
  os: 'Linux 6.18.44',
  kernel: '#1 SMP PREEMPT_DYNAMIC @0',
  cpu: 'Intel(R) Xeon(R) Processor',
  cpus: 2,
  memory_bytes: 8 * 2 ** 30,
  launch_flags: flags,
});

test('the report shows shared settings once and the differing ones per run, with each run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-env-'));
  const level = (c: number, p95: number, tok: number) => ({ concurrency: c, requests: 40, errors: 0, durationS: 10, reqPerS: tok / 64, outputTokPerS: tok, ttft: { p95 }, e2e: { p95: p95 + 1 } });
  const sweepEnv = env('2025-01-01T10:00:00.000Z', 4096, ['--max-model-len 4096']);
  writeFileSync(join(dir, 'sweep.summary.json'), JSON.stringify({ experiment: 'sweep', target: sweepEnv.target, collected_at: sweepEnv.collected_at, levels: [level(1, 0.03, 120), level(4, 0.1, 400), level(16, 0.345, 1003)], knee: null, ttft_slo_s: 0.5, environment: sweepEnv }));
  const kvEnv = env('2025-01-01T11:00:00.000Z', 1024, ['--max-model-len 1024']);
  writeFileSync(join(dir, 'kv.summary.json'), JSON.stringify({ experiment: 'kv', target: kvEnv.target, collected_at: kvEnv.collected_at, capacity_tokens: 32768, block_size: 16, max_model_len: 1024, bytes_per_token: 32768, table: [{ context_tokens: 1024, max_concurrent_sequences: 32, kv_mib_per_sequence: 32 }], answer: 'Room for 8? Yes', environment: kvEnv }));
  const r = await runCli(['bench', 'report', '--in', dir], { stdout: () => {}, stderr: () => {}, signal: new AbortController().signal, env: {} });
  expect(r).toBe(0);
  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  const envPart = md.slice(md.indexOf('### Environment'), md.indexOf('### Runs'));
  expect(envPart).toContain('- vLLM version: 0.32.0');
  expect(envPart).not.toMatch(/^- max_model_len/m);
  expect(envPart).toContain('| run | max_model_len | launch flags |');
  expect(envPart).toContain('| sweep at 2025-01-01T10:00:00.000Z | 4096 | --max-model-len 4096 |');
  expect(envPart).toContain('| kv at 2025-01-01T11:00:00.000Z | 1024 | --max-model-len 1024 |');
  expect(md).toContain('`vllm-probe bench sweep` at 2025-01-01T10:00:00.000Z (max_model_len 4096; launch flags --max-model-len 4096)');
  expect(md).toContain('- host: Linux 6.18.44, 2 × Intel(R) Xeon(R) Processor, 8.0 GiB RAM\n');
  expect(md).not.toContain('@0');
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  expect(html).toContain('<table class="environment-diff">');
  expect(html).toContain('Measured with max_model_len 4096; launch flags --max-model-len 4096.');
  // The advice from the same page: the target within the SLO with its numbers.
  expect(md).toContain('The highest concurrency within the TTFT SLO (p95 ≤ 500 ms) is 16 (345 ms, 1,003 tok/s)');
});
