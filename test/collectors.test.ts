/**
 * The collectors list (src/collectors.ts): each entry has its own switch, so the host's CPU and
 * memory no longer go away with the GPU, and a switched-off collector leaves no series at 0.
 */
import { afterEach, expect, test } from 'vitest';
import { COLLECTORS } from '../src/collectors.js';
import { defaultConfig } from '../src/config.js';
import { sample, startDaemon, startEmulator, testConfig, waitFor } from './helpers/daemon.js';
import { createFakeNvidiaSmi, h100Scenario } from './helpers/fake-nvidia-smi.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

test('each collector has its own switch in the config, all on by default', () => {
  const config = defaultConfig();
  expect(COLLECTORS.map((c) => [c.source, c.settings(config).enabled])).toEqual([
    ['vllm_process', true],
    ['vllm_metrics', true],
    ['nvidia_smi', true],
    ['host', true],
  ]);
  const off = testConfig('http://127.0.0.1:8000', { gpu: { enabled: false }, host: { enabled: true } });
  expect(COLLECTORS.filter((c) => c.settings(off).enabled).map((c) => c.source)).toEqual(['vllm_process', 'vllm_metrics', 'host']);
});

test('GPU off: host CPU and memory are still collected', async () => {
  const emu = await startEmulator({ coldStartMs: 0 });
  cleanups.push(emu.close);
  const d = await startDaemon(testConfig(emu.url, { gpu: { enabled: false }, host: { interval: '1s', timeout: '900ms' } }));
  cleanups.push(() => d.stop());
  const m = await waitFor(async () => {
    const t = await d.metrics();
    return sample(t, 'vllm_probe_source_up', { source: 'host' }) === 1 ? t : '';
  });
  expect(sample(m, 'vllm_probe_host_memory_available_bytes')).toBeGreaterThan(0);
  expect(sample(m, 'vllm_probe_source_up', { source: 'nvidia_smi' })).toBeUndefined();
});

test('host off, GPU on: nvidia-smi is collected, and host memory is absent rather than 0', async () => {
  const emu = await startEmulator({ coldStartMs: 0 });
  cleanups.push(emu.close);
  const smi = createFakeNvidiaSmi(h100Scenario('load'));
  cleanups.push(() => smi.cleanup());
  const d = await startDaemon(testConfig(emu.url, { gpu: { enabled: true, nvidia_smi_path: smi.path, interval: '1s', timeout: '900ms' }, host: { enabled: false } }));
  cleanups.push(() => d.stop());
  const m = await waitFor(async () => {
    const t = await d.metrics();
    return sample(t, 'vllm_probe_source_up', { source: 'nvidia_smi' }) === 1 ? t : '';
  });
  expect(sample(m, 'vllm_probe_gpu_memory_used_bytes', { gpu: '0' })).toBeGreaterThan(0);
  expect(sample(m, 'vllm_probe_source_up', { source: 'host' })).toBeUndefined();
  expect(sample(m, 'vllm_probe_host_memory_available_bytes')).toBeUndefined();
  expect(sample(m, 'vllm_probe_host_cpu_utilization_ratio')).toBeUndefined();
});
