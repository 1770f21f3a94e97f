/**
 * vLLM's sleep mode through the daemon, against the emulator held to vLLM 0.26's measured
 * behaviour (test/emulator/sleep.test.ts): a replica put to sleep on purpose is `asleep`, 200,
 * gets no synthetic inference, is never called wedged, and is healthy again within three probe
 * intervals of POST /wake_up, without the probe that waited through the sleep counting as latency.
 */
import { onTestFinished, describe, expect, test } from 'vitest';
import { sample, startDaemon, startEmulator, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';

const PROBE_INTERVAL_MS = 1000;

async function rig(emulatorOptions: Parameters<typeof startEmulator>[0] = {}, overrides: Record<string, unknown> = {}) {
  const emu = await startEmulator({ coldStartMs: 0, enableSleepMode: true, version: '0.26.0', ...emulatorOptions });
  onTestFinished(() => emu.close());
  const seen = { inference: 0 };
  emu.emulator.onRequest = (_method, path) => {
    if (path === '/v1/completions' || path === '/v1/chat/completions') seen.inference++;
  };
  const daemon = await startDaemon(testConfig(emu.url, overrides));
  onTestFinished(() => daemon.stop());
  const post = (path: string, body?: unknown) => fetch(`${emu.url}${path}`, { method: 'POST', ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
  return { emu, daemon, seen, post };
}

const stateIs = (daemon: RunningDaemon, state: string) => async () => {
  const s = await daemon.status();
  return s.body.state === state ? s : undefined;
};

const skippedAsleep = async (daemon: RunningDaemon) => sample(await daemon.metrics(), 'vllm_probe_probes_skipped_total', { probe: 'ttft', reason: 'asleep' }) ?? 0;

/** Polls /status until stopped; returns every state it saw, with the HTTP code. */
function watchStates(daemon: RunningDaemon) {
  const seen: Array<{ state: string; code: number; cause: string }> = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const s = await daemon.status();
      seen.push({ state: s.body.state, code: s.code, cause: s.body.cause });
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  // Stopped before the daemon, also when the test fails half-way.
  onTestFinished(async () => {
    running = false;
    await loop.catch(() => undefined);
  });
  return {
    seen,
    async stop() {
      running = false;
      await loop;
      return seen;
    },
  };
}

describe('vLLM sleep mode through the daemon', () => {
  test.each([
    [1, [['/wake_up']]],
    // Level 2 wakes in steps, as vLLM documents it: weights, reload, then the KV cache.
    [2, [['/wake_up?tags=weights'], ['/collective_rpc', { method: 'reload_weights' }], ['/wake_up?tags=kv_cache']]],
  ] as Array<[number, Array<[string, unknown?]>]>)(
    'level %i: asleep and 200, no inference sent, never wedged; healthy within 3 probe intervals of wake-up',
    async (level, wakeSteps) => {
      const { daemon, seen, post } = await rig();
      expect(await waitFor(stateIs(daemon, 'healthy'), 10_000)).toBeDefined();
      expect(await waitFor(() => seen.inference > 0, 10_000)).toBe(true);

      const watch = watchStates(daemon);
      expect((await post(`/sleep?level=${level}`)).status).toBe(200);
      const asleep = await waitFor(stateIs(daemon, 'asleep'), 10_000);
      expect(asleep?.code).toBe(200);
      expect(asleep?.body.cause).toContain(`level ${level}`);
      const sentBeforeAsleep = seen.inference;
      const skippedBefore = await skippedAsleep(daemon);

      // Three probe intervals asleep: every scheduled TTFT probe is skipped, none reaches vLLM.
      expect(await waitFor(async () => (await skippedAsleep(daemon)) >= skippedBefore + 3, 10_000)).toBe(true);
      expect(seen.inference).toBe(sentBeforeAsleep);
      const text = await (await fetch(`${daemon.url}/status?format=text`)).text();
      expect(text.split('\n')[0]).toMatch(/^asleep: vLLM sleeps on purpose/);
      const still = await daemon.status();
      expect(still.code).toBe(200);
      expect(still.body.state).toBe('asleep');

      const wokeAt = Date.now();
      for (const [path, body] of wakeSteps) expect((await post(path, body)).status).toBe(200);
      const healthy = await waitFor(stateIs(daemon, 'healthy'), 10_000, 50);
      expect(healthy).toBeDefined();
      expect(Date.now() - wokeAt).toBeLessThanOrEqual(3 * PROBE_INTERVAL_MS);
      // Probes go to the engine again.
      expect(await waitFor(() => seen.inference > sentBeforeAsleep, 10_000)).toBe(true);

      const states = await watch.stop();
      expect(states.filter((s) => s.state === 'wedged' || s.code === 503)).toEqual([]);
      expect(states.map((s) => s.state)).toContain('asleep');
    },
    40_000,
  );

  test('level 2 woken in steps with pauses between them: still asleep (waking) until the last step, never wedged', async () => {
    const { daemon, seen, post } = await rig();
    expect(await waitFor(stateIs(daemon, 'healthy'), 10_000)).toBeDefined();
    const watch = watchStates(daemon);
    expect((await post('/sleep?level=2')).status).toBe(200);
    expect(await waitFor(stateIs(daemon, 'asleep'), 10_000)).toBeDefined();
    // The gauge says awake after the first step, but requests still queue until the KV cache is back.
    expect((await post('/wake_up?tags=weights')).status).toBe(200);
    const waking = await waitFor(async () => {
      const s = await daemon.status();
      return s.body.cause.includes('waking up in steps') ? s : undefined;
    }, 10_000);
    expect(waking?.body.state).toBe('asleep');
    expect(waking?.code).toBe(200);
    const sent = seen.inference;
    const skipped = await skippedAsleep(daemon);
    // Several probe intervals between the steps: no probe is sent into the queue, none stalls.
    expect(await waitFor(async () => (await skippedAsleep(daemon)) >= skipped + 4, 15_000)).toBe(true);
    expect(seen.inference).toBe(sent);
    expect((await post('/collective_rpc', { method: 'reload_weights' })).status).toBe(200);
    expect((await post('/wake_up?tags=kv_cache')).status).toBe(200);
    expect(await waitFor(stateIs(daemon, 'healthy'), 10_000, 50)).toBeDefined();
    const states = await watch.stop();
    expect(states.filter((s) => s.state === 'wedged' || s.code === 503)).toEqual([]);
  }, 40_000);

  test('a TTFT probe sent just before the sleep waits through it; its TTFT does not degrade the ttft_latency check', async () => {
    // A probe interval long enough for the held probe to be answered within its timeout.
    const { daemon, emu, seen, post } = await rig({ baseTtftMs: 300 }, { probes: { ttft: { interval: '3s', timeout: '2900ms' }, prefix: { enabled: false } } });
    const successes = async () => sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'success' }) ?? 0;
    expect(await waitFor(async () => (await successes()) >= 1, 15_000)).toBe(true);
    expect(await waitFor(stateIs(daemon, 'healthy'), 10_000)).toBeDefined();
    const before = await successes();

    // Put vLLM to sleep while the next probe waits for its first token.
    const inference = seen.inference;
    let slept: Promise<Response> | undefined;
    emu.emulator.onRequest = (_method, path) => {
      if (path !== '/v1/completions') return;
      seen.inference++;
      slept ??= post('/sleep?level=1');
    };
    expect(await waitFor(() => seen.inference > inference, 10_000)).toBe(true);
    expect((await slept!).status).toBe(200);
    expect(await waitFor(stateIs(daemon, 'asleep'), 10_000)).toBeDefined();
    expect((await post('/wake_up')).status).toBe(200);

    // The held probe succeeds after wake-up with a TTFT that includes the sleep …
    expect(await waitFor(async () => (await successes()) > before, 10_000)).toBe(true);
    const m = await daemon.metrics();
    const all = sample(m, 'vllm_probe_time_to_first_token_seconds_count', { probe: 'ttft', model: 'emulated-model', phase: 'warm' })!;
    const fast = sample(m, 'vllm_probe_time_to_first_token_seconds_bucket', { probe: 'ttft', model: 'emulated-model', phase: 'warm', le: '0.5' })!;
    expect(all - fast).toBe(1);
    // … which is not latency: the check and the headline stay healthy.
    const healthy = await waitFor(stateIs(daemon, 'healthy'), 9_000, 50);
    expect(healthy).toBeDefined();
    const latency = healthy!.body.checks.find((c) => c.name === 'ttft_latency');
    expect(latency?.status).toBe('healthy');
    expect(healthy!.body.recent.join(' ')).not.toMatch(/TTFT p95/);
  }, 40_000);
});
