/** The host collector: real /proc on this machine, and a /proc of our own for exact numbers. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, onTestFinished, test } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { NoDataError, SourceError } from '../../src/errors.js';
import { HostCollector } from '../../src/gpu/host.js';
import { parseCpuTicks, parseMemAvailable } from '../../src/host/proc.js';
import { createMetrics } from '../../src/metrics.js';

const never = new AbortController().signal;

function setup(procRoot?: string) {
  const registry = new Registry();
  const metrics = createMetrics(registry, parseConfig({}));
  const host = procRoot ? new HostCollector(metrics, procRoot) : new HostCollector(metrics);
  const samples = async () => (await registry.metrics()).split('\n').filter((l) => l.startsWith('vllm_probe_host_'));
  const value = async (name: string) => {
    const line = (await samples()).find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  };
  return { host, samples, value };
}

function fakeProc(stat: string, meminfo: string) {
  const dir = mkdtempSync(join(tmpdir(), 'proc-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const write = (s: string, m = meminfo) => {
    writeFileSync(join(dir, 'stat'), s);
    writeFileSync(join(dir, 'meminfo'), m);
  };
  write(stat);
  return { dir, write };
}

const MEMINFO = 'MemTotal:       24576000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\nBuffers:           10000 kB\nCached:          3000000 kB\n';
const cpuLine = (user: number, system: number, idle: number, iowait = 0) => `cpu  ${user} 0 ${system} ${idle} ${iowait} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 123\n`;

describe('host collector', () => {
  test('this machine: no 0 before the first read; memory first, CPU from the second read; markStale removes both', async () => {
    const { host, samples, value } = setup();
    expect(await samples()).toEqual([]);
    await host.collect(never);
    expect(await samples()).toHaveLength(1);
    expect(await value('vllm_probe_host_memory_available_bytes')).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 250)); // /proc/stat ticks advance at 100 Hz
    await host.collect(never);
    const ratio = await value('vllm_probe_host_cpu_utilization_ratio');
    expect(ratio).toBeGreaterThanOrEqual(0);
    expect(ratio).toBeLessThanOrEqual(1);
    host.markStale();
    expect(await samples()).toEqual([]);
  });

  test('the busy fraction is busy ticks over all ticks between two reads; iowait counts as idle', async () => {
    const proc = fakeProc(cpuLine(100, 100, 800), MEMINFO);
    const { host, value } = setup(proc.dir);
    await host.collect(never);
    expect(await value('vllm_probe_host_cpu_utilization_ratio')).toBeUndefined();
    expect(await value('vllm_probe_host_memory_available_bytes')).toBe(20000000 * 1024);
    proc.write(cpuLine(250, 150, 1300, 100)); // +200 busy, +500 idle, +100 iowait
    await host.collect(never);
    expect(await value('vllm_probe_host_cpu_utilization_ratio')).toBeCloseTo(200 / 800, 10);
  });

  test('ticks that went back give no CPU value rather than a wrong one', async () => {
    const proc = fakeProc(cpuLine(500, 500, 1000), MEMINFO);
    const { host, value } = setup(proc.dir);
    await host.collect(never);
    proc.write(cpuLine(10, 10, 10));
    await host.collect(never);
    expect(await value('vllm_probe_host_cpu_utilization_ratio')).toBeUndefined();
  });

  test('no /proc here: nothing to collect (NoDataError, labelled no_procfs, not no_gpu), no series', async () => {
    const { host, samples } = setup('/nonexistent-proc');
    const err = await host.collect(never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoDataError);
    expect((err as NoDataError).reason).toBe('no_procfs');
    expect(await samples()).toEqual([]);
  });

  test('a garbled /proc/stat is unparsable, not a number', async () => {
    const proc = fakeProc('intr 1 2 3\n', MEMINFO);
    const { host } = setup(proc.dir);
    const err = await host.collect(never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect((err as SourceError).reason).toBe('unparsable');
  });
});

describe('/proc parsers', () => {
  test('MemAvailable when the kernel gives it, else free + buffers + cached', () => {
    expect(parseMemAvailable(MEMINFO)).toBe(20000000 * 1024);
    expect(parseMemAvailable('MemFree: 100 kB\nBuffers: 20 kB\nCached: 30 kB\n')).toBe(150 * 1024);
    expect(parseMemAvailable('MemTotal: 100 kB\n')).toBeUndefined();
  });

  test('the aggregate cpu line; per-CPU lines and short or negative lines are not it', () => {
    expect(parseCpuTicks(cpuLine(1, 2, 3, 4))).toEqual({ busy: 3, total: 10 });
    expect(parseCpuTicks('cpu0 1 2 3 4\n')).toBeUndefined();
    expect(parseCpuTicks('cpu  1 2\n')).toBeUndefined();
    expect(parseCpuTicks('cpu  1 2 -3 4\n')).toBeUndefined();
  });
});
