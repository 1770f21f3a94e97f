/**
 * The Tier 3 experiments and the consulting deliverable: `bench kv-scaling` (the seeds'
 * kv_scaling.sh) and `bench report` (one markdown report with a first-cut configuration
 * derived from the measurements by the seeds' rules of thumb).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../config.js';
import { runGpuCommand } from '../gpu/command.js';
import { linearFit } from '../stats.js';
import { markdownTable, toCsv } from './analysis.js';
import { BenchUsageError, intList, sequencesThatFit, splitCommand, runCommand, waitForRestart, type BenchIo } from './commands.js';
import { collectEnvironment, environmentMarkdown, gpuForEnvironment, type EnvironmentSnapshot } from './environment.js';
export { gpuForEnvironment };
import { runLoad } from './load.js';

type Values = Record<string, string | boolean | undefined>;

/** Total GPU memory in use (bytes) across GPUs, or null without a readable GPU. */
async function gpuMemoryUsed(path?: string): Promise<number | null> {
  const r = await runGpuCommand(parseConfig({ gpu: { nvidia_smi_path: path ?? 'nvidia-smi', timeout: '5s' } }), AbortSignal.timeout(10_000)).catch(() => undefined);
  if (!r?.ok || r.gpus.length === 0) return null;
  const used = r.gpus.map((g) => g.memory_used_bytes);
  return used.some((u) => u === null) ? null : used.reduce((a, b) => a! + b!, 0)!;
}

export const KV_SCALING_HEADER = [
  'max_model_len',
  'gpu_mem_before_start_bytes',
  'gpu_mem_after_start_bytes',
  'gpu_mem_after_first_request_bytes',
  'kv_cache_capacity_tokens',
  'block_size',
  'num_gpu_blocks',
  'kv_cache_memory_bytes',
  'max_concurrency_at_max_model_len',
];

export interface KvScalingRow {
  max_model_len: number;
  gpu_mem_before_start_bytes: number | null;
  gpu_mem_after_start_bytes: number | null;
  gpu_mem_after_first_request_bytes: number | null;
  kv_cache_capacity_tokens: number | null;
  block_size: number | null;
  num_gpu_blocks: number | null;
  kv_cache_memory_bytes: number | null;
  max_concurrency_at_max_model_len: number | null;
}

/**
 * The bytes-per-token figures of a KV scaling run: per row kv_cache_memory_bytes / capacity,
 * and, where GPU memory was measured, the least-squares slope of GPU memory after the first
 * request against KV capacity in tokens. Step changes: consecutive rows whose GPU memory (or
 * capacity) jumps by more than 5 %.
 */
export function analyseKvScaling(rows: KvScalingRow[]) {
  const perRow = rows.map((r) => (r.kv_cache_memory_bytes !== null && r.kv_cache_capacity_tokens ? r.kv_cache_memory_bytes / r.kv_cache_capacity_tokens : null));
  const known = perRow.filter((x): x is number => x !== null);
  const gpuPoints = rows.filter((r) => r.gpu_mem_after_first_request_bytes !== null && r.kv_cache_capacity_tokens !== null).map((r) => ({ x: r.kv_cache_capacity_tokens!, y: r.gpu_mem_after_first_request_bytes! }));
  const fit = linearFit(gpuPoints);
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
    bytes_per_token: known.length ? known.reduce((a, b) => a + b, 0) / known.length : null,
    gpu_memory_slope_bytes_per_token: fit && gpuPoints.length >= 2 ? fit.slope : null,
    gpu_memory_fit_r2: fit ? fit.r2 : null,
    step_changes: steps,
  };
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

async function waitHealthy(baseUrl: string, timeoutMs: number, signal: AbortSignal, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (signal.aborted) throw new Error('aborted');
    if (child && child.exitCode !== null && child.exitCode !== 0) throw new Error(`the launched server exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`vLLM at ${baseUrl} did not answer /health within ${timeoutMs / 1000} s`);
}

export async function benchKvScaling(values: Values, io: BenchIo): Promise<number> {
  const launch = values.launch as string | undefined;
  const stopCmd = values['stop-cmd'] as string | undefined;
  const valuesList = intList('values', values.values as string | undefined, [1024, 2048, 4096, 8192]);
  if (launch && !launch.includes('{max_model_len}')) throw new BenchUsageError('--launch: the template must contain {max_model_len}');
  const baseUrl = ((values.target as string | undefined) ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
  const out = (values.out as string | undefined) ?? join('bench-out', `kv-scaling-${Date.now()}`);
  mkdirSync(out, { recursive: true });
  const smi = values['gpu-cmd'] as string | undefined;
  const apiKey = io.env[(values['api-key-env'] as string | undefined) ?? 'VLLM_API_KEY'] || undefined;
  const timeoutMs = Number(values['restart-timeout'] ?? 600) * 1000;
  const rows: KvScalingRow[] = [];
  let env: EnvironmentSnapshot | undefined;
  for (const value of valuesList) {
    const before = await gpuMemoryUsed(smi);
    let child: ChildProcess | undefined;
    if (launch) {
      const argv = splitCommand(launch.replaceAll('{max_model_len}', String(value)));
      io.stderr(`kv-scaling: starting ${argv.join(' ')}\n`);
      child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
      const exited = new Promise<number | null>((r) => child!.once('exit', (c) => r(c)));
      const launcherDone = await Promise.race([exited, waitHealthy(baseUrl, timeoutMs, io.signal).then(() => undefined)]);
      if (typeof launcherDone === 'number' && launcherDone !== 0) throw new Error(`--launch exited ${launcherDone}: ${stderr.trim().split('\n').slice(-5).join('\n')}`);
      // A launcher script (like scripts/real-vllm/start) backgrounds the server and exits 0 once
      // it is healthy; a server run in the foreground keeps running. Give a launcher a moment.
      const code = launcherDone ?? (await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 5000))]));
      if (code === 0) child = undefined;
      else if (typeof code === 'number') throw new Error(`--launch exited ${code}: ${stderr.trim().split('\n').slice(-5).join('\n')}`);
      await waitHealthy(baseUrl, timeoutMs, io.signal, child);
    } else {
      io.stderr(`kv-scaling: restart vLLM at ${baseUrl} with --max-model-len ${value}; waiting…\n`);
      await waitForRestart(baseUrl, undefined, io.signal, timeoutMs);
    }
    try {
      const afterStart = await gpuMemoryUsed(smi);
      const snap = await collectEnvironment(baseUrl, { ...(apiKey ? { apiKey } : {}), gpu: gpuForEnvironment(smi) });
      env ??= snap;
      if (snap.max_model_len !== null && snap.max_model_len !== value) throw new Error(`vLLM reports max_model_len ${snap.max_model_len}, expected ${value}`);
      const model = snap.model ?? '';
      const [first] = await runLoad({ baseUrl, model, ...(apiKey ? { apiKey } : {}) }, { concurrency: 1, requests: 1, body: () => ({ prompt: 'Say hello.', max_tokens: 8, ignore_eos: true }), timeoutMs: 120_000, signal: io.signal });
      if (!first || first.outcome !== 'success') throw new Error(`first request failed: ${first?.outcome} ${first?.detail ?? ''}`);
      const afterFirst = await gpuMemoryUsed(smi);
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
      io.stderr(`kv-scaling: max_model_len ${value}: ${snap.kv_cache_capacity_tokens} KV tokens, ${rows[rows.length - 1]!.max_concurrency_at_max_model_len} sequences fit\n`);
    } finally {
      if (child) await stopChild(child);
      if (launch && stopCmd) {
        const r = await runCommand(stopCmd, io.signal);
        if (r.code !== 0) io.stderr(`kv-scaling: --stop-cmd exited ${r.code}: ${r.stderr}\n`);
      }
    }
  }
  const analysis = analyseKvScaling(rows);
  writeFileSync(join(out, 'kv_cache_scaling.csv'), toCsv(KV_SCALING_HEADER, rows.map((r) => KV_SCALING_HEADER.map((h) => r[h as keyof KvScalingRow]))));
  const gib = (b: number | null) => (b === null ? 'n/a' : `${(b / 2 ** 30).toFixed(2)} GiB`);
  const md = [
    '# KV-cache scaling by max-model-len (Tier 3)',
    '',
    env ? environmentMarkdown(env) : '',
    launch ? `Launch template: \`${launch}\`` : 'Restarted by hand for each value.',
    '',
    markdownTable(KV_SCALING_HEADER, rows.map((r) => KV_SCALING_HEADER.map((h) => r[h as keyof KvScalingRow]))),
    `- KV bytes per token (kv_cache_memory_bytes / capacity): ${analysis.bytes_per_token === null ? 'n/a (this vLLM does not report kv_cache_memory_bytes)' : `${analysis.bytes_per_token.toFixed(0)} B`}`,
    `- fitted slope of GPU memory against KV capacity: ${analysis.gpu_memory_slope_bytes_per_token === null ? 'n/a (no GPU memory readings)' : `${analysis.gpu_memory_slope_bytes_per_token.toFixed(0)} B/token (r² ${analysis.gpu_memory_fit_r2?.toFixed(3)})`}`,
    `- step changes: ${analysis.step_changes.length ? analysis.step_changes.join('; ') : 'none: vLLM sizes the KV pool from --gpu-memory-utilization, not from max-model-len, so capacity stays flat while the sequences that fit shrink'}`,
    `- GPU memory before/after start, after first request: ${rows.map((r) => `${r.max_model_len}: ${gib(r.gpu_mem_before_start_bytes)} / ${gib(r.gpu_mem_after_start_bytes)} / ${gib(r.gpu_mem_after_first_request_bytes)}`).join('; ')}`,
    '',
  ].join('\n');
  writeFileSync(join(out, 'kv_cache_scaling.md'), md);
  const summary = { experiment: 'kv-scaling', rows, ...analysis };
  writeFileSync(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  if (env) writeFileSync(join(out, 'environment.json'), `${JSON.stringify(env, null, 2)}\n`);
  if (values.json) io.stdout(`${JSON.stringify(summary, null, 2)}\n`);
  else io.stdout(`wrote ${out}/\n`);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// bench report

export interface ReportInputs {
  environment?: EnvironmentSnapshot;
  coldWarm?: { ttft: { cold: number; median: number; coldWarmFactor: number; spreadPct: number }; e2e: { median: number } };
  sweep?: { levels: Array<{ concurrency: number; outputTokPerS: number; reqPerS: number; ttft: { p95?: number }; e2e: { p95?: number }; errors: number }>; knee: { concurrency: number; reason: string } | null };
  prefix?: { rows: Array<Record<string, string | number | null>> };
  kv?: { capacity_tokens: number; block_size: number; max_model_len: number | null; bytes_per_token: number | null };
  kvScaling?: { rows: KvScalingRow[]; bytes_per_token: number | null };
  /** What the team asks for: concurrent sequences of a context length (the seeds' 8 × 4K). */
  want: { concurrency: number; context: number };
}

export interface Recommendation {
  topic: string;
  recommendation: string;
  from: string;
}

/** The seeds' rules of thumb applied to recorded measurements. Pure; each rule names its source. */
export function recommend(inputs: ReportInputs): Recommendation[] {
  const out: Recommendation[] = [];
  const { kv, sweep, prefix, coldWarm, want } = inputs;
  const capacity = kv?.capacity_tokens ?? inputs.kvScaling?.rows.at(-1)?.kv_cache_capacity_tokens ?? null;
  const block = kv?.block_size ?? inputs.kvScaling?.rows.at(-1)?.block_size ?? 16;
  if (capacity) {
    const perSeq = Math.floor(capacity / want.concurrency / block) * block;
    const fits = perSeq >= want.context;
    out.push({
      topic: 'max-model-len',
      recommendation: fits
        ? `--max-model-len ${Math.min(perSeq, kv?.max_model_len ?? perSeq)} or lower: ${want.concurrency} concurrent sequences of ${want.context} tokens need ${want.concurrency * Math.ceil(want.context / block) * block} of the ${capacity} KV tokens; every sequence can grow to ${perSeq} tokens before they stop fitting together.`
        : `${want.concurrency} × ${want.context}-token sequences do not fit: the KV cache holds ${capacity} tokens (${perSeq} per sequence). Either cap --max-model-len at ${perSeq} and accept shorter contexts, lower the wanted concurrency to ${Math.floor(capacity / (Math.ceil(want.context / block) * block))}, or give the KV cache more memory (--gpu-memory-utilization, a larger GPU, tensor parallelism).`,
      from: kv ? 'bench kv (KV capacity from vllm:cache_config_info)' : 'bench kv-scaling',
    });
  }
  if (sweep) {
    if (sweep.knee) {
      const k = sweep.levels.find((l) => l.concurrency === sweep.knee!.concurrency);
      out.push({
        topic: 'concurrency target',
        recommendation: `Run at about ${sweep.knee.concurrency} concurrent requests per replica (client concurrency, or --max-num-seqs ${sweep.knee.concurrency}): ${sweep.knee.reason}. Past it, add replicas instead of concurrency.${k ? ` Expect ~${k.reqPerS.toFixed(1)} req/s and p95 TTFT ${fmt(k.ttft.p95)} there.` : ''}`,
        from: 'bench sweep (the knee of throughput against p95 TTFT)',
      });
    } else {
      const top = [...sweep.levels].sort((a, b) => b.concurrency - a.concurrency)[0];
      out.push({ topic: 'concurrency target', recommendation: `No knee found up to concurrency ${top?.concurrency}: throughput was still rising. Sweep higher before fixing a target.`, from: 'bench sweep' });
    }
  }
  if (prefix?.rows.length) {
    const pairs = new Map<string, { cache?: Record<string, string | number | null>; no_cache?: Record<string, string | number | null> }>();
    for (const r of prefix.rows) {
      const key = `${r.prefix_regime}/${r.concurrency}`;
      const e = pairs.get(key) ?? {};
      e[r.mode as 'cache' | 'no_cache'] = r;
      pairs.set(key, e);
    }
    const speedups = [...pairs.entries()].filter(([, p]) => p.cache && p.no_cache).map(([key, p]) => ({ key, speedup: Number(p.no_cache!.mean_ttft_s) / Number(p.cache!.mean_ttft_s) }));
    const best = speedups.sort((a, b) => b.speedup - a.speedup)[0];
    if (best) {
      const [regime] = best.key.split('/');
      const on = best.speedup >= 1.1;
      out.push({
        topic: 'prefix caching',
        recommendation: on
          ? `Keep prefix caching on (the V1 default): cache hits cut mean TTFT ${best.speedup.toFixed(1)}× at P=${regime} (concurrency ${best.key.split('/')[1]}); the seeds' model expects a saved fraction of about P/(P+S) for a shared prefix P and suffix S. Keep shared prefixes byte-identical and at the start of the prompt.`
          : `Prefix caching gave no measurable TTFT gain (best ${best.speedup.toFixed(2)}×): this workload's prefixes are too short or not shared. Caching costs little, so leave it on, but do not count on it for capacity.`,
        from: 'bench prefix (cache vs no_cache rows)',
      });
    }
  }
  // Health-check thresholds: anchored on the measured warm baseline and the knee.
  const warm = coldWarm?.ttft.median;
  const kneeP95 = sweep?.knee ? sweep.levels.find((l) => l.concurrency === sweep.knee!.concurrency)?.ttft.p95 : undefined;
  const ttftAnchor = Math.max(kneeP95 ?? 0, (warm ?? 0) * 3);
  if (ttftAnchor > 0) {
    const rounded = niceUp(ttftAnchor * 1.5);
    out.push({
      topic: 'health check: TTFT',
      recommendation: `Alert when probe TTFT p95 over 5 min exceeds ${rounded} s (slo.ttft.threshold: ${rounded}s in the vllm-probe config).`,
      from: `${kneeP95 !== undefined ? `p95 TTFT at the knee (${fmt(kneeP95)})` : ''}${kneeP95 !== undefined && warm !== undefined ? ' and ' : ''}${warm !== undefined ? `warm median TTFT (${fmt(warm)}) from bench cold-warm` : ''} × 1.5`,
    });
  }
  if (coldWarm) {
    out.push({
      topic: 'health check: cold start',
      recommendation: `Expect the first request after a restart to take ${coldWarm.ttft.coldWarmFactor.toFixed(1)}× the warm TTFT (${fmt(coldWarm.ttft.cold)}); pre-warm new replicas before they take traffic, and do not alert on phase="cold" probes.`,
      from: 'bench cold-warm',
    });
  }
  out.push(
    { topic: 'health check: KV cache', recommendation: 'Alert when vllm_probe_engine_kv_cache_usage_ratio stays above 0.95 for 5 min, with requests waiting: queueing and preemptions follow.', from: 'seeds: KV pressure row; bench kv capacity' },
    { topic: 'health check: queue', recommendation: `Alert when vllm_probe_engine_requests_waiting > 0 for 5 min${sweep?.knee ? ` (sustained load above ~${sweep.knee.concurrency} concurrent requests per replica)` : ''}.`, from: sweep?.knee ? 'bench sweep knee' : 'seeds: batching knobs' },
    { topic: 'health check: GPU memory', recommendation: 'Alert when GPU memory headroom (free / total) stays below 5 % for 5 min beyond what --gpu-memory-utilization reserves.', from: 'seeds: VRAM headroom in the health-check dashboard' },
  );
  return out;
}

function niceUp(x: number): number {
  const steps = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 5, 7.5, 10, 20, 40, 80];
  return steps.find((s) => s >= x) ?? Math.ceil(x);
}
const fmt = (s: number | undefined) => (s === undefined ? 'n/a' : s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);

/** Finds the bench outputs under DIR (any depth) by their summary.json `experiment`. */
export function readReportInputs(dir: string, want: ReportInputs['want']): { inputs: ReportInputs; found: string[] } {
  const inputs: ReportInputs = { want };
  const found: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name === 'summary.json') {
        const s = JSON.parse(readFileSync(p, 'utf8')) as { experiment?: string };
        found.push(`${s.experiment}: ${d}`);
        if (s.experiment === 'cold-warm') inputs.coldWarm = s as never;
        if (s.experiment === 'sweep') inputs.sweep = s as never;
        if (s.experiment === 'prefix') inputs.prefix = s as never;
        if (s.experiment === 'kv') inputs.kv = s as never;
        if (s.experiment === 'kv-scaling') inputs.kvScaling = s as never;
        const envFile = join(d, 'environment.json');
        if (!inputs.environment && existsSync(envFile)) inputs.environment = JSON.parse(readFileSync(envFile, 'utf8')) as EnvironmentSnapshot;
      }
    }
  };
  walk(dir);
  return { inputs, found };
}

export async function benchReport(values: Values, io: BenchIo): Promise<number> {
  const dir = values.in as string | undefined;
  if (!dir || !existsSync(dir)) throw new BenchUsageError(`--in DIR: expected a folder with bench outputs, got ${dir ?? 'nothing'}`);
  const want = { concurrency: Number(values['want-concurrency'] ?? 8), context: Number(values.context ?? 4096) };
  const { inputs, found } = readReportInputs(dir, want);
  if (found.length === 0) throw new BenchUsageError(`${dir}: no bench outputs (summary.json) found`);
  const recs = recommend(inputs);
  const lines: string[] = ['# vLLM measurement report', '', inputs.environment ? environmentMarkdown(inputs.environment) : '## Environment\n\nnot recorded\n', '## Commands run', '', ...found.map((f) => `- \`vllm-probe bench ${f.split(':')[0]}\` → ${f.split(': ')[1]}`), '', '## Key numbers', ''];
  if (inputs.coldWarm) lines.push(`- cold TTFT ${fmt(inputs.coldWarm.ttft.cold)} vs warm median ${fmt(inputs.coldWarm.ttft.median)} (${inputs.coldWarm.ttft.coldWarmFactor.toFixed(1)}×), warm spread ${inputs.coldWarm.ttft.spreadPct.toFixed(1)} %`);
  if (inputs.sweep) {
    const best = [...inputs.sweep.levels].sort((a, b) => b.outputTokPerS - a.outputTokPerS)[0];
    if (best) lines.push(`- peak throughput ${best.outputTokPerS.toFixed(1)} output tok/s (${best.reqPerS.toFixed(2)} req/s) at concurrency ${best.concurrency}; knee ${inputs.sweep.knee ? `at ${inputs.sweep.knee.concurrency}` : 'not found'}`);
  }
  if (inputs.kv) lines.push(`- KV cache ${inputs.kv.capacity_tokens} tokens (block ${inputs.kv.block_size}), ${inputs.kv.bytes_per_token === null ? 'bytes/token n/a' : `${inputs.kv.bytes_per_token.toFixed(0)} B per token`}, max_model_len ${inputs.kv.max_model_len ?? 'n/a'}`);
  if (inputs.kvScaling) lines.push(`- KV scaling over max_model_len ${inputs.kvScaling.rows.map((r) => r.max_model_len).join(', ')}: capacity ${inputs.kvScaling.rows.map((r) => r.kv_cache_capacity_tokens ?? 'n/a').join(', ')} tokens`);
  if (inputs.prefix) {
    for (const r of inputs.prefix.rows.filter((x) => x.mode === 'cache')) {
      const n = inputs.prefix.rows.find((x) => x.mode === 'no_cache' && x.prefix_regime === r.prefix_regime && x.concurrency === r.concurrency);
      if (n) lines.push(`- prefix P=${r.prefix_regime} c=${r.concurrency}: mean TTFT ${fmt(Number(n.mean_ttft_s))} → ${fmt(Number(r.mean_ttft_s))} with caching`);
    }
  }
  lines.push('', '## Observations', '');
  if (inputs.coldWarm && inputs.coldWarm.ttft.spreadPct > 25) lines.push(`- Warm TTFT is unstable (spread ${inputs.coldWarm.ttft.spreadPct.toFixed(0)} %): look for other load on the node before trusting a baseline.`);
  if (inputs.sweep?.levels.some((l) => l.errors > 0)) lines.push(`- Errors appeared at concurrency ${inputs.sweep.levels.filter((l) => l.errors > 0).map((l) => l.concurrency).join(', ')}.`);
  if (lines[lines.length - 1] === '') lines.push('- Nothing unusual in the recorded numbers.');
  lines.push('', '## First-cut configuration', '', markdownTable(['topic', 'recommendation', 'from'], recs.map((r) => [r.topic, r.recommendation, r.from])));
  const out = (values.out as string | undefined) ?? dir;
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'report.md'), `${lines.join('\n')}\n`);
  if (values.json) io.stdout(`${JSON.stringify({ found, recommendations: recs }, null, 2)}\n`);
  else io.stdout(`wrote ${join(out, 'report.md')}\n`);
  return 0;
}
