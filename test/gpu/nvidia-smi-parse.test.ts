/**
 * Pure nvidia-smi parsers: cells, --help-query-gpu, --query-gpu and --query-compute-apps,
 * with golden tests on the real H100 capture (driver 580.159.04) in test/fixtures/nvidia-smi.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { SourceError } from '../../src/errors.js';
import {
  GPU_FIELDS,
  invalidFieldsIn,
  isAbsentCell,
  parseCell,
  parseComputeApps,
  parseGpuQuery,
  parseHelpQueryGpu,
} from '../../src/gpu/nvidia-smi/parse.js';
import { FIXTURES, loadCapture } from '../helpers/fake-nvidia-smi.js';

const MIB = 1048576;
const H100_UUID = 'GPU-06efb012-b069-cd7d-ae04-4cb059862f57';

describe('parseCell', () => {
  test.each(['', '  ', 'N/A', 'n/a', '[N/A]', '[Not Supported]', '[Unknown Error]', '[Insufficient Permissions]', '[Requested functionality has been deprecated]'])(
    '%j is absent: null for numbers, never 0',
    (cell) => {
      expect(isAbsentCell(cell)).toBe(true);
      for (const unit of ['mib', 'percent', 'mhz', 'watts', 'celsius', 'count', 'pstate', 'enabled'] as const) expect(parseCell(cell, unit)).toBeNull();
      expect(parseCell(cell, 'text')).toBe('');
    },
  );

  test('units become base units', () => {
    expect(parseCell('81559', 'mib')).toBe(81559 * MIB);
    expect(parseCell(' 81559 MiB', 'mib')).toBe(85520809984);
    expect(parseCell('33', 'percent')).toBe(0.33);
    expect(parseCell('100 %', 'percent')).toBe(1);
    expect(parseCell('1365', 'mhz')).toBe(1_365_000_000);
    expect(parseCell('2619 MHz', 'mhz')).toBe(2_619_000_000);
    expect(parseCell('698.06', 'watts')).toBe(698.06);
    expect(parseCell('70.19 W', 'watts')).toBe(70.19);
    expect(parseCell('60', 'celsius')).toBe(60);
    expect(parseCell('0x1A', 'count')).toBe(26);
  });

  test('pstate P0..P15 → 0..15; other strings are not guessed', () => {
    expect(parseCell('P0', 'pstate')).toBe(0);
    expect(parseCell('P8', 'pstate')).toBe(8);
    expect(parseCell('P15', 'pstate')).toBe(15);
    for (const odd of ['P16', 'p0', 'Unknown', '0']) expect(parseCell(odd, 'pstate')).toBeUndefined();
  });

  test('enabled/disabled words', () => {
    expect(parseCell('Enabled', 'enabled')).toBe(true);
    expect(parseCell('Disabled', 'enabled')).toBe(false);
    expect(parseCell('Not Active', 'enabled')).toBe(false);
    expect(parseCell('Pending', 'enabled')).toBeUndefined();
  });

  test('NaN and ±Inf are dropped (null); words and two numbers are invalid (undefined)', () => {
    for (const cell of ['nan', 'NaN', 'inf', '-inf', 'Infinity', '1e400']) expect(parseCell(cell, 'watts')).toBeNull();
    for (const cell of ['abc', '12 34', '1,5', '5 MHz', '--1']) expect(parseCell(cell, 'watts')).toBeUndefined();
    expect(parseCell('1.5', 'integer')).toBeUndefined();
    expect(parseCell('-1', 'integer')).toBeUndefined();
  });
});

describe('parseHelpQueryGpu on the real 580 help text', () => {
  const names = parseHelpQueryGpu(readFileSync(join(FIXTURES, 'h100-580', 'help-query-gpu.txt'), 'utf8'));

  test('every wanted field and its aliases are listed', () => {
    for (const spec of GPU_FIELDS) expect(names.has(spec.names[0]!), spec.names[0]).toBe(true);
    for (const alias of ['clocks.sm', 'gpu_uuid', 'gpu_bus_id', 'gpu.power.draw.instant', 'clocks_throttle_reasons.active']) expect(names.has(alias)).toBe(true);
  });

  test('explanation lines that start with a quote are not fields', () => {
    expect(names.has('0: Default')).toBe(false);
    expect([...names].every((n) => /^[A-Za-z0-9_.]+$/.test(n))).toBe(true);
    // 223 quoted field lines in this help text, some with an alias.
    expect(names.size).toBeGreaterThan(220);
  });
});

describe('invalidFieldsIn', () => {
  test('finds the rejected field', () => {
    expect(invalidFieldsIn('Field "power.draw.instant" is not a valid field to query.\n\n')).toEqual(['power.draw.instant']);
    expect(invalidFieldsIn('NVIDIA-SMI has failed')).toEqual([]);
  });
});

describe('golden: the real H100 capture', () => {
  test('under load (query-load.txt): exact bytes, ratios, hertz', () => {
    const capture = loadCapture(join(FIXTURES, 'h100-580', 'query-load.txt'));
    const { gpus, absent, problems } = parseGpuQuery(capture.nounits, capture.fields);
    expect(problems).toEqual([]);
    expect(gpus).toEqual([
      {
        index: 0,
        uuid: H100_UUID,
        name: 'NVIDIA H100 80GB HBM3',
        pci_bus_id: '',
        driver_version: '580.159.04',
        mig_enabled: false,
        values: {
          memory_total_bytes: 85520809984,
          memory_used_bytes: 11931746304,
          memory_free_bytes: 73086795776,
          memory_reserved_bytes: 503316480,
          utilization_ratio: 1,
          memory_utilization_ratio: 0.33,
          power_draw_watts: 698.06,
          power_limit_watts: 700,
          temperature_celsius: 60,
          memory_temperature_celsius: null,
          sm_clock_hertz: 1365000000,
          memory_clock_hertz: 2619000000,
          pstate: 0,
          ecc_uncorrected_volatile_errors: 0,
        },
      },
    ]);
    // fan.speed is [N/A] on this card but not one of our fields; nothing we asked for is absent.
    expect(absent).toEqual([]);
    // NVML read at the same time (nvml-load.json): total is exact; NVML's used = used + reserved.
    const nvml = JSON.parse(readFileSync(join(FIXTURES, 'h100-580', 'nvml-load.json'), 'utf8')) as { total: number; used: number };
    const v = gpus[0]!.values;
    expect(v.memory_total_bytes).toBe(nvml.total);
    expect(Math.abs(v.memory_used_bytes! + v.memory_reserved_bytes! - nvml.used) / nvml.used).toBeLessThan(0.0001);
  });

  test('idle (query-idle.txt)', () => {
    const capture = loadCapture(join(FIXTURES, 'h100-580', 'query-idle.txt'));
    const [gpu] = parseGpuQuery(capture.nounits, capture.fields).gpus;
    expect(gpu!.values).toMatchObject({
      memory_total_bytes: 85520809984,
      memory_used_bytes: 0,
      memory_free_bytes: 81079 * MIB,
      memory_reserved_bytes: 480 * MIB,
      utilization_ratio: 0,
      memory_utilization_ratio: 0,
      power_draw_watts: 70.2,
      temperature_celsius: 37,
      sm_clock_hertz: 345_000_000,
      pstate: 0,
    });
    // used + free + reserved = total at idle, to the MiB.
    expect(gpu!.values.memory_used_bytes! + gpu!.values.memory_free_bytes! + gpu!.values.memory_reserved_bytes!).toBe(gpu!.values.memory_total_bytes);
  });

  test('the same line printed with units (--format=csv) parses to the same kind of values', () => {
    const text = readFileSync(join(FIXTURES, 'h100-580', 'query-load.txt'), 'utf8').split('\n');
    const withUnits = text[text.indexOf('## csv') + 2]!;
    const fields = loadCapture(join(FIXTURES, 'h100-580', 'query-load.txt')).fields;
    const [gpu] = parseGpuQuery(withUnits, fields).gpus;
    expect(gpu!.values.memory_used_bytes).toBe(11379 * MIB);
    expect(gpu!.values.power_draw_watts).toBe(696.44);
    expect(gpu!.values.sm_clock_hertz).toBe(1365e6);
    expect(gpu!.values.utilization_ratio).toBe(1);
  });

  test('the compute process (pid 407) matches NVML byte for byte', () => {
    const capture = loadCapture(join(FIXTURES, 'h100-580', 'query-load.txt'));
    const line = capture.apps.map((a) => [a.gpu_uuid, a.pid, a.process_name, a.used_gpu_memory].join(', ')).join('\n');
    expect(parseComputeApps(line)).toEqual([{ gpu_uuid: H100_UUID, pid: 407, process_name: 'python3', used_memory_bytes: 11922309120 }]);
  });
});

describe('golden: the validation capture (docs/gpu-validation.md) against NVML', () => {
  const dir = join(FIXTURES, 'h100-80gb-hbm3-580.159.04');
  interface Nvml {
    gpus: Array<{ memory_v1: { total: number; free: number; used: number }; memory_v2: { used: number; reserved: number }; processes: Array<{ pid: number; used: number }> }>;
  }
  const nvml = JSON.parse(readFileSync(join(dir, 'nvml-load-after.json'), 'utf8')) as Nvml;

  test('memory within 0.01 %, per-process memory exact; nvidia-smi used = NVML v2 used = NVML v1 used - reserved', () => {
    const capture = loadCapture(join(dir, 'query-load.txt'));
    const { gpus, problems, absent } = parseGpuQuery(capture.nounits, capture.fields);
    expect(problems).toEqual([]);
    expect(absent).toEqual([]);
    const v = gpus[0]!.values;
    const n = nvml.gpus[0]!;
    const close = (a: number, b: number) => expect(Math.abs(a - b) / b).toBeLessThan(0.0001);
    expect(v.memory_total_bytes).toBe(n.memory_v1.total);
    close(v.memory_used_bytes!, n.memory_v2.used);
    close(v.memory_used_bytes! + v.memory_reserved_bytes!, n.memory_v1.used);
    close(v.memory_free_bytes!, n.memory_v1.free);
    expect(v.memory_reserved_bytes).toBe(n.memory_v2.reserved);
    const apps = parseComputeApps(capture.apps.map((a) => [a.gpu_uuid, a.pid, a.process_name, a.used_gpu_memory].join(', ')).join('\n'));
    expect(apps.map((a) => [a.pid, a.used_memory_bytes])).toEqual(n.processes.map((p) => [p.pid, p.used]));
    // Every field we ask for has a value on this driver, including the newer ones.
    expect(v).toMatchObject({ power_draw_watts: 714.05, power_limit_watts: 700, memory_temperature_celsius: 57 });
    expect(gpus[0]!.pci_bus_id).toBe('00000000:00:06.0');
  });
});

describe('parseGpuQuery', () => {
  const fields = ['index', 'uuid', 'memory.total', 'utilization.gpu', 'power.draw.instant', 'power.draw', 'enforced.power.limit', 'power.limit', 'pstate', 'mig.mode.current'];

  test('absent cells are null and listed; odd cells are problems; power prefers instant and enforced', () => {
    const text = ['0, GPU-a, 81559, [N/A], 120.5, 118.0, 650.00, 700.00, P2, Enabled', '1, GPU-b, [Not Supported], , [N/A], 90.25, [N/A], 700.00, P99, [N/A]'].join('\n');
    const { gpus, absent, problems } = parseGpuQuery(text, fields);
    expect(gpus[0]!.values).toMatchObject({ memory_total_bytes: 81559 * MIB, utilization_ratio: null, power_draw_watts: 120.5, power_limit_watts: 650, pstate: 2 });
    expect(gpus[0]!.mig_enabled).toBe(true);
    expect(gpus[1]!.values).toMatchObject({ memory_total_bytes: null, utilization_ratio: null, power_draw_watts: 90.25, power_limit_watts: 700, pstate: null });
    expect(gpus[1]!.mig_enabled).toBeNull();
    expect(absent).toEqual([
      { gpu: 0, field: 'utilization.gpu' },
      { gpu: 1, field: 'memory.total' },
      { gpu: 1, field: 'utilization.gpu' },
      { gpu: 1, field: 'power.draw.instant' },
      { gpu: 1, field: 'enforced.power.limit' },
      { gpu: 1, field: 'mig.mode.current' },
    ]);
    expect(problems).toEqual([{ gpu: 1, field: 'pstate', value: 'P99' }]);
  });

  test('a column count that differs from the fields asked for rejects the whole output', () => {
    expect(() => parseGpuQuery('0, GPU-a, 81559', fields)).toThrow(SourceError);
    try {
      parseGpuQuery('0, GPU-a, 1, 2, 3, 4, 5, 6, P0, Disabled, extra', fields);
    } catch (err) {
      expect((err as SourceError).reason).toBe('unparsable');
      expect((err as SourceError).message).toMatch(/line 1 has 11 columns, expected 10/);
    }
  });

  test('garbage and rows without index or uuid are unparsable', () => {
    expect(() => parseGpuQuery('<html>oops</html>', fields)).toThrow(/columns/);
    expect(() => parseGpuQuery('[N/A], GPU-a, 1, 2, 3, 4, 5, 6, P0, Disabled', fields)).toThrow(/no usable index and uuid/);
    expect(() => parseGpuQuery('0, [N/A], 1, 2, 3, 4, 5, 6, P0, Disabled', fields)).toThrow(/no usable index and uuid/);
  });

  test('no lines is no GPUs', () => {
    expect(parseGpuQuery('\n', fields).gpus).toEqual([]);
  });
});

describe('parseComputeApps', () => {
  test('process names with commas: uuid and pid from the left, memory from the right', () => {
    const text = 'GPU-a, 4242, python3 -m vllm.entrypoints.openai.api_server --model a,b, 70000\nGPU-b, 17, VLLM::EngineCore, [N/A]\n';
    expect(parseComputeApps(text)).toEqual([
      { gpu_uuid: 'GPU-a', pid: 4242, process_name: 'python3 -m vllm.entrypoints.openai.api_server --model a,b', used_memory_bytes: 70000 * MIB },
      { gpu_uuid: 'GPU-b', pid: 17, process_name: 'VLLM::EngineCore', used_memory_bytes: null },
    ]);
  });

  test('an empty list is valid', () => {
    expect(parseComputeApps('')).toEqual([]);
    expect(parseComputeApps('No running processes found\n')).toEqual([]);
  });

  test('malformed rows are unparsable', () => {
    expect(() => parseComputeApps('GPU-a, notapid, python3, 12')).toThrow(SourceError);
    expect(() => parseComputeApps('GPU-a, 12')).toThrow(/uuid, pid, name, MiB/);
    expect(() => parseComputeApps('GPU-a, 12, python3, lots')).toThrow(/uuid, pid, name, MiB/);
  });
});
