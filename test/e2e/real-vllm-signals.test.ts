/**
 * Issue 19 against a real vLLM (CPU build, tiny model) started with the flags that make it say
 * more: --enable-per-request-metrics, --max-num-queued-reqs 2, --enable-request-id-headers and
 * --enable-scale-out. Its own server (the main e2e file's server has no queue limit, which its
 * bench tests need); this file runs after or before it, never alongside (fileParallelism off).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli } from '../../src/cli.js';
import { parseExposition } from '../../src/vllm/exposition.js';
import { explainSnapshot, normaliseVllmMetrics } from '../../src/vllm/schema.js';
import { sample, startDaemon, startEmulator, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { familyShape, jsonShape, sseShape } from '../helpers/shapes.js';
import { realVllm, realVllmAvailable, type RealVllm } from './real-vllm.js';

const MODEL = 'tiny-llama';
const FLAGS = ['--enable-per-request-metrics', '--max-num-queued-reqs', '2', '--enable-request-id-headers', '--enable-scale-out'];
let vllm: RealVllm;
let daemon: RunningDaemon;

beforeAll(async () => {
  if (!realVllmAvailable()) throw new Error('real vLLM venv missing: run scripts/real-vllm/setup (npm run test:e2e does)');
  vllm = await realVllm();
  await vllm.start(['--', ...FLAGS]);
}, 600_000);

/** The daemon probes every second; started per test so its probes never take a slot the agreement test counts on. */
async function startProbing() {
  daemon = await startDaemon(
    testConfig(vllm.url, {
      target: { api_key_env: 'VLLM_API_KEY' },
      probes: { ttft: { interval: '1s', timeout: '900ms' } },
      scrape: { interval: '1s', timeout: '800ms' },
      status: { failures_to_unhealthy: 2, successes_to_recover: 1, window: '1m' },
    }),
    { env: { VLLM_API_KEY: vllm.apiKey } },
  );
  return daemon;
}

afterAll(async () => {
  await daemon?.stop();
  await vllm?.stop();
}, 120_000);

const auth = () => ({ authorization: `Bearer ${vllm.apiKey}`, 'content-type': 'application/json' });
const post = (base: string, path: string, body: unknown, headers: Record<string, string> = auth(), signal?: AbortSignal) =>
  fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body), ...(signal ? { signal } : {}) });
const streamBody = (maxTokens = 8) => ({ model: MODEL, prompt: 'The quick brown fox', max_tokens: maxTokens, ignore_eos: true, stream: true, stream_options: { include_usage: true } });

/**
 * Holds `n` long streams open (the queue limit counts running + waiting) until `release()`. A
 * stream refused because a probe had the slot (HTTP 503, or a 503 chunk in a 200 stream) is
 * sent again, so exactly `n` are generating when this resolves.
 */
async function hold(base: string, n: number) {
  const controller = new AbortController();
  const readers: Array<ReadableStreamDefaultReader<Uint8Array>> = [];
  for (let attempt = 0; readers.length < n && attempt < 50; attempt++) {
    const res = await post(base, '/v1/completions', streamBody(3000), auth(), controller.signal);
    const reader = res.body!.getReader();
    const first = res.status === 200 ? new TextDecoder().decode((await reader.read()).value) : '';
    if (res.status === 200 && !first.includes('"error"')) readers.push(reader);
    else await reader.cancel().catch(() => undefined);
  }
  if (readers.length < n) throw new Error(`could not hold ${n} streams on ${base}`);
  return {
    release: async () => {
      controller.abort();
      await Promise.all(readers.map((r) => r.cancel().catch(() => undefined)));
    },
  };
}

describe('real vLLM with per-request metrics and a queue limit', () => {
  test('the emulator with the same flags agrees: per-request metrics, X-Request-Id, 503 when full, /render, metric families', async () => {
    const emu = await startEmulator({ model: MODEL, apiKey: vllm.apiKey, coldStartMs: 0, itlMs: 1, perRequestMetrics: true, maxNumQueuedReqs: 2, requestIdHeaders: true, enableScaleOut: true });
    try {
      const script: Array<{ path: string; body: unknown }> = [
        { path: '/v1/completions', body: streamBody() },
        { path: '/v1/chat/completions', body: { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, ignore_eos: true, stream: true, stream_options: { include_usage: true } } },
        { path: '/v1/completions/render', body: { model: MODEL, prompt: 'Hello world, the quick brown fox.' } },
        { path: '/v1/chat/completions/render', body: { model: MODEL, messages: [{ role: 'user', content: 'Say hello' }] } },
      ];
      for (const step of script) {
        const headers = { ...auth(), 'x-request-id': 'vllm-probe-agreement' };
        const [real, emulated] = await Promise.all([vllm.url, emu.url].map((base) => post(base, step.path, step.body, headers)));
        expect(emulated!.status, step.path).toBe(real!.status);
        expect(emulated!.headers.get('x-request-id'), step.path).toBe(real!.headers.get('x-request-id'));
        const [rt, et] = await Promise.all([real!.text(), emulated!.text()]);
        if (real!.headers.get('content-type')?.includes('event-stream')) {
          // The kinds of chunk in order; how many content chunks depends on the load (a busy
          // vLLM sends several tokens in one chunk).
          const kinds = (t: string) => sseShape(t).map((x) => x.shape);
          expect(kinds(et), step.path).toEqual(kinds(rt));
          expect(et.match(/"id":"(\w+)-vllm-probe-agreement"/)?.[1]).toBe(rt.match(/"id":"(\w+)-vllm-probe-agreement"/)?.[1]);
        } else expect(jsonShape(JSON.parse(et)), step.path).toEqual(jsonShape(JSON.parse(rt)));
      }
      // Queue full: two held streams each, then one more request.
      const [realHold, emuHold] = await Promise.all([hold(vllm.url, 2), hold(emu.url, 2)]);
      try {
        const body = { model: MODEL, prompt: 'x', max_tokens: 4 };
        const [real, emulated] = await Promise.all([vllm.url, emu.url].map((base) => post(base, '/v1/completions', body)));
        expect(real!.status).toBe(503);
        expect(emulated!.status).toBe(503);
        expect(await emulated!.json()).toEqual(await real!.json());
      } finally {
        await Promise.all([realHold.release(), emuHold.release()]);
      }
      const [rm, em] = await Promise.all([vllm.url, emu.url].map(async (b) => (await fetch(`${b}/metrics`)).text()));
      expect(familyShape(em!)).toEqual(familyShape(rm!));
      const [re, ee] = [rm!, em!].map((t) => explainSnapshot(normaliseVllmMetrics(parseExposition(t))));
      expect(re!.admission_rejections!.max_num_queued_reqs).toBeGreaterThanOrEqual(1);
      expect(ee!.admission_rejections).toEqual({ max_num_queued_reqs: 1, max_num_queued_tokens: 0 });
      expect(ee!.server_buckets).toEqual(re!.server_buckets);
    } finally {
      await emu.close();
    }
  });

  test('each TTFT probe is split against vLLM\'s own timing: server TTFT + gap = client TTFT, queue share small on an idle server', async () => {
    await startProbing();
    const text = await waitFor(async () => {
      const t = await daemon.metrics();
      return (sample(t, 'vllm_probe_ttft_gap_seconds_count', { probe: 'ttft', model: MODEL }) ?? 0) >= 3 ? t : '';
    }, 60_000);
    const n = sample(text, 'vllm_probe_ttft_gap_seconds_count', { probe: 'ttft', model: MODEL })!;
    const sum = (name: string, labels: Record<string, string> = {}) => sample(text, `${name}_sum`, { probe: 'ttft', model: MODEL, ...labels })!;
    expect(sample(text, 'vllm_probe_server_queue_time_seconds_count', { probe: 'ttft', model: MODEL })).toBe(n);
    const client = sum('vllm_probe_time_to_first_token_seconds', { phase: 'warm' });
    const server = sum('vllm_probe_server_time_to_first_token_seconds');
    expect(server).toBeGreaterThan(0);
    expect(server).toBeLessThanOrEqual(client);
    expect(server + sum('vllm_probe_ttft_gap_seconds')).toBeCloseTo(client, 2);
    expect(sum('vllm_probe_ttft_queue_share_ratio') / n).toBeLessThan(0.5);
  });

  test('under a burst the TTFT probe gets rejected_overload, the daemon says vLLM is shedding load, and explain-metrics on the live /metrics counts the rejections', async () => {
    await waitFor(async () => (sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', model: MODEL, outcome: 'success' }) ?? 0) >= 1, 30_000);
    const held = await hold(vllm.url, 2);
    let status;
    let rejected;
    try {
      rejected = await waitFor(async () => sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', model: MODEL, outcome: 'rejected_overload' }), 30_000);
      status = await waitFor(async () => {
        const s = await daemon.status();
        return s.body.checks.find((c) => c.name === 'overload' && c.status === 'degraded') ? s : undefined;
      }, 30_000);
    } finally {
      await held.release();
    }
    expect(rejected).toBeGreaterThanOrEqual(1);
    // the probe's own line quotes vLLM's refusal
    expect(status?.body.checks.find((c) => c.name === 'probe_ttft')?.reason).toContain('The engine is currently busy');
    expect(status?.body.checks.find((c) => c.name === 'overload')?.reason).toMatch(/^vLLM is shedding load: \d+ requests? refused with HTTP 503 in the last \d+s \(\d+ by --max-num-queued-reqs\); /);
    expect(sample(await daemon.metrics(), 'vllm_probe_engine_admission_rejections_total', { model: MODEL, reason: 'max_num_queued_reqs' })).toBeGreaterThan(0);
    let out = '';
    const code = await runCli(['explain-metrics', `${vllm.url}/metrics`], { stdout: (t) => (out += t), stderr: () => undefined, signal: new AbortController().signal, env: {} });
    expect(code).toBe(0);
    const e = JSON.parse(out) as { admission_rejections: { max_num_queued_reqs: number }; kv_cache_capacity_source: string; kv_cache_max_concurrency: number };
    expect(e.admission_rejections.max_num_queued_reqs).toBeGreaterThan(0);
    expect(e.kv_cache_capacity_source).toBe('kv_cache_size_tokens');
    expect(e.kv_cache_max_concurrency).toBeGreaterThan(0);
  });
});
