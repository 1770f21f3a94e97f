/** The host collector with the real systeminformation on this machine. */
import { Registry } from 'prom-client';
import { expect, test } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { HostCollector } from '../../src/gpu/host.js';
import { createMetrics } from '../../src/metrics.js';

const never = new AbortController().signal;

test('no 0 before the first read; memory first, CPU from the second read; markStale removes both', async () => {
  const registry = new Registry();
  const metrics = createMetrics(registry, parseConfig({}));
  const host = new HostCollector(metrics);
  const samples = async () => (await registry.metrics()).split('\n').filter((l) => l.startsWith('vllm_probe_host_'));
  expect(await samples()).toEqual([]);

  await host.collect(never);
  const first = await samples();
  expect(first).toHaveLength(1);
  expect(first[0]).toMatch(/^vllm_probe_host_memory_available_bytes \d+$/);
  expect(Number(first[0]!.split(' ')[1])).toBeGreaterThan(0);

  await new Promise((r) => setTimeout(r, 250));
  await host.collect(never);
  const cpu = (await samples()).find((l) => l.startsWith('vllm_probe_host_cpu_utilization_ratio '));
  const ratio = Number(cpu?.split(' ')[1]);
  expect(ratio).toBeGreaterThanOrEqual(0);
  expect(ratio).toBeLessThanOrEqual(1);

  host.markStale();
  expect(await samples()).toEqual([]);
});
