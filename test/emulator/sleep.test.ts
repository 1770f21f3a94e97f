/**
 * The emulator's sleep mode against what vLLM 0.26 did on an H100 (../shared/reference/vllm-states.md
 * "Sleep mode") and what its AsyncLLM.sleep / wake_up do: /health 200 while asleep, a stream
 * accepted at once and answered only after wake-up, nothing in num_requests_waiting, and the
 * sleep state gauge following each call.
 */
import { onTestFinished, describe, expect, test } from 'vitest';
import { sample, startEmulator, waitFor } from '../helpers/daemon.js';

async function emulator(options: Parameters<typeof startEmulator>[0] = {}) {
  const emu = await startEmulator({ coldStartMs: 0, itlMs: 1, enableSleepMode: true, ...options });
  onTestFinished(() => emu.close());
  const post = (path: string, body?: unknown) =>
    fetch(`${emu.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const sleepState = async () => {
    const m = await (await fetch(`${emu.url}/metrics`)).text();
    return Object.fromEntries(['awake', 'weights_offloaded', 'discard_all'].map((s) => [s, sample(m, 'vllm:engine_sleep_state', { sleep_state: s })]));
  };
  const isSleeping = async () => ((await (await fetch(`${emu.url}/is_sleeping`)).json()) as { is_sleeping: boolean }).is_sleeping;
  return { ...emu, post, sleepState, isSleeping };
}

const completion = (stream: boolean) => ({ model: 'emulated-model', prompt: 'The sea is calm', max_tokens: 4, stream });

describe('sleep mode (--enable-sleep-mode, VLLM_SERVER_DEV_MODE=1)', () => {
  test.each([
    [1, { awake: 0, weights_offloaded: 1, discard_all: 0 }],
    [2, { awake: 0, weights_offloaded: 0, discard_all: 1 }],
  ])('level %i: /is_sleeping and vllm:engine_sleep_state say so; /health stays 200; wake_up undoes it', async (level, asleep) => {
    const emu = await emulator();
    expect(await emu.sleepState()).toEqual({ awake: 1, weights_offloaded: 0, discard_all: 0 });
    expect(await emu.isSleeping()).toBe(false);
    const started = Date.now();
    const res = await emu.post(`/sleep?level=${level}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    expect(Date.now() - started).toBeGreaterThanOrEqual(20); // measured 0.02–0.12 s
    expect(await (await fetch(`${emu.url}/is_sleeping`)).text()).toBe('{"is_sleeping":true}');
    expect(await emu.sleepState()).toEqual(asleep);
    expect((await fetch(`${emu.url}/health`)).status).toBe(200);
    expect((await emu.post('/wake_up')).status).toBe(200);
    expect(await emu.isSleeping()).toBe(false);
    expect(await emu.sleepState()).toEqual({ awake: 1, weights_offloaded: 0, discard_all: 0 });
  });

  test('asleep, a stream gets 200 headers at once and no token, a JSON request nothing, num_requests_waiting stays 0; both are answered right after wake-up', async () => {
    const emu = await emulator();
    let received = 0;
    emu.emulator.onRequest = (_method, path) => void (path === '/v1/completions' && received++);
    await emu.post('/sleep?level=1');
    const sent = Date.now();
    const stream = await emu.post('/v1/completions', completion(true));
    expect(stream.status).toBe(200);
    expect(Date.now() - sent).toBeLessThan(1000);
    const reader = stream.body!.getReader();
    let firstChunkAt: number | undefined;
    const first = reader.read().then(() => (firstChunkAt = Date.now()));
    let jsonAt: number | undefined;
    const json = emu.post('/v1/completions', completion(false)).then(async (r) => {
      jsonAt = Date.now();
      return { status: r.status, body: (await r.json()) as { choices: Array<{ text: string }> } };
    });
    // Both requests reached the server, which holds them while the engine sleeps.
    expect(await waitFor(() => received === 2)).toBe(true);
    const metrics = await (await fetch(`${emu.url}/metrics`)).text();
    expect(sample(metrics, 'vllm:num_requests_waiting')).toBe(0);
    expect(sample(metrics, 'vllm:num_requests_running')).toBe(0);
    expect(firstChunkAt).toBeUndefined();
    expect(jsonAt).toBeUndefined();
    const woke = Date.now();
    await emu.post('/wake_up');
    await first;
    const answered = await json;
    expect(answered.status).toBe(200);
    expect(answered.body.choices[0]!.text.length).toBeGreaterThan(0);
    // queued requests are answered ~10 ms after wake-up (the emulator's base TTFT)
    expect(firstChunkAt! - woke).toBeLessThan(1000);
    expect(firstChunkAt! - sent).toBeGreaterThanOrEqual(woke - sent);
    await reader.cancel();
  });

  test('level 2 wakes in steps: any wake_up call sets the gauge awake, /is_sleeping and requests wait for the last tag', async () => {
    const emu = await emulator();
    await emu.post('/sleep?level=2');
    const res = emu.post('/v1/completions', completion(false));
    let answered = false;
    void res.then(() => (answered = true));
    expect((await emu.post('/wake_up?tags=weights')).status).toBe(200);
    // AsyncLLM.wake_up records the awake state whatever the tags; the executor still sleeps.
    expect((await emu.sleepState()).awake).toBe(1);
    expect(await emu.isSleeping()).toBe(true);
    const rpc = await emu.post('/collective_rpc', { method: 'reload_weights' });
    expect(rpc.status).toBe(200);
    expect(await rpc.json()).toEqual({ results: [null] });
    expect(answered).toBe(false);
    expect((await emu.post('/wake_up?tags=kv_cache')).status).toBe(200);
    expect(await emu.isSleeping()).toBe(false);
    expect((await res).status).toBe(200);
  });

  test('sleeping discards the KV cache: the same prompt gets no prefix-cache hit after wake-up', async () => {
    const emu = await emulator();
    const prompt = 'alpha beta gamma delta engine queue batch '.repeat(20);
    const usage = async () => ((await (await emu.post('/v1/completions', { prompt, max_tokens: 2 })).json()) as { usage: { prompt_tokens_details: { cached_tokens: number } } }).usage.prompt_tokens_details.cached_tokens;
    await usage();
    expect(await usage()).toBeGreaterThan(0);
    await emu.post('/sleep?level=1');
    await emu.post('/wake_up');
    expect(await usage()).toBe(0);
  });

  test('without sleep mode the dev endpoints are 404, as on a vLLM started without them', async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    onTestFinished(() => emu.close());
    for (const [method, path] of [['POST', '/sleep?level=1'], ['POST', '/wake_up'], ['GET', '/is_sleeping'], ['POST', '/collective_rpc']] as const) {
      const res = await fetch(`${emu.url}${path}`, { method });
      expect(res.status, path).toBe(404);
      expect(await res.json()).toEqual({ detail: 'Not Found' });
    }
  });
});
