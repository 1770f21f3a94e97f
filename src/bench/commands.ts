/**
 * `vllm-probe bench …`: the one-off experiments as commands. Each writes its files (CSV,
 * markdown with the environment snapshot on top, an SVG chart, and `<experiment>.summary.json`)
 * into --out DIR and prints a short summary (or the JSON with --json). A run that cannot
 * produce a result (target down, requests failing) writes nothing and exits 1 with the reason.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchTarget, Progress, RunFiles, runCommand, sequencesThatFit, waitForRestart, type BenchIo } from './common.js';
import { BENCH_HELP, BENCH_OPTIONS, BenchRunError, BenchUsageError, EXPERIMENT_HELP, intList, intOpt, secondsOpt, type Values } from './options.js';
import { readBenchGpus } from '../gpu/command.js';
import { serverPidFor } from '../host/proc.js';
import { calibratePrefix } from '../vllm/calibration.js';
import { mean, summarise } from '../stats.js';
import { clientDelayRecord, clientDelayWarnings, coldWarmSummary, findKnee, fmtS, markdownTable, predictedSavedFraction, requestSamples, sloTarget, sloTargetText, summariseLevel, toCsv, type ClientDelayRecord, type LevelResult } from './analysis.js';
import { coldWarmChart, kvChart, prefixChart, sweepChart } from './experiment-charts.js';
import { benchClient, checkModel, metricFamilies, processStart } from './http.js';
import { Redactor } from './redact.js';
import { collectEnvironment, type EnvironmentSnapshot } from '../vllm/environment.js';
import { environmentMarkdown } from './environments.js';
import { describeFailure, fillerPrompt, runLoadChecked, type ClientDelay, type LoadOptions, type LoadResult, type LoadTarget, type RequestRecord } from './load.js';

// The helpers the tests and the other experiments use, from where they live.
export { sequencesThatFit, splitCommand, waitForRestart, type BenchIo } from './common.js';

interface Ctx {
  io: BenchIo;
  values: Values;
  target: LoadTarget;
  progress: Progress;
  timeoutMs: number;
  env: EnvironmentSnapshot;
  /** Files of this run, written only once the experiment produced a result. */
  files: RunFiles;
  ttftSloS: number;
  maxFailures: number;
  /** Unique per run: goes into prompts so no request matches one of an earlier run. */
  runId: string;
  redactor: Redactor;
  /** Every cell's load-client delay and first-token times: the run's summary records the worst. */
  delays: Array<{ delay: ClientDelay; ttftS: number[] }>;
}

/** The client for --target and the model it measures, checked against /v1/models before anything runs. */
async function resolveTarget(values: Values, io: BenchIo): Promise<LoadTarget> {
  const keyEnv = values['api-key-env'] ?? 'VLLM_API_KEY';
  // --concurrency sizes the connection pool (the experiments read it with the same intList).
  const highest = Math.max(...intList('concurrency', values.concurrency, [1]));
  const client = benchClient(benchTarget(values.target), io.env[keyEnv] || undefined, highest);
  const found = await checkModel(client, values.model, keyEnv, AbortSignal.any([io.signal, AbortSignal.timeout(10_000)]));
  if ('reason' in found) {
    await client.close();
    throw new BenchRunError(found.reason);
  }
  return { client, model: found.model };
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

const EXPERIMENTS: Record<string, (ctx: Ctx) => Promise<Record<string, unknown>>> = { 'cold-warm': benchColdWarm, prefix: benchPrefix, sweep: benchSweep, kv: benchKv };

export async function runBench(argv: string[], io: BenchIo): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: BENCH_OPTIONS, allowPositionals: true, strict: true });
  const redactor = new Redactor(io.env, values['api-key-env'] ?? 'VLLM_API_KEY');
  try {
    return await dispatch(values, positionals, { ...io, stdout: (t) => io.stdout(redactor.text(t)), stderr: (t) => io.stderr(redactor.text(t)) }, redactor);
  } catch (err) {
    // A message may quote a command line or a URL with credentials (--restart-cmd's stderr).
    if (err instanceof Error) err.message = redactor.text(err.message);
    throw err;
  }
}

async function dispatch(values: Values, positionals: string[], io: BenchIo, redactor: Redactor): Promise<number> {
  const experiment = positionals[0];
  if (!experiment) {
    // Asked for, the help is the answer (stdout); without an experiment it is a usage error (stderr).
    if (values.help) return io.stdout(BENCH_HELP), 0;
    io.stderr(BENCH_HELP);
    return 2;
  }
  const standalone: Record<string, (values: Values, io: BenchIo, positionals: string[]) => Promise<number>> = {
    'kv-scaling': (await import('./kv-scaling.js')).benchKvScaling,
    report: (await import('./report.js')).benchReport,
    compare: (await import('./compare.js')).benchCompare,
  };
  const run = EXPERIMENTS[experiment];
  if (!run && !standalone[experiment]) throw new BenchUsageError(`unknown experiment "${experiment}" (known: ${[...Object.keys(EXPERIMENTS), ...Object.keys(standalone)].join(', ')})`);
  if (values.help) {
    io.stdout(EXPERIMENT_HELP[experiment] ?? BENCH_HELP);
    return 0;
  }
  if (standalone[experiment]) return standalone[experiment]!(values, io, positionals.slice(1));
  const out = values.out ?? join('bench-out', `${experiment}-${stamp()}`);
  const target = await resolveTarget(values, io);
  try {
    return await runExperiment(experiment, run!, target, out, values, io, redactor);
  } finally {
    await target.client.close();
  }
}

async function runExperiment(experiment: string, run: (ctx: Ctx) => Promise<Record<string, unknown>>, target: LoadTarget, out: string, values: Values, io: BenchIo, redactor: Redactor): Promise<number> {
  const pid = serverPidFor(target.client.baseUrl);
  const signal = AbortSignal.any([io.signal, AbortSignal.timeout(15_000)]);
  const env = await collectEnvironment(target.client, { ...(pid ? { pid } : {}), gpu: async () => (await readBenchGpus(values['gpu-cmd'])).identity, signal });
  const families = await metricFamilies(target.client, signal);
  const ctx: Ctx = {
    io,
    values,
    target,
    progress: new Progress(io, io.isTTY ?? false, redactor),
    timeoutMs: Math.round(secondsOpt('timeout', values.timeout, 120) * 1000),
    env,
    files: new RunFiles(out, experiment, redactor),
    ttftSloS: secondsOpt('ttft-slo', values['ttft-slo'], 0.5),
    maxFailures: intOpt('max-failures', values['max-failures'], 5),
    runId: randomUUID().slice(0, 8),
    redactor,
    delays: [],
  };
  const result = await run(ctx);
  // Every experiment records its load client's own event-loop delay (sweep also per level).
  const clientDelay = runClientDelay(ctx.delays);
  const summary = { experiment, target: target.client.baseUrl, model: target.model, collected_at: env.collected_at, ...result, ...(clientDelay ? { client_delay: clientDelay } : {}), environment: env, metric_families: families };
  // The sweep marks each level in its own markdown; the other experiments warn here.
  if (clientDelay && experiment !== 'sweep') for (const warning of clientDelayWarnings([{ label: 'this run', clientDelay }])) io.stderr(`vllm-probe bench ${experiment}: ${warning}\n`);
  ctx.files.add(`${experiment}.environment.json`, `${JSON.stringify(env, null, 2)}\n`);
  const file = ctx.files.commit(summary);
  if (values.json) io.stdout(`${JSON.stringify(summary, null, 2)}\n`);
  else io.stdout(`wrote ${out}/ (summary ${file})\n`);
  return 0;
}


/**
 * Runs one cell of an experiment. Throws BenchRunError (no result is written) when the load
 * stopped on consecutive failures or when not one request succeeded; `where` names the cell.
 */
async function cell(ctx: Ctx, target: LoadTarget, opts: Omit<LoadOptions, 'timeoutMs' | 'signal' | 'maxConsecutiveFailures'>, where: string): Promise<Omit<LoadResult, 'stopped'>> {
  const { records, stopped, clientDelay } = await runLoadChecked(target, { ...opts, timeoutMs: ctx.timeoutMs, signal: ctx.io.signal, maxConsecutiveFailures: ctx.maxFailures });
  ctx.delays.push({ delay: clientDelay, ttftS: records.flatMap((r) => (r.outcome === 'success' && r.ttft !== undefined ? [r.ttft] : [])) });
  if (ctx.io.signal.aborted) throw new BenchRunError('interrupted');
  if (stopped) throw new BenchRunError(`${where}: stopped after ${stopped.failures} failed requests in a row: ${stopped.reason}`);
  const failed = records.filter((r) => r.outcome !== 'success');
  if (records.length > 0 && failed.length === records.length) throw new BenchRunError(`${where}: all ${records.length} requests failed: ${describeFailure(failed[failed.length - 1]!)}`);
  return { records, clientDelay };
}

async function one(ctx: Ctx, body: Record<string, unknown>, where: string, target = ctx.target): Promise<RequestRecord> {
  const [r] = (await cell(ctx, target, { concurrency: 1, requests: 1, body: () => body }, where)).records;
  if (!r) throw new BenchRunError('interrupted');
  return r;
}

/** How a cell with failures is reported instead of a conclusion. */
function withheld(level: { requests: number; errors: number }, records: RequestRecord[]): string {
  const first = records.find((r) => r.outcome !== 'success');
  return `no conclusion: ${level.errors} of ${level.requests + level.errors} requests failed${first ? ` (${describeFailure(first)})` : ''}`;
}

async function benchColdWarm(ctx: Ctx) {
  const { values, target, io } = ctx;
  const runs = intOpt('runs', values.runs, 5);
  const maxTokens = intOpt('max-tokens', values['max-tokens'], 64);
  const restartTimeout = secondsOpt('restart-timeout', values['restart-timeout'], 600) * 1000;
  const body = { prompt: 'Say hello from a small language model.', max_tokens: maxTokens, ignore_eos: true };
  // Before restarting anything, make sure a request works at all: a wrong model or key would
  // otherwise surface only after a restart the user waited for.
  await one(ctx, body, 'cold-warm: a request before the restart');
  const before = await processStart(target.client, io.signal);
  if (values['restart-cmd']) {
    ctx.progress.line(`restarting vLLM: ${values['restart-cmd']}`);
    const r = await runCommand(values['restart-cmd'], io.signal, restartTimeout);
    if (r.code !== 0) throw new BenchRunError(`--restart-cmd exited ${r.code}: ${oneLine(r.stderr)}`);
  } else {
    ctx.progress.line(`Restart vLLM at ${target.client.baseUrl} now; waiting up to ${restartTimeout / 1000} s for it to come back…`);
  }
  await waitForRestart(target.client, before, io.signal, restartTimeout, (s) => ctx.progress.update(s));
  ctx.progress.line('vLLM is back: sending the cold request');
  const cold = await one(ctx, body, 'cold-warm: the cold request');
  const warm1 = await one(ctx, body, 'cold-warm: warm_1');
  const steady: RequestRecord[] = [];
  ctx.progress.begin(); // the ETA is the steady requests' pace, not the restart's
  for (let i = 0; i < runs; i++) {
    steady.push(await one(ctx, body, `cold-warm: warm_${i + 2}`));
    ctx.progress.cell(i + 1, runs, `warm_${i + 2}: TTFT ${fmtS(steady[i]!.ttft)}`);
  }
  const all = [cold, warm1, ...steady];
  const failed = all.filter((r) => r.outcome !== 'success');
  if (failed.length) throw new BenchRunError(`cold-warm: ${failed.length} of ${all.length} requests failed: ${describeFailure(failed[0]!)}`);
  const e2e = coldWarmSummary(cold.e2e, warm1.e2e, steady.map((r) => r.e2e));
  const ttft = coldWarmSummary(cold.ttft!, warm1.ttft!, steady.map((r) => r.ttft!));
  const rows = [
    ['cold_1', cold.ttft, cold.e2e, cold.promptTokens, cold.outputTokens, 'first request after server start'],
    ['warm_1', warm1.ttft, warm1.e2e, warm1.promptTokens, warm1.outputTokens, 'immediate second request'],
    ...steady.map((r, i) => [`warm_${i + 2}`, r.ttft, r.e2e, r.promptTokens, r.outputTokens, 'steady state']),
  ] as Array<Array<string | number | undefined>>;
  const header = ['run', 'ttft_s', 'e2e_s', 'prompt_tokens', 'completion_tokens', 'notes'];
  ctx.files.add('cold_warm.csv', toCsv(header, rows));
  const procedure = values['restart-cmd'] ? `restart by \`${values['restart-cmd']}\`` : 'restart by hand';
  const summary = { ttft, e2e, ttft_slo_s: ctx.ttftSloS, procedure, max_tokens: maxTokens, runs: rows.map((r) => ({ run: r[0] as string, ttft_s: r[1] as number, e2e_s: r[2] as number })) };
  const svg = ctx.files.add('cold_warm.svg', coldWarmChart(summary)!);
  const summaryRows = [
    ['TTFT', ttft.cold, ttft.warm1, ttft.min, ttft.median, ttft.max, `${ttft.spreadPct.toFixed(1)} %`, `${ttft.coldWarmFactor.toFixed(2)}x`],
    ['E2E (wall_s)', e2e.cold, e2e.warm1, e2e.min, e2e.median, e2e.max, `${e2e.spreadPct.toFixed(1)} %`, `${e2e.coldWarmFactor.toFixed(2)}x`],
  ];
  const md = [
    '# Cold vs warm TTFT after a restart',
    '',
    environmentMarkdown(ctx.env),
    `Procedure: ${procedure}, one cold request, one warm, then ${runs} warm (max_tokens ${maxTokens}, ignore_eos, temperature 0, streaming).`,
    '',
    markdownTable(header, rows),
    '## Summary (min, median, max and spread over the steady-state runs after warm_1)',
    '',
    markdownTable(['metric', 'cold_1', 'warm_1', 'min', 'median', 'max', 'spread', 'cold/warm'], summaryRows),
    `Cold TTFT is ${ttft.coldWarmFactor.toFixed(1)}× the warm median: the first request after start pays one-time costs (page cache, weight transfer to the device, runtime warm-up, first KV/workspace allocation). See docs/runbook.md for the diagnosis table.`,
    '',
    `![TTFT per request after the restart](${svg})`,
    '',
  ].join('\n');
  ctx.files.add('cold_warm.md', md);
  return summary;
}

/** The canonical CSV header of the prefix-caching experiment. */
export const PREFIX_CSV_HEADER = ['mode', 'prefix_regime', 'concurrency', 'mean_ttft_s', 'p95_ttft_s', 'mean_e2e_s', 'p95_e2e_s', 'req_s', 'tok_s', 'notes'];

async function calibratedPrefix(ctx: Ctx, target: number): Promise<{ text: string; tokens: number; calibrated: boolean }> {
  const { text, tokens, estimate } = await calibratePrefix(ctx.target.client, ctx.target.model, target, ctx.io.signal, 4);
  return { text, tokens: tokens ?? estimate, calibrated: tokens !== undefined };
}

async function benchPrefix(ctx: Ctx) {
  const baseline = ctx.values.baseline === undefined ? undefined : benchTarget(ctx.values.baseline, '--baseline');
  const keyEnv = ctx.values['api-key-env'] ?? 'VLLM_API_KEY';
  const baselineTarget = baseline ? { client: benchClient(baseline, ctx.io.env[keyEnv] || undefined), model: ctx.target.model } : undefined;
  try {
    if (baselineTarget) {
      const found = await checkModel(baselineTarget.client, ctx.target.model, keyEnv, AbortSignal.any([ctx.io.signal, AbortSignal.timeout(10_000)]), '--baseline: model');
      if ('reason' in found) throw new BenchRunError(found.reason);
    }
    return await prefixCells(ctx, baselineTarget);
  } finally {
    await baselineTarget?.client.close();
  }
}

async function prefixCells(ctx: Ctx, baselineTarget: LoadTarget | undefined) {
  const { values } = ctx;
  const baseline = baselineTarget?.client.baseUrl;
  const regimes = intList('regimes', values.regimes, [512, 1024, 2048]);
  const levels = intList('concurrency', values.concurrency, [1, 8, 16]);
  const requests = intOpt('requests', values.requests, 32);
  const suffixTokens = intOpt('suffix-tokens', values['suffix-tokens'], 32);
  const maxTokens = intOpt('max-tokens', values['max-tokens'], 32);
  // Every request of a regime longer than the context would fail with HTTP 400: say so first.
  const maxLen = ctx.env.max_model_len;
  const tooLong = maxLen === null ? [] : regimes.filter((r) => r + suffixTokens + maxTokens > maxLen);
  if (tooLong.length) throw new BenchUsageError(`--regimes: ${tooLong.join(', ')} plus the suffix (${suffixTokens}) and --max-tokens (${maxTokens}) do not fit in this server's max_model_len ${maxLen}`);
  const rows: Array<Array<string | number | undefined>> = [];
  const cells: Array<{ mode: string; regime: number; concurrency: number; level: LevelResult; cached: number; prompt: number; records: RequestRecord[] }> = [];
  let saltOk: boolean | undefined;
  // Every request gets its own suffix (a counter over the whole run plus the run id), so only
  // the shared prefix can come from the cache: identical suffixes would be cached too and
  // report more cached tokens than the prefix has.
  let serial = 0;
  const suffix = () => {
    const n = serial++;
    return ` Question ${ctx.runId}-${n}: ${fillerPrompt(Math.max(2, Math.round(suffixTokens / 1.3)), n).replace(/^Request \S+ /, '')}?`;
  };
  const total = regimes.length * levels.length * 2;
  let done = 0;
  ctx.progress.begin();
  for (const regime of regimes) {
    const prefix = await calibratedPrefix(ctx, regime);
    for (const concurrency of levels) {
      for (const mode of ['no_cache', 'cache'] as const) {
        const target = mode === 'no_cache' && baselineTarget ? baselineTarget : ctx.target;
        const where = `prefix P=${regime} concurrency ${concurrency} ${mode}`;
        // Forced misses: cache_salt if accepted, else a nonce at the very start of the prompt.
        if (mode === 'no_cache' && !baseline && saltOk === undefined) {
          const { records } = await runLoadChecked(target, { concurrency: 1, requests: 1, body: () => ({ prompt: prefix.text + suffix(), max_tokens: 1, cache_salt: randomUUID() }), timeoutMs: ctx.timeoutMs, signal: ctx.io.signal, maxConsecutiveFailures: 1 });
          saltOk = records[0]?.outcome === 'success';
        }
        const body = (): Record<string, unknown> => {
          const base = { max_tokens: maxTokens, ignore_eos: true };
          if (mode === 'cache' || baseline) return { ...base, prompt: prefix.text + suffix() };
          return saltOk ? { ...base, prompt: prefix.text + suffix(), cache_salt: randomUUID() } : { ...base, prompt: `[${randomUUID()}] ${prefix.text}${suffix()}` };
        };
        if (mode === 'cache') await one(ctx, { prompt: prefix.text + suffix(), max_tokens: 1 }, `${where}: warming the shared prefix`, target);
        const { records } = await cell(ctx, target, { concurrency, requests, body, onProgress: (n) => ctx.progress.update(`${where}: ${n}/${requests}`) }, where);
        const level = summariseLevel(concurrency, records);
        const ok = records.filter((r) => r.outcome === 'success');
        const cached = ok.reduce((a, r) => a + (r.cachedTokens ?? 0), 0) / Math.max(1, ok.length);
        const prompt = ok.reduce((a, r) => a + (r.promptTokens ?? 0), 0) / Math.max(1, ok.length);
        const how = mode === 'cache' ? 'shared prefix, same server' : baseline ? `baseline server ${baseline} (prefix caching off)` : saltOk ? 'forced misses via cache_salt, same server' : 'forced misses via leading nonce, same server';
        const notes = `${how}; P=${prefix.tokens}${prefix.calibrated ? '' : ' (estimated)'}; mean cached ${cached.toFixed(0)}/${prompt.toFixed(0)} prompt tokens${level.errors ? `; ${level.errors} errors` : ''}`;
        rows.push([mode, regime, concurrency, level.ttft.mean, level.ttft.p95, level.e2e.mean, level.e2e.p95, level.reqPerS, level.outputTokPerS, notes]);
        cells.push({ mode, regime, concurrency, level, cached, prompt, records });
        ctx.progress.cell(++done, total, `${where}: mean TTFT ${fmtS(level.ttft.mean)}, cached ${cached.toFixed(0)}/${prompt.toFixed(0)} tokens${level.errors ? `, ${level.errors} errors` : ''}`);
      }
    }
  }
  ctx.files.add('prefix_caching_results.csv', toCsv(PREFIX_CSV_HEADER, rows));
  const interpretation: string[] = [];
  for (const regime of regimes) {
    for (const concurrency of levels) {
      const c = cells.find((x) => x.mode === 'cache' && x.regime === regime && x.concurrency === concurrency)!;
      const n = cells.find((x) => x.mode === 'no_cache' && x.regime === regime && x.concurrency === concurrency)!;
      const head = `- P=${regime}, concurrency ${concurrency}`;
      const bad = [c, n].find((x) => x.level.errors > 0);
      if (bad) {
        interpretation.push(`${head}: ${withheld(bad.level, bad.records)} in the ${bad.mode.replace('_', ' ')} cell.`);
        continue;
      }
      const saved = 1 - c.level.ttft.mean! / n.level.ttft.mean!;
      const predicted = predictedSavedFraction(c.cached || regime, Math.max(1, c.prompt - c.cached) || suffixTokens);
      const tp = (c.level.outputTokPerS - n.level.outputTokPerS) / Math.max(1e-9, n.level.outputTokPerS);
      const verdict = saved > 0.05 ? (tp > 0.05 ? 'TTFT ↓ and tok/s ↑ → a true capacity lever' : 'TTFT ↓ but tok/s flat → mostly a UX win') : 'no TTFT gain: check the prefix is identical, long enough, and caching is on';
      interpretation.push(`${head}: mean TTFT ${fmtS(n.level.ttft.mean)} → ${fmtS(c.level.ttft.mean)}, saved ${(saved * 100).toFixed(0)} % vs predicted P/(P+S) = ${(predicted * 100).toFixed(0)} %; tok/s ${tp >= 0 ? '+' : ''}${(tp * 100).toFixed(0)} %: ${verdict}.`);
    }
  }
  const summaryRows = rows.map((r, i) => ({ ...Object.fromEntries(PREFIX_CSV_HEADER.map((h, j) => [h, r[j] ?? null])), errors: cells[i]!.level.errors, mean_cached_tokens: cells[i]!.cached, mean_prompt_tokens: cells[i]!.prompt }));
  const chart = prefixChart({ rows: summaryRows, ttft_slo_s: ctx.ttftSloS });
  const svg = chart ? ctx.files.add('prefix_caching_results.svg', chart) : undefined;
  const md = [
    '# Prefix caching on vs off',
    '',
    environmentMarkdown(ctx.env),
    `Requests per cell: ${requests}, each with its own suffix of ≈ ${suffixTokens} tokens; max_tokens ${maxTokens}.`,
    '',
    markdownTable(PREFIX_CSV_HEADER, rows),
    '## Interpretation',
    '',
    ...interpretation,
    '',
    ...(svg ? [`![mean TTFT by prefix size, cache vs no cache](${svg})`, ''] : []),
  ].join('\n');
  ctx.files.add('prefix_caching_results.md', md);
  const samples = cells.map((c) => ({ mode: c.mode, prefix_regime: c.regime, concurrency: c.concurrency, ...requestSamples(c.records) }));
  return { ttft_slo_s: ctx.ttftSloS, requests_per_cell: requests, suffix_tokens: suffixTokens, max_tokens: maxTokens, rows: summaryRows, interpretation, samples };
}

export const SWEEP_CSV_HEADER = ['concurrency', 'requests', 'errors', 'req_s', 'output_tok_s', 'mean_ttft_s', 'p50_ttft_s', 'p95_ttft_s', 'p99_ttft_s', 'mean_e2e_s', 'p50_e2e_s', 'p95_e2e_s', 'p99_e2e_s'];

/**
 * How many filler words make a prompt of about `tokens` tokens on this server: measured with
 * /tokenize (up to three corrections), else estimated at 1.3 tokens per word.
 */
async function wordsForTokens(ctx: Ctx, tokens: number): Promise<{ words: number; measured: number | undefined }> {
  let words = Math.max(2, Math.round(tokens / 1.3));
  let measured: number | undefined;
  for (let i = 0; i < 4; i++) {
    measured = await ctx.target.client.tokenize(ctx.target.model, fillerPrompt(words, 0, ctx.runId), ctx.io.signal);
    if (measured === undefined || Math.abs(measured - tokens) <= Math.max(2, tokens * 0.02)) break;
    words = Math.max(2, Math.round((words * tokens) / measured));
  }
  return { words, measured };
}

async function benchSweep(ctx: Ctx) {
  const { values } = ctx;
  const levels = intList('concurrency', values.concurrency, [1, 2, 4, 8, 16, 32, 64]);
  if (values.requests !== undefined && values.duration !== undefined) throw new BenchUsageError('--requests and --duration: pick one (a request count or a time per level)');
  const perLevelRequests = values.requests === undefined ? undefined : intOpt('requests', values.requests, 1);
  const durationS = secondsOpt('duration', values.duration, 30);
  const warmupS = perLevelRequests === undefined ? secondsOpt('warmup', values.warmup, 2) : 0;
  // --input-words is the old spelling (about 1.3 tokens per word); --input-tokens is measured.
  const inputTokens = values['input-words'] !== undefined && values['input-tokens'] === undefined ? Math.round(intOpt('input-words', values['input-words'], 128) * 1.3) : intOpt('input-tokens', values['input-tokens'], 128);
  const maxTokens = intOpt('max-tokens', values['max-tokens'], 64);
  const { words, measured } = await wordsForTokens(ctx, inputTokens);
  const results: LevelResult[] = [];
  const recordsByLevel = new Map<number, RequestRecord[]>();
  let serial = 0;
  ctx.progress.begin();
  for (const [i, concurrency] of levels.entries()) {
    const where = `sweep concurrency ${concurrency}`;
    const { records, clientDelay } = await cell(
      ctx,
      ctx.target,
      {
        concurrency,
        ...(perLevelRequests === undefined ? { durationMs: (durationS + warmupS) * 1000, warmupMs: warmupS * 1000 } : { requests: perLevelRequests }),
        // Unique per request across the whole run: no prompt shares an opening with another.
        body: () => ({ prompt: fillerPrompt(words, serial++, ctx.runId), max_tokens: maxTokens, ignore_eos: true }),
        onProgress: (n) => ctx.progress.update(`${where}: ${n} requests`),
      },
      where,
    );
    const measured = summariseLevel(concurrency, records, warmupS * 1000);
    const level: LevelResult = { ...measured, clientDelay: clientDelayRecord(clientDelay, measured.ttft) };
    results.push(level);
    recordsByLevel.set(concurrency, records);
    ctx.progress.cell(i + 1, levels.length, `concurrency ${concurrency}: ${level.reqPerS.toFixed(2)} req/s, ${level.outputTokPerS.toFixed(1)} tok/s, p95 TTFT ${fmtS(level.ttft.p95)}, ${level.errors} errors`);
  }
  // A knee read off levels with failed requests would describe the survivors, not the server.
  const erroring = results.filter((l) => l.errors > 0);
  const knee = erroring.length ? undefined : findKnee(results);
  const promptTokens = mean(results.flatMap((l) => (recordsByLevel.get(l.concurrency) ?? []).filter((r) => r.outcome === 'success' && r.promptTokens !== undefined).map((r) => r.promptTokens!)));
  const rows = results.map((l) => [l.concurrency, l.requests, l.errors, l.reqPerS, l.outputTokPerS, l.ttft.mean, l.ttft.p50, l.ttft.p95, l.ttft.p99, l.e2e.mean, l.e2e.p50, l.e2e.p95, l.e2e.p99]);
  ctx.files.add('concurrency_sweep.csv', toCsv(SWEEP_CSV_HEADER, rows));
  const samples = results.map((l) => ({ concurrency: l.concurrency, ...requestSamples(recordsByLevel.get(l.concurrency) ?? [], warmupS * 1000) }));
  const summary = { levels: results, knee: knee ?? null, ttft_slo_s: ctx.ttftSloS, max_tokens: maxTokens, samples, input_tokens: inputTokens, input_tokens_measured: measured ?? null, mean_prompt_tokens: promptTokens ?? null, ...(erroring.length ? { conclusion_withheld: erroring.map((l) => `concurrency ${l.concurrency}: ${withheld(l, recordsByLevel.get(l.concurrency)!)}`) } : {}) };
  const chart = sweepChart(summary);
  const svg = chart ? ctx.files.add('concurrency_sweep.svg', chart) : undefined;
  const conclusion = erroring.length
    ? `**No conclusion about the knee**: requests failed at ${erroring.map((l) => `concurrency ${l.concurrency} (${withheld(l, recordsByLevel.get(l.concurrency)!)})`).join('; ')}. Fix the failures and run again.`
    : knee
      ? `**Knee at concurrency ${knee.concurrency}**: ${knee.reason}.`
      : '**No knee in range**: by segmented regression of output tok/s on log2(concurrency), throughput still gains at least a quarter as much per doubling as before (or fewer than three levels succeeded); extend --concurrency.';
  const md = [
    '# Concurrency sweep (closed loop)',
    '',
    environmentMarkdown(ctx.env),
    `Each level: ${perLevelRequests === undefined ? `${durationS} s measured after ${warmupS} s warm-up (excluded)` : `${perLevelRequests} requests`}; prompt ${measured === undefined ? `≈ ${inputTokens} tokens (estimated: no /tokenize)` : `${measured} tokens (measured with /tokenize)`}, each starting differently so none is served from another's prefix cache; max_tokens ${maxTokens} with ignore_eos.`,
    '',
    markdownTable(SWEEP_CSV_HEADER, rows),
    `Client event-loop delay p99 / max (ms): ${results.map((l) => `c=${l.concurrency} ${l.clientDelay!.p99Ms.toFixed(1)} / ${l.clientDelay!.maxMs.toFixed(1)}`).join(', ')}.`,
    '',
    ...clientDelayWarnings(results).flatMap((w) => [w, '']),
    conclusion,
    '',
    ...(erroring.length ? [] : [`**Concurrency target**: ${sloTargetText(sloTarget(results, ctx.ttftSloS), ctx.ttftSloS)}`, '']),
    ...(svg ? [`![throughput and p95 TTFT against concurrency](${svg})`, ''] : []),
  ].join('\n');
  ctx.files.add('concurrency_sweep.md', md);
  return summary;
}

/** KV bytes per token from the model shape: K and V, per layer, per KV head. */
export function kvBytesPerToken(shape: { layers: number; kvHeads: number; headDim: number; dtypeBytes: number }): number {
  return 2 * shape.layers * shape.kvHeads * shape.headDim * shape.dtypeBytes;
}

async function benchKv(ctx: Ctx) {
  const { values, env } = ctx;
  if (env.kv_cache_capacity_tokens === null || env.block_size === null) {
    throw new BenchRunError(`${ctx.target.client.baseUrl}/metrics has no usable vllm:cache_config_info (num_gpu_blocks × block_size); is this vLLM ≥ 0.9?`);
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
  ctx.files.add('kv_capacity.csv', toCsv(header, rows));
  const summary = {
    capacity_tokens: env.kv_cache_capacity_tokens,
    block_size: env.block_size,
    bytes_per_token: bytesPerToken,
    bytes_per_token_source: source,
    max_model_len: maxLen || null,
    want_concurrency: want,
    table: rows.map((r) => ({ context_tokens: r[0] as number, max_concurrent_sequences: r[1] as number, kv_mib_per_sequence: r[2] })),
    answer,
  };
  const chart = kvChart(summary);
  const svg = chart ? ctx.files.add('kv_capacity.svg', chart) : undefined;
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
    ...(svg ? [`![sequences that fit by context length](${svg})`, ''] : []),
  ].join('\n');
  ctx.files.add('kv_capacity.md', md);
  return summary;
}

function oneLine(text: string): string {
  return text.trim().split('\n').map((l) => l.trim()).filter(Boolean).slice(-3).join(' | ');
}

/**
 * The run's worst load-client delay (the longest stall and the highest p99 of any cell) against
 * the median and tail of every first token it measured; undefined when no cell ran.
 */
function runClientDelay(cells: Ctx['delays']): ClientDelayRecord | undefined {
  const timed = cells.filter((c) => c.delay.samples > 0);
  if (timed.length === 0) return undefined;
  const worst: ClientDelay = {
    p50Ms: Math.max(...timed.map((c) => c.delay.p50Ms)),
    p99Ms: Math.max(...timed.map((c) => c.delay.p99Ms)),
    maxMs: Math.max(...timed.map((c) => c.delay.maxMs)),
    samples: timed.reduce((a, c) => a + c.delay.samples, 0),
  };
  // The same figures as a sweep level's (summariseLevel): mean and interpolated percentiles.
  return clientDelayRecord(worst, summarise(cells.flatMap((c) => c.ttftS)));
}
