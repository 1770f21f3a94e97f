/**
 * The environment snapshot the Tier 1 seed asks for at the top of every measurement: GPU,
 * driver, OS/kernel, vLLM version, model, launch flags that matter. Collected from the target's
 * HTTP API, this host, nvidia-smi (when present) and the vLLM process command line (when the
 * process is visible from here). Every field is null when its source is unavailable.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { request } from 'undici';
import { parseConfig } from '../config.js';
import { parseExposition } from '../vllm/exposition.js';
import { runGpuCommand } from '../gpu/command.js';
import { VERSION } from '../version.js';

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

async function getText(url: string, signal: AbortSignal, headers: Record<string, string> = {}): Promise<string | undefined> {
  try {
    const res = await request(url, { signal, headers });
    const text = await res.body.text();
    return res.statusCode === 200 ? text : undefined;
  } catch {
    return undefined;
  }
}

export async function collectEnvironment(
  target: string,
  opts: { apiKey?: string; pid?: number; gpu?: () => Promise<EnvironmentSnapshot['gpus']>; signal?: AbortSignal } = {},
): Promise<EnvironmentSnapshot> {
  const signal = opts.signal ?? AbortSignal.timeout(10_000);
  const [version, models, metrics] = await Promise.all([
    getText(`${target}/version`, signal),
    getText(`${target}/v1/models`, signal, opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}),
    getText(`${target}/metrics`, signal),
  ]);
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
  try {
    snap.vllm_version = version ? ((JSON.parse(version) as { version?: string }).version ?? null) : null;
  } catch {
    /* not JSON: leave null */
  }
  try {
    const m = models ? (JSON.parse(models) as { data?: Array<{ id?: string; max_model_len?: number; parent?: unknown }> }).data?.find((x) => !x.parent) : undefined;
    snap.model = m?.id ?? null;
    snap.max_model_len = m?.max_model_len ?? null;
  } catch {
    /* leave null */
  }
  if (metrics) {
    try {
      const info = parseExposition(metrics).get('vllm:cache_config_info')?.samples[0]?.labels;
      const num = (v: string | undefined) => (v !== undefined && v !== 'None' && v !== '' && Number.isFinite(Number(v)) ? Number(v) : null);
      if (info) {
        snap.block_size = num(info.block_size);
        snap.num_gpu_blocks = num(info.num_gpu_blocks);
        snap.kv_cache_capacity_tokens = snap.block_size !== null && snap.num_gpu_blocks !== null ? snap.block_size * snap.num_gpu_blocks : num(info.kv_cache_size_tokens);
        snap.kv_cache_memory_bytes = num(info.kv_cache_memory_bytes);
        snap.prefix_caching = info.enable_prefix_caching === undefined ? null : info.enable_prefix_caching === 'True';
        snap.gpu_memory_utilization = num(info.gpu_memory_utilization);
      }
    } catch {
      /* garbled metrics: leave null */
    }
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

/** GPU identity for the environment snapshot, via the same nvidia-smi reader as the daemon. */
export function gpuForEnvironment(path?: string): () => Promise<EnvironmentSnapshot['gpus']> {
  return async () => {
    const r = await runGpuCommand(parseConfig({ gpu: { nvidia_smi_path: path ?? 'nvidia-smi', timeout: '5s' } }), AbortSignal.timeout(10_000));
    return r.ok ? r.gpus.map((g) => ({ name: g.name, memory_total_bytes: g.memory_total_bytes, driver_version: g.driver_version })) : null;
  };
}

