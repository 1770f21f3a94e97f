import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { OUTCOMES } from '../src/metrics.js';
import { sample, startDaemon, startEmulator, testConfig, waitFor, type RunningDaemon } from './helpers/daemon.js';
import { createFakeNvidiaSmi, h100Scenario } from './helpers/fake-nvidia-smi.js';
import { pidfdHolders } from './helpers/pidfd.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function daemonAgainst(url: string, overrides = {}): Promise<RunningDaemon> {
  const d = await startDaemon(testConfig(url, overrides));
  cleanups.push(() => d.stop());
  return d;
}

describe('daemon against the emulator', () => {
  test('serves TTFT histograms, pre-initialised outcomes, engine series and a healthy verdict', async () => {
    const emu = await startEmulator({ model: 'm1', coldStartMs: 0 });
    cleanups.push(emu.close);
    const d = await daemonAgainst(emu.url);
    await waitFor(async () => (await fetch(`${d.url}/readyz`)).status === 200, 8000);
    const res = await fetch(`${d.url}/metrics`);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await waitFor(async () => {
      const t = await d.metrics();
      return sample(t, 'vllm_probe_engine_kv_cache_capacity_tokens', { model: 'm1' }) !== undefined ? t : '';
    });
    expect(sample(text, 'vllm_probe_time_to_first_token_seconds_count', { probe: 'ttft', model: 'm1', phase: 'warm' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'vllm_probe_time_to_first_token_seconds_bucket', { probe: 'ttft', model: 'm1', phase: 'warm', le: '0.5' })).toBeDefined();
    for (const outcome of OUTCOMES) expect(sample(text, 'vllm_probe_requests_total', { probe: 'ttft', model: 'm1', outcome }), outcome).toBeDefined();
    expect(sample(text, 'vllm_probe_engine_kv_cache_capacity_tokens', { model: 'm1' })).toBe(4096 * 16);
    expect(sample(text, 'vllm_probe_source_up', { source: 'vllm_metrics' })).toBe(1);
    expect(text).toMatch(/^vllm_probe_build_info\{version="[^"]+",node_version="v\d+/m);
    const status = await d.status();
    expect(status.code).toBe(200);
    expect(status.body.status).toBe('healthy');
    const txt = await (await fetch(`${d.url}/status?format=text`)).text();
    expect(txt.split('\n')[0]).toMatch(/^healthy: serving: \d+ running, \d+ waiting, KV cache \d+ % full \(since \d\d:\d\d:\d\d\)$/);
  });

  test('the chat variant of the TTFT probe (probes.ttft.endpoint: chat) works end to end', async () => {
    const emu = await startEmulator({ coldStartMs: 0, baseTtftMs: 120 });
    cleanups.push(emu.close);
    const d = await daemonAgainst(emu.url, { probes: { ttft: { endpoint: 'chat' } } });
    const text = await waitFor(async () => {
      const t = await d.metrics();
      return (sample(t, 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'success' }) ?? 0) >= 1 ? t : '';
    });
    // every TTFT lands above the emulator's 120 ms first-token delay
    expect(sample(text, 'vllm_probe_time_to_first_token_seconds_bucket', { probe: 'ttft', phase: 'warm', le: '0.1' })).toBe(0);
    expect(sample(text, 'vllm_probe_probe_tokens_total', { probe: 'ttft', token_type: 'output' })! % 16).toBe(0);
  });

  test('SLO thresholds are exact bucket bounds', async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const d = await daemonAgainst(emu.url, { slo: { ttft: { threshold: '333ms', critical_threshold: '1234ms' } } });
    const text = await waitFor(async () => {
      const t = await d.metrics();
      return t.includes('vllm_probe_time_to_first_token_seconds_bucket') ? t : '';
    });
    expect(text).toContain('le="0.333"');
    expect(text).toContain('le="1.234"');
  });

  test('the TTFT probe that finds vLLM back is the cold one, also when no scrape or other probe saw it first', async () => {
    const port = await freePort();
    // Only the TTFT probe asks vLLM: it is the one that sees vLLM reachable again.
    const d = await daemonAgainst(`http://127.0.0.1:${port}`, { scrape: { enabled: false }, probes: { ttft: { interval: '1s', timeout: '900ms' }, prefix: { enabled: false }, models: { enabled: false } } });
    await waitFor(async () => (sample(await d.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'connect_error' }) ?? 0) >= 1, 20_000);
    const emu = await startEmulator({ coldStartMs: 0 }, port);
    cleanups.push(emu.close);
    const first = await waitFor(async () => {
      const m = await d.metrics();
      return (sample(m, 'vllm_probe_requests_total', { probe: 'ttft', model: 'emulated-model', outcome: 'success' }) ?? 0) >= 1 ? m : undefined;
    }, 20_000);
    const ttft = (phase: string) => sample(first!, 'vllm_probe_time_to_first_token_seconds_count', { probe: 'ttft', model: 'emulated-model', phase });
    expect(ttft('cold')).toBe(1);
    expect(ttft('warm') ?? 0).toBe(0);
  });

  test('nothing listening → 503 unhealthy naming the refusal; emulator on that port → healthy, first probe cold', async () => {
    const port = await freePort();
    const d = await daemonAgainst(`http://127.0.0.1:${port}`);
    const down = await waitFor(async () => {
      const s = await d.status();
      return s.code === 503 ? s : undefined;
    }, 20_000);
    expect(down?.body.status).toBe('unhealthy');
    expect(down?.body.state).toBe('down');
    expect(down?.body.cause).toMatch(/^nothing answers on vLLM's port (for \d+ s )?\(.*connection refused/);
    expect(down?.body.reasons.join(' ')).toMatch(/vLLM unreachable since \d\d:\d\d:\d\dZ: connection refused/);
    const m = await d.metrics();
    expect(sample(m, 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'connect_error' })).toBeGreaterThanOrEqual(1);
    expect(sample(m, 'vllm_probe_state', { state: 'down' })).toBe(1);

    const emu = await startEmulator({ coldStartMs: 0 }, port);
    cleanups.push(emu.close);
    const up = await waitFor(async () => (await d.status()).code === 200, 8000);
    expect(up).toBe(true);
    // Serving again is named as a restart, with the first (cold) TTFT once the probe has run.
    const restarted = await waitFor(async () => {
      const s = (await d.status()).body;
      return s.state === 'restarted' && /cold/.test(s.cause) ? s : undefined;
    }, 8000);
    expect(restarted?.cause).toMatch(/^vLLM restarted at \d\d:\d\d:\d\d \(reachable again after being unreachable\) and serves again; first TTFT after it [\d.]+ s \(cold\)$/);
    const after = await d.metrics();
    expect(sample(after, 'vllm_probe_time_to_first_token_seconds_count', { probe: 'ttft', model: 'emulated-model', phase: 'cold' })).toBe(1);
    expect(sample(after, 'vllm_probe_target_restarts_total')).toBeGreaterThanOrEqual(1);
  });

  test('the environment line names the GPU its GPU checks read (never "no GPU visible" beside them)', async () => {
    const smi = createFakeNvidiaSmi(h100Scenario('load'));
    cleanups.push(async () => smi.cleanup());
    // nvidia-smi answers only after the first environment snapshot has been taken.
    smi.update({ commands: { 'query-gpu': { delayMs: 1500 } } } as never);
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const d = await startDaemon(testConfig(emu.url, { gpu: { enabled: true, nvidia_smi_path: smi.path, interval: '2s', timeout: '1900ms' } }));
    cleanups.push(() => d.stop());
    const env = await waitFor(async () => {
      const s = await d.status();
      const gpuRead = s.body.checks.some((c) => c.name === 'gpu_memory' && c.status !== 'unknown');
      const e = s.body.checks.find((c) => c.name === 'environment');
      return gpuRead && e && /H100/.test(e.reason) ? e : undefined;
    }, 45_000);
    expect(env?.reason).toMatch(/1 × NVIDIA H100[^,]* \(driver [\d.]+\)/);
    const all = (await d.status()).body.checks.find((c) => c.name === 'environment')!.reason;
    expect(all).not.toMatch(/no GPU visible/);
  });

  test('a vLLM restart (process_start_time changes) labels the next probe cold', async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const d = await daemonAgainst(emu.url);
    await waitFor(async () => sample(await d.metrics(), 'vllm_probe_source_up', { source: 'vllm_metrics' }) === 1);
    await new Promise((r) => setTimeout(r, 1100));
    emu.emulator.restart();
    const cold = await waitFor(async () => sample(await d.metrics(), 'vllm_probe_time_to_first_token_seconds_count', { probe: 'ttft', model: 'emulated-model', phase: 'cold' }), 8000);
    expect(cold).toBe(1);
  });

  test('a wedged engine (/health 200, requests stuck) is reported in /status', async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const d = await daemonAgainst(emu.url, { status: { failures_to_unhealthy: 50 } });
    await waitFor(async () => (await d.status()).body.status === 'healthy', 8000);
    emu.emulator.fault = { mode: 'wedge' };
    const wedged = await waitFor(async () => {
      const s = await d.status();
      return s.body.checks.find((c) => c.name === 'engine_progress' && c.status === 'unhealthy');
    }, 20_000);
    expect(wedged?.reason).toMatch(/^engine wedged: \/health 200 but (the last \d+ probe requests got response headers and no token within|vLLM's token and step counters have not moved for \d+ s)/);
    const m = await d.metrics();
    const bySignature = ['no_token_after_headers', 'frozen_counters', 'queue_stuck'].map((signature) => sample(m, 'vllm_probe_engine_wedged', { model: 'emulated-model', signature }));
    expect(bySignature.every((v) => v === 0 || v === 1)).toBe(true);
    expect(bySignature.some((v) => v === 1)).toBe(true);
    expect(bySignature[2]).toBe(0); // requests run in this fault: the queue is not what is stuck
  });

  test('garbled /metrics: scrape error by reason, engine gauges dropped, degraded; recovers', async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const d = await daemonAgainst(emu.url);
    await waitFor(async () => sample(await d.metrics(), 'vllm_probe_engine_requests_running', { model: 'emulated-model' }) !== undefined);
    emu.emulator.fault = { mode: 'metrics_garbled' };
    const text = await waitFor(async () => {
      const t = await d.metrics();
      return (sample(t, 'vllm_probe_source_errors_total', { source: 'vllm_metrics', reason: 'parse_error' }) ?? 0) > 0 ? t : '';
    });
    expect(sample(text, 'vllm_probe_engine_requests_running', { model: 'emulated-model' })).toBeUndefined();
    const s = await d.status();
    expect(s.body.status).toBe('degraded');
    expect(s.body.reasons.join(' ')).toContain('vLLM /metrics scrape failing: /metrics is not valid Prometheus text: line 1');
    emu.emulator.fault = { mode: 'none' };
    expect(await waitFor(async () => (await d.status()).body.status === 'healthy', 5000)).toBe(true);
  });

  test('an API key from the env is sent; a wrong one gives http_4xx', async () => {
    const emu = await startEmulator({ apiKey: 'sk-right', coldStartMs: 0 });
    cleanups.push(emu.close);
    const good = await startDaemon(testConfig(emu.url, { target: { api_key_env: 'K' } }), { env: { K: 'sk-right' } });
    cleanups.push(() => good.stop());
    const bad = await startDaemon(testConfig(emu.url, { target: { api_key_env: 'K' } }), { env: { K: 'sk-wrong' } });
    cleanups.push(() => bad.stop());
    expect(await waitFor(async () => sample(await good.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'success' }))).toBeGreaterThan(0);
    expect(await waitFor(async () => sample(await bad.metrics(), 'vllm_probe_requests_total', { probe: 'ttft', outcome: 'http_4xx' }))).toBeGreaterThan(0);
    for (const d of [good, bad]) {
      expect(await d.metrics()).not.toContain('sk-');
      expect(JSON.stringify((await d.status()).body)).not.toContain('sk-');
    }
  });
});

describe('lifecycle', () => {
  test('shutdown drains within 5 s even with a probe stuck waiting for headers', async () => {
    const emu = await startEmulator({ fault: { mode: 'never_headers' } });
    cleanups.push(emu.close);
    const d = await startDaemon(testConfig(emu.url, { probes: { ttft: { interval: '5s', timeout: '4s' } } }));
    await new Promise((r) => setTimeout(r, 300)); // the first probe is now in flight
    const started = Date.now();
    await d.stop();
    expect(Date.now() - started).toBeLessThan(5000);
    await expect(fetch(`${d.url}/healthz`)).rejects.toThrow();
  });

  test('/healthz is 200 whatever vLLM does; /readyz waits for the first probe cycle', async () => {
    const port = await freePort();
    const d = await daemonAgainst(`http://127.0.0.1:${port}`);
    expect((await fetch(`${d.url}/healthz`)).status).toBe(200);
    expect(await waitFor(async () => (await fetch(`${d.url}/readyz`)).status === 200, 5000)).toBe(true);
  });

  test('reload: a bad config keeps the old one and sets the reload metric to 0; a good one applies', async () => {
    const emu = await startEmulator({ coldStartMs: 0 });
    cleanups.push(emu.close);
    const dir = mkdtempSync(join(tmpdir(), 'reload-'));
    const file = join(dir, 'c.yaml');
    const good = `listen: 127.0.0.1:0\nlog_level: silent\ntarget:\n  url: ${emu.url}\nprobes:\n  ttft:\n    interval: 1s\n    timeout: 900ms\n  prefix:\n    enabled: false\ngpu:\n  enabled: false\n`;
    writeFileSync(file, good);
    const d = await startDaemon(loadConfig(file), { configFile: file });
    cleanups.push(() => d.stop());
    writeFileSync(file, 'probes: [broken');
    const res = await fetch(`${d.url}/-/reload`, { method: 'POST' });
    expect(res.status).toBe(500);
    expect(await res.text()).toContain(`${file}: (yaml) line`);
    expect(sample(await d.metrics(), 'vllm_probe_config_last_reload_successful')).toBe(0);
    expect((await fetch(`${d.url}/-/reload`)).status).toBe(405);
    writeFileSync(file, good.replace('max_tokens', 'max_tokens').replace('timeout: 900ms', 'timeout: 800ms\n    max_tokens: 3'));
    expect((await fetch(`${d.url}/-/reload`, { method: 'POST' })).status).toBe(200);
    expect(sample(await d.metrics(), 'vllm_probe_config_last_reload_successful')).toBe(1);
    const tokens = await waitFor(async () => sample(await d.metrics(), 'vllm_probe_probe_tokens_total', { probe: 'ttft', token_type: 'output' }), 5000);
    expect(tokens! % 3).toBe(0);
  });
});

describe('the engine watch (scrape.engine_watch)', () => {
  /** A separate process that listens on a port, as vLLM's API server would. */
  async function listeningProcess(): Promise<{ url: string; pid: number }> {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['-e', "const s = require('node:http').createServer((q, r) => r.writeHead(404).end()).listen(0, '127.0.0.1', () => console.log(s.address().port))"], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(async () => child.kill());
    const port = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
    return { url: `http://127.0.0.1:${port}`, pid: child.pid! };
  }
  /** Whether a pidfd for `pid` is held (by the watch's helper, a child of the in-process daemon). */
  const watching = async (pid: number) => pidfdHolders(pid).length > 0;

  test('follows the vLLM processes the collector found, and not when set to false (Linux)', async () => {
    if (process.platform !== 'linux') return;
    const on = await listeningProcess();
    const watched = await daemonAgainst(on.url);
    expect(await waitFor(() => watching(on.pid), 8000)).toBe(true);
    await watched.stop();

    const off = await listeningProcess();
    const unwatched = await daemonAgainst(off.url, { scrape: { engine_watch: false } });
    // The collector has matched the process (so the watch would have been told) …
    expect(await waitFor(async () => sample(await unwatched.metrics(), 'vllm_probe_vllm_processes') === 1, 8000)).toBe(true);
    // … and nothing follows it (a watch would have held its pidfd within a second).
    expect(await waitFor(() => watching(off.pid), 1500)).toBe(false);
  });
});
