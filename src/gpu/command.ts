/**
 * `vllm-probe gpu`: one nvidia-smi collection as JSON, for on-call use and tests. Reads the
 * same way the daemon does (same fields, same parsing, same process matching, same timeout),
 * so what it prints is what /metrics would export; values are in base units and null where
 * nvidia-smi reports nothing.
 */
import { parseConfig, type Config } from '../config.js';
import { NoDataError, SourceError, type SourceErrorReason } from '../errors.js';
import { GPU_GAUGES, type GpuGaugeName } from '../metrics.js';
import type { GpuIdentity } from '../vllm/environment.js';
import { identityOf, readGpuSnapshot, type GpuProcess, type SnapshotOptions } from './collector.js';
import type { GpuReading } from './nvidia-smi/parse.js';
import { NvidiaSmi, type FieldDiscovery } from './nvidia-smi/run.js';

export interface GpuCommandProcess {
  pid: number;
  process_name: string;
  used_memory_bytes: number | null;
  /** Matched by gpu.process_match. */
  vllm: boolean;
}

/** One GPU as nvidia-smi read it, its gauges flattened next to its identity. */
export type GpuCommandGpu = Omit<GpuReading, 'values'> & Record<GpuGaugeName, number | null> & {
    process_memory_used_bytes: number | null;
    processes: GpuCommandProcess[];
  };

export interface GpuCommandResult {
  nvidia_smi_path: string;
  collected_at: string;
  /** True when the GPU list was read; false with `error` set otherwise. */
  ok: boolean;
  /** Why nothing was read: reason is the source_errors label (no_gpu for a CPU-only machine). */
  error: { reason: SourceErrorReason; message: string } | null;
  gpus: GpuCommandGpu[];
  fields: { queried: string[]; unsupported: string[]; discovery: FieldDiscovery } | null;
  processes: {
    match: string | null;
    /** Why process_memory_used_bytes is null this time, if it is. */
    error: string | null;
    unattributed: Array<GpuCommandProcess & { gpu_uuid: string }>;
  };
  /** Cells nvidia-smi printed that were not understood (left out, like in /metrics). */
  warnings: string[];
}

const toProcess = (p: GpuProcess): GpuCommandProcess => ({ pid: p.pid, process_name: p.process_name, used_memory_bytes: p.used_memory_bytes, vllm: p.vllm });

/**
 * Runs one collection within config.gpu.timeout (or until `signal` aborts) and describes it.
 * Never throws for a GPU or nvidia-smi problem: those come back in `error` (the CLI should exit
 * non-zero when `ok` is false and the reason is not no_gpu). Throws only the abort reason when
 * `signal` aborts, and for bugs.
 */
export async function runGpuCommand(config: Config, signal: AbortSignal, options: SnapshotOptions = {}): Promise<GpuCommandResult> {
  // Rounded: durations like 1900ms parse to 1.9000000000000001 s, and AbortSignal.timeout() throws on a non-integer.
  const timeoutMs = Math.round(config.gpu.timeout * 1000);
  const smi = new NvidiaSmi({ path: config.gpu.nvidia_smi_path, timeoutMs });
  const deadline = AbortSignal.timeout(timeoutMs);
  const result: GpuCommandResult = {
    nvidia_smi_path: config.gpu.nvidia_smi_path,
    collected_at: new Date().toISOString(),
    ok: false,
    error: null,
    gpus: [],
    fields: null,
    processes: { match: null, error: null, unattributed: [] },
    warnings: [],
  };
  try {
    const snapshot = await readGpuSnapshot(smi, config, AbortSignal.any([signal, deadline]), options);
    result.ok = true;
    result.fields = { queried: snapshot.query.fields, unsupported: snapshot.query.unsupported, discovery: snapshot.query.discovery };
    result.processes = {
      match: snapshot.processes.match,
      error: snapshot.processes.error,
      unattributed: snapshot.processes.unattributed.map((p) => ({ ...toProcess(p), gpu_uuid: p.gpu_uuid })),
    };
    result.warnings = snapshot.query.problems.map((p) => `GPU ${p.gpu} ${p.field}: unexpected value ${JSON.stringify(p.value)}`);
    result.gpus = snapshot.gpus.map((g) => {
      const values = Object.fromEntries((Object.keys(GPU_GAUGES) as GpuGaugeName[]).map((k) => [k, g.values[k]])) as Record<GpuGaugeName, number | null>;
      return {
        index: g.index,
        uuid: g.uuid,
        name: g.name,
        pci_bus_id: g.pci_bus_id,
        driver_version: g.driver_version,
        mig_enabled: g.mig_enabled,
        ...values,
        process_memory_used_bytes: g.process_memory_used_bytes,
        processes: g.processes.map(toProcess),
      };
    });
  } catch (err) {
    if (signal.aborted) throw err;
    if (err instanceof NoDataError) result.error = { reason: err.reason, message: err.message };
    else if (err instanceof SourceError) result.error = { reason: err.reason, message: err.message };
    else if (deadline.aborted) result.error = { reason: 'timeout', message: `nvidia-smi did not answer within ${config.gpu.timeout}s` };
    else throw err;
  }
  return result;
}

/** What a bench step needs from one nvidia-smi read: the GPUs (for the environment snapshot) and memory in use. */
export interface BenchGpuRead {
  identity: GpuIdentity | null;
  /** Summed over GPUs; null without a GPU or when any GPU's reading is missing. */
  memoryUsedBytes: number | null;
}

/** One nvidia-smi read for bench: a step that wants both memory and identity asks once. */
export async function readBenchGpus(nvidiaSmiPath = 'nvidia-smi'): Promise<BenchGpuRead> {
  const config = parseConfig({ gpu: { nvidia_smi_path: nvidiaSmiPath, timeout: '5s' } });
  const r = await runGpuCommand(config, AbortSignal.timeout(10_000)).catch(() => undefined);
  if (!r?.ok) return { identity: null, memoryUsedBytes: null };
  const used = r.gpus.map((g) => g.memory_used_bytes);
  return {
    identity: r.gpus.map((g) => identityOf({ ...g, values: g })),
    memoryUsedBytes: used.length && used.every((u) => u !== null) ? used.reduce((a, b) => a! + b!, 0)! : null,
  };
}
