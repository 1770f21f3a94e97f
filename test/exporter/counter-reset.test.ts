/**
 * vLLM's counters start again at 0 when it restarts; the daemon re-exports them as its own
 * counters, which must never go backwards and must count what the new process served. Pinned
 * with exact values: a reading below the last one is a reset (all of it is new), and after a
 * restart seen in process_start_time_seconds so is a reading already above the old value.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { CounterDeltas } from '../../src/exporter/vllm.js';
import { sample, startDaemon, testConfig, waitFor } from '../helpers/daemon.js';
import { REAL_METRICS, startFakeVllm } from '../helpers/fake-vllm.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

describe('CounterDeltas', () => {
  test('first reading 0, then differences; a reading below the last is a reset and counts whole', () => {
    const d = new CounterDeltas();
    expect([100, 150, 150, 40, 45].map((v) => d.delta('k', v))).toEqual([0, 50, 0, 40, 5]);
  });

  test('a missing or non-finite reading adds 0 and keeps the last one', () => {
    const d = new CounterDeltas();
    expect([100, null, Number.NaN, Number.POSITIVE_INFINITY, 130].map((v) => d.delta('k', v))).toEqual([0, 0, 0, 0, 30]);
  });

  test('after restarted() the next reading counts whole, above the old value or below it; keys are apart', () => {
    const d = new CounterDeltas();
    d.delta('above', 150);
    d.delta('below', 150);
    d.restarted();
    expect(d.delta('above', 400)).toBe(400);
    expect(d.delta('below', 20)).toBe(20);
    expect(d.delta('above', 410)).toBe(10);
    expect(d.delta('new', 7)).toBe(0);
  });
});

/** The captured /metrics with a process start time and generation/prompt token counters of our choosing. */
function exposition(start: number, generation: number, prompt: number): string {
  return REAL_METRICS.replace(/^process_start_time_seconds .*$/m, `process_start_time_seconds ${start}`)
    .replace(/^(vllm:generation_tokens_total\{[^}]*\}) .*$/m, `$1 ${generation}`)
    .replace(/^(vllm:prompt_tokens_total\{[^}]*\}) .*$/m, `$1 ${prompt}`);
}

test('the daemon re-exports vLLM counters across restarts with exact values, below and above the old value', async () => {
  let metrics = exposition(1_000, 100, 1000);
  const vllm = await startFakeVllm({ model: 'tiny-llama', metrics: () => metrics });
  cleanups.push(vllm.close);
  const d = await startDaemon(testConfig(vllm.url, { probes: { ttft: { enabled: false }, prefix: { enabled: false }, models: { enabled: false } }, scrape: { interval: '1s', timeout: '800ms' } }));
  cleanups.push(() => d.stop());
  const read = async () => {
    const t = await d.metrics();
    return [sample(t, 'vllm_probe_engine_generation_tokens_total', { model: 'tiny-llama' }), sample(t, 'vllm_probe_engine_prompt_tokens_total', { model: 'tiny-llama' })];
  };
  /** Serves `text` from now on and waits until a scrape that got it has been applied. */
  const serve = async (text: string) => {
    const changed = Date.now();
    metrics = text;
    const asked = await waitFor(() => vllm.requests.find((r) => r.path === '/metrics' && r.at > changed), 10_000);
    await waitFor(async () => (sample(await d.metrics(), 'vllm_probe_source_last_success_timestamp_seconds', { source: 'vllm_metrics' }) ?? 0) * 1000 >= asked!.at, 10_000);
  };

  await serve(exposition(1_000, 100, 1000));
  expect(await read()).toEqual([0, 0]); // the first reading is the baseline
  await serve(exposition(1_000, 150, 1200));
  expect(await read()).toEqual([50, 200]);
  // Restart 1: the new process has counted less than the old one had (the reset shows).
  await serve(exposition(2_000, 40, 300));
  expect(await read()).toEqual([90, 500]);
  // Restart 2: the new process has already counted more than the old one (no reset to see).
  await serve(exposition(3_000, 400, 350));
  expect(await read()).toEqual([490, 850]);
  await serve(exposition(3_000, 410, 360));
  expect(await read()).toEqual([500, 860]);
});
