/**
 * `vllm-probe bench …`: the one-off experiments of the seeds as commands. Each writes its files
 * (CSV with the seed's columns, markdown with the environment snapshot on top, summary.json)
 * into --out DIR and prints a short summary (or the JSON with --json).
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { BENCH_HELP, BENCH_OPTIONS, BenchUsageError, intList, intOpt, secondsOpt, type Values } from './options.js';
import { gpuIdentity } from '../gpu/command.js';
import { calibratePrefix } from '../vllm/calibration.js';
import { VllmClient } from '../vllm/client.js';
import { coldWarmSummary, findKnee, fmtS, markdownTable, predictedSavedFraction, summariseLevel, sweepSvg, toCsv, type LevelResult } from './analysis.js';
import { collectEnvironment, environmentMarkdown, type EnvironmentSnapshot } from '../vllm/environment.js';
import { fillerPrompt, runLoad, type LoadTarget, type RequestRecord } from './load.js';

export interface BenchIo {
  stdout: (t: string) => void;
  stderr: (t: string) => void;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  isTTY?: boolean;
}

/** Splits a command line into argv without a shell: quotes group, nothing is expanded. */
export function splitCommand(cmd: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let has = false;
  for (const c of cmd) {
    if (quote) {
      if (c === quote) quote = null;
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else cur += c;
  }
  if (quote) throw new BenchUsageError(`unbalanced quote in command: ${cmd}`);
  if (has || cur) out.push(cur);
  return out;
}

/** Runs a user-given command with execFile (no shell); resolves with its exit status. */
export function runCommand(cmd: string, signal: AbortSignal, timeoutMs = 600_000): Promise<{ code: number; stderr: string }> {
  const [file, ...args] = splitCommand(cmd);
  if (!file) throw new BenchUsageError('empty command');
  return new Promise((resolve) => {
    execFile(file, args, { signal, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, _stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 127) : 0;
      resolve({ code, stderr: String(stderr).trim() || (err ? err.message : '') });
    });
  });
}

class Progress {
  private last = 0;
  constructor(private readonly io: BenchIo, private readonly enabled: boolean) {}
  update(text: string): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.last < 100) return;
    this.last = now;
    this.io.stderr(`\r\x1b[2K${text}`);
  }
  line(text: string): void {
    if (this.enabled) this.io.stderr(`\r\x1b[2K`);
    this.io.stderr(`${text}\n`);
  }
}

interface Ctx {
  io: BenchIo;
  values: Values;
  target: LoadTarget;
  out: string;
  progress: Progress;
  timeoutMs: number;
  env: EnvironmentSnapshot;
}

async function resolveTarget(values: Values, io: BenchIo): Promise<LoadTarget> {
  const baseUrl = (values.target ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
  try {
    new URL(baseUrl);
  } catch {
    throw new BenchUsageError(`--target: expected a URL like http://127.0.0.1:8000, got "${baseUrl}"`);
  }
  const client = benchClient(baseUrl, io.env[values['api-key-env'] ?? 'VLLM_API_KEY']);
  let model = values.model;
  if (!model) {
    const found = await client.models(AbortSignal.any([io.signal, AbortSignal.timeout(10_000)])).catch((err: unknown) => (err as Error).message);
    if (typeof found === 'string' || !found[0]) {
      await client.close();
      throw new BenchUsageError(`cannot discover the model from ${baseUrl}/v1/models (${typeof found === 'string' ? found : 'no model listed'}); is vLLM up? (or pass --model)`);
    }
    model = found[0].id;
  }
  return { client, model };
}

/** The client for bench load: as many connections as the highest concurrency may need. */
export function benchClient(baseUrl: string, apiKey: string | undefined): VllmClient {
  return new VllmClient({ baseUrl, maxResponseBytes: 16 * 1024 * 1024, connections: 1024, connectTimeoutMs: 10_000, ...(apiKey ? { apiKey } : {}) });
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

export async function runBench(argv: string[], io: BenchIo): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: BENCH_OPTIONS, allowPositionals: true, strict: true });
  const experiment = positionals[0];
  if (values.help || !experiment) {
    io.stdout(BENCH_HELP);
    return experiment || values.help ? 0 : 2;
  }
  const experiments: Record<string, (ctx: Ctx) => Promise<unknown>> = { 'cold-warm': benchColdWarm, prefix: benchPrefix, sweep: benchSweep, kv: benchKv };
  const extra = await import('./kv-scaling.js');
  const { benchReport } = await import('./report.js');
  const standalone: Record<string, (values: Values, io: BenchIo) => Promise<number>> = { 'kv-scaling': extra.benchKvScaling, report: benchReport };
  if (standalone[experiment]) return standalone[experiment]!(values, io);
  const run = experiments[experiment];
  if (!run) throw new BenchUsageError(`unknown experiment "${experiment}" (known: ${[...Object.keys(experiments), ...Object.keys(standalone)].join(', ')})`);
  const target = await resolveTarget(values, io);
  const out = values.out ?? join('bench-out', `${experiment}-${stamp()}`);
  mkdirSync(out, { recursive: true });
  try {
  const env = await collectEnvironment(target.client, { gpu: gpuIdentity(values['gpu-cmd']), signal: AbortSignal.any([io.signal, AbortSignal.timeout(15_000)]) });
  writeFileSync(join(out, 'environment.json'), `${JSON.stringify(env, null, 2)}\n`);
  const ctx: Ctx = { io, values, target, out, progress: new Progress(io, io.isTTY ?? false), timeoutMs: Math.round(secondsOpt('timeout', values.timeout, 120) * 1000), env };
  const summary = await run(ctx);
  writeFileSync(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  if (values.json) io.stdout(`${JSON.stringify(summary, null, 2)}\n`);
  else io.stdout(`wrote ${out}/\n`);
  return 0;
  } finally {
    await target.client.close();
  }
}

/** process_start_time_seconds from /metrics, or undefined. */
async function processStart(client: VllmClient, signal: AbortSignal): Promise<number | undefined> {
  const exp = await client.exposition(AbortSignal.any([signal, AbortSignal.timeout(3000)]));
  return exp?.get('process_start_time_seconds')?.samples[0]?.value;
}
async function healthy(client: VllmClient, signal: AbortSignal): Promise<boolean> {
  return client.health(AbortSignal.any([signal, AbortSignal.timeout(2000)])).then((h) => h.status === 200, () => false);
}

/** Waits until vLLM has restarted (start time changed, or down then up) and answers /health. */
export async function waitForRestart(client: VllmClient, before: number | undefined, signal: AbortSignal, timeoutMs: number, onTick?: (s: string) => void): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let sawDown = false;
  while (performance.now() < deadline) {
    if (signal.aborted) throw new Error('aborted');
    const up = await healthy(client, signal);
    if (!up) sawDown = true;
    if (up) {
      const now = await processStart(client, signal);
      if (sawDown || (before !== undefined && now !== undefined && Math.abs(now - before) > 0.5)) return;
    }
    onTick?.(up ? 'vLLM still running the old process…' : 'vLLM is down, waiting for /health…');
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`vLLM did not restart and come back within ${Math.round(timeoutMs / 1000)} s`);
}

async function one(ctx: Ctx, body: Record<string, unknown>): Promise<RequestRecord> {
  const [r] = await runLoad(ctx.target, { concurrency: 1, requests: 1, body: () => body, timeoutMs: ctx.timeoutMs, signal: ctx.io.signal });
  if (!r) throw new Error('aborted');
  return r;
}

async function benchColdWarm(ctx: Ctx) {
  const { values, target, io } = ctx;
  const runs = intOpt('runs', values.runs, 5);
  const maxTokens = intOpt('max-tokens', values['max-tokens'], 64);
  const restartTimeout = secondsOpt('restart-timeout', values['restart-timeout'], 600) * 1000;
  const body = { prompt: 'Say hello from a small language model.', max_tokens: maxTokens, ignore_eos: true };
  const before = await processStart(target.client, io.signal);
  if (values['restart-cmd']) {
    ctx.progress.line(`restarting vLLM: ${values['restart-cmd']}`);
    const r = await runCommand(values['restart-cmd'], io.signal, restartTimeout);
    if (r.code !== 0) throw new Error(`--restart-cmd exited ${r.code}: ${r.stderr}`);
  } else {
    ctx.progress.line(`Restart vLLM at ${target.client.baseUrl} now; waiting up to ${restartTimeout / 1000} s for it to come back…`);
  }
  await waitForRestart(target.client, before, io.signal, restartTimeout, (s) => ctx.progress.update(s));
  ctx.progress.line('vLLM is back: sending the cold request');
  const cold = await one(ctx, body);
  const warm: RequestRecord[] = [await one(ctx, body)];
  for (let i = 0; i < runs; i++) {
    ctx.progress.update(`warm run ${i + 1}/${runs}`);
    warm.push(await one(ctx, body));
  }
  const failed = [cold, ...warm].filter((r) => r.outcome !== 'success');
  if (failed.length) throw new Error(`${failed.length} request(s) failed: ${failed[0]!.outcome} ${failed[0]!.detail ?? ''}`);
  const steady = warm.slice(1);
  const e2e = coldWarmSummary(cold.e2e, steady.map((r) => r.e2e));
  const ttft = coldWarmSummary(cold.ttft!, steady.map((r) => r.ttft!));
  const rows = [
    ['cold_1', cold.ttft, cold.e2e, cold.promptTokens, cold.outputTokens, 'first request after server start'],
    ['warm_1', warm[0]!.ttft, warm[0]!.e2e, warm[0]!.promptTokens, warm[0]!.outputTokens, 'immediate second request'],
    ...steady.map((r, i) => [`warm_${i + 2}`, r.ttft, r.e2e, r.promptTokens, r.outputTokens, 'steady state']),
  ];
  const header = ['run', 'ttft_s', 'e2e_s', 'prompt_tokens', 'completion_tokens', 'notes'];
  writeFileSync(join(ctx.out, 'cold_warm.csv'), toCsv(header, rows as never));
  const summaryRows = [
    ['TTFT', ttft.cold, ttft.warm1, ttft.min, ttft.median, ttft.max, `${ttft.spreadPct.toFixed(1)} %`, `${ttft.coldWarmFactor.toFixed(2)}x`],
    ['E2E (wall_s)', e2e.cold, e2e.warm1, e2e.min, e2e.median, e2e.max, `${e2e.spreadPct.toFixed(1)} %`, `${e2e.coldWarmFactor.toFixed(2)}x`],
  ];
  const md = [
    '# Cold vs warm TTFT (Tier 1)',
    '',
    environmentMarkdown(ctx.env),
    `Procedure: ${values['restart-cmd'] ? `restart by \`${values['restart-cmd']}\`` : 'restart by hand'}, one cold request, one warm, then ${runs} warm (max_tokens ${maxTokens}, ignore_eos, temperature 0, streaming).`,
    '',
    markdownTable(header, rows as never),
    '## Summary (warm = steady-state runs after warm_1)',
    '',
    markdownTable(['metric', 'cold_1', 'warm_1', 'min', 'median', 'max', 'spread', 'cold/warm'], summaryRows as never),
    `Cold TTFT is ${ttft.coldWarmFactor.toFixed(1)}× the warm median: the first request after start pays one-time costs (page cache, weight transfer to the device, runtime warm-up, first KV/workspace allocation). See docs/runbook.md for the diagnosis table.`,
    '',
  ].join('\n');
  writeFileSync(join(ctx.out, 'cold_warm.md'), md);
  return { experiment: 'cold-warm', target: target.client.baseUrl, model: target.model, ttft, e2e, runs: rows.map((r) => ({ run: r[0], ttft_s: r[1], e2e_s: r[2] })) };
}

/** The canonical CSV header of the seed's prefix-caching experiment (Tier 2). */
export const PREFIX_CSV_HEADER = ['mode', 'prefix_regime', 'concurrency', 'mean_ttft_s', 'p95_ttft_s', 'mean_e2e_s', 'p95_e2e_s', 'req_s', 'tok_s', 'notes'];

async function calibratedPrefix(ctx: Ctx, target: number): Promise<{ text: string; tokens: number; calibrated: boolean }> {
  const { text, tokens, estimate } = await calibratePrefix(ctx.target.client, ctx.target.model, target, ctx.io.signal, 4);
  return { text, tokens: tokens ?? estimate, calibrated: tokens !== undefined };
}

async function benchPrefix(ctx: Ctx) {
  const { values } = ctx;
  const baseline = values.baseline?.replace(/\/$/, '');
  const baselineTarget = baseline ? { client: benchClient(baseline, ctx.io.env[values['api-key-env'] ?? 'VLLM_API_KEY']), model: ctx.target.model } : undefined;
  try {
    return await prefixCells(ctx, baseline, baselineTarget);
  } finally {
    await baselineTarget?.client.close();
  }
}

async function prefixCells(ctx: Ctx, baseline: string | undefined, baselineTarget: LoadTarget | undefined) {
  const { values } = ctx;
  const regimes = intList('regimes', values.regimes, [512, 1024, 2048]);
  const levels = intList('concurrency', values.concurrency, [1, 8, 16]);
  const requests = intOpt('requests', values.requests, 32);
  const suffixTokens = intOpt('suffix-tokens', values['suffix-tokens'], 32);
  const maxTokens = intOpt('max-tokens', values['max-tokens'], 32);
  const rows: Array<Array<string | number | undefined>> = [];
  const cells: Array<{ mode: string; regime: number; concurrency: number; level: LevelResult; cached: number; prompt: number }> = [];
  let saltOk: boolean | undefined;
  const suffix = (i: number) => ` Question ${i}: ${fillerPrompt(Math.max(2, Math.round(suffixTokens / 1.3)), i)}?`;
  for (const regime of regimes) {
    const prefix = await calibratedPrefix(ctx, regime);
    for (const concurrency of levels) {
      for (const mode of ['no_cache', 'cache'] as const) {
        const target = mode === 'no_cache' && baselineTarget ? baselineTarget : ctx.target;
        // Forced misses: cache_salt if accepted, else a nonce at the very start of the prompt.
        if (mode === 'no_cache' && !baseline && saltOk === undefined) {
          const probe = await one({ ...ctx, target }, { prompt: prefix.text + suffix(0), max_tokens: 1, cache_salt: randomUUID() });
          saltOk = probe.outcome === 'success';
        }
        const body = (i: number): Record<string, unknown> => {
          const base = { max_tokens: maxTokens, ignore_eos: true };
          if (mode === 'cache') return { ...base, prompt: prefix.text + suffix(i) };
          if (baseline) return { ...base, prompt: prefix.text + suffix(i) };
          return saltOk ? { ...base, prompt: prefix.text + suffix(i), cache_salt: randomUUID() } : { ...base, prompt: `[${randomUUID()}] ${prefix.text}${suffix(i)}` };
        };
        if (mode === 'cache') await one({ ...ctx, target }, { prompt: prefix.text + suffix(-1), max_tokens: 1 }); // warm the shared prefix
        const records = await runLoad(target, {
          concurrency,
          requests,
          body,
          timeoutMs: ctx.timeoutMs,
          signal: ctx.io.signal,
          onProgress: (n) => ctx.progress.update(`prefix P=${regime} c=${concurrency} ${mode}: ${n}/${requests}`),
        });
        const level = summariseLevel(concurrency, records);
        const ok = records.filter((r) => r.outcome === 'success');
        const cached = ok.reduce((a, r) => a + (r.cachedTokens ?? 0), 0) / Math.max(1, ok.length);
        const prompt = ok.reduce((a, r) => a + (r.promptTokens ?? 0), 0) / Math.max(1, ok.length);
        const how = mode === 'cache' ? 'shared prefix, same server' : baseline ? `baseline server ${baseline} (prefix caching off)` : saltOk ? 'forced misses via cache_salt, same server' : 'forced misses via leading nonce, same server';
        const notes = `${how}; P=${prefix.tokens}${prefix.calibrated ? '' : ' (estimated)'}; mean cached ${cached.toFixed(0)}/${prompt.toFixed(0)} prompt tokens${level.errors ? `; ${level.errors} errors` : ''}`;
        rows.push([mode, regime, concurrency, level.ttft.mean, level.ttft.p95, level.e2e.mean, level.e2e.p95, level.reqPerS, level.outputTokPerS, notes]);
        cells.push({ mode, regime, concurrency, level, cached, prompt });
      }
    }
  }
  writeFileSync(join(ctx.out, 'prefix_caching_results.csv'), toCsv(PREFIX_CSV_HEADER, rows));
  const interpretation: string[] = [];
  for (const regime of regimes) {
    for (const concurrency of levels) {
      const c = cells.find((x) => x.mode === 'cache' && x.regime === regime && x.concurrency === concurrency)!;
      const n = cells.find((x) => x.mode === 'no_cache' && x.regime === regime && x.concurrency === concurrency)!;
      const saved = 1 - (c.level.ttft.mean ?? 0) / (n.level.ttft.mean ?? 1);
      const predicted = predictedSavedFraction(c.cached || regime, Math.max(1, c.prompt - c.cached) || suffixTokens);
      const tp = (c.level.outputTokPerS - n.level.outputTokPerS) / Math.max(1e-9, n.level.outputTokPerS);
      const verdict = saved > 0.05 ? (tp > 0.05 ? 'TTFT ↓ and tok/s ↑ → a true capacity lever' : 'TTFT ↓ but tok/s flat → mostly a UX win') : 'no TTFT gain: check the prefix is identical, long enough, and caching is on';
      interpretation.push(`- P=${regime}, concurrency ${concurrency}: mean TTFT ${fmtS(n.level.ttft.mean)} → ${fmtS(c.level.ttft.mean)}, saved ${(saved * 100).toFixed(0)} % vs predicted P/(P+S) = ${(predicted * 100).toFixed(0)} %; tok/s ${tp >= 0 ? '+' : ''}${(tp * 100).toFixed(0)} %: ${verdict}.`);
    }
  }
  const md = ['# Prefix caching on vs off (Tier 2)', '', environmentMarkdown(ctx.env), `Requests per cell: ${requests}; suffix ≈ ${suffixTokens} tokens; max_tokens ${maxTokens}.`, '', markdownTable(PREFIX_CSV_HEADER, rows), '## Interpretation', '', ...interpretation, ''].join('\n');
  writeFileSync(join(ctx.out, 'prefix_caching_results.md'), md);
  return { experiment: 'prefix', target: ctx.target.client.baseUrl, model: ctx.target.model, rows: rows.map((r) => Object.fromEntries(PREFIX_CSV_HEADER.map((h, i) => [h, r[i] ?? null]))), interpretation };
}

export const SWEEP_CSV_HEADER = ['concurrency', 'requests', 'errors', 'req_s', 'output_tok_s', 'mean_ttft_s', 'p50_ttft_s', 'p95_ttft_s', 'p99_ttft_s', 'mean_e2e_s', 'p50_e2e_s', 'p95_e2e_s', 'p99_e2e_s'];

async function benchSweep(ctx: Ctx) {
  const { values } = ctx;
  const levels = intList('concurrency', values.concurrency, [1, 2, 4, 8, 16, 32, 64]);
  const durationS = secondsOpt('duration', values.duration, 30);
  const warmupS = secondsOpt('warmup', values.warmup, 2);
  const words = intOpt('input-words', values['input-words'], 128);
  const maxTokens = intOpt('max-tokens', values['max-tokens'], 64);
  const results: LevelResult[] = [];
  for (const concurrency of levels) {
    const records = await runLoad(ctx.target, {
      concurrency,
      durationMs: (durationS + warmupS) * 1000,
      body: (i) => ({ prompt: fillerPrompt(words, i), max_tokens: maxTokens, ignore_eos: true }),
      timeoutMs: ctx.timeoutMs,
      signal: ctx.io.signal,
      onProgress: (n) => ctx.progress.update(`sweep concurrency ${concurrency}: ${n} requests`),
    });
    const level = summariseLevel(concurrency, records, warmupS * 1000);
    results.push(level);
    ctx.progress.line(`concurrency ${concurrency}: ${level.reqPerS.toFixed(2)} req/s, ${level.outputTokPerS.toFixed(1)} tok/s, p95 TTFT ${fmtS(level.ttft.p95)}, ${level.errors} errors`);
  }
  const knee = findKnee(results);
  const rows = results.map((l) => [l.concurrency, l.requests, l.errors, l.reqPerS, l.outputTokPerS, l.ttft.mean, l.ttft.p50, l.ttft.p95, l.ttft.p99, l.e2e.mean, l.e2e.p50, l.e2e.p95, l.e2e.p99]);
  writeFileSync(join(ctx.out, 'concurrency_sweep.csv'), toCsv(SWEEP_CSV_HEADER, rows));
  writeFileSync(join(ctx.out, 'concurrency_sweep.svg'), sweepSvg(results, knee));
  const md = [
    '# Concurrency sweep (closed loop)',
    '',
    environmentMarkdown(ctx.env),
    `Each level: ${durationS} s measured after ${warmupS} s warm-up (excluded); prompt ≈ ${words} words, max_tokens ${maxTokens} with ignore_eos.`,
    '',
    markdownTable(SWEEP_CSV_HEADER, rows),
    knee ? `**Knee at concurrency ${knee.concurrency}**: ${knee.reason}.` : '**No knee in range**: throughput still rises at the highest level, or latency does not climb after the plateau; extend --concurrency.',
    '',
    '![throughput and p95 TTFT against concurrency](concurrency_sweep.svg)',
    '',
  ].join('\n');
  writeFileSync(join(ctx.out, 'concurrency_sweep.md'), md);
  return { experiment: 'sweep', target: ctx.target.client.baseUrl, model: ctx.target.model, levels: results, knee: knee ?? null };
}

/** KV bytes per token from the model shape: K and V, per layer, per KV head. */
export function kvBytesPerToken(shape: { layers: number; kvHeads: number; headDim: number; dtypeBytes: number }): number {
  return 2 * shape.layers * shape.kvHeads * shape.headDim * shape.dtypeBytes;
}

/** Sequences of `context` tokens that fit in `capacity` tokens, block-rounded like vLLM. */
export function sequencesThatFit(capacityTokens: number, context: number, blockSize: number): number {
  const perSeq = Math.ceil(context / blockSize) * blockSize;
  return Math.floor(capacityTokens / perSeq);
}

async function benchKv(ctx: Ctx) {
  const { values, env } = ctx;
  if (env.kv_cache_capacity_tokens === null || env.block_size === null) {
    throw new Error(`${ctx.target.client.baseUrl}/metrics has no usable vllm:cache_config_info (num_gpu_blocks × block_size); is this vLLM ≥ 0.9?`);
  }
  const shapeGiven = values.layers && values['kv-heads'] && values['head-dim'];
  const bytesPerToken = shapeGiven
    ? kvBytesPerToken({ layers: intOpt('layers', values.layers, 1), kvHeads: intOpt('kv-heads', values['kv-heads'], 1), headDim: intOpt('head-dim', values['head-dim'], 1), dtypeBytes: intOpt('dtype-bytes', values['dtype-bytes'], 2) })
    : env.kv_cache_memory_bytes !== null
      ? env.kv_cache_memory_bytes / env.kv_cache_capacity_tokens
      : null;
  const source = shapeGiven ? '2 × layers × kv_heads × head_dim × dtype_bytes (from flags)' : env.kv_cache_memory_bytes !== null ? 'kv_cache_memory_bytes / capacity tokens (vllm:cache_config_info)' : 'unknown: pass --layers --kv-heads --head-dim [--dtype-bytes]';
  const maxLen = env.max_model_len ?? 0;
  const contexts = [...new Set([1024, 2048, 4096, 8192, 16384, 32768, maxLen].filter((c) => c > 0 && (maxLen === 0 || c <= maxLen)))].sort((a, b) => a - b);
  const want = intOpt('want-concurrency', values['want-concurrency'], 8);
  const wantCtx = intOpt('context', values.context, 4096);
  const rows = contexts.map((c) => {
    const fit = sequencesThatFit(env.kv_cache_capacity_tokens!, c, env.block_size!);
    return [c, fit, bytesPerToken === null ? null : (Math.ceil(c / env.block_size!) * env.block_size! * bytesPerToken) / 2 ** 20];
  });
  const fitWanted = sequencesThatFit(env.kv_cache_capacity_tokens, wantCtx, env.block_size);
  const answer = `Room for ${want} concurrent ${wantCtx}-token sequences? ${fitWanted >= want ? 'Yes' : 'No'}: ${fitWanted} fit in ${env.kv_cache_capacity_tokens} KV tokens${wantCtx > maxLen && maxLen ? ` (but max_model_len is ${maxLen}: raise it to ${wantCtx})` : ''}.${fitWanted < want ? ` Need ${want * Math.ceil(wantCtx / env.block_size) * env.block_size} tokens: ${bytesPerToken ? `${(((want * Math.ceil(wantCtx / env.block_size) * env.block_size - env.kv_cache_capacity_tokens) * bytesPerToken) / 2 ** 30).toFixed(2)} GiB more KV memory, ` : ''}or a smaller context.` : ''}`;
  const header = ['context_tokens', 'max_concurrent_sequences', 'kv_mib_per_sequence'];
  writeFileSync(join(ctx.out, 'kv_capacity.csv'), toCsv(header, rows));
  const md = [
    '# KV-cache capacity',
    '',
    environmentMarkdown(env),
    `- capacity: ${env.kv_cache_capacity_tokens} tokens = ${env.num_gpu_blocks} blocks × ${env.block_size} tokens`,
    `- bytes per KV token: ${bytesPerToken === null ? 'n/a' : bytesPerToken.toFixed(0)} (${source})`,
    `- max_model_len: ${maxLen || 'n/a'} (worst case one sequence may occupy)`,
    '',
    markdownTable(header, rows),
    `**${answer}**`,
    '',
  ].join('\n');
  writeFileSync(join(ctx.out, 'kv_capacity.md'), md);
  return { experiment: 'kv', capacity_tokens: env.kv_cache_capacity_tokens, block_size: env.block_size, bytes_per_token: bytesPerToken, bytes_per_token_source: source, max_model_len: maxLen || null, table: rows.map((r) => ({ context_tokens: r[0], max_concurrent_sequences: r[1], kv_mib_per_sequence: r[2] })), answer };
}
