/**
 * The fault matrix (docs/reliability.md lists each row with this file as its test). For every
 * fault: the daemon stays up and /healthz stays 200, the right outcome or source-error reason
 * is counted, /status says what is wrong in words, nothing waits past its timeout, and the
 * daemon recovers within about one interval after the fault clears.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { FaultMode } from '../../src/emulator/server.js';
import { sample, startDaemon, startEmulator, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { createFakeNvidiaSmi, h100Scenario } from '../helpers/fake-nvidia-smi.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

/** Concurrent tests each own their servers: cleanup through the test's own context. */
async function setup(onFinished: (fn: () => Promise<void>) => void, overrides: Record<string, unknown> = {}) {
  const emu = await startEmulator({ coldStartMs: 0, itlMs: 2 });
  onFinished(() => emu.close());
  const daemon = await startDaemon(testConfig(emu.url, overrides));
  onFinished(() => daemon.stop());
  await waitFor(async () => (await daemon.status()).body.status === 'healthy', 8000);
  return { emu, daemon };
}

/** TTFT probe requests so far, whatever their outcome. */
function totalProbeRequests(metrics: string): number {
  let n = 0;
  for (const line of metrics.split('\n')) if (line.startsWith('vllm_probe_requests_total{') && line.includes('probe="ttft"')) n += Number(line.split(' ').pop());
  return n;
}

async function healthz(d: RunningDaemon) {
  const started = Date.now();
  const res = await fetch(`${d.url}/healthz`);
  return { code: res.status, ms: Date.now() - started };
}

/** Probe faults: emulator fault mode → outcome label and words /status must contain. */
const PROBE_FAULTS: Array<[string, FaultMode, string, RegExp]> = [
  ['dies mid-stream', 'die_mid_stream', 'incomplete_stream', /connection lost mid-stream/],
  ['accepts, never sends headers', 'never_headers', 'timeout_before_first_token', /no response headers within the timeout/],
  ['headers, then stalls', 'stall_after_headers', 'timeout_before_first_token', /headers received but no token within the timeout/],
  ['stalls mid-stream', 'stall_mid_stream', 'timeout_mid_stream', /no end of stream within the timeout after 2 token chunks/],
  ['HTTP 500 with body', 'http_500', 'http_5xx', /HTTP 500: emulated internal error/],
  ['error chunk mid-stream', 'error_chunk', 'stream_error', /error chunk in stream: emulated error during generation/],
  ['stream ends without [DONE]', 'no_done', 'incomplete_stream', /stream ended without data: \[DONE\]/],
  ['garbled SSE', 'garbled_sse', 'bad_response', /unparsable SSE data/],
  ['no content at all', 'empty_completion', 'empty_completion', /stream finished without any generated token/],
];

describe.concurrent('vLLM probe faults', () => {
  test.for(PROBE_FAULTS)('%s', async ([, mode, outcome, words], { onTestFinished }) => {
    const { emu, daemon } = await setup(onTestFinished);
    emu.emulator.fault = { mode };
    // Unhealthy once two probes failed (the wedge detector may say so even earlier for stalls).
    const unhealthy = await waitFor(async () => {
      const s = await daemon.status();
      const failed = sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome }) ?? 0;
      return s.code === 503 && failed >= 2 ? s : undefined;
    }, 20_000);
    expect(unhealthy?.body.status).toBe('unhealthy');
    expect(unhealthy?.body.reasons.join(' ')).toMatch(words);
    const m = await daemon.metrics();
    // Bounded by the 900 ms timeout, not by the fault (which would hold the request forever); the
    // slack is for timers that fire late when ten daemons share two busy cores.
    expect(sample(m, 'vllm_probe_probe_duration_seconds', { probe: 'ttft' })).toBeLessThan(4);
    const hz = await healthz(daemon);
    expect(hz.code).toBe(200);
    expect(hz.ms).toBeLessThan(500);
    const probesBefore = totalProbeRequests(await daemon.metrics());
    emu.emulator.fault = { mode: 'none' };
    expect(await waitFor(async () => (await daemon.status()).code === 200, 15_000, 50)).toBe(true);
    // Recovery is counted in probe runs, not seconds (a busy 2-core box stretches seconds): the
    // run in flight when the fault cleared (and one the scheduler had just started), then the
    // first success.
    expect(totalProbeRequests(await daemon.metrics()) - probesBefore).toBeLessThanOrEqual(3);
  });
});

describe.concurrent('vLLM sheds load', () => {
  test('HTTP 503 from the completions route is overload: degraded with the levers, not unhealthy', async ({ onTestFinished }) => {
    const { emu, daemon } = await setup(onTestFinished);
    emu.emulator.fault = { mode: 'http_503' };
    const s = await waitFor(async () => {
      const r = await daemon.status();
      return r.body.reasons.some((x) => x.startsWith('vLLM is shedding load')) ? r : undefined;
    }, 20_000);
    expect(s?.code).toBe(200);
    expect(s?.body.status).toBe('degraded');
    expect(s?.body.reasons.join(' ')).toMatch(/vLLM is shedding load: HTTP 503: emulated: service unavailable.*--max-num-queued-reqs/);
    expect(sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'rejected_overload' })).toBeGreaterThanOrEqual(1);
    emu.emulator.fault = { mode: 'none' };
    expect(await waitFor(async () => (await daemon.status()).body.status === 'healthy', 20_000)).toBe(true);
  });
});

describe('vLLM sheds load with Retry-After', () => {
  test('the probe waits as asked and its line says when it probes next; it never reads stale meanwhile', async ({ onTestFinished }) => {
    const { emu, daemon } = await setup(onTestFinished, { probes: { ttft: { interval: '1s', timeout: '900ms' }, prefix: { enabled: false } } });
    emu.emulator.fault = { mode: 'shedding', delayMs: 60_000 }; // Retry-After: 60, longer than this test
    // The engine's admission counter can name the state a scrape before the probe's own refusal
    // lands; the line must then gain the time of the next probe.
    const shedding = await waitFor(async () => {
      const r = await daemon.status();
      return r.body.state === 'shedding' && /next probe at/.test(r.body.cause ?? '') ? r : undefined;
    }, 10_000);
    expect(shedding?.code).toBe(200);
    expect(shedding?.body.cause).toMatch(/next probe at \d\d:\d\d:\d\d \(Retry-After\)/);
    const sent = sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'rejected_overload' });
    // More than three probe intervals (the staleness bound) of waiting.
    const waited = await waitFor(async () => ((sample(await daemon.metrics(), 'vllm_probe_probes_skipped_total', { probe: 'ttft', reason: 'retry_after' }) ?? 0) >= 5 ? true : undefined), 30_000);
    expect(waited).toBe(true);
    const line = (await daemon.status()).body.checks.find((c) => c.name === 'probe_ttft')!;
    expect(line.reason).toMatch(/^shedding: vLLM asked to come back later \(Retry-After\); next ttft probe at \d\d:\d\d:\d\dZ$/);
    expect(line.status).toBe('degraded');
    // No request was sent while waiting.
    expect(sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'rejected_overload' })).toBe(sent);
  });
});

describe.concurrent('vLLM /metrics and /health faults', () => {
  test.for([
    ['garbled /metrics', 'metrics_garbled' as FaultMode, 'parse_error', /\/metrics is not valid Prometheus text: line 1/],
    ['empty /metrics', 'metrics_empty' as FaultMode, 'parse_error', /\/metrics is empty/],
    ['huge /metrics (size cap)', 'metrics_huge' as FaultMode, 'too_large', /\/metrics is larger than 1048576 bytes/],
    ['slow /metrics', 'metrics_slow' as FaultMode, 'timeout', /no answer within the scrape timeout|did not answer within/],
  ] as const)('%s', async ([, mode, reason, words], { onTestFinished }) => {
    const { emu, daemon } = await setup(onTestFinished, { target: { max_response_bytes: 1024 * 1024 } });
    emu.emulator.fault = { mode: mode as FaultMode, delayMs: 5000 };
    const text = await waitFor(async () => {
      const t = await daemon.metrics();
      return (sample(t, 'vllm_probe_source_errors_total', { source: 'vllm_metrics', reason }) ?? 0) > 0 ? t : '';
    }, 20_000);
    expect(sample(text, 'vllm_probe_source_up', { source: 'vllm_metrics' })).toBe(0);
    expect(sample(text, 'vllm_probe_engine_requests_running', { model: 'emulated-model' })).toBeUndefined(); // no stale values
    const s = await daemon.status();
    expect(s.body.status).toBe('degraded');
    expect(s.body.reasons.join(' ')).toMatch(words);
    expect((await healthz(daemon)).code).toBe(200);
    emu.emulator.fault = { mode: 'none' };
    expect(await waitFor(async () => (await daemon.status()).body.status === 'healthy', 20_000)).toBe(true);
  });

  test('/health 200 while the engine is wedged', async ({ onTestFinished }) => {
    const { emu, daemon } = await setup(onTestFinished, { status: { failures_to_unhealthy: 100 } });
    emu.emulator.fault = { mode: 'wedge' };
    const check = await waitFor(async () => (await daemon.status()).body.checks.find((c) => c.name === 'engine_progress' && c.status === 'unhealthy'), 10_000);
    expect(check?.reason).toMatch(/^engine wedged: \/health 200 but /);
    expect((await daemon.status()).code).toBe(503);
    emu.emulator.fault = { mode: 'none' };
    expect(await waitFor(async () => (await daemon.status()).body.checks.find((c) => c.name === 'engine_progress')?.status === 'healthy', 20_000)).toBe(true);
  });

  test('/health 503 (engine dead) is explained', async ({ onTestFinished }) => {
    const { emu, daemon } = await setup(onTestFinished);
    emu.emulator.fault = { mode: 'health_503' };
    const s = await waitFor(async () => {
      const r = await daemon.status();
      return r.body.reasons.some((x) => x.includes('/health answered HTTP 503')) ? r : undefined;
    }, 20_000);
    // degraded from the scrape; unhealthy once the models probe has also seen 503 twice
    expect(['degraded', 'unhealthy']).toContain(s?.body.status);
    expect(sample(await daemon.metrics(), 'vllm_probe_target_up')).toBe(0);
  });

  test('restart with counter reset: our counters never go backwards and the restart is counted', async ({ onTestFinished }) => {
    const { emu, daemon } = await setup(onTestFinished);
    const read = async () => {
      const t = await daemon.metrics();
      return { gen: sample(t, 'vllm_probe_engine_generation_tokens_total', { model: 'emulated-model' }) ?? 0, ttftCount: sample(t, 'vllm_probe_engine_time_to_first_token_seconds_count', { model: 'emulated-model' }) ?? 0, restarts: sample(t, 'vllm_probe_target_restarts_total') ?? 0 };
    };
    const before = await waitFor(async () => {
      const r = await read();
      return r.gen > 0 ? r : undefined;
    }, 20_000);
    emu.emulator.restart(); // vLLM's counters start again at 0
    const after = await waitFor(async () => {
      const r = await read();
      return r.restarts > before!.restarts && r.gen > before!.gen ? r : undefined;
    }, 20_000);
    expect(after!.gen).toBeGreaterThan(before!.gen);
    expect(after!.ttftCount).toBeGreaterThanOrEqual(before!.ttftCount);
  });
});

describe('vLLM down at start', () => {
  test('connection refused is counted and explained; starting vLLM recovers', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const daemon = await startDaemon(testConfig(`http://127.0.0.1:${port}`));
    cleanups.push(() => daemon.stop());
    const down = await waitFor(async () => ((await daemon.status()).code === 503 ? await daemon.status() : undefined), 8000);
    expect(down?.body.reasons.join(' ')).toMatch(/vLLM unreachable since .*: connection refused/);
    expect((await healthz(daemon)).code).toBe(200);
    const emu = await startEmulator({ coldStartMs: 0 }, port);
    cleanups.push(emu.close);
    expect(await waitFor(async () => (await daemon.status()).code === 200, 5000, 50)).toBe(true);
  });
});

describe('nvidia-smi faults under the daemon', () => {
  test.each([
    ['hangs', { commands: { 'query-gpu': { hang: true } } }, 'timeout'],
    ['exits non-zero', { commands: { 'query-gpu': { exitCode: 9, stderr: 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.' } } }, 'exit_status'],
    ['prints garbage', { commands: { 'query-gpu': { stdout: '<<garbage>>\n' } } }, 'unparsable'],
  ] as const)('%s: counted, explained, probes unaffected, recovers', async (_name, behaviour, reason) => {
    const smi = createFakeNvidiaSmi({ ...h100Scenario('load'), ...behaviour } as never);
    cleanups.push(() => smi.cleanup());
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const daemon = await startDaemon(testConfig(emu.url, { gpu: { enabled: true, nvidia_smi_path: smi.path, interval: '2s', timeout: '1s' } }));
    cleanups.push(() => daemon.stop());
    const text = await waitFor(async () => {
      const t = await daemon.metrics();
      return (sample(t, 'vllm_probe_source_errors_total', { source: 'nvidia_smi', reason }) ?? 0) > 0 ? t : '';
    }, 12_000);
    expect(sample(text, 'vllm_probe_source_up', { source: 'nvidia_smi' })).toBe(0);
    expect(sample(text, 'vllm_probe_source_duration_seconds', { source: 'nvidia_smi' })).toBeLessThan(2);
    const s = await daemon.status();
    expect(s.body.checks.find((c) => c.name === 'gpu_collector')?.status).toBe('degraded');
    expect(s.body.checks.find((c) => c.name === 'probe_ttft')?.status).toBe('healthy');
    expect((await healthz(daemon)).code).toBe(200);
    smi.update({ commands: {} });
    expect(await waitFor(async () => sample(await daemon.metrics(), 'vllm_probe_source_up', { source: 'nvidia_smi' }) === 1, 20_000)).toBe(true);
  });

  test('missing binary next to no driver: reported as no GPU, daemon healthy', async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const daemon = await startDaemon(testConfig(emu.url, { gpu: { enabled: true, nvidia_smi_path: '/nonexistent/nvidia-smi', interval: '1s', timeout: '900ms' } }));
    cleanups.push(() => daemon.stop());
    const s = await waitFor(async () => ((await daemon.status()).body.status === 'healthy' ? await daemon.status() : undefined), 8000);
    expect(s?.body.checks.find((c) => c.name === 'gpu_collector')?.reason).toMatch(/no GPU/);
  });
});

describe('config file faults', () => {
  test('deleted, then corrupted while running: reload keeps the old config and says why; restored: reload applies', async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'c.yaml');
    const good = `listen: 127.0.0.1:0\nlog_level: silent\ntarget:\n  url: ${emu.url}\nprobes:\n  ttft:\n    interval: 1s\n    timeout: 900ms\n  prefix:\n    enabled: false\ngpu:\n  enabled: false\n`;
    writeFileSync(file, good);
    const daemon = await startDaemon(loadConfig(file), { configFile: file });
    cleanups.push(() => daemon.stop());
    rmSync(file);
    let res = await fetch(`${daemon.url}/-/reload`, { method: 'POST' });
    expect(res.status).toBe(500);
    expect(await res.text()).toContain(`${file}: (file): cannot read: ENOENT`);
    writeFileSync(file, 'target: {url: 12}\n');
    process.emit('SIGHUP'); // the same path as kill -HUP
    await waitFor(async () => sample(await daemon.metrics(), 'vllm_probe_config_last_reload_successful') === 0, 3000);
    res = await fetch(`${daemon.url}/-/reload`, { method: 'POST' });
    expect(await res.text()).toContain('target.url: expected an http(s) URL');
    expect(sample(await daemon.metrics(), 'vllm_probe_config_last_reload_successful')).toBe(0);
    // still probing with the old config
    const before = sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'success' }) ?? 0;
    expect(await waitFor(async () => (sample(await daemon.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'success' }) ?? 0) > before, 4000)).toBe(true);
    expect((await healthz(daemon)).code).toBe(200);
    writeFileSync(file, good);
    expect((await fetch(`${daemon.url}/-/reload`, { method: 'POST' })).status).toBe(200);
    expect(sample(await daemon.metrics(), 'vllm_probe_config_last_reload_successful')).toBe(1);
  });
});
