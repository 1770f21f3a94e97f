/**
 * The tokenize probe through the daemon: against the emulator (whose /tokenize answers like
 * vLLM 0.32's) and against the fake vLLM for answers the emulator cannot give.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, test } from 'vitest';
import { sample, startDaemon, startEmulator, testConfig, waitFor } from '../helpers/daemon.js';
import { startFakeVllm, vllmError } from '../helpers/fake-vllm.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

const tokenizeOnly = (url: string, probes: Record<string, unknown> = {}) =>
  testConfig(url, {
    target: { model: 'm' },
    probes: { ttft: { enabled: false }, prefix: { enabled: false }, models: { enabled: false }, tokenize: { enabled: true, interval: '1s', timeout: '900ms' }, ...probes },
    scrape: { enabled: false },
  });

const durationOf = (text: string, probe: string, outcome = 'success') => {
  const count = sample(text, 'vllm_probe_request_duration_seconds_count', { probe, outcome }) ?? 0;
  return count ? sample(text, 'vllm_probe_request_duration_seconds_sum', { probe, outcome })! / count : undefined;
};

describe('tokenize probe', () => {
  test('is off by default and on when enabled: one timed /tokenize per run, probe_tokenize healthy', async () => {
    expect(testConfig('http://127.0.0.1:8000').probes.tokenize.enabled).toBe(false);
    const emu = await startEmulator({ model: 'm', coldStartMs: 0 });
    cleanups.push(emu.close);
    const d = await startDaemon(tokenizeOnly(emu.url));
    cleanups.push(() => d.stop());
    const m = await waitFor(async () => {
      const t = await d.metrics();
      return (sample(t, 'vllm_probe_requests_total', { probe: 'tokenize', outcome: 'success' }) ?? 0) >= 2 ? t : '';
    });
    expect(sample(m, 'vllm_probe_probe_success', { probe: 'tokenize', model: 'm' })).toBe(1);
    expect(sample(m, 'vllm_probe_request_duration_seconds_count', { probe: 'tokenize', outcome: 'success' })).toBeGreaterThanOrEqual(2);
    // No inference: the probe spends no tokens.
    expect(sample(m, 'vllm_probe_probe_tokens_total', { probe: 'tokenize', token_type: 'input' })).toBe(0);
    const s = await d.status();
    expect(s.body.checks.find((c: { name: string }) => c.name === 'probe_tokenize')?.status).toBe('healthy');
  });

  test('separates a slow engine from the API server: TTFT 400 ms, /tokenize still fast', async () => {
    const emu = await startEmulator({ model: 'm', coldStartMs: 0, baseTtftMs: 400 });
    cleanups.push(emu.close);
    const d = await startDaemon(tokenizeOnly(emu.url, { ttft: { enabled: true, interval: '1s', timeout: '900ms', max_tokens: 2 } }));
    cleanups.push(() => d.stop());
    const m = await waitFor(async () => {
      const t = await d.metrics();
      return ['ttft', 'tokenize'].every((probe) => (sample(t, 'vllm_probe_requests_total', { probe, outcome: 'success' }) ?? 0) >= 1) ? t : '';
    });
    expect(durationOf(m, 'ttft')).toBeGreaterThanOrEqual(0.4);
    expect(durationOf(m, 'tokenize')).toBeLessThan(0.2);
  });

  test('a slow API server is measured: /tokenize answering after 300 ms', async () => {
    const vllm = await startFakeVllm({
      routes: {
        '/tokenize': async (_req, res) => {
          await delay(300);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: 9, max_model_len: 2048, tokens: [1, 2, 3, 4, 5, 6, 7, 8, 9], token_strs: null }));
        },
      },
    });
    cleanups.push(vllm.close);
    const d = await startDaemon(tokenizeOnly(vllm.url));
    cleanups.push(() => d.stop());
    const m = await waitFor(async () => {
      const t = await d.metrics();
      return (sample(t, 'vllm_probe_requests_total', { probe: 'tokenize', outcome: 'success' }) ?? 0) >= 1 ? t : '';
    });
    expect(durationOf(m, 'tokenize')).toBeGreaterThanOrEqual(0.3);
    // It sends the configured prompt and model, nothing to the engine.
    const sent = vllm.requests.find((r) => r.path === '/tokenize');
    expect(JSON.parse(sent!.body)).toEqual({ model: 'm', prompt: 'Write one sentence about the ocean.' });
    expect(vllm.count('/v1/completions') + vllm.count('/v1/chat/completions')).toBe(0);
  });

  test('a refused API key is said with where the key comes from (the probe sees that, not the whole config)', async () => {
    const vllm = await startFakeVllm({ routes: { '/tokenize': (req, res) => vllmError(res, req.headers.authorization === 'Bearer right' ? 200 : 401, 'Unauthorized') } });
    cleanups.push(vllm.close);
    const config = tokenizeOnly(vllm.url);
    const d = await startDaemon({ ...config, target: { ...config.target, api_key_env: 'VLLM_KEY' } }, { env: { VLLM_KEY: 'wrong' } });
    cleanups.push(() => d.stop());
    const s = await waitFor(async () => {
      const r = await d.status();
      return r.body.checks.find((c: { name: string }) => c.name === 'probe_tokenize')?.reason.includes('401') ? r : undefined;
    });
    expect(s!.body.checks.find((c: { name: string }) => c.name === 'probe_tokenize')?.reason).toContain('vLLM refused the API key (HTTP 401): it is missing or wrong; it comes from the variable VLLM_KEY (target.api_key_env)');
    expect(vllm.requests.find((r) => r.path === '/tokenize')?.headers.authorization).toBe('Bearer wrong');
  });

  test.each([
    ['HTTP 500', (_req: unknown, res: import('node:http').ServerResponse) => vllmError(res, 500, 'tokenizer crashed'), 'http_5xx', '/tokenize answered HTTP 500'],
    ['HTTP 404 (a gateway that routes only /v1/*)', (_req: unknown, res: import('node:http').ServerResponse) => void res.writeHead(404).end('Not Found'), 'http_4xx', '/tokenize answered HTTP 404'],
    ['200 without a count', (_req: unknown, res: import('node:http').ServerResponse) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{"tokens":[]}'), 'bad_response', '/tokenize answered 200 without a token count'],
  ])('%s is a failed run (%s), said on its /status line', async (_name, route, outcome, words) => {
    const vllm = await startFakeVllm({ routes: { '/tokenize': route } });
    cleanups.push(vllm.close);
    const d = await startDaemon(tokenizeOnly(vllm.url));
    cleanups.push(() => d.stop());
    const m = await waitFor(async () => {
      const t = await d.metrics();
      return (sample(t, 'vllm_probe_requests_total', { probe: 'tokenize', outcome }) ?? 0) >= 1 ? t : '';
    });
    expect(sample(m, 'vllm_probe_probe_success', { probe: 'tokenize', model: 'm' })).toBe(0);
    expect(sample(m, 'vllm_probe_requests_total', { probe: 'tokenize', outcome: 'success' }) ?? 0).toBe(0);
    const s = await d.status();
    expect(s.body.checks.find((c: { name: string }) => c.name === 'probe_tokenize')?.reason).toContain(words);
  });
});
