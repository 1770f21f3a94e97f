import { Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../src/config.js';
import { createMetrics } from '../src/metrics.js';
import { StatusBoard } from '../src/status.js';
import type { EngineSnapshot } from '../src/vllm/schema.js';
import { WedgeDetector } from '../src/wedge.js';

function setup() {
  let now = 1_000_000;
  const config = parseConfig({ scrape: { interval: '2s', timeout: '1s', wedge_scrapes: 4 }, status: { failures_to_unhealthy: 2 } });
  const metrics = createMetrics(new Registry(), config);
  const status = new StatusBoard(config, metrics, () => ({ url: 'x', model: 'm' }), () => new Date(now));
  const w = new WedgeDetector(config, metrics, status, () => 'm', () => now);
  const snap = (generation: number, running = 0, waiting = 0) => ({ generation_tokens: generation, engine_steps: generation, requests_running: running, requests_waiting: waiting, histograms: {} }) as unknown as EngineSnapshot;
  const stall = () => {
    const end = w.requestStarted();
    now += 1900;
    end({ gotToken: false, headers: true, timedOut: true, timeoutS: 1.9 });
  };
  const scrape = (generation: number, running = 0, waiting = 0) => {
    now += 100;
    w.observeScrape(snap(generation, running, waiting));
  };
  const check = () => status.report().checks.find((c) => c.name === 'engine_progress')!;
  return { w, status, stall, scrape, check, tick: (ms: number) => (now += ms) };
}

describe('wedge detector', () => {
  test('while the engine is wedged, the checks on its frozen series say unknown, not healthy', () => {
    const t = setup();
    for (const name of ['kv_cache', 'prefix_sources', 'server_slo', 'ttft_latency']) t.status.set(name, 'healthy', `${name} looked fine`);
    t.status.set('gpu_memory', 'healthy', 'GPU memory fine');
    t.w.observeHealth(true);
    t.scrape(100);
    t.stall();
    t.scrape(100);
    t.stall();
    const checks = Object.fromEntries(t.status.report().checks.map((c) => [c.name, c]));
    for (const name of ['kv_cache', 'prefix_sources', 'server_slo', 'ttft_latency']) {
      expect(checks[name]!.status, name).toBe('unknown');
      expect(checks[name]!.reason).toBe(`cannot judge while the engine is wedged; last said: ${name} looked fine`);
    }
    expect(checks.gpu_memory!.status).toBe('healthy'); // nvidia-smi is not the engine's data
  });

  test('the one line names the wedge, not the probe failures it causes, whichever check was set first', () => {
    const t = setup();
    // The scheduler's probe line exists before the detector's first judgement, as in the daemon.
    t.status.recordProbe('ttft', true, 'success', undefined, 0.05);
    t.w.observeHealth(true);
    t.scrape(100);
    t.stall();
    t.status.recordProbe('ttft', false, 'stalled', 'headers received but no token within the timeout');
    t.scrape(100);
    t.stall();
    t.status.recordProbe('ttft', false, 'stalled', 'headers received but no token within the timeout');
    const report = t.status.report();
    expect(report.checks.find((c) => c.name === 'probe_ttft')?.status).toBe('unhealthy');
    expect(report.status).toBe('unhealthy');
    expect(report.reasons[0]).toMatch(/^engine wedged: \/health 200 but/);
    expect(report.reasons[1]).toMatch(/^TTFT probe failing since/);
  });

  test('probes stall after headers while the counters stay still: named as no_token_after_headers', () => {
    const t = setup();
    t.w.observeHealth(true);
    t.scrape(100);
    t.stall();
    t.scrape(100);
    t.stall();
    expect(t.check().status).toBe('unhealthy');
    expect(t.check().reason).toMatch(/^engine wedged: \/health 200 but the last 2 probe requests got response headers and no token within 1.9 s/);
  });

  test('probes stall behind someone else\'s long prefill while tokens keep coming: busy, not wedged', () => {
    const t = setup();
    t.w.observeHealth(true);
    t.scrape(100);
    t.stall();
    t.scrape(180); // the engine generated meanwhile
    t.stall();
    t.scrape(260);
    expect(t.check().status).not.toBe('unhealthy');
  });

  test('counters still for a few seconds with a request running (one long step) are not a wedge; for 20 s they are', () => {
    const t = setup();
    t.w.observeHealth(true);
    t.scrape(100, 1);
    t.tick(2000);
    t.scrape(100, 1);
    t.tick(2000);
    t.scrape(100, 1);
    expect(t.check().status).not.toBe('unhealthy');
    for (let i = 0; i < 10; i++) {
      t.tick(2000);
      t.scrape(100, 1);
    }
    expect(t.check().reason).toMatch(/^engine wedged: \/health 200 but vLLM's token and step counters have not moved for \d+ s/);
  });
});
