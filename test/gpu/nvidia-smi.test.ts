/**
 * NvidiaSmi against a fake binary (test/helpers/fake-nvidia-smi.cjs), one temp copy per test:
 * field discovery, drop-and-retry, every failure mode, the hard timeout, single-flight.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, expect, onTestFinished, test } from 'vitest';
import { NoDataError, SourceError } from '../../src/errors.js';
import { GPU_FIELDS } from '../../src/gpu/nvidia-smi/parse.js';
import { NvidiaSmi } from '../../src/gpu/nvidia-smi/run.js';
import { createFakeNvidiaSmi, h100Scenario, helpWithout, type FakeScenario } from '../helpers/fake-nvidia-smi.js';

const never = new AbortController().signal;

function fake(scenario: FakeScenario = h100Scenario()) {
  const f = createFakeNvidiaSmi(scenario);
  onTestFinished(() => f.cleanup());
  return f;
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('field discovery', () => {
  test('asks --help-query-gpu once and queries every wanted field this driver lists', async () => {
    const f = fake();
    const smi = new NvidiaSmi({ path: f.path, timeoutMs: 5000 });
    const first = await smi.queryGpus(never);
    await smi.queryGpus(never);
    expect(f.callsOf('help')).toHaveLength(1);
    expect(f.callsOf('query-gpu')).toHaveLength(2);
    expect(first.discovery).toBe('help-query-gpu');
    expect(first.unsupported).toEqual([]);
    expect(first.fields).toEqual(GPU_FIELDS.map((s) => s.names[0]));
    expect(f.callsOf('query-gpu')[0]!.args).toEqual([`--query-gpu=${first.fields.join(',')}`, '--format=csv,noheader,nounits']);
    expect(first.gpus[0]!.values.memory_used_bytes).toBe(11379 * 1048576);
  });

  test('an older driver: fields missing from its help are not queried, and never fail the query', async () => {
    const old = ['power.draw.instant', 'gpu.power.draw.instant', 'memory.reserved', 'temperature.memory', 'enforced.power.limit'];
    const scenario = h100Scenario();
    const f = fake({ ...scenario, helpText: helpWithout(scenario.helpText, old) });
    const result = await new NvidiaSmi({ path: f.path, timeoutMs: 5000 }).queryGpus(never);
    expect(result.unsupported).toEqual(['memory.reserved', 'temperature.memory', 'power.draw.instant', 'enforced.power.limit']);
    expect(result.fields).not.toContain('power.draw.instant');
    expect(f.callsOf('query-gpu')).toHaveLength(1);
    // power.draw stands in for the instant reading, power.limit for the enforced one.
    expect(result.gpus[0]!.values).toMatchObject({ power_draw_watts: 698.06, power_limit_watts: 700, memory_reserved_bytes: null });
  });

  test('an alias-only driver: the listed spelling is used', async () => {
    const scenario = h100Scenario();
    const help = scenario.helpText.replace('"clocks.current.sm" or "clocks.sm"', '"clocks.sm"');
    const gpus = scenario.gpus.map(({ 'clocks.current.sm': sm, ...rest }) => ({ ...rest, 'clocks.sm': sm! }));
    const f = fake({ ...scenario, gpus, helpText: help });
    const result = await new NvidiaSmi({ path: f.path, timeoutMs: 5000 }).queryGpus(never);
    expect(result.fields).toContain('clocks.sm');
    expect(result.fields).not.toContain('clocks.current.sm');
    expect(result.gpus[0]!.values.sm_clock_hertz).toBe(1365e6);
  });

  test('when --help-query-gpu fails: query everything, drop each rejected field, retry', async () => {
    const old = ['power.draw.instant', 'gpu.power.draw.instant', 'memory.reserved', 'temperature.memory'];
    const scenario = h100Scenario();
    const f = fake({ ...scenario, helpText: helpWithout(scenario.helpText, old), commands: { help: { exitCode: 2, stdout: 'Invalid combination of input arguments.\n' } } });
    const smi = new NvidiaSmi({ path: f.path, timeoutMs: 5000 });
    const result = await smi.queryGpus(never);
    expect(result.discovery).toBe('drop-invalid-and-retry');
    // The fake, like the real binary, names one invalid field per failed run.
    const queries = f.callsOf('query-gpu');
    expect(queries.map((c) => c.code)).toEqual([2, 2, 2, 2, 0]);
    expect(result.fields).not.toContain('memory.reserved');
    expect(result.gpus[0]!.values.memory_total_bytes).toBe(81559 * 1048576);
    // What was learnt sticks: the next collection goes straight to the working list.
    await smi.queryGpus(never);
    expect(f.callsOf('query-gpu')).toHaveLength(6);
    expect(f.callsOf('help')).toHaveLength(1);
  });
});

describe('failures', () => {
  test('missing binary → missing_binary', async () => {
    const smi = new NvidiaSmi({ path: join('/nonexistent', 'nvidia-smi'), timeoutMs: 5000 });
    const err = await failure(smi.queryGpus(never));
    expect(err).toBeInstanceOf(SourceError);
    expect((err as SourceError).reason).toBe('missing_binary');
    expect(err.message).toContain('ENOENT');
  });

  test('exit 9 → exit_status with nvidia-smi\'s own words', async () => {
    const message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n";
    const f = fake({ ...h100Scenario(), commands: { 'query-gpu': { exitCode: 9, stderr: message } } });
    const err = await failure(new NvidiaSmi({ path: f.path, timeoutMs: 5000 }).queryGpus(never));
    expect((err as SourceError).reason).toBe('exit_status');
    expect(err.message).toBe(
      "nvidia-smi exited 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
    );
  });

  test('garbage on exit 0 → unparsable', async () => {
    const f = fake({ ...h100Scenario(), commands: { 'query-gpu': { stdout: 'Segmentation fault?\n\x00\x01 garbage, here\n' } } });
    const err = await failure(new NvidiaSmi({ path: f.path, timeoutMs: 5000 }).queryGpus(never));
    expect((err as SourceError).reason).toBe('unparsable');
    expect(err.message).toMatch(/^nvidia-smi output line 1 has 1 columns, expected 22 \(index,uuid,/);
  });

  test('"No devices were found" → NoDataError, not a failure reason', async () => {
    const f = fake({ ...h100Scenario(), commands: { 'query-gpu': { exitCode: 6, stdout: 'No devices were found\n' } } });
    const err = await failure(new NvidiaSmi({ path: f.path, timeoutMs: 5000 }).queryGpus(never));
    expect(err).toBeInstanceOf(NoDataError);
  });

  test('output over the cap → too_large, child killed', async () => {
    const f = fake({ ...h100Scenario(), commands: { 'query-gpu': { stdout: 'x'.repeat(200_000) } } });
    const err = await failure(new NvidiaSmi({ path: f.path, timeoutMs: 5000, maxOutputBytes: 64 * 1024 }).queryGpus(never));
    expect((err as SourceError).reason).toBe('too_large');
  });

  test('hang: the timeout SIGKILLs the child and the call returns within the timeout', async () => {
    const f = fake();
    const timeoutMs = 1500;
    const smi = new NvidiaSmi({ path: f.path, timeoutMs });
    await smi.queryGpus(never); // field discovery done; the next call is one child
    f.update({ commands: { 'query-gpu': { hang: true } } });
    const started = performance.now();
    const err = await failure(smi.queryGpus(never));
    const elapsed = performance.now() - started;
    expect((err as SourceError).reason).toBe('timeout');
    expect(err.message).toBe('nvidia-smi did not finish within 1.5s; killed it (SIGKILL)');
    expect(elapsed).toBeGreaterThanOrEqual(timeoutMs - 5);
    expect(elapsed).toBeLessThan(timeoutMs + 500);
    const pid = f.hangPid();
    expect(pid, 'the fake wrote its pid before hanging').toBeDefined();
    // SIGKILL is delivered at once; wait only for the kernel and libuv to reap it.
    const deadline = Date.now() + 2000;
    while (alive(pid!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(alive(pid!)).toBe(false);
    // The hung run is over: the next call starts a fresh child and succeeds.
    f.update({ commands: {} });
    expect((await smi.queryGpus(never)).gpus).toHaveLength(1);
  });

  test("the caller's signal aborts a run and kills the child", async () => {
    const f = fake({ ...h100Scenario(), commands: { 'compute-apps': { hang: true } } });
    const smi = new NvidiaSmi({ path: f.path, timeoutMs: 30_000 });
    const controller = new AbortController();
    const pending = failure(smi.queryComputeApps(controller.signal));
    while (f.hangPid() === undefined) await new Promise((r) => setTimeout(r, 20));
    const started = performance.now();
    controller.abort(new Error('shutting down'));
    const err = await pending;
    expect(err.message).toBe('shutting down');
    expect(performance.now() - started).toBeLessThan(500);
    const deadline = Date.now() + 2000;
    while (alive(f.hangPid()!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(alive(f.hangPid()!)).toBe(false);
  });
});

describe('single-flight', () => {
  test('concurrent callers share one run; different commands never overlap', async () => {
    const f = fake({ ...h100Scenario(), commands: { 'query-gpu': { delayMs: 300 }, 'compute-apps': { delayMs: 100 } } });
    const smi = new NvidiaSmi({ path: f.path, timeoutMs: 5000 });
    const results = await Promise.all([smi.queryGpus(never), smi.queryGpus(never), smi.queryComputeApps(never), smi.queryGpus(never)]);
    expect(results[0]).toEqual(results[1]);
    expect(f.callsOf('help')).toHaveLength(1);
    // The three query-gpu callers asked while one was queued or in flight: one child for all.
    expect(f.callsOf('query-gpu')).toHaveLength(1);
    expect(f.callsOf('compute-apps')).toHaveLength(1);
    const runs = f.calls().sort((a, b) => a.start - b.start);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.start).toBeGreaterThanOrEqual(runs[i - 1]!.end!);
  });

  test('compute apps: rows of the fake under load, and an empty list', async () => {
    const f = fake();
    const smi = new NvidiaSmi({ path: f.path, timeoutMs: 5000 });
    expect(await smi.queryComputeApps(never)).toEqual([
      { gpu_uuid: 'GPU-06efb012-b069-cd7d-ae04-4cb059862f57', pid: 407, process_name: 'python3', used_memory_bytes: 11370 * 1048576 },
    ]);
    f.update({ apps: [] });
    expect(await smi.queryComputeApps(never)).toEqual([]);
  });
});
