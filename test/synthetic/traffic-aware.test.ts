/**
 * probes.<kind>.mode: when_idle on loopback against the emulator (issue 25): under a background
 * load the TTFT probe is skipped (counted, and /status says which evidence stands in), it runs
 * again as soon as the load stops, and a wedge or failing engine under load is still named.
 * Static targets of a central daemon have no counters read, so they always probe.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { startDaemon, startEmulator, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { streamingLoad } from '../helpers/load.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

/** Sum of every sample of `name` whose labels include `labels`. */
function total(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([^{\s]+)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** `concurrency` clients sending short completions back to back until stopped. */
function backgroundLoad(url: string, concurrency: number) {
  return streamingLoad({ url, workers: concurrency, retryMs: 20, body: () => ({ model: 'emulated-model', prompt: 'real traffic', max_tokens: 8 }) });
}

const probeRequests = async (d: RunningDaemon) => total(await d.metrics(), 'vllm_probe_requests_total', { probe: 'ttft' });
const trafficSkips = async (d: RunningDaemon) => total(await d.metrics(), 'vllm_probe_probes_skipped_total', { probe: 'ttft', reason: 'traffic' });
const probeLine = async (d: RunningDaemon) => (await d.status()).body.checks.find((c) => c.name === 'probe_ttft');

function config(url: string, mode: 'always' | 'when_idle') {
  return testConfig(url, { probes: { ttft: { interval: '1s', timeout: '900ms', mode, max_interval: '1m' }, prefix: { enabled: false }, models: { interval: '5s', timeout: '900ms' } } });
}

describe('when_idle against the emulator', () => {
  test('skips the TTFT probe while real requests finish, says so in /status, and probes again once the load stops', async () => {
    const emu = await startEmulator();
    cleanups.push(() => emu.close());
    const d = await startDaemon(config(emu.url, 'when_idle'));
    cleanups.push(() => d.stop());
    // Idle: it probes on schedule.
    expect(await waitFor(async () => (await probeRequests(d)) >= 3, 20_000)).toBe(true);
    expect(await trafficSkips(d)).toBe(0);

    const load = backgroundLoad(emu.url, 2);
    cleanups.push(() => load.stop());
    expect(await waitFor(async () => (await trafficSkips(d)) >= 2, 20_000)).toBe(true);
    const sentBefore = await probeRequests(d);
    const skipsBefore = await trafficSkips(d);
    expect(await waitFor(async () => (await trafficSkips(d)) >= skipsBefore + 8, 30_000)).toBe(true);
    // Eight scheduled slots skipped: at most a few stray runs where the busy box starved the load.
    expect((await probeRequests(d)) - sentBefore, JSON.stringify(await probeLine(d))).toBeLessThanOrEqual(3);
    const line = await probeLine(d);
    expect(line?.status).toBe('healthy');
    expect(line?.reason).toMatch(/^skipped: real traffic served \d+ requests? in the last \d+ s \(vLLM's counters(, this daemon's \d+ subtracted)?\); latency judged from vLLM's own TTFT histogram \(server_slo\); next probe by \d\d:\d\d:\d\d at the latest$/);
    const s = await d.status();
    expect(s.body.state).toBe('healthy');
    expect(s.body.checks.find((c) => c.name === 'ttft_latency')?.status).not.toBe('unknown');
    expect(load.finished()).toBeGreaterThan(20);

    // The load stops: the probe runs again within a few intervals, without waiting for max_interval.
    await load.stop();
    const stoppedAt = Date.now();
    const sentAtStop = await probeRequests(d);
    expect(await waitFor(async () => (await probeRequests(d)) >= sentAtStop + 2, 15_000)).toBe(true);
    expect(Date.now() - stoppedAt).toBeLessThan(15_000);
    expect(await waitFor(async () => (await probeLine(d))?.reason === 'TTFT probe succeeding', 10_000)).toBe(true);
  });

  test('a wedge under load is named, as with mode always, within three probe intervals', async () => {
    const rigs = await Promise.all(
      (['always', 'when_idle'] as const).map(async (mode) => {
        const emu = await startEmulator();
        cleanups.push(() => emu.close());
        const d = await startDaemon(config(emu.url, mode));
        cleanups.push(() => d.stop());
        const load = backgroundLoad(emu.url, 2);
        cleanups.push(() => load.stop());
        return { mode, emu, d, load };
      }),
    );
    const idle = rigs[1]!;
    // Healthy under load, and the when_idle daemon is skipping.
    expect(await waitFor(async () => (await trafficSkips(idle.d)) >= 3, 30_000)).toBe(true);
    for (const r of rigs) expect(await waitFor(async () => (await r.d.status()).body.state === 'healthy', 20_000)).toBe(true);

    const wedgedAt = Date.now();
    for (const r of rigs) r.emu.emulator.fault = { mode: 'wedge' };
    const took = await Promise.all(
      rigs.map(async (r) => {
        const named = await waitFor(async () => (await r.d.status()).body.state === 'wedged', 30_000, 100);
        expect(named, `${r.mode}: ${JSON.stringify((await r.d.status()).body.cause)}`).toBe(true);
        return (Date.now() - wedgedAt) / 1000;
      }),
    );
    // 3 probe intervals, two probe timeouts, two scrapes (the counters must be seen frozen).
    expect(took[1]).toBeLessThanOrEqual(3 * 1 + 2 * 0.9 + 2 * 1);
    expect((await idle.d.status()).body.cause).toMatch(/^engine wedged: \/health 200 but/);
  });

  test('static targets of a central daemon always probe, whatever mode says: their counters are not read', async () => {
    const emu = await startEmulator();
    cleanups.push(() => emu.close());
    const load = backgroundLoad(emu.url, 2);
    cleanups.push(() => load.stop());
    const d = await startDaemon(
      testConfig('http://127.0.0.1:9', {
        probes: { ttft: { interval: '1s', timeout: '900ms', mode: 'when_idle', max_interval: '1m' }, prefix: { enabled: false } },
        modules: { ttft: { kind: 'ttft', timeout: '900ms' } },
        targets: [{ url: emu.url, modules: ['ttft'], interval: '1s' }],
      }),
    );
    cleanups.push(() => d.stop());
    const sent = async () => total(await d.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', target: emu.url });
    expect(await waitFor(async () => (await sent()) >= 6, 30_000)).toBe(true);
    expect(load.finished()).toBeGreaterThan(20);
    expect(total(await d.metrics(), 'vllm_probe_probes_skipped_total', { reason: 'traffic' })).toBe(0);
  });

  test('real requests that fail stop the skipping: the probe runs and names the failure', async () => {
    const emu = await startEmulator();
    cleanups.push(() => emu.close());
    const d = await startDaemon(config(emu.url, 'when_idle'));
    cleanups.push(() => d.stop());
    const load = backgroundLoad(emu.url, 2);
    cleanups.push(() => load.stop());
    expect(await waitFor(async () => (await trafficSkips(d)) >= 3, 30_000)).toBe(true);
    emu.emulator.fault = { mode: 'http_500' };
    const s = await waitFor(async () => {
      const st = await d.status();
      return st.body.state === 'failing' ? st : undefined;
    }, 15_000);
    expect(s?.body.cause).toMatch(/^ttft probe failing, \d+ in a row/);
  });
});
