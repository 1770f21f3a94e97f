/**
 * The nvidia_smi collector end to end: fake binary → NvidiaSmiCollector → a real prom-client
 * Registry (createMetrics) and StatusBoard, checked on the rendered /metrics text. Failures go
 * through the real runner (startCollector) so source health, markStale and the hooks are the
 * ones the daemon uses.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, onTestFinished, test } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { startCollector } from '../../src/exporter/collector.js';
import { ComputeAppsReuse, gpuMemoryCheck, NvidiaSmiCollector, type NvidiaSmiCollectorOptions } from '../../src/gpu/collector.js';
import { createMetrics } from '../../src/metrics.js';
import { StatusBoard } from '../../src/status.js';
import { createFakeNvidiaSmi, h100Scenario, helpWithout, type FakeGpu, type FakeScenario } from '../helpers/fake-nvidia-smi.js';

/** The card captured during validation: every field we ask for has a real value. */
const CAPTURE = 'h100-80gb-hbm3-580.159.04';
const UUID = 'GPU-2eb0bc8c-2e67-d678-1284-6f1c46ed6727';
const L = `gpu="0",uuid="${UUID}"`;
const MIB = 1048576;
// The validation run's process tree: launcher 478 (wrote the pid file) → busy worker 482; 479 unrelated.
const TREE: Record<number, number> = { 482: 478, 478: 1, 479: 401, 401: 1 };
const parentOf = (pid: number) => TREE[pid];

function fake(scenario: FakeScenario) {
  const f = createFakeNvidiaSmi(scenario);
  onTestFinished(() => f.cleanup());
  return f;
}

function pidFile(pid: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'vllm-pid-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'vllm.pid'), `${pid}\n`);
  return join(dir, 'vllm.pid');
}

interface Setup {
  gpu?: Record<string, unknown>;
  status?: Record<string, unknown>;
  options?: NvidiaSmiCollectorOptions;
}

function setup(nvidiaSmiPath: string, { gpu = {}, status = {}, options = {} }: Setup = {}) {
  // A 1h interval: the runner's schedule never fires inside a test; tests call collect/runNow. The
  // fake is a Node script (a few hundred ms per call on a busy CI machine, three calls per
  // collection), so the timeout is generous except where a test wants it to fire.
  // No vLLM listens on the default target here, so the captures' python processes are matched by name.
  const config = parseConfig({ gpu: { nvidia_smi_path: nvidiaSmiPath, interval: '1h', timeout: '10s', process_match: { name_pattern: '^python' }, ...gpu }, status });
  const registry = new Registry();
  const metrics = createMetrics(registry, config);
  const board = new StatusBoard(config, metrics, () => ({ url: 'http://127.0.0.1:8000', model: 'm' }));
  const logs: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  // The captures' pids are not processes here: the process list is read every time unless a test says otherwise.
  const collector = new NvidiaSmiCollector(config, metrics, board, log, { parentOf, driverPresent: () => true, reuse: new ComputeAppsReuse(3, () => false), ...options });
  const gpuLines = async () => (await registry.metrics()).split('\n').filter((l) => l.startsWith('vllm_probe_gpu_'));
  const check = (name: string) => board.report().checks.find((c) => c.name === name);
  return { config, registry, metrics, board, log, logs, collector, gpuLines, check };
}

const never = new AbortController().signal;

/** Runs the collector under the daemon's runner; stops it when the test ends. */
function run(s: ReturnType<typeof setup>) {
  const shutdown = new AbortController();
  const r = startCollector(s.collector, { interval: s.config.gpu.interval, timeout: s.config.gpu.timeout }, s.metrics, s.log, shutdown.signal, {
    onFailure: (err) => s.collector.reportFailure(err),
  });
  onTestFinished(async () => {
    shutdown.abort();
    await r.stop();
  });
  return r;
}

/** source_up and the non-zero error counters (every reason starts at 0). */
const sourceLines = async (registry: Registry) =>
  (await registry.metrics()).split('\n').filter((l) => /^vllm_probe_source_(up|errors_total)\{source="nvidia_smi"/.test(l) && !/^vllm_probe_source_errors_total.* 0$/.test(l));

describe('the real H100 capture through /metrics', () => {
  test('every series in base units, labelled {gpu, uuid}; vLLM memory found through the pid file\'s descendants', async () => {
    const f = fake(h100Scenario('load', CAPTURE));
    const s = setup(f.path, { gpu: { process_match: { pid_file: pidFile(478) } } });
    await s.collector.collect(never);
    expect(await s.gpuLines()).toEqual([
      `vllm_probe_gpu_memory_total_bytes{${L}} 85520809984`,
      `vllm_probe_gpu_memory_used_bytes{${L}} 11464081408`,
      `vllm_probe_gpu_memory_free_bytes{${L}} 73554460672`,
      `vllm_probe_gpu_memory_reserved_bytes{${L}} 503316480`,
      `vllm_probe_gpu_utilization_ratio{${L}} 1`,
      `vllm_probe_gpu_memory_utilization_ratio{${L}} 0.34`,
      `vllm_probe_gpu_power_draw_watts{${L}} 714.05`,
      `vllm_probe_gpu_power_limit_watts{${L}} 700`,
      `vllm_probe_gpu_temperature_celsius{${L}} 66`,
      `vllm_probe_gpu_memory_temperature_celsius{${L}} 57`,
      `vllm_probe_gpu_sm_clock_hertz{${L}} 1380000000`,
      `vllm_probe_gpu_memory_clock_hertz{${L}} 2619000000`,
      `vllm_probe_gpu_pstate{${L}} 0`,
      `vllm_probe_gpu_ecc_uncorrected_volatile_errors{${L}} 0`,
      `vllm_probe_gpu_info{${L},name="NVIDIA H100 80GB HBM3",driver_version="580.159.04",pci_bus_id="00000000:00:06.0"} 1`,
      // pid 482 only (9284 MiB, NVML said 9734979584 B); the unrelated pid 479 is not counted.
      `vllm_probe_gpu_process_memory_used_bytes{${L}} 9734979584`,
    ]);
    expect(s.check('gpu_collector')).toMatchObject({ status: 'healthy', reason: 'nvidia-smi read 1 GPU' });
    expect(s.check('gpu_memory')).toMatchObject({ status: 'healthy', reason: 'GPU 0 memory headroom 86.0 % (68.5 GiB free of 79.6 GiB), threshold 5 %' });
  });

  test('name_pattern on the process name counts both python processes', async () => {
    const f = fake(h100Scenario('load', CAPTURE));
    const s = setup(f.path);
    await s.collector.collect(never);
    expect(await s.gpuLines()).toContain(`vllm_probe_gpu_process_memory_used_bytes{${L}} ${(1634 + 9284) * MIB}`);
  });

  test('no processes is a valid empty list: 0 bytes for vLLM', async () => {
    const f = fake({ ...h100Scenario('idle', CAPTURE), apps: [] });
    const s = setup(f.path, { gpu: { process_match: { pid: 478 } } });
    await s.collector.collect(never);
    expect(await s.gpuLines()).toContain(`vllm_probe_gpu_process_memory_used_bytes{${L}} 0`);
    expect(await s.gpuLines()).toContain(`vllm_probe_gpu_memory_used_bytes{${L}} 0`);
  });

  test('an unreadable pid file leaves the process series out (not 0) and is logged once', async () => {
    const f = fake(h100Scenario('load', CAPTURE));
    const s = setup(f.path, { gpu: { process_match: { pid_file: '/nonexistent/vllm.pid' } } });
    await s.collector.collect(never);
    await s.collector.collect(never);
    const lines = await s.gpuLines();
    expect(lines.some((l) => l.startsWith('vllm_probe_gpu_process_memory_used_bytes{'))).toBe(false);
    expect(lines).toContain(`vllm_probe_gpu_memory_total_bytes{${L}} 85520809984`);
    expect(s.logs.filter((l) => l.msg === 'vLLM per-process GPU memory unavailable')).toEqual([
      expect.objectContaining({ level: 40, reason: 'cannot read gpu.process_match.pid_file /nonexistent/vllm.pid: ENOENT' }),
    ]);
  });

  test('a failing process list does not fail the GPU readings', async () => {
    const f = fake({ ...h100Scenario('load', CAPTURE), commands: { 'compute-apps': { exitCode: 4, stdout: 'Insufficient Permissions\n' } } });
    const s = setup(f.path);
    await s.collector.collect(never);
    const lines = await s.gpuLines();
    expect(lines).toHaveLength(15);
    expect(lines.some((l) => l.startsWith('vllm_probe_gpu_process_memory_used_bytes{'))).toBe(false);
    expect(s.logs.find((l) => l.msg === 'vLLM per-process GPU memory unavailable')?.reason).toBe('process list unavailable: nvidia-smi exited 4: Insufficient Permissions');
    expect(s.check('gpu_collector')).toMatchObject({
      status: 'healthy',
      reason: 'nvidia-smi read 1 GPU; vLLM per-process memory unavailable: process list unavailable: nvidia-smi exited 4: Insufficient Permissions',
    });
  });
});

describe('modes of the fake', () => {
  test('[N/A]-style cells: no series at all (never 0), info labels empty, each logged once', async () => {
    const base = h100Scenario('load', CAPTURE);
    const gpu: FakeGpu = {
      ...base.gpus[0]!,
      'pci.bus_id': '[N/A]',
      'memory.reserved': '[N/A]',
      'utilization.gpu': 'N/A',
      'utilization.memory': '[Not Supported]',
      'temperature.memory': '[Unknown Error]',
      'power.draw.instant': '[N/A]',
      'power.draw': '',
      'clocks.current.sm': '[Insufficient Permissions]',
      'ecc.errors.uncorrected.volatile.total': '[N/A]',
      pstate: 'P16',
    };
    const f = fake({ ...base, gpus: [gpu] });
    const s = setup(f.path);
    await s.collector.collect(never);
    await s.collector.collect(never);
    const names = (await s.gpuLines()).map((l) => l.slice(0, l.indexOf('{')));
    expect(names).toEqual([
      'vllm_probe_gpu_memory_total_bytes',
      'vllm_probe_gpu_memory_used_bytes',
      'vllm_probe_gpu_memory_free_bytes',
      'vllm_probe_gpu_power_limit_watts',
      'vllm_probe_gpu_temperature_celsius',
      'vllm_probe_gpu_memory_clock_hertz',
      'vllm_probe_gpu_info',
      'vllm_probe_gpu_process_memory_used_bytes',
    ]);
    expect(await s.gpuLines()).toContain(`vllm_probe_gpu_info{${L},name="NVIDIA H100 80GB HBM3",driver_version="580.159.04",pci_bus_id=""} 1`);
    const absent = s.logs.filter((l) => l.msg === 'nvidia-smi reports no value for this field (logged once)').map((l) => l.field);
    expect(absent).toEqual([
      'memory.reserved',
      'utilization.gpu',
      'utilization.memory',
      'temperature.memory',
      'power.draw.instant',
      'power.draw',
      'clocks.current.sm',
      'ecc.errors.uncorrected.volatile.total',
    ]);
    expect(s.logs.filter((l) => l.level === 40)).toEqual([expect.objectContaining({ field: 'pstate', value: 'P16' })]);
  });

  test('several GPUs: one series set each; a GPU short of memory degrades /status with its numbers', async () => {
    const base = h100Scenario('load', CAPTURE);
    const card = base.gpus[0]!;
    const gpus = [0, 1, 2, 3].map((i) => ({
      ...card,
      index: String(i),
      uuid: `GPU-0000000${i}-2e67-d678-1284-6f1c46ed6727`,
      'pci.bus_id': `00000000:0${i}:00.0`,
      ...(i === 2 ? { 'memory.used': '78621', 'memory.free': '2458' } : {}),
    }));
    const apps = [
      { gpu_uuid: gpus[1]!.uuid!, pid: '482', process_name: 'VLLM::Worker_TP1', used_gpu_memory: '70000' },
      { gpu_uuid: gpus[2]!.uuid!, pid: '479', process_name: 'VLLM::Worker_TP2', used_gpu_memory: '78000' },
      { gpu_uuid: gpus[2]!.uuid!, pid: '482', process_name: 'VLLM::Worker_TP1', used_gpu_memory: '100' },
    ];
    const f = fake({ ...base, gpus, apps });
    const s = setup(f.path, { gpu: { process_match: { pid_file: pidFile(478) } } });
    await s.collector.collect(never);
    const processLines = (await s.gpuLines()).filter((l) => l.startsWith('vllm_probe_gpu_process_memory_used_bytes'));
    expect(processLines).toEqual([
      `vllm_probe_gpu_process_memory_used_bytes{gpu="0",uuid="${gpus[0]!.uuid}"} 0`,
      `vllm_probe_gpu_process_memory_used_bytes{gpu="1",uuid="${gpus[1]!.uuid}"} ${70000 * MIB}`,
      `vllm_probe_gpu_process_memory_used_bytes{gpu="2",uuid="${gpus[2]!.uuid}"} ${100 * MIB}`,
      `vllm_probe_gpu_process_memory_used_bytes{gpu="3",uuid="${gpus[3]!.uuid}"} 0`,
    ]);
    expect((await s.gpuLines()).filter((l) => l.startsWith('vllm_probe_gpu_info'))).toHaveLength(4);
    expect(s.check('gpu_memory')).toMatchObject({
      status: 'degraded',
      reason: 'GPU 2 memory headroom 3.0 % (2.4 GiB free of 79.6 GiB), threshold 5 %',
    });
    expect(s.check('gpu_collector')!.reason).toBe('nvidia-smi read 4 GPUs');
    // A GPU that disappears takes its series with it.
    f.update({ gpus: gpus.slice(0, 2), apps: [] });
    await s.collector.collect(never);
    expect((await s.gpuLines()).filter((l) => l.startsWith('vllm_probe_gpu_info'))).toHaveLength(2);
    expect(s.check('gpu_memory')!.status).toBe('healthy');
    expect(s.check('gpu_memory')!.reason).toMatch(/^lowest of 2 GPUs: GPU \d memory headroom 86\.0 %/);
  });

  test('MIG enabled: whole-GPU utilisation is [N/A] and has no series', async () => {
    const base = h100Scenario('load', CAPTURE);
    const gpu = { ...base.gpus[0]!, 'mig.mode.current': 'Enabled', 'utilization.gpu': '[N/A]', 'utilization.memory': '[N/A]' };
    const f = fake({ ...base, gpus: [gpu] });
    const s = setup(f.path);
    await s.collector.collect(never);
    const lines = await s.gpuLines();
    expect(lines.some((l) => l.includes('utilization_ratio'))).toBe(false);
    expect(lines).toContain(`vllm_probe_gpu_memory_total_bytes{${L}} 85520809984`);
  });

  test('an older driver that rejects a field: it is dropped, the rest still exported', async () => {
    const base = h100Scenario('load', CAPTURE);
    const f = fake({ ...base, helpText: helpWithout(base.helpText, ['power.draw.instant', 'gpu.power.draw.instant']), commands: { help: { exitCode: 2, stdout: 'Unknown option\n' } } });
    const s = setup(f.path);
    await s.collector.collect(never);
    // power.draw (697.99 W, the one-second average) stands in for the instant reading.
    expect(await s.gpuLines()).toContain(`vllm_probe_gpu_power_draw_watts{${L}} 697.99`);
    expect(s.logs.find((l) => l.msg === 'nvidia-smi fields chosen')).toMatchObject({ unsupported: ['power.draw.instant'], discovery: 'drop-invalid-and-retry' });
  });
});

describe('failures under the daemon\'s runner', () => {
  test('exit 9: series removed, source_up 0, errors{exit_status}, /status degraded with nvidia-smi\'s words', async () => {
    const f = fake(h100Scenario('load', CAPTURE));
    const s = setup(f.path);
    const r = run(s);
    await r.firstRun;
    expect(await s.gpuLines()).toHaveLength(16);
    f.update({ commands: { 'query-gpu': { exitCode: 9, stdout: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n\n" } } });
    await r.runNow();
    expect(await s.gpuLines()).toEqual([]);
    expect(await sourceLines(s.registry)).toEqual(['vllm_probe_source_up{source="nvidia_smi"} 0', 'vllm_probe_source_errors_total{source="nvidia_smi",reason="exit_status"} 1']);
    expect(s.check('gpu_collector')).toMatchObject({
      status: 'degraded',
      reason: "GPU collector failing: nvidia-smi exited 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
    });
    expect(s.check('gpu_memory')).toBeUndefined();
    // Recovery brings everything back.
    f.update({ commands: {} });
    await r.runNow();
    expect(await s.gpuLines()).toHaveLength(16);
    expect(s.check('gpu_collector')!.status).toBe('healthy');
  });

  test('garbage → unparsable', async () => {
    const f = fake({ ...h100Scenario('load', CAPTURE), commands: { 'query-gpu': { stdout: 'ERR!\n' } } });
    const s = setup(f.path);
    await run(s).firstRun;
    expect(await sourceLines(s.registry)).toContain('vllm_probe_source_errors_total{source="nvidia_smi",reason="unparsable"} 1');
    expect(s.check('gpu_collector')!.reason).toMatch(/^GPU collector failing: nvidia-smi output line 1 has 1 columns, expected 22/);
  });

  test('hang → timeout within the configured timeout; the daemon carries on', async () => {
    const f = fake({ ...h100Scenario('load', CAPTURE), commands: { 'query-gpu': { hang: true } } });
    const s = setup(f.path, { gpu: { timeout: '1s' } });
    const started = Date.now();
    await run(s).firstRun;
    expect(Date.now() - started).toBeLessThan(2500);
    expect(await sourceLines(s.registry)).toContain('vllm_probe_source_errors_total{source="nvidia_smi",reason="timeout"} 1');
    expect(s.check('gpu_collector')!.status).toBe('degraded');
  });

  test('no GPU ("No devices were found"): healthy "no GPU found", logged once, no GPU series', async () => {
    const f = fake({ ...h100Scenario('load', CAPTURE), commands: { 'query-gpu': { exitCode: 6, stdout: 'No devices were found\n' } } });
    const s = setup(f.path);
    const r = run(s);
    await r.firstRun;
    await r.runNow();
    expect(await s.gpuLines()).toEqual([]);
    expect(s.check('gpu_collector')).toMatchObject({ status: 'healthy', reason: 'no GPU found; GPU checks skipped' });
    expect(s.check('gpu_memory')).toBeUndefined();
    expect(await sourceLines(s.registry)).toEqual(['vllm_probe_source_up{source="nvidia_smi"} 0', 'vllm_probe_source_errors_total{source="nvidia_smi",reason="no_gpu"} 2']);
    expect(s.logs.filter((l) => l.msg === 'nothing to collect; will keep checking quietly')).toHaveLength(1);
  });

  test('missing binary on a CPU-only machine is "no GPU"; next to a loaded driver it is missing_binary', async () => {
    const cpuOnly = setup('/nonexistent/nvidia-smi', { options: { driverPresent: () => false } });
    await run(cpuOnly).firstRun;
    expect(cpuOnly.check('gpu_collector')).toMatchObject({ status: 'healthy', reason: 'no GPU found; GPU checks skipped' });
    expect(await sourceLines(cpuOnly.registry)).toContain('vllm_probe_source_errors_total{source="nvidia_smi",reason="no_gpu"} 1');

    const broken = setup('/nonexistent/nvidia-smi', { options: { driverPresent: () => true } });
    await run(broken).firstRun;
    expect(broken.check('gpu_collector')).toMatchObject({
      status: 'degraded',
      reason: 'GPU collector failing: cannot run nvidia-smi at "/nonexistent/nvidia-smi": ENOENT (set gpu.nvidia_smi_path, or gpu.enabled: false)',
    });
    expect(await sourceLines(broken.registry)).toContain('vllm_probe_source_errors_total{source="nvidia_smi",reason="missing_binary"} 1');
  });
});

describe('gpuMemoryCheck', () => {
  const reading = (index: number, total: number | null, free: number | null) => ({
    index,
    uuid: `GPU-${index}`,
    name: '',
    pci_bus_id: '',
    driver_version: '',
    mig_enabled: null,
    values: { memory_total_bytes: total, memory_free_bytes: free } as never,
  });
  test('thresholds as written, every low GPU named, unknown memory skipped', () => {
    const gib = 1024 ** 3;
    expect(gpuMemoryCheck([reading(0, 80 * gib, 5 * gib), reading(1, 80 * gib, 1 * gib), reading(2, null, null)], 0.075)).toEqual({
      status: 'degraded',
      reason: 'GPU 0 memory headroom 6.3 % (5.0 GiB free of 80.0 GiB), threshold 7.5 %; GPU 1 memory headroom 1.3 % (1.0 GiB free of 80.0 GiB), threshold 7.5 %',
    });
    expect(gpuMemoryCheck([reading(0, null, 1)], 0.05)).toBeUndefined();
  });
});

describe('the process list is read again only when something moved', () => {
  const vllmMemory = async (s: ReturnType<typeof setup>) => (await s.gpuLines()).find((l) => l.startsWith('vllm_probe_gpu_process_memory_used_bytes'));

  test('at rest it is reused for at most 3 collections; used memory that moves, or a pid that is gone, reads it again', async () => {
    const f = fake(h100Scenario('load', CAPTURE));
    const alive = new Set([478, 479, 482]);
    const s = setup(f.path, { gpu: { process_match: { pid_file: pidFile(478) } }, options: { reuse: new ComputeAppsReuse(3, (pid) => alive.has(pid)) } });
    for (let i = 0; i < 5; i++) await s.collector.collect(never);
    // Read on the 1st and the 5th collection; the three between reuse it, with the same answer.
    expect(f.callsOf('compute-apps')).toHaveLength(2);
    expect(f.callsOf('query-gpu')).toHaveLength(5);
    expect(await vllmMemory(s)).toBe(`vllm_probe_gpu_process_memory_used_bytes{${L}} 9734979584`);
    // vLLM's worker exits: its memory is freed, and the next collection reads the list again.
    const gpus = h100Scenario('load', CAPTURE).gpus.map((g) => ({ ...g, 'memory.used': String(Number(g['memory.used']) - 9284) }));
    f.update({ gpus, apps: h100Scenario('load', CAPTURE).apps.filter((a) => a.pid !== '482') });
    await s.collector.collect(never);
    expect(f.callsOf('compute-apps')).toHaveLength(3);
    expect(await vllmMemory(s)).toBe(`vllm_probe_gpu_process_memory_used_bytes{${L}} 0`);
    // Same memory, but a listed pid no longer exists here: read again.
    await s.collector.collect(never);
    expect(f.callsOf('compute-apps')).toHaveLength(3);
    alive.delete(479);
    await s.collector.collect(never);
    expect(f.callsOf('compute-apps')).toHaveLength(4);
  });

  test('a list that could not be read is never reused', async () => {
    const f = fake({ ...h100Scenario('load', CAPTURE), commands: { 'compute-apps': { exitCode: 3, stderr: 'Unable to query compute apps' } } });
    const s = setup(f.path, { options: { reuse: new ComputeAppsReuse(3, () => true) } });
    await s.collector.collect(never);
    await s.collector.collect(never);
    expect(f.callsOf('compute-apps')).toHaveLength(2);
    expect(s.check('gpu_collector')?.reason).toMatch(/vLLM per-process memory unavailable: process list unavailable/);
  });
});
