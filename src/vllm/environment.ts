/**
 * The environment snapshot the Tier 1 seed asks for at the top of every measurement: GPU,
 * driver, OS/kernel, vLLM version, model, launch flags that matter. Collected from the target's
 * HTTP API, this host, nvidia-smi (when present) and the vLLM process command line (when the
 * process is visible from here). Every field is null when its source is unavailable. The
 * GPU identity comes from whoever owns the nvidia-smi runner (the daemon's collector, or the
 * bench command's one reader), passed in as `gpu`.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { VERSION } from '../version.js';
import type { VllmClient } from './client.js';

export interface EnvironmentSnapshot {
  collected_at: string;
  vllm_probe_version: string;
  target: string;
  vllm_version: string | null;
  model: string | null;
  max_model_len: number | null;
  block_size: number | null;
  num_gpu_blocks: number | null;
  kv_cache_capacity_tokens: number | null;
  kv_cache_memory_bytes: number | null;
  prefix_caching: boolean | null;
  gpu_memory_utilization: number | null;
  gpus: Array<{ name: string | null; memory_total_bytes: number | null; driver_version: string | null }> | null;
  os: string;
  kernel: string;
  cpu: string;
  cpus: number;
  memory_bytes: number;
  /** Flags of the vLLM process when its /proc entry is readable from here. */
  launch_flags: string[] | null;
}

/** Flags worth recording from a `vllm serve …` command line (the seeds' knob list). */
export const FLAGS_THAT_MATTER = [
  '--max-model-len',
  '--max-num-seqs',
  '--max-num-batched-tokens',
  '--gpu-memory-utilization',
  '--enable-chunked-prefill',
  '--no-enable-chunked-prefill',
  '--enable-prefix-caching',
  '--no-enable-prefix-caching',
  '--tensor-parallel-size',
  '--data-parallel-size',
  '--dtype',
  '--kv-cache-dtype',
  '--quantization',
  '--block-size',
  '--enforce-eager',
  '--served-model-name',
];

/** Picks the flags that matter (with their values) out of an argv. */
export function flagsThatMatter(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const name = arg.split('=')[0]!;
    if (!FLAGS_THAT_MATTER.includes(name)) continue;
    if (arg.includes('=') || !argv[i + 1] || argv[i + 1]!.startsWith('--')) out.push(arg);
    else out.push(`${arg} ${argv[++i]}`);
  }
  return out;
}

export type GpuIdentity = NonNullable<EnvironmentSnapshot['gpus']>;

export async function collectEnvironment(
  client: VllmClient,
  opts: { pid?: number; gpu?: () => Promise<GpuIdentity | null>; signal?: AbortSignal } = {},
): Promise<EnvironmentSnapshot> {
  const signal = opts.signal ?? AbortSignal.timeout(10_000);
  const [version, models, info] = await Promise.all([
    client.version(signal).catch(() => undefined),
    client.models(signal).catch(() => []),
    client.cacheConfig(signal),
  ]);
  const target = client.baseUrl;
  const snap: EnvironmentSnapshot = {
    collected_at: new Date().toISOString(),
    vllm_probe_version: VERSION,
    target,
    vllm_version: null,
    model: null,
    max_model_len: null,
    block_size: null,
    num_gpu_blocks: null,
    kv_cache_capacity_tokens: null,
    kv_cache_memory_bytes: null,
    prefix_caching: null,
    gpu_memory_utilization: null,
    gpus: null,
    os: `${os.type()} ${os.release()}`,
    kernel: os.version(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    memory_bytes: os.totalmem(),
    launch_flags: null,
  };
  snap.vllm_version = version ?? null;
  const m = models[0];
  snap.model = m?.id ?? null;
  snap.max_model_len = m?.max_model_len ?? null;
  if (info) {
    const num = (v: string | undefined) => (v !== undefined && v !== 'None' && v !== '' && Number.isFinite(Number(v)) ? Number(v) : null);
    snap.block_size = num(info.block_size);
    snap.num_gpu_blocks = num(info.num_gpu_blocks);
    // kv_cache_size_tokens is vLLM's own figure (right for hybrid models); else blocks × block size.
    snap.kv_cache_capacity_tokens = num(info.kv_cache_size_tokens) ?? (snap.block_size !== null && snap.num_gpu_blocks !== null ? snap.block_size * snap.num_gpu_blocks : null);
    snap.kv_cache_memory_bytes = num(info.kv_cache_memory_bytes);
    snap.prefix_caching = info.enable_prefix_caching === undefined ? null : info.enable_prefix_caching === 'True';
    snap.gpu_memory_utilization = num(info.gpu_memory_utilization);
  }
  if (opts.pid) {
    try {
      snap.launch_flags = flagsThatMatter(readFileSync(`/proc/${opts.pid}/cmdline`, 'utf8').split('\0').filter(Boolean));
    } catch {
      /* not visible from here */
    }
  }
  if (opts.gpu) snap.gpus = await opts.gpu().catch(() => null);
  return snap;
}

/** The snapshot as the markdown block that opens every bench report. */
export function environmentMarkdown(e: EnvironmentSnapshot): string {
  const gib = (b: number | null | undefined) => (b === null || b === undefined ? 'n/a' : `${(b / 2 ** 30).toFixed(1)} GiB`);
  const v = (x: unknown) => (x === null || x === undefined ? 'n/a' : String(x));
  return [
    '## Environment',
    '',
    `- collected: ${e.collected_at} by vllm-probe ${e.vllm_probe_version}`,
    `- target: ${e.target}`,
    `- model: ${v(e.model)} (max_model_len ${v(e.max_model_len)})`,
    `- vLLM version: ${v(e.vllm_version)}`,
    `- GPU: ${e.gpus && e.gpus.length ? e.gpus.map((g) => `${v(g.name)} ${gib(g.memory_total_bytes)} (driver ${v(g.driver_version)})`).join('; ') : 'none visible from here'}`,
    `- KV cache: ${v(e.kv_cache_capacity_tokens)} tokens (${v(e.num_gpu_blocks)} blocks × ${v(e.block_size)}), ${gib(e.kv_cache_memory_bytes)}, prefix caching ${e.prefix_caching === null ? 'n/a' : e.prefix_caching ? 'on' : 'off'}, gpu_memory_utilization ${v(e.gpu_memory_utilization)}`,
    `- launch flags: ${e.launch_flags ? e.launch_flags.join(' ') || '(defaults)' : 'n/a (vLLM process not visible from here)'}`,
    `- host: ${e.os}, ${e.cpus} × ${e.cpu}, ${gib(e.memory_bytes)} RAM; kernel ${e.kernel}`,
    '',
  ].join('\n');
}
