/**
 * Central mode on loopback: a static `targets:` list of emulators, each probed on its own
 * schedule; /metrics carries every target's probe series with its `target` label and labels,
 * one HELP/TYPE per family, nothing is probed at target.url, and a wedged target is named.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { sample, startDaemon, startEmulator, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { PROMTOOL } from '../helpers/tools.js';

let a: Awaited<ReturnType<typeof startEmulator>>;
let b: Awaited<ReturnType<typeof startEmulator>>;
let daemon: RunningDaemon;

beforeAll(async () => {
  a = await startEmulator({ model: 'model-a', coldStartMs: 0 });
  b = await startEmulator({ model: 'model-b', coldStartMs: 0 });
  daemon = await startDaemon(
    testConfig('http://127.0.0.1:9', {
      modules: { ttft: { kind: 'ttft', max_tokens: 2, timeout: '900ms' }, models: { kind: 'models', timeout: '900ms' } },
      targets: [
        { url: a.url, modules: ['ttft', 'models'], interval: '1s', labels: { zone: 'east' } },
        { url: b.url, modules: ['ttft'], interval: '1s', labels: { zone: 'west' } },
      ],
    }),
  );
});

afterAll(async () => {
  await daemon?.stop();
  await a?.close();
  await b?.close();
});

test('every target is probed with its modules, its series carrying target and its labels', async () => {
  const text = await waitFor(async () => {
    const t = await daemon.metrics();
    return (sample(t, 'vllm_probe_requests_total', { target: b.url, probe: 'ttft', outcome: 'success' }) ?? 0) >= 2 ? t : '';
  }, 10_000);
  expect(sample(text, 'vllm_probe_probe_success', { target: a.url, zone: 'east', probe: 'ttft', model: 'model-a' })).toBe(1);
  expect(sample(text, 'vllm_probe_probe_success', { target: a.url, zone: 'east', probe: 'models', model: 'model-a' })).toBe(1);
  expect(sample(text, 'vllm_probe_probe_success', { target: b.url, zone: 'west', probe: 'ttft', model: 'model-b' })).toBe(1);
  expect(sample(text, 'vllm_probe_probe_success', { target: b.url, probe: 'models' })).toBeUndefined();
  expect(sample(text, 'vllm_probe_time_to_first_token_seconds_count', { target: b.url, probe: 'ttft', phase: 'warm' })).toBeGreaterThanOrEqual(2);
  // target.url (nothing listens on :9) is neither probed nor scraped in central mode.
  const untargeted = text.split('\n').filter((l) => /^vllm_probe_(requests_total|probe_success)\{/.test(l) && !l.includes('target="'));
  expect(untargeted).toEqual([]);
  expect(text).not.toMatch(/source="vllm_metrics"/);
  // The daemon's own series have no target label; a target's registry adds only probe families.
  expect(text).toMatch(/^vllm_probe_build_info\{version=/m);
  expect(text).not.toMatch(/vllm_probe_build_info\{[^}]*target=/);
  expect(text).not.toMatch(/vllm_probe_target_up\{[^}]*target=/);
  // One HELP per family, and a clean lint.
  const helps = [...text.matchAll(/^# HELP (\S+)/gm)].map((m) => m[1]);
  expect(helps.length).toBe(new Set(helps).size);
  if (PROMTOOL) {
    const lint = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(lint.stdout + lint.stderr).toBe('');
    expect(lint.status).toBe(0);
  }
});

test('/status has one check per target and turns healthy once every target answers; ?target= shows one target\'s checks', async () => {
  const healthy = await waitFor(async () => {
    const s = await daemon.status();
    return s.body.status === 'healthy' ? s : undefined;
  }, 15_000);
  expect(healthy?.code).toBe(200);
  const perTarget = healthy!.body.checks.filter((c) => c.name.startsWith('target:')).map((c) => [c.name, c.status]);
  expect(perTarget).toEqual([
    [`target:${a.url}`, 'healthy'],
    [`target:${b.url}`, 'healthy'],
  ]);
  const one = await fetch(`${daemon.url}/status?target=${encodeURIComponent(a.url)}`);
  expect(one.status).toBe(200);
  const body = (await one.json()) as { target: string; model: string; checks: Array<{ name: string; status: string }> };
  expect(body.target).toBe(a.url);
  expect(body.model).toBe('model-a');
  expect(body.checks.map((c) => c.name).sort()).toEqual(['probe_models', 'probe_ttft', 'ttft_latency']);
  const unknown = await fetch(`${daemon.url}/status?target=${encodeURIComponent('http://elsewhere:8000')}`);
  expect(unknown.status).toBe(404);
  expect(await unknown.text()).toContain(`the targets are ${a.url}, ${b.url}`);
});

test('a wedged target (/health 200, headers but no token) is named as wedged or saturated, and recovers', async () => {
  a.emulator.fault = { mode: 'wedge' };
  const re = (t: string) => t.replace(/[.]/g, '\\.');
  const wedged = await waitFor(async () => {
    const s = await daemon.status();
    return s.body.reasons[0]?.startsWith(`${a.url}: wedged: engine wedged or saturated`) ? s : undefined;
  }, 15_000);
  expect(wedged!.body.state).toBe('wedged');
  expect(wedged!.body.reasons[0]).toMatch(new RegExp(`^${re(a.url)}: wedged: engine wedged or saturated: /health 200 but the last \\d+ probe requests got response headers and no token within 0\\.9 s \\(without vLLM's /metrics a stopped engine and a full one look the same\\)`));
  expect(wedged!.body.checks.find((c) => c.name === `target:${b.url}`)?.status).toBe('healthy');
  expect(sample(await daemon.metrics(), 'vllm_probe_engine_wedged', { target: a.url, signature: 'no_token_after_headers' })).toBe(1);
  a.emulator.fault = { mode: 'none' };
  const back = await waitFor(async () => {
    const one = (await (await fetch(`${daemon.url}/status?target=${encodeURIComponent(a.url)}`)).json()) as { status: string; checks: Array<{ name: string }> };
    return one.status === 'healthy' ? one : undefined;
  }, 15_000);
  expect(back!.checks.map((c) => c.name)).not.toContain('engine_progress');
  expect(sample(await daemon.metrics(), 'vllm_probe_engine_wedged', { target: a.url, signature: 'no_token_after_headers' })).toBe(0);
});

test('a stopped target turns its probe_success to 0 while the others stay 1, and /status names it first', async () => {
  await b.close();
  // A probe in flight when the port closed fails otherwise (its connection is reset); the
  // next ones are refused.
  const text = await waitFor(async () => {
    const t = await daemon.metrics();
    const refused = sample(t, 'vllm_probe_requests_total', { target: b.url, probe: 'ttft', outcome: 'connect_error' }) ?? 0;
    return sample(t, 'vllm_probe_probe_success', { target: b.url, probe: 'ttft' }) === 0 && refused >= 1 ? t : '';
  }, 15_000);
  expect(sample(text, 'vllm_probe_requests_total', { target: b.url, probe: 'ttft', outcome: 'connect_error' })).toBeGreaterThanOrEqual(1);
  expect(sample(text, 'vllm_probe_probe_success', { target: a.url, probe: 'ttft' })).toBe(1);
  // The daemon's verdict gauge follows its targets without anyone asking /status.
  const verdict = await waitFor(async () => sample(await daemon.metrics(), 'vllm_probe_status', { status: 'unhealthy' }) === 1, 15_000);
  expect(verdict).toBe(true);
  const down = await waitFor(async () => {
    const s = await daemon.status();
    return s.code === 503 ? s : undefined;
  }, 15_000);
  expect(down?.body.reasons[0]).toMatch(new RegExp(`^${b.url.replace(/[.]/g, '\\.')}: down: nothing answers on vLLM's port .*connection refused`));
  expect(down!.body.checks.find((c) => c.name === `target:${a.url}`)?.status).toBe('healthy');
  const text2 = await (await fetch(`${daemon.url}/status?format=text&target=${encodeURIComponent(b.url)}`)).text();
  expect(text2.split('\n')[0]).toMatch(/^down: nothing answers on vLLM's port (for \d+ s )?\(/);
});
