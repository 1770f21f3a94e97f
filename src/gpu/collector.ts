/**
 * The GPU collector "nvidia_smi": per-GPU gauges, vLLM's per-process memory, two /status checks.
 * Its entry in src/collectors.ts runs it on gpu.interval when gpu.enabled.
 *
 * Series contract (conventions §2, §5, §6):
 * - labels are `gpu` (nvidia-smi index) and `uuid` (as nvidia-smi prints it, `GPU-` prefix kept,
 *   the same form --query-compute-apps prints, so the two join without rewriting);
 * - a field nvidia-smi does not report (`[N/A]`, unsupported by the driver) has no series,
 *   never 0; each such field is logged once;
 * - every successful collection replaces the whole GPU series set (GPUs that vanished go), and
 *   a failed one removes it (markStale), so nothing stale is served;
 * - vllm_probe_gpu_process_memory_used_bytes{gpu,uuid}: the summed used memory of the matched
 *   vLLM processes on that GPU; 0 when the process list was read and none matched there; no
 *   series when it could not be read, when the matcher is unusable (pid file unreadable), or
 *   when a matched process's memory is `[N/A]` (a partial sum would under-report).
 *
 * /status checks: "gpu_memory" (free / total headroom against status.gpu_memory_headroom_degraded)
 * and "gpu_collector" (degraded with the reason while nvidia-smi fails). A machine without a
 * GPU is not degraded: "gpu_collector" says so once, healthy, and "gpu_memory" is cleared.
 */
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { type Collector } from '../exporter/collector.js';
import { NoDataError, SourceError } from '../errors.js';
import { GPU_GAUGES, type GpuGaugeName, type Metrics } from '../metrics.js';
import type { StatusBoard, Verdict } from '../status.js';
import { NvidiaSmi, type GpuQuery } from './nvidia-smi/run.js';
import type { ComputeApp, GpuReading } from './nvidia-smi/parse.js';
import { buildProcessMatcher, procParentOf, type ParentOf } from '../host/processes.js';
import type { GpuIdentity } from '../vllm/environment.js';

/** A compute process on a GPU, and whether it is one of vLLM's. */
export interface GpuProcess extends ComputeApp {
  vllm: boolean;
}

export interface GpuSnapshotEntry extends GpuReading {
  /** Sum over this GPU's vLLM processes, bytes; see the series contract above for null. */
  process_memory_used_bytes: number | null;
  processes: GpuProcess[];
}

/** One collection: every GPU, its processes, and what could not be read. */
export interface GpuSnapshot {
  query: GpuQuery;
  gpus: GpuSnapshotEntry[];
  processes: {
    /** How vLLM's processes were picked, in words; null when no matcher could be built. */
    match: string | null;
    /** Why per-process memory is missing this time (process list or matcher failed). */
    error: string | null;
    /** Processes on a uuid that --query-gpu did not list (MIG instances, races). */
    unattributed: GpuProcess[];
  };
}

export interface SnapshotOptions {
  /** Whether an NVIDIA kernel driver is loaded; decides "no GPU" vs "missing binary". */
  driverPresent?: () => boolean;
  parentOf?: ParentOf;
  /** The last process list, reused while nothing it depends on moved (the daemon's collector keeps one). */
  reuse?: ComputeAppsReuse;
}

/**
 * The process list of the last collection, reused while nothing it depends on moved: every GPU
 * reports the same used memory (a process that starts or exits on a GPU allocates or frees at
 * least a CUDA context there) and every pid on the list still exists here. vLLM allocates its
 * memory up front, so at rest this halves the nvidia-smi runs, each of which initialises NVML
 * on a real GPU. At most `maxReuses` collections in a row use it; then the list is read again
 * whatever the numbers say (two processes trading the same amount of memory).
 */
export class ComputeAppsReuse {
  private last: { usedByGpu: Map<string, number>; apps: ComputeApp[]; reuses: number } | undefined;

  constructor(
    private readonly maxReuses = 3,
    /** A pid nvidia-smi printed is still a process here; pids of another PID namespace are not. */
    private readonly exists: (pid: number) => boolean = (pid) => existsSync(`/proc/${pid}`),
  ) {}

  /** The last list when it still holds for these readings; undefined: read it again. */
  take(gpus: readonly GpuReading[]): ComputeApp[] | undefined {
    const last = this.last;
    if (!last || last.reuses >= this.maxReuses || gpus.length !== last.usedByGpu.size) return undefined;
    if (!gpus.every((g) => g.values.memory_used_bytes !== null && last.usedByGpu.get(g.uuid) === g.values.memory_used_bytes)) return undefined;
    if (!last.apps.every((a) => this.exists(a.pid))) return undefined;
    last.reuses++;
    return last.apps;
  }

  /** A list just read, with the readings it goes with; a failed read forgets the last one. */
  keep(gpus: readonly GpuReading[], apps: ComputeApp[] | undefined): void {
    const usedByGpu = new Map<string, number>();
    for (const g of gpus) if (g.values.memory_used_bytes !== null) usedByGpu.set(g.uuid, g.values.memory_used_bytes);
    this.last = apps && usedByGpu.size === gpus.length ? { usedByGpu, apps, reuses: 0 } : undefined;
  }
}

/** The Linux NVIDIA kernel module publishes this file while it is loaded. */
export const nvidiaDriverLoaded = (): boolean => existsSync('/proc/driver/nvidia/version');

/**
 * Reads every GPU and the process list once. Throws NoDataError when there is no GPU: nvidia-smi
 * says "No devices were found", or it is missing and no NVIDIA driver is loaded either (a
 * CPU-only machine). A missing binary next to a loaded driver stays a SourceError
 * ('missing_binary'): that is a broken install. A failing process list does not fail the
 * collection (the per-GPU numbers are still right); it is reported in `processes.error`.
 */
export async function readGpuSnapshot(smi: NvidiaSmi, config: Config, signal: AbortSignal, options: SnapshotOptions = {}): Promise<GpuSnapshot> {
  const driverPresent = options.driverPresent ?? nvidiaDriverLoaded;
  let query: GpuQuery;
  try {
    query = await smi.queryGpus(signal);
  } catch (err) {
    if (err instanceof SourceError && err.reason === 'missing_binary' && !driverPresent()) {
      throw new NoDataError(`no GPU found: ${err.message.replace(/ \(set gpu\..*$/, '')} and no NVIDIA driver is loaded`, { cause: err });
    }
    throw err;
  }

  let apps = options.reuse?.take(query.gpus);
  let error: string | null = null;
  if (!apps) {
    try {
      apps = await smi.queryComputeApps(signal);
    } catch (err) {
      if (signal.aborted) throw err;
      error = `process list unavailable: ${(err as Error).message}`;
    }
    options.reuse?.keep(query.gpus, apps);
  }
  const built = await buildProcessMatcher(config.gpu.process_match, { parentOf: options.parentOf ?? procParentOf, targetUrl: config.target.url });
  if (!built.ok) error ??= built.error;
  const matcher = built.ok ? built.matcher : undefined;
  const tagged: GpuProcess[] = (apps ?? []).map((app) => ({ ...app, vllm: matcher?.matches(app) ?? false }));

  const gpus = query.gpus.map((gpu): GpuSnapshotEntry => {
    const processes = tagged.filter((p) => p.gpu_uuid === gpu.uuid);
    let sum: number | null = null;
    if (apps && matcher) {
      const mine = processes.filter((p) => p.vllm);
      sum = mine.some((p) => p.used_memory_bytes === null) ? null : mine.reduce((s, p) => s + p.used_memory_bytes!, 0);
    }
    return { ...gpu, process_memory_used_bytes: sum, processes };
  });
  const known = new Set(query.gpus.map((g) => g.uuid));
  return {
    query,
    gpus,
    processes: { match: matcher?.description ?? null, error, unattributed: tagged.filter((p) => !known.has(p.gpu_uuid)) },
  };
}

const GIB = 1024 ** 3;
const gib = (bytes: number) => (bytes / GIB).toFixed(1);
/** 0.05 → "5", 0.075 → "7.5": thresholds as people wrote them. */
const percentText = (ratio: number) => String(Number((ratio * 100).toFixed(2)));

/**
 * The "gpu_memory" check from one snapshot: degraded when free/total on any GPU is under the
 * threshold, naming each such GPU with its numbers; undefined when no GPU reports both values.
 */
export function gpuMemoryCheck(gpus: readonly GpuReading[], threshold: number): { status: 'healthy' | 'degraded'; reason: string } | undefined {
  const rows = gpus
    .map((g) => ({ g, total: g.values.memory_total_bytes, free: g.values.memory_free_bytes }))
    .filter((r): r is { g: GpuReading; total: number; free: number } => r.total !== null && r.total > 0 && r.free !== null)
    .map((r) => ({ ...r, headroom: r.free / r.total }));
  if (rows.length === 0) return undefined;
  const describe = (r: (typeof rows)[number]) =>
    `GPU ${r.g.index} memory headroom ${(r.headroom * 100).toFixed(1)} % (${gib(r.free)} GiB free of ${gib(r.total)} GiB), threshold ${percentText(threshold)} %`;
  const low = rows.filter((r) => r.headroom < threshold);
  if (low.length > 0) return { status: 'degraded', reason: low.map(describe).join('; ') };
  const lowest = rows.reduce((a, b) => (b.headroom < a.headroom ? b : a));
  return { status: 'healthy', reason: rows.length === 1 ? describe(lowest) : `lowest of ${rows.length} GPUs: ${describe(lowest)}` };
}

export interface NvidiaSmiCollectorOptions extends SnapshotOptions {
  /** A ready NvidiaSmi (tests share one to count runs); default: one for config.gpu.nvidia_smi_path. */
  smi?: NvidiaSmi;
}

/** What the environment snapshot keeps of one GPU; '' from nvidia-smi is null there. */
export const identityOf = (g: Pick<GpuReading, 'name' | 'driver_version' | 'values'>): GpuIdentity[number] => ({
  name: g.name || null,
  memory_total_bytes: g.values.memory_total_bytes,
  driver_version: g.driver_version || null,
});

/** The "nvidia_smi" collector. Keeps one NvidiaSmi so field discovery happens once. */
export class NvidiaSmiCollector implements Collector {
  readonly name = 'nvidia_smi';
  readonly errorReasons = ['missing_binary', 'timeout', 'exit_status', 'unparsable', 'too_large', 'no_gpu', 'internal'] as const;
  readonly smi: NvidiaSmi;
  /** GPU identity from the last successful read, for the environment snapshot (no second runner). */
  identity: GpuIdentity | null = null;
  /** Keys of things already logged, so each absent field or odd value is logged once. */
  private readonly logged = new Set<string>();
  private readonly log: Logger;
  private readonly options: NvidiaSmiCollectorOptions;

  constructor(
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly status: StatusBoard,
    log: Logger,
    options: NvidiaSmiCollectorOptions = {},
  ) {
    this.log = log.child({ component: 'gpu', source: this.name });
    this.smi = options.smi ?? new NvidiaSmi({ path: config.gpu.nvidia_smi_path, timeoutMs: Math.round(config.gpu.timeout * 1000) });
    this.options = { reuse: new ComputeAppsReuse(), ...options };
  }

  /** Sets a check of this source; it reads unknown when three intervals pass without a new verdict. */
  private mark(name: string, verdict: Verdict, reason: string): void {
    this.status.set(name, verdict, reason, this.config.gpu.interval * 3 + this.config.gpu.timeout);
  }

  async collect(signal: AbortSignal): Promise<void> {
    const snapshot = await readGpuSnapshot(this.smi, this.config, signal, this.options);
    this.logNewFindings(snapshot);
    this.export(snapshot);
    this.identity = snapshot.gpus.map(identityOf);
    const n = snapshot.gpus.length;
    // Per-process memory is a diagnostic, not serving health: say why it is missing, stay healthy.
    const processNote = snapshot.processes.error ? `; vLLM per-process memory unavailable: ${snapshot.processes.error}` : '';
    this.mark('gpu_collector', 'healthy', `nvidia-smi read ${n} GPU${n === 1 ? '' : 's'}${processNote}`);
    const memory = gpuMemoryCheck(snapshot.gpus, this.config.status.gpu_memory_headroom_degraded);
    if (memory) this.mark('gpu_memory', memory.status, memory.reason);
    else this.status.clear('gpu_memory');
  }

  /** After any failure: no GPU series survive (the runner counts the error by reason). */
  markStale(): void {
    this.removeSeries();
  }

  /** The runner's onFailure hook: /status says why, or that there is no GPU to watch. */
  reportFailure(err: Error): void {
    this.status.clear('gpu_memory');
    if (err instanceof NoDataError) this.mark('gpu_collector', 'healthy', 'no GPU found; GPU checks skipped');
    else this.mark('gpu_collector', 'degraded', `GPU collector failing: ${err.message}`);
  }

  private removeSeries(): void {
    for (const gauge of Object.values(this.metrics.gpu)) gauge.reset();
    this.metrics.gpuInfo.reset();
    this.metrics.gpuProcessMemory.reset();
  }

  /** Replaces the whole series set in one synchronous step, so a scrape never sees half of it. */
  private export(snapshot: GpuSnapshot): void {
    this.removeSeries();
    for (const gpu of snapshot.gpus) {
      const labels = { gpu: String(gpu.index), uuid: gpu.uuid };
      this.metrics.gpuInfo.labels({ ...labels, name: gpu.name, driver_version: gpu.driver_version, pci_bus_id: gpu.pci_bus_id }).set(1);
      for (const name of Object.keys(GPU_GAUGES) as GpuGaugeName[]) {
        const value = gpu.values[name];
        if (value !== null) this.metrics.gpu[name].labels(labels).set(value);
      }
      if (gpu.process_memory_used_bytes !== null) this.metrics.gpuProcessMemory.labels(labels).set(gpu.process_memory_used_bytes);
    }
  }

  private once(key: string, write: () => void): void {
    if (this.logged.has(key)) return;
    this.logged.add(key);
    write();
  }

  private logNewFindings(snapshot: GpuSnapshot): void {
    const { query, processes } = snapshot;
    this.once(`fields:${query.fields.join(',')}`, () =>
      this.log.info({ fields: query.fields, unsupported: query.unsupported, discovery: query.discovery }, 'nvidia-smi fields chosen'),
    );
    for (const { gpu, field } of query.absent) {
      this.once(`absent:${gpu}:${field}`, () => this.log.info({ gpu, field }, 'nvidia-smi reports no value for this field (logged once)'));
    }
    for (const { gpu, field, value } of query.problems) {
      this.once(`odd:${gpu}:${field}:${value}`, () =>
        this.log.warn({ gpu, field, value }, 'nvidia-smi printed a value vllm-probe does not understand; its series is left out'),
      );
    }
    if (processes.error) {
      this.once(`processes:${processes.error}`, () => this.log.warn({ reason: processes.error }, 'vLLM per-process GPU memory unavailable'));
    }
    for (const p of processes.unattributed) {
      this.once(`unattributed:${p.gpu_uuid}`, () =>
        this.log.info({ gpu_uuid: p.gpu_uuid }, 'a compute process runs on a GPU uuid that --query-gpu does not list; not exported'),
      );
    }
  }
}
