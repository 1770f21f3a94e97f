/**
 * The vLLM process series as Prometheus sees them (issue 27): one series per family, never a
 * frozen model="unknown" beside the real model's (sum() doubled vLLM's memory), and
 * source_up{source="vllm_process"} agreeing with the vllm_process check.
 */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { startCollector, type CollectorRun } from '../../src/exporter/collector.js';
import { VllmProcessCollector, type ProcSample } from '../../src/exporter/process.js';
import { createMetrics } from '../../src/metrics.js';
import { StatusBoard } from '../../src/status.js';
import { sample } from '../helpers/daemon.js';

const proc = (pid: number, comm: string, cpuSeconds: number, rssBytes: number): ProcSample => ({ pid, ppid: 1, comm, cmdline: comm, cpuSeconds, rssBytes });
const FAMILIES = ['vllm_probe_vllm_process_cpu_seconds_total', 'vllm_probe_vllm_process_resident_memory_bytes', 'vllm_probe_vllm_processes'];

function setup(procs: () => ProcSample[], model: () => string) {
  const config = parseConfig({ gpu: { process_match: { name_pattern: 'vllm|VLLM' } } });
  const registry = new Registry();
  const metrics = createMetrics(registry, config);
  const status = new StatusBoard(config, metrics, () => ({ url: 'x', model: 'm' }));
  const source = { list: procs, read: (pid: number) => procs().find((p) => p.pid === pid), now: () => 1_000_000 };
  const collector = new VllmProcessCollector(config, metrics, status, model, pino({ level: 'silent' }), source);
  return { collector, registry, status, metrics };
}

/** Every sample line of a family: name and labels → value. */
const series = (text: string, family: string) => text.split('\n').filter((l) => l.startsWith(`${family}{`) || l.startsWith(`${family} `));

describe('vLLM process series', () => {
  test('the model found after start replaces model="unknown": one series per family, so sum() is vLLM\'s memory', async () => {
    let model = 'unknown';
    const { collector, registry } = setup(() => [proc(10, 'vllm', 5, 100), proc(11, 'VLLM::EngineCore', 20, 300)], () => model);
    await collector.collect();
    model = 'meta-llama/Llama-3.1-8B';
    await collector.collect();
    const text = await registry.metrics();
    for (const family of FAMILIES) {
      expect(series(text, family), family).toHaveLength(1);
      expect(series(text, family)[0], family).toContain('model="meta-llama/Llama-3.1-8B"');
    }
    expect(sample(text, 'vllm_probe_vllm_process_resident_memory_bytes')).toBe(400);
  });

  test('the same holds when the processes vanish under a new model label', async () => {
    let model = 'unknown';
    let procs = [proc(10, 'vllm', 5, 100)];
    const { collector, registry } = setup(() => procs, () => model);
    await collector.collect();
    model = 'm2';
    procs = [];
    await collector.collect().catch(() => undefined);
    const text = await registry.metrics();
    expect(series(text, 'vllm_probe_vllm_processes')).toEqual(['vllm_probe_vllm_processes{model="m2"} 0']);
    expect(series(text, 'vllm_probe_vllm_process_resident_memory_bytes')).toEqual([]);
    expect(series(text, 'vllm_probe_vllm_process_cpu_seconds_total')).toEqual([]);
  });
});

describe('source_up{source="vllm_process"} agrees with the vllm_process check', () => {
  let run: CollectorRun | undefined;
  const shutdown = new AbortController();
  afterEach(async () => {
    await run?.stop();
    run = undefined;
  });

  test('skipped (no vLLM process visible): source_up 0, the check skipped, no error logged as a failure of vLLM', async () => {
    const { collector, registry, status, metrics } = setup(() => [proc(1, 'node', 1, 1)], () => 'm');
    run = startCollector(collector, { interval: 3600, timeout: 5 }, metrics, pino({ level: 'silent' }), shutdown.signal);
    await run.firstRun;
    expect(status.report().checks.find((c) => c.name === 'vllm_process')?.status).toBe('skipped');
    const text = await registry.metrics();
    expect(sample(text, 'vllm_probe_source_up', { source: 'vllm_process' })).toBe(0);
    expect(sample(text, 'vllm_probe_source_errors_total', { source: 'vllm_process', reason: 'not_visible' })).toBe(1);
  });

  test('visible: source_up 1 and the check healthy', async () => {
    const { collector, registry, status, metrics } = setup(() => [proc(10, 'vllm', 5, 100)], () => 'm');
    run = startCollector(collector, { interval: 3600, timeout: 5 }, metrics, pino({ level: 'silent' }), shutdown.signal);
    await run.firstRun;
    expect(status.report().checks.find((c) => c.name === 'vllm_process')?.status).toBe('healthy');
    expect(sample(await registry.metrics(), 'vllm_probe_source_up', { source: 'vllm_process' })).toBe(1);
  });
});
