/**
 * The fault modes that reproduce a real vLLM's states, at the emulator's own surface, against
 * the measured runs in ../shared/reference/vllm-states.md (the daemon's view of them is
 * test/diagnosis/emulated-states.test.ts).
 */
import { readFileSync } from 'node:fs';
import { onTestFinished, describe, expect, test } from 'vitest';
import { sample, startEmulator, waitFor } from '../helpers/daemon.js';

const metrics = async (url: string) => (await fetch(`${url}/metrics`)).text();

describe('fault modes shaped like a real vLLM', () => {
  test('--fault-after-ms: serves normally first; engine_dead then answers /health 503 and closes the port after the delay', async () => {
    const emu = await startEmulator({ coldStartMs: 0, fault: { mode: 'engine_dead', delayMs: 300 }, faultAfterMs: 400 });
    onTestFinished(() => emu.close());
    expect((await fetch(`${emu.url}/health`)).status).toBe(200);
    expect(await waitFor(async () => (await fetch(`${emu.url}/health`)).status === 503, 5000, 20)).toBe(true);
    const dead = Date.now();
    expect(await waitFor(() => fetch(`${emu.url}/health`).then(() => false, () => true), 5000, 20)).toBe(true);
    // Closes on its own (1.4 s on an H100); generous for a busy 2-core machine.
    expect(Date.now() - dead).toBeLessThan(10_000);
  });

  test('kv_pressure: 3–4 running, ~60 waiting for capacity, KV 0.95–0.998, preemptions and generation tokens rising', async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    onTestFinished(() => emu.close());
    emu.emulator.fault = { mode: 'kv_pressure' };
    const first = await metrics(emu.url);
    const later = await waitFor(async () => {
      const m = await metrics(emu.url);
      return (sample(m, 'vllm:num_preemptions_total') ?? 0) > 0 ? m : undefined;
    }, 10_000, 200);
    expect(later).toBeDefined();
    for (const m of [first, later!]) {
      expect(sample(m, 'vllm:num_requests_running')).toBeGreaterThanOrEqual(3);
      expect(sample(m, 'vllm:num_requests_running')).toBeLessThanOrEqual(4);
      expect(sample(m, 'vllm:num_requests_waiting_by_reason', { reason: 'capacity' })).toBe(sample(m, 'vllm:num_requests_waiting'));
      expect(sample(m, 'vllm:num_requests_waiting')).toBeGreaterThanOrEqual(50);
      expect(sample(m, 'vllm:kv_cache_usage_perc')).toBeGreaterThanOrEqual(0.95);
      expect(sample(m, 'vllm:kv_cache_usage_perc')).toBeLessThanOrEqual(0.998);
    }
    expect(sample(later!, 'vllm:generation_tokens_total')!).toBeGreaterThan(sample(first, 'vllm:generation_tokens_total')!);
  });

  test('saturated: running at --max-num-seqs, the queue grows, KV ≤ 0.8, no preemption; a new stream gets headers at once and waits', async () => {
    const emu = await startEmulator({ coldStartMs: 0, maxNumSeqs: 8 });
    onTestFinished(() => emu.close());
    emu.emulator.fault = { mode: 'saturated', delayMs: 1000 };
    const first = await metrics(emu.url);
    expect(sample(first, 'vllm:num_requests_running')).toBe(8);
    const sent = Date.now();
    const res = await fetch(`${emu.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hi', max_tokens: 2, stream: true }) });
    expect(res.status).toBe(200);
    expect(Date.now() - sent).toBeLessThan(800);
    expect(await res.text()).toContain('[DONE]');
    expect(Date.now() - sent).toBeGreaterThanOrEqual(1000);
    const grown = await waitFor(async () => {
      const m = await metrics(emu.url);
      return sample(m, 'vllm:num_requests_waiting')! > sample(first, 'vllm:num_requests_waiting')! ? m : undefined;
    }, 5000, 200);
    expect(grown).toBeDefined();
    expect(sample(grown!, 'vllm:kv_cache_usage_perc')).toBeLessThanOrEqual(0.8);
    expect(sample(grown!, 'vllm:num_preemptions_total')).toBe(0);
    expect(sample(grown!, 'vllm:generation_tokens_total')!).toBeGreaterThan(sample(first, 'vllm:generation_tokens_total')!);
  });

  test("shedding: vLLM 0.32's queue-full 503 body; no Retry-After unless a delay is given; /health stays 200", async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    onTestFinished(() => emu.close());
    emu.emulator.fault = { mode: 'shedding' };
    const res = await fetch(`${emu.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBeNull();
    // the real server's answer, captured (test/fixtures/vllm/README.md)
    expect(await res.json()).toEqual(JSON.parse(readFileSync('test/fixtures/vllm/error-503-queue-full-v0.32.0.json', 'utf8')));
    expect((await fetch(`${emu.url}/health`)).status).toBe(200);
    expect(sample(await metrics(emu.url), 'vllm:admission_rejections_total', { reason: 'max_num_queued_reqs' })).toBeGreaterThanOrEqual(1);
  });
});
