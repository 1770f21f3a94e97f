import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { parseProcStat, VllmProcessCollector, type ProcSample } from '../../src/exporter/process.js';
import { createMetrics } from '../../src/metrics.js';
import { StatusBoard } from '../../src/status.js';
import { sample } from '../helpers/daemon.js';

const STAT = '4242 (python3 (vllm) x) S 1 4242 4242 0 -1 4194560 123 0 0 0 1234 566 0 0 20 0 12 0 9999 4859281408 275366 18446744073709551615';
const STATUS = 'Name:\tpython3\nVmPeak:\t 5000000 kB\nVmRSS:\t 1101464 kB\nThreads:\t12\n';

describe('parseProcStat', () => {
  test('comm with spaces and parentheses; utime+stime in ticks; VmRSS in kB', () => {
    expect(parseProcStat(STAT, STATUS)).toEqual({ comm: 'python3 (vllm) x', cpuSeconds: 18, rssBytes: 1101464 * 1024 });
  });
  test('garbage is undefined, not zero', () => {
    expect(parseProcStat('nonsense', STATUS)).toBeUndefined();
    expect(parseProcStat('1 (x) S', '')).toBeUndefined();
  });
});

function setup(match: Record<string, unknown>, list: () => ProcSample[]) {
  const config = parseConfig({ gpu: { process_match: match } });
  const registry = new Registry();
  const metrics = createMetrics(registry, config);
  const status = new StatusBoard(config, metrics, () => ({ url: 'x', model: 'm' }));
  const c = new VllmProcessCollector(config, metrics, status, () => 'm', pino({ level: 'silent' }), list);
  return { c, registry, status };
}
const proc = (pid: number, cmdline: string, cpuSeconds: number, rssBytes: number): ProcSample => ({ pid, comm: 'python3', cmdline, cpuSeconds, rssBytes });

describe('VllmProcessCollector', () => {
  test('sums matched processes; CPU is a counter that survives a restart with new pids', async () => {
    let procs = [proc(10, 'python -m vllm.entrypoints.openai.api_server', 5, 100), proc(11, 'VLLM::EngineCore', 20, 300), proc(12, 'nginx: worker', 99, 999)];
    const { c, registry, status } = setup({ name_pattern: 'vllm|VLLM' }, () => procs);
    await c.collect();
    let m = await registry.metrics();
    expect(sample(m, 'vllm_probe_vllm_process_cpu_seconds_total', { model: 'm' })).toBe(0); // first reading is the baseline
    expect(sample(m, 'vllm_probe_vllm_process_resident_memory_bytes', { model: 'm' })).toBe(400);
    expect(sample(m, 'vllm_probe_vllm_processes', { model: 'm' })).toBe(2);
    procs = [proc(10, 'python -m vllm.entrypoints.openai.api_server', 7, 100), proc(11, 'VLLM::EngineCore', 30, 300)];
    await c.collect();
    expect(sample(await registry.metrics(), 'vllm_probe_vllm_process_cpu_seconds_total', { model: 'm' })).toBe(12);
    procs = [proc(50, 'python -m vllm.entrypoints.openai.api_server', 1, 100), proc(51, 'VLLM::EngineCore', 2, 300)]; // restarted
    await c.collect();
    await c.collect();
    m = await registry.metrics();
    expect(sample(m, 'vllm_probe_vllm_process_cpu_seconds_total', { model: 'm' })).toBe(12);
    expect(status.report().checks.find((x) => x.name === 'vllm_process')?.reason).toBe('2 vLLM processes (pids 50, 51), resident 0.00 GiB');
  });

  test('nothing visible (sidecar without a shared PID namespace): says so in /status, no memory series', async () => {
    const { c, registry, status } = setup({ name_pattern: 'vllm' }, () => [proc(1, 'node dist/main.js serve', 1, 1)]);
    await c.collect();
    expect(sample(await registry.metrics(), 'vllm_probe_vllm_process_resident_memory_bytes', { model: 'm' })).toBeUndefined();
    const check = status.report().checks.find((x) => x.name === 'vllm_process')!;
    expect(check.status).toBe('healthy');
    expect(check.reason).toContain('shareProcessNamespace: true');
  });

  test('a pid file matches that process and its descendants only', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const file = join(mkdtempSync(join(tmpdir(), 'pid-')), 'vllm.pid');
    writeFileSync(file, `${process.pid}\n`);
    const { c, registry } = setup({ pid_file: file }, () => [proc(process.pid, 'this test', 3, 10), proc(999999, 'unrelated', 1, 1)]);
    await c.collect();
    expect(sample(await registry.metrics(), 'vllm_probe_vllm_processes', { model: 'm' })).toBe(1);
  });
});
