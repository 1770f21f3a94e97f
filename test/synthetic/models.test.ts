import { afterEach, describe, expect, test } from 'vitest';
import { parseExposition } from '../../src/vllm/exposition.js';
import { sample, startDaemon, startEmulator, testConfig, waitFor } from '../helpers/daemon.js';
import { startFakeVllm, vllmError } from '../helpers/fake-vllm.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

const modelsOnly = (url: string, target: Record<string, unknown> = {}) =>
  testConfig(url, { target, probes: { ttft: { enabled: false }, prefix: { enabled: false }, models: { interval: '1s', timeout: '900ms' } }, scrape: { enabled: false } });

describe('models probe', () => {
  test('the served model is found: success, model_served 1, /health and /v1/models timed as two requests', async () => {
    const emu = await startEmulator({ model: 'served-model', coldStartMs: 0 });
    cleanups.push(emu.close);
    const d = await startDaemon(modelsOnly(emu.url, { model: 'served-model' }));
    cleanups.push(() => d.stop());
    const m = await waitFor(async () => {
      const t = await d.metrics();
      return (sample(t, 'vllm_probe_requests_total', { probe: 'models', outcome: 'success' }) ?? 0) >= 2 ? t : '';
    });
    expect(sample(m, 'vllm_probe_model_served', { model: 'served-model' })).toBe(1);
    expect(sample(m, 'vllm_probe_probe_success', { probe: 'models', model: 'served-model' })).toBe(1);
    expect(sample(m, 'vllm_probe_request_duration_seconds_count', { probe: 'models', outcome: 'success' })).toBeGreaterThanOrEqual(2);
  });

  test('a server that serves another model: misconfigured (200: vLLM is fine), and /status names both', async () => {
    const emu = await startEmulator({ model: 'llama-3-8b', coldStartMs: 0 });
    cleanups.push(emu.close);
    const d = await startDaemon(modelsOnly(emu.url, { model: 'qwen-7b' }));
    cleanups.push(() => d.stop());
    const s = await waitFor(async () => {
      const r = await d.status();
      return r.body.state === 'misconfigured' ? r : undefined;
    });
    // A load balancer must not drain a healthy replica for the prober's own mistake.
    expect(s?.code).toBe(200);
    expect(s?.body.cause).toMatch(/the prober asks for a model vLLM does not serve: fix target\.model/);
    expect(s?.body.reasons.join(' ')).toMatch(/the server serves llama-3-8b, not qwen-7b \(target\.model\)/);
    const m = await d.metrics();
    expect(sample(m, 'vllm_probe_model_served', { model: 'qwen-7b' })).toBe(0);
    expect(sample(m, 'vllm_probe_requests_total', { probe: 'models', outcome: 'wrong_model' })).toBeGreaterThanOrEqual(1);
  });

  test('nothing listening: connect_error and "vLLM unreachable"', async () => {
    const d = await startDaemon(modelsOnly('http://127.0.0.1:9'));
    cleanups.push(() => d.stop());
    const s = await waitFor(async () => {
      const r = await d.status();
      return r.code === 503 ? r : undefined;
    });
    expect(s?.body.reasons.join(' ')).toMatch(/vLLM unreachable since .*connection refused/);
  });

  test.each([
    [503, 'http_5xx'],
    [401, 'http_4xx'],
  ])('/v1/models answering HTTP %i is counted as %s, by its status code', async (code, outcome) => {
    // /health says 200 and /v1/models fails: a router in front of vLLM does this.
    const vllm = await startFakeVllm({ routes: { '/v1/models': (_req, res) => vllmError(res, code, 'no models for you') } });
    cleanups.push(vllm.close);
    const d = await startDaemon(modelsOnly(vllm.url, { model: 'm' }));
    cleanups.push(() => d.stop());
    const m = await waitFor(async () => {
      const t = await d.metrics();
      return (sample(t, 'vllm_probe_requests_total', { probe: 'models', outcome }) ?? 0) >= 1 ? t : '';
    });
    expect(sample(m, 'vllm_probe_requests_total', { probe: 'models', outcome })).toBeGreaterThanOrEqual(1);
    expect(sample(m, 'vllm_probe_requests_total', { probe: 'models', outcome: outcome === 'http_5xx' ? 'http_4xx' : 'http_5xx' }) ?? 0).toBe(0);
    const s = await d.status();
    expect(s.body.checks.find((c) => c.name === 'probe_models')?.reason).toContain(`/v1/models answered HTTP ${code}`);
  });
});

describe('model ids from /v1/models', () => {
  // vLLM's default served name is the --model path, which can pass 200 characters; an id cut
  // with "…" was sent in every request, and every probe got 404 from a healthy vLLM.
  test('a 300-character id (with a newline) is sent verbatim: probes succeed, the label round-trips exactly', async () => {
    const id = `/mnt/models/${'org-'.repeat(60)}/Qwen2.5-0.5B-Instruct\nrev`;
    const vllm = await startFakeVllm({ model: id });
    cleanups.push(vllm.close);
    const url = vllm.url;
    const d = await startDaemon(testConfig(url, { probes: { ttft: { interval: '1s', timeout: '900ms' }, prefix: { enabled: false }, models: { interval: '1s', timeout: '900ms' } }, scrape: { enabled: false } }));
    cleanups.push(() => d.stop());
    const text = await waitFor(async () => {
      const t = await d.metrics();
      return (sample(t, 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'success' }) ?? 0) >= 1 || (sample(t, 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'http_4xx' }) ?? 0) >= 1 ? t : '';
    }, 15_000);
    const sentModels = vllm.requests.filter((r) => r.path === '/v1/completions').map((r) => (JSON.parse(r.body) as { model: string }).model);
    expect(sentModels.length).toBeGreaterThan(0);
    expect(new Set(sentModels)).toEqual(new Set([id]));
    expect(sample(text, 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'success' })).toBeGreaterThanOrEqual(1);
    const served = parseExposition(text).get('vllm_probe_model_served')?.samples ?? [];
    expect(served.map((s) => s.labels.model)).toContain(id);
  });
});
