/**
 * `bench kv-scaling`: start vLLM at several --max-model-len values, record KV capacity and GPU
 * memory at each, and fit bytes per KV token.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { linearFit } from '../stats.js';
import { markdownTable, toCsv } from './analysis.js';
import { KV_SCALING_HEADER, benchTarget, Progress, RunFiles, sequencesThatFit, splitCommand, runCommand, waitForRestart, type BenchIo, type KvScalingRow } from './common.js';
import { kvScalingChart } from './experiment-charts.js';
import { benchClient, metricFamilies } from './http.js';
import { Redactor } from './redact.js';
import { BenchRunError, BenchUsageError, intList, secondsOpt, type Values } from './options.js';
import { readBenchGpus } from '../gpu/command.js';
import { serverPidFor } from '../host/proc.js';
import { collectEnvironment, type EnvironmentSnapshot } from '../vllm/environment.js';
import { environmentMarkdown } from './environments.js';
import type { VllmClient } from '../vllm/client.js';
import { describeFailure, runLoadChecked } from './load.js';

export { KV_SCALING_HEADER, type KvScalingRow };

/** The model dimensions that size one token's KV cache. */
export interface KvShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  dtypeBytes: number;
}

const DTYPE_BYTES: Record<string, number> = { bfloat16: 2, float16: 2, half: 2, float32: 4, float: 4, fp8: 1, fp8_e4m3: 1, fp8_e5m2: 1, float8_e4m3fn: 1 };

/**
 * The KV shape from a Hugging Face config.json (text_config for multimodal models): layers ×
 * KV heads × head_dim, at the model dtype unless --kv-cache-dtype says otherwise.
 */
export function kvShapeFromConfig(config: Record<string, unknown>, kvCacheDtype?: string): KvShape | null {
  const c = (typeof config.text_config === 'object' && config.text_config !== null ? config.text_config : config) as Record<string, unknown>;
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined);
  const layers = n(c.num_hidden_layers);
  const heads = n(c.num_attention_heads);
  const kvHeads = n(c.num_key_value_heads) ?? heads;
  const headDim = n(c.head_dim) ?? (n(c.hidden_size) && heads ? n(c.hidden_size)! / heads : undefined);
  const dtype = kvCacheDtype && kvCacheDtype !== 'auto' ? kvCacheDtype : String(c.torch_dtype ?? c.dtype ?? config.torch_dtype ?? config.dtype ?? '');
  const dtypeBytes = DTYPE_BYTES[dtype] ?? (dtype.startsWith('fp8') ? 1 : undefined);
  if (!layers || !kvHeads || !headDim || !dtypeBytes) return null;
  return { layers, kvHeads, headDim, dtypeBytes };
}

/** What the model directory says: its KV shape (config.json) and its weights' size on disk. */
export function readModelDir(dir: string, kvCacheDtype?: string): { shape: KvShape | null; weightsBytes: number | null } {
  let shape: KvShape | null = null;
  try {
    shape = kvShapeFromConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>, kvCacheDtype);
  } catch {
    /* no readable config.json */
  }
  let weightsBytes: number | null = null;
  try {
    const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors') || /^pytorch_model.*\.bin$/.test(f));
    if (files.length) weightsBytes = files.reduce((a, f) => a + statSync(join(dir, f)).size, 0);
  } catch {
    /* not a local directory */
  }
  return { shape, weightsBytes };
}

/** The model directory named in a launch command line: --model X, --model=X, or `serve X`. */
export function modelDirFromLaunch(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--model' && argv[i + 1]) return argv[i + 1];
    if (a.startsWith('--model=')) return a.slice('--model='.length);
    if (a === 'serve' && argv[i + 1] && !argv[i + 1]!.startsWith('-')) return argv[i + 1];
  }
  // scripts/gpu/vllm-server start MODEL_DIR …
  const start = argv.findIndex((a) => a === 'start' || a === 'restart');
  if (start >= 0 && argv[start + 1] && !argv[start + 1]!.startsWith('-')) return argv[start + 1];
  return undefined;
}

/**
 * What sizes the KV pool on this target, in words: --gpu-memory-utilization on a GPU,
 * VLLM_CPU_KVCACHE_SPACE on CPU (vLLM's CPU backend ignores the GPU fraction). The device is
 * CPU when the vLLM process is visible from here and no GPU is; without either fact it names both.
 */
export function kvPoolKnob(env: Pick<EnvironmentSnapshot, 'gpus' | 'launch_flags'> | undefined): string {
  if (env?.gpus && env.gpus.length > 0) return '--gpu-memory-utilization';
  if (env && env.launch_flags !== null) return 'VLLM_CPU_KVCACHE_SPACE (vLLM on CPU)';
  return '--gpu-memory-utilization on a GPU (VLLM_CPU_KVCACHE_SPACE on CPU)';
}

export type KvBytesSource = 'kv_cache_memory_bytes' | 'model shape (config.json)' | 'GPU memory minus weights';

/**
 * The bytes-per-token figures of a KV scaling run. The figure reported is, in this order:
 * kv_cache_memory_bytes / capacity (when vLLM reports kv_cache_memory_bytes; V1 leaves it None
 * unless --kv-cache-memory-bytes is set), else layers × kv_heads × head_dim × 2 × dtype bytes
 * from the served model's config.json, else (GPU memory after start − before start − weights)
 * / capacity (an upper bound: it also counts the CUDA context, activations and CUDA graphs).
 * Whichever is used is checked against the others that are known.
 *
 * The least-squares slope of GPU memory against capacity needs capacity to vary between runs;
 * V1 sizes the pool from --gpu-memory-utilization, so across max-model-len values capacity is
 * usually flat and the slope is undefined: `slope_note` says which case it was.
 * Step changes: consecutive rows whose GPU memory (or capacity) jumps by more than 5 %.
 */
export function analyseKvScaling(rows: KvScalingRow[], model: { shape?: KvShape | null; weightsBytes?: number | null; modelDir?: string } = {}, poolKnob = kvPoolKnob(undefined)) {
  const perRow = rows.map((r) => (r.kv_cache_memory_bytes !== null && r.kv_cache_capacity_tokens ? r.kv_cache_memory_bytes / r.kv_cache_capacity_tokens : null));
  const mean = (xs: Array<number | null>) => {
    const k = xs.filter((x): x is number => x !== null && Number.isFinite(x));
    return k.length ? k.reduce((a, b) => a + b, 0) / k.length : null;
  };
  const fromKvBytes = mean(perRow);
  const fromShape = model.shape ? 2 * model.shape.layers * model.shape.kvHeads * model.shape.headDim * model.shape.dtypeBytes : null;
  const memPerRow = rows.map((r) =>
    model.weightsBytes != null && r.gpu_mem_after_start_bytes !== null && r.gpu_mem_before_start_bytes !== null && r.kv_cache_capacity_tokens
      ? (r.gpu_mem_after_start_bytes - r.gpu_mem_before_start_bytes - model.weightsBytes) / r.kv_cache_capacity_tokens
      : null,
  );
  const fromMemory = mean(memPerRow.map((x) => (x !== null && x > 0 ? x : null)));
  const [bytesPerToken, source]: [number | null, KvBytesSource | null] =
    fromKvBytes !== null ? [fromKvBytes, 'kv_cache_memory_bytes'] : fromShape !== null ? [fromShape, 'model shape (config.json)'] : fromMemory !== null ? [fromMemory, 'GPU memory minus weights'] : [null, null];
  const checks: string[] = [];
  const dev = (a: number, b: number) => `${(((a - b) / b) * 100).toFixed(1)} %`;
  if (fromShape !== null && model.shape) {
    const s = model.shape;
    const formula = `${s.layers} layers × ${s.kvHeads} kv heads × ${s.headDim} head_dim × 2 × ${s.dtypeBytes} bytes = ${fromShape} B`;
    if (fromKvBytes !== null) checks.push(`kv_cache_memory_bytes / capacity = ${fromKvBytes.toFixed(0)} B vs shape ${formula}: ${dev(fromKvBytes, fromShape)}`);
    if (fromMemory !== null) checks.push(`(GPU memory after start − before − weights) / capacity = ${fromMemory.toFixed(0)} B vs shape ${formula}: ${dev(fromMemory, fromShape)} (includes CUDA context, activations, CUDA graphs)`);
    if (fromKvBytes === null && fromMemory === null) checks.push(`shape ${formula}; nothing measured to check it against`);
  } else if (fromKvBytes !== null && fromMemory !== null) {
    checks.push(`GPU memory minus weights gives ${fromMemory.toFixed(0)} B/token: ${dev(fromMemory, fromKvBytes)} from kv_cache_memory_bytes`);
  }
  const gpuPoints = rows.filter((r) => r.gpu_mem_after_first_request_bytes !== null && r.kv_cache_capacity_tokens !== null).map((r) => ({ x: r.kv_cache_capacity_tokens!, y: r.gpu_mem_after_first_request_bytes! }));
  const xs = gpuPoints.map((p) => p.x);
  const flat = xs.length >= 2 && Math.max(...xs) - Math.min(...xs) <= 0.01 * Math.max(...xs);
  const fit = flat ? undefined : linearFit(gpuPoints);
  const slopeNote =
    gpuPoints.length === 0
      ? 'no GPU memory readings'
      : gpuPoints.length < 2
        ? 'one reading: a slope needs two'
        : flat
          ? `KV capacity is the same in every run (${Math.min(...xs)}–${Math.max(...xs)} tokens): vLLM sizes the KV pool from ${poolKnob}, not max-model-len, so memory cannot be fitted against capacity; vary ${poolKnob.split(' (')[0]} instead`
          : null;
  const steps: string[] = [];
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1]!;
    const b = rows[i]!;
    const jump = (x: number | null, y: number | null) => (x && y !== null ? (y - x) / x : 0);
    const mem = jump(a.gpu_mem_after_start_bytes, b.gpu_mem_after_start_bytes);
    const cap = jump(a.kv_cache_capacity_tokens, b.kv_cache_capacity_tokens);
    if (Math.abs(mem) > 0.05) steps.push(`GPU memory after start changes ${(mem * 100).toFixed(0)} % from max_model_len ${a.max_model_len} to ${b.max_model_len}`);
    if (Math.abs(cap) > 0.05) steps.push(`KV capacity changes ${(cap * 100).toFixed(0)} % from max_model_len ${a.max_model_len} to ${b.max_model_len}`);
  }
  return {
    bytes_per_token_by_row: perRow,
    bytes_per_token: bytesPerToken,
    bytes_per_token_source: source,
    bytes_per_token_from_kv_cache_memory_bytes: fromKvBytes,
    bytes_per_token_from_shape: fromShape,
    bytes_per_token_from_gpu_memory: fromMemory,
    bytes_per_token_from_gpu_memory_by_row: memPerRow,
    model_shape: model.shape ?? null,
    model_dir: model.modelDir ?? null,
    weights_bytes: model.weightsBytes ?? null,
    bytes_per_token_checks: checks,
    gpu_memory_slope_bytes_per_token: fit ? fit.slope : null,
    gpu_memory_fit_r2: fit ? fit.r2 : null,
    slope_note: fit ? null : (slopeNote ?? 'no fit'),
    step_changes: steps,
  };
}

/** The served model's directory: --model-dir, else /v1/models `root`, else the launch template. */
async function findModelDir(values: Values, client: VllmClient, launch: string | undefined, signal: AbortSignal): Promise<string | undefined> {
  const candidates: string[] = [];
  if (typeof values['model-dir'] === 'string') candidates.push(values['model-dir']);
  const root = await client
    .models(AbortSignal.any([signal, AbortSignal.timeout(5000)]))
    .then((ms) => ms.find((m) => m.parent === undefined)?.root)
    .catch(() => undefined);
  if (root) candidates.push(root);
  if (launch) {
    const dir = modelDirFromLaunch(splitCommand(launch));
    if (dir) candidates.push(dir);
  }
  return candidates.find((d) => existsSync(join(d, 'config.json')));
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig); // the whole process group: vLLM forks engine workers
      } catch {
        child.kill(sig);
      }
    };
    kill('SIGTERM');
    const t = setTimeout(() => kill('SIGKILL'), 20_000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

async function waitHealthy(client: VllmClient, timeoutMs: number, signal: AbortSignal, child?: ChildProcess): Promise<void> {
  const exitedBadly = () => child !== undefined && child.exitCode !== null && child.exitCode !== 0;
  const ok = await client.waitHealthy(timeoutMs, signal, () => !exitedBadly());
  if (signal.aborted) throw new BenchRunError('interrupted');
  if (exitedBadly()) throw new BenchRunError(`the launched server exited with ${child!.exitCode}`);
  if (!ok) throw new BenchRunError(`vLLM at ${client.baseUrl} did not answer /health within ${timeoutMs / 1000} s`);
}

export async function benchKvScaling(values: Values, io: BenchIo): Promise<number> {
  const launch = values.launch as string | undefined;
  const stopCmd = values['stop-cmd'] as string | undefined;
  const valuesList = intList('values', values.values as string | undefined, [1024, 2048, 4096, 8192]);
  if (launch && !launch.includes('{max_model_len}')) throw new BenchUsageError('--launch: the template must contain {max_model_len}');
  const baseUrl = benchTarget(values.target);
  const out = (values.out as string | undefined) ?? join('bench-out', `kv-scaling-${Date.now()}`);
  const smi = values['gpu-cmd'] as string | undefined;
  const keyEnv = (values['api-key-env'] as string | undefined) ?? 'VLLM_API_KEY';
  const client = benchClient(baseUrl, io.env[keyEnv] || undefined);
  try {
    return await scaleRuns(values, io, { client, baseUrl, launch, stopCmd, valuesList, out, smi, redactor: new Redactor(io.env, keyEnv) });
  } finally {
    await client.close();
  }
}

async function scaleRuns(values: Values, io: BenchIo, o: { client: VllmClient; baseUrl: string; launch: string | undefined; stopCmd: string | undefined; valuesList: number[]; out: string; smi: string | undefined; redactor: Redactor }): Promise<number> {
  const { client, baseUrl, launch, stopCmd, valuesList, out, smi, redactor } = o;
  const files = new RunFiles(out, 'kv-scaling', redactor);
  const progress = new Progress(io, io.isTTY ?? false, redactor);
  let families: string[] | null = null;
  const timeoutMs = secondsOpt('restart-timeout', values['restart-timeout'], 600) * 1000;
  const rows: KvScalingRow[] = [];
  let env: EnvironmentSnapshot | undefined;
  let modelDir: string | undefined;
  for (const value of valuesList) {
    const before = (await readBenchGpus(smi)).memoryUsedBytes;
    let child: ChildProcess | undefined;
    if (launch) {
      const argv = splitCommand(launch.replaceAll('{max_model_len}', String(value)));
      progress.line(`kv-scaling: starting ${argv.join(' ')}`);
      child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
      const exited = new Promise<number | null>((r) => child!.once('exit', (c) => r(c)));
      const launcherDone = await Promise.race([exited, waitHealthy(client, timeoutMs, io.signal).then(() => undefined)]);
      if (typeof launcherDone === 'number' && launcherDone !== 0) throw new BenchRunError(`--launch exited ${launcherDone}: ${lastLines(stderr)}`);
      // A launcher script (like scripts/real-vllm/start) backgrounds the server and exits 0 once
      // it is healthy; a server run in the foreground keeps running. Give a launcher a moment.
      const code = launcherDone ?? (await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 5000))]));
      if (code === 0) child = undefined;
      else if (typeof code === 'number') throw new BenchRunError(`--launch exited ${code}: ${lastLines(stderr)}`);
      await waitHealthy(client, timeoutMs, io.signal, child);
    } else {
      progress.line(`kv-scaling: restart vLLM at ${baseUrl} with --max-model-len ${value}; waiting…`);
      await waitForRestart(client, undefined, io.signal, timeoutMs);
    }
    try {
      // One read serves the memory after start and the snapshot's GPU identity.
      const started = await readBenchGpus(smi);
      const afterStart = started.memoryUsedBytes;
      const pid = serverPidFor(client.baseUrl);
      const snap = await collectEnvironment(client, { ...(pid ? { pid } : {}), gpu: async () => started.identity });
      env ??= snap;
      families ??= await metricFamilies(client, io.signal);
      modelDir ??= await findModelDir(values, client, launch, io.signal);
      if (snap.max_model_len !== null && snap.max_model_len !== value) throw new BenchRunError(`vLLM reports max_model_len ${snap.max_model_len}, expected ${value}`);
      const model = snap.model ?? '';
      const { records: [first] } = await runLoadChecked({ client, model }, { concurrency: 1, requests: 1, body: () => ({ prompt: 'Say hello.', max_tokens: 8, ignore_eos: true }), timeoutMs: 120_000, signal: io.signal });
      if (!first || first.outcome !== 'success') throw new BenchRunError(`max_model_len ${value}: the first request failed: ${first ? describeFailure(first) : 'interrupted'}`);
      const afterFirst = (await readBenchGpus(smi)).memoryUsedBytes;
      rows.push({
        max_model_len: value,
        gpu_mem_before_start_bytes: before,
        gpu_mem_after_start_bytes: afterStart,
        gpu_mem_after_first_request_bytes: afterFirst,
        kv_cache_capacity_tokens: snap.kv_cache_capacity_tokens,
        block_size: snap.block_size,
        num_gpu_blocks: snap.num_gpu_blocks,
        kv_cache_memory_bytes: snap.kv_cache_memory_bytes,
        max_concurrency_at_max_model_len: snap.kv_cache_capacity_tokens !== null && snap.block_size !== null ? sequencesThatFit(snap.kv_cache_capacity_tokens, value, snap.block_size) : null,
      });
      progress.cell(rows.length, valuesList.length, `max_model_len ${value}: ${snap.kv_cache_capacity_tokens} KV tokens, ${rows[rows.length - 1]!.max_concurrency_at_max_model_len} sequences fit`);
    } finally {
      if (child) await stopChild(child);
      if (launch && stopCmd) {
        const r = await runCommand(stopCmd, io.signal);
        if (r.code !== 0) io.stderr(`kv-scaling: --stop-cmd exited ${r.code}: ${r.stderr}\n`);
      }
    }
  }
  const kvDtype = launch ? /--kv-cache-dtype[= ](\S+)/.exec(launch)?.[1] : undefined;
  const knob = kvPoolKnob(env);
  const analysis = analyseKvScaling(rows, modelDir ? { ...readModelDir(modelDir, kvDtype), modelDir } : {}, knob);
  files.add('kv_cache_scaling.csv', toCsv(KV_SCALING_HEADER, rows.map((r) => KV_SCALING_HEADER.map((h) => r[h as keyof KvScalingRow]))));
  const summary = { experiment: 'kv-scaling', target: baseUrl, model: env?.model ?? null, collected_at: env?.collected_at ?? new Date().toISOString(), launch: launch ?? null, kv_pool_knob: knob, rows, ...analysis, metric_families: families };
  const chart = kvScalingChart(summary);
  const svg = chart ? files.add('kv_cache_scaling.svg', chart) : undefined;
  const gib = (b: number | null) => (b === null ? 'n/a' : `${(b / 2 ** 30).toFixed(2)} GiB`);
  const md = [
    '# KV-cache scaling by max-model-len',
    '',
    env ? environmentMarkdown(env) : '',
    launch ? `Launch template: \`${launch}\`` : 'Restarted by hand for each value.',
    '',
    markdownTable(KV_SCALING_HEADER, rows.map((r) => KV_SCALING_HEADER.map((h) => r[h as keyof KvScalingRow]))),
    `- bytes per KV token: ${analysis.bytes_per_token === null ? 'n/a (vLLM reports no kv_cache_memory_bytes, no config.json found for the model — pass --model-dir — and no GPU memory readings)' : `${analysis.bytes_per_token.toFixed(0)} B (from ${analysis.bytes_per_token_source}${analysis.model_dir ? `, model ${analysis.model_dir}` : ''})`}`,
    ...analysis.bytes_per_token_checks.map((c) => `- check: ${c}`),
    `- fitted slope of GPU memory against KV capacity: ${analysis.gpu_memory_slope_bytes_per_token === null ? `n/a (${analysis.slope_note})` : `${analysis.gpu_memory_slope_bytes_per_token.toFixed(0)} B/token (r² ${analysis.gpu_memory_fit_r2?.toFixed(3)})`}`,
    `- step changes: ${analysis.step_changes.length ? analysis.step_changes.join('; ') : `none: vLLM sizes the KV pool from ${knob}, not from max-model-len, so capacity stays flat while the sequences that fit shrink`}`,
    `- GPU memory before/after start, after first request: ${rows.map((r) => `${r.max_model_len}: ${gib(r.gpu_mem_before_start_bytes)} / ${gib(r.gpu_mem_after_start_bytes)} / ${gib(r.gpu_mem_after_first_request_bytes)}`).join('; ')}`,
    '',
    ...(svg ? [`![KV capacity and sequences that fit by max-model-len](${svg})`, ''] : []),
  ].join('\n');
  files.add('kv_cache_scaling.md', md);
  if (env) files.add('kv-scaling.environment.json', `${JSON.stringify(env, null, 2)}\n`);
  const file = files.commit({ ...summary, ...(env ? { environment: env } : {}) });
  if (values.json) io.stdout(redactor.text(`${JSON.stringify(summary, null, 2)}\n`));
  else io.stdout(`wrote ${out}/ (summary ${file})\n`);
  return 0;
}

function lastLines(text: string): string {
  return text.trim().split('\n').map((l) => l.trim()).filter(Boolean).slice(-3).join(' | ');
}
