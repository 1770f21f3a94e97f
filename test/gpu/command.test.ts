/** runGpuCommand (`vllm-probe gpu`): one collection as JSON, against the fake binary. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { readBenchGpus, runGpuCommand } from '../../src/gpu/command.js';
import { createFakeNvidiaSmi, h100Scenario, type FakeScenario } from '../helpers/fake-nvidia-smi.js';

const CAPTURE = 'h100-80gb-hbm3-580.159.04';
const MIB = 1048576;
const never = new AbortController().signal;
const parentOf = (pid: number) => ({ 482: 478, 478: 1, 479: 401, 401: 1 })[pid];

function fake(scenario: FakeScenario) {
  const f = createFakeNvidiaSmi(scenario);
  onTestFinished(() => f.cleanup());
  return f;
}

function config(path: string, gpu: Record<string, unknown> = {}) {
  return parseConfig({ gpu: { nvidia_smi_path: path, ...gpu } });
}

describe('runGpuCommand', () => {
  test('the validation capture: per GPU values in base units, null where absent, processes marked', async () => {
    const f = fake(h100Scenario('load', CAPTURE));
    const dir = mkdtempSync(join(tmpdir(), 'vllm-pid-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'vllm.pid'), '478');
    const result = await runGpuCommand(config(f.path, { process_match: { pid_file: join(dir, 'vllm.pid') } }), never, { parentOf, driverPresent: () => true });
    const { collected_at, ...rest } = result;
    expect(Date.parse(collected_at)).toBeGreaterThan(0);
    expect(JSON.parse(JSON.stringify(rest))).toEqual({
      nvidia_smi_path: f.path,
      ok: true,
      error: null,
      gpus: [
        {
          index: 0,
          uuid: 'GPU-2eb0bc8c-2e67-d678-1284-6f1c46ed6727',
          name: 'NVIDIA H100 80GB HBM3',
          pci_bus_id: '00000000:00:06.0',
          driver_version: '580.159.04',
          mig_enabled: false,
          memory_total_bytes: 85520809984,
          memory_used_bytes: 11464081408,
          memory_free_bytes: 73554460672,
          memory_reserved_bytes: 503316480,
          utilization_ratio: 1,
          memory_utilization_ratio: 0.34,
          power_draw_watts: 714.05,
          power_limit_watts: 700,
          temperature_celsius: 66,
          memory_temperature_celsius: 57,
          sm_clock_hertz: 1380000000,
          memory_clock_hertz: 2619000000,
          pstate: 0,
          ecc_uncorrected_volatile_errors: 0,
          process_memory_used_bytes: 9284 * MIB,
          processes: [
            { pid: 479, process_name: 'python3', used_memory_bytes: 1634 * MIB, vllm: false },
            { pid: 482, process_name: '/opt/torch/.venv/bin/python3', used_memory_bytes: 9284 * MIB, vllm: true },
          ],
        },
      ],
      fields: {
        queried: expect.arrayContaining(['memory.reserved', 'power.draw.instant', 'enforced.power.limit']),
        unsupported: [],
        discovery: 'help-query-gpu',
      },
      processes: { match: `pid 478 (from ${join(dir, 'vllm.pid')}) and descendants`, error: null, unattributed: [] },
      warnings: [],
    });
  });

  test('absent values are null in the JSON (kept, not dropped); odd values become warnings', async () => {
    const base = h100Scenario('load', CAPTURE);
    const f = fake({ ...base, gpus: [{ ...base.gpus[0]!, 'utilization.gpu': '[N/A]', 'temperature.memory': '[Not Supported]', pstate: 'P42' }] });
    const result = await runGpuCommand(config(f.path), never);
    const text = JSON.stringify(result);
    expect(text).toContain('"utilization_ratio":null');
    expect(text).toContain('"memory_temperature_celsius":null');
    expect(result.gpus[0]!.pstate).toBeNull();
    expect(result.warnings).toEqual(['GPU 0 pstate: unexpected value "P42"']);
  });

  test('processes on a GPU --query-gpu does not list are reported apart', async () => {
    const base = h100Scenario('load', CAPTURE);
    const f = fake({ ...base, apps: [...base.apps, { gpu_uuid: 'MIG-1234', pid: '900', process_name: 'vllm', used_gpu_memory: '10' }] });
    const result = await runGpuCommand(config(f.path, { process_match: { name_pattern: '^vllm$' } }), never);
    expect(result.processes.unattributed).toEqual([{ gpu_uuid: 'MIG-1234', pid: 900, process_name: 'vllm', used_memory_bytes: 10 * MIB, vllm: true }]);
  });

  test.each([
    ['exit 9', { 'query-gpu': { exitCode: 9, stderr: 'NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver.\n' } }, 'exit_status', "nvidia-smi exited 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."],
    ['garbage', { 'query-gpu': { stdout: 'garbage\n' } }, 'unparsable', /^nvidia-smi output line 1 has 1 columns/],
    ['no devices', { 'query-gpu': { exitCode: 6, stdout: 'No devices were found\n' } }, 'no_gpu', 'nvidia-smi: No devices were found'],
  ] as const)('%s → error %s, ok false, no GPUs', async (_name, commands, reason, message) => {
    const f = fake({ ...h100Scenario('load', CAPTURE), commands });
    const result = await runGpuCommand(config(f.path), never);
    expect(result.ok).toBe(false);
    expect(result.gpus).toEqual([]);
    expect(result.error!.reason).toBe(reason);
    if (typeof message === 'string') expect(result.error!.message).toBe(message);
    else expect(result.error!.message).toMatch(message);
  });

  test('missing binary: missing_binary next to a driver, no_gpu without one', async () => {
    const path = '/nonexistent/nvidia-smi';
    expect((await runGpuCommand(config(path), never, { driverPresent: () => true })).error).toEqual({
      reason: 'missing_binary',
      message: 'cannot run nvidia-smi at "/nonexistent/nvidia-smi": ENOENT (set gpu.nvidia_smi_path, or gpu.enabled: false)',
    });
    expect((await runGpuCommand(config(path), never, { driverPresent: () => false })).error).toEqual({
      reason: 'no_gpu',
      message: 'no GPU found: cannot run nvidia-smi at "/nonexistent/nvidia-smi": ENOENT and no NVIDIA driver is loaded',
    });
  });

  test('a timeout that is not a whole number of ms after parsing (5100ms = 5.1000000000000005 s) still works', async () => {
    const f = fake(h100Scenario('load', CAPTURE));
    expect(parseConfig({ gpu: { timeout: '5100ms' } }).gpu.timeout * 1000).not.toBe(5100);
    expect((await runGpuCommand(config(f.path, { timeout: '5100ms' }), never)).ok).toBe(true);
  });

  test('hang: returns a timeout within gpu.timeout', async () => {
    const f = fake({ ...h100Scenario('load', CAPTURE), commands: { 'query-gpu': { hang: true } } });
    const started = Date.now();
    const result = await runGpuCommand(config(f.path, { timeout: '1s' }), never);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result.error?.reason).toBe('timeout');
  });

  test('the caller aborting (Ctrl-C) rejects with its reason', async () => {
    const f = fake({ ...h100Scenario('load', CAPTURE), commands: { 'query-gpu': { hang: true } } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('SIGINT')), 200);
    await expect(runGpuCommand(config(f.path), controller.signal)).rejects.toThrow('SIGINT');
  });
});

describe('readBenchGpus (a bench step\'s one read)', () => {
  test('one nvidia-smi query gives both the GPUs for the environment snapshot and the memory in use, summed over GPUs', async () => {
    const base = h100Scenario('load', CAPTURE);
    const second = { ...base.gpus[0]!, index: '1', uuid: 'GPU-00000000-0000-0000-0000-000000000001', 'memory.used': '1000' };
    const f = fake({ ...base, gpus: [base.gpus[0]!, second] });
    const read = await readBenchGpus(f.path);
    expect(f.callsOf('query-gpu')).toHaveLength(1);
    expect(read.identity).toEqual([
      { name: 'NVIDIA H100 80GB HBM3', memory_total_bytes: 85520809984, driver_version: '580.159.04' },
      { name: 'NVIDIA H100 80GB HBM3', memory_total_bytes: 85520809984, driver_version: '580.159.04' },
    ]);
    expect(read.memoryUsedBytes).toBe(11464081408 + 1000 * MIB);
  });

  test('no nvidia-smi: nulls, not zeros (the CSV columns stay empty)', async () => {
    expect(await readBenchGpus('/nonexistent/nvidia-smi')).toEqual({ identity: null, memoryUsedBytes: null });
  });

  test('a GPU whose memory reads N/A: no total, since a sum without it would understate', async () => {
    const base = h100Scenario('load', CAPTURE);
    const f = fake({ ...base, gpus: [{ ...base.gpus[0]!, 'memory.used': '[N/A]' }] });
    const read = await readBenchGpus(f.path);
    expect(read.identity).toHaveLength(1);
    expect(read.memoryUsedBytes).toBeNull();
  });
});

