/**
 * `bench report`: one report over a folder of bench outputs: report.md and a self-contained
 * report.html (charts inline), grouped by the target each run measured, with a first-cut vLLM
 * configuration per target derived from the measurements by rules of thumb.
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { EnvironmentSnapshot } from '../vllm/environment.js';
import { CLIENT_DELAY_MARK, clientDelayWarnings, fmtNum, fmtS, markdownTable, MIN_SAMPLES_P95, sloTarget, sloTargetText, type ClientDelayRecord, type SweepLevel } from './analysis.js';
import { chartForSummary } from './experiment-charts.js';
import { BenchUsageError, intOpt, type Values } from './options.js';
import { KV_SCALING_HEADER, type BenchIo, type KvScalingRow } from './common.js';
import { renderReportHtml } from './report-html.js';
import { environmentView, runContext, type EnvironmentView } from './environments.js';
import { kvPoolKnob } from './kv-scaling.js';
import { Redactor } from './redact.js';

export interface ReportInputs {
  /** The environment of the run the KV figures come from (kv, else kv-scaling). */
  environment?: EnvironmentSnapshot;
  coldWarm?: { ttft: { cold: number; median: number; max?: number; coldWarmFactor: number; spreadPct: number }; e2e: { median: number }; runs?: Array<{ run: string }>; client_delay?: ClientDelayRecord };
  sweep?: { levels: Array<SweepLevel & { reqPerS: number; e2e: { p95?: number }; clientDelay?: ClientDelayRecord }>; knee: { concurrency: number; reason: string } | null; conclusion_withheld?: string[]; ttft_slo_s?: number };
  prefix?: { rows: Array<Record<string, string | number | null>>; client_delay?: ClientDelayRecord };
  kv?: { capacity_tokens: number; block_size: number; max_model_len: number | null; bytes_per_token: number | null };
  kvScaling?: { rows: KvScalingRow[]; bytes_per_token: number | null };
  /** What the team asks for: concurrent sequences of a context length (e.g. 8 × 4K). */
  want: { concurrency: number; context: number };
}

export interface Recommendation {
  topic: string;
  recommendation: string;
  from: string;
}

/** Rules of thumb applied to recorded measurements. Pure; each rule names its source. */
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
        : `${want.concurrency} × ${want.context}-token sequences do not fit: the KV cache holds ${capacity} tokens (${perSeq} per sequence). Either cap --max-model-len at ${perSeq} and accept shorter contexts, lower the wanted concurrency to ${Math.floor(capacity / (Math.ceil(want.context / block) * block))}, or give the KV cache more memory (${kvPoolKnob(inputs.environment)}${inputs.environment?.gpus?.length ? ', a larger GPU, tensor parallelism' : ''}).`,
      from: kv ? 'bench kv (KV capacity from vllm:cache_config_info)' : 'bench kv-scaling',
    });
  }
  const slo = sweep?.ttft_slo_s ?? DEFAULT_TTFT_SLO_S;
  const target = sweep && !sweep.conclusion_withheld?.length ? sloTarget(sweep.levels, slo) : undefined;
  if (sweep) {
    if (sweep.conclusion_withheld?.length) {
      out.push({ topic: 'concurrency target', recommendation: `None: requests failed during the sweep (${sweep.conclusion_withheld.join('; ')}). Fix the failures and sweep again.`, from: 'bench sweep' });
    } else {
      const kneeText = sweep.knee
        ? ` Throughput knee at concurrency ${sweep.knee.concurrency} (${sweep.knee.reason}).`
        : ' No throughput knee in the measured range (segmented regression: throughput still gains at least a quarter as much per doubling as before).';
      const advice =
        target?.kind === 'target'
          ? ` Run at up to ${target.level.concurrency} concurrent requests per replica (client concurrency, or --max-num-seqs ${target.level.concurrency})${target.broken ? '; past it, add replicas' : ''}.`
          : '';
      out.push({
        topic: 'concurrency target',
        recommendation: `${sloTargetText(target!, slo)}${advice}${kneeText}`,
        from: `bench sweep: the highest level with p95 TTFT ≤ the SLO (--ttft-slo ${fmtS(slo)}), from levels with ≥ ${MIN_SAMPLES_P95} requests and no failures; the knee by segmented regression of tok/s on log2(concurrency)`,
      });
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
    // Cells with failed requests say nothing about caching: their means describe the survivors.
    const clean = (r: Record<string, string | number | null> | undefined) => r !== undefined && Number(r.errors ?? 0) === 0;
    const speedups = [...pairs.entries()].filter(([, p]) => clean(p.cache) && clean(p.no_cache)).map(([key, p]) => ({ key, speedup: Number(p.no_cache!.mean_ttft_s) / Number(p.cache!.mean_ttft_s) }));
    const best = speedups.sort((a, b) => b.speedup - a.speedup)[0];
    if (best) {
      const [regime] = best.key.split('/');
      const on = best.speedup >= 1.1;
      out.push({
        topic: 'prefix caching',
        recommendation: on
          ? `Keep prefix caching on (the V1 default): cache hits cut mean TTFT ${best.speedup.toFixed(1)}× at P=${regime} (concurrency ${best.key.split('/')[1]}); the prefill model expects a saved fraction of about P/(P+S) for a shared prefix P and suffix S. Keep shared prefixes byte-identical and at the start of the prompt.`
          : `Prefix caching gave no measurable TTFT gain (best ${best.speedup.toFixed(2)}×): this workload's prefixes are too short or not shared. Caching costs little, so leave it on, but do not count on it for capacity.`,
        from: 'bench prefix (cache vs no_cache rows)',
      });
    }
  }
  out.push(ttftAlert(target, sweep, coldWarm));
  if (coldWarm) {
    out.push({
      topic: 'health check: cold start',
      recommendation: `Expect the first request after a restart to take ${fixed(coldWarm.ttft.coldWarmFactor, 1)}× the warm TTFT (${fmt(coldWarm.ttft.cold)}); pre-warm new replicas before they take traffic, and do not alert on phase="cold" probes.`,
      from: 'bench cold-warm',
    });
  }
  out.push(
    { topic: 'health check: KV cache', recommendation: 'Alert when vllm_probe_engine_kv_cache_usage_ratio stays above 0.95 for 5 min, with requests waiting: queueing and preemptions follow.', from: 'rule of thumb: a full KV cache makes requests queue and preempts running ones' },
    { topic: 'health check: queue', recommendation: `Alert when vllm_probe_engine_requests_waiting > 0 for 5 min${target?.kind === 'target' ? ` (sustained load above ~${target.level.concurrency} concurrent requests per replica)` : ''}.`, from: target?.kind === 'target' ? 'bench sweep: the concurrency target within the TTFT SLO' : 'rule of thumb: a queue that does not drain means too few slots or replicas' },
    { topic: 'health check: GPU memory', recommendation: 'Alert when GPU memory headroom (free / total) stays below 5 % for 5 min beyond what --gpu-memory-utilization reserves.', from: 'rule of thumb: GPU memory headroom on the health dashboard' },
  );
  return out;
}

/** Below this many steady-state requests cold-warm's spread is not judged (min to max of a handful is noise). */
export const MIN_SAMPLES_SPREAD = 10;

/** The daemon's default slo.ttft.threshold, for sweeps recorded without ttft_slo_s. */
const DEFAULT_TTFT_SLO_S = 0.5;
/** The TTFT alert sits this far above the p95 measured as normal. */
export const ALERT_HEADROOM = 1.5;
const NICE_STEPS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 5, 7.5, 10, 20, 40, 80];

/**
 * The TTFT alert threshold: ALERT_HEADROOM × the highest p95 TTFT the sweep measured at or below
 * the concurrency target (what the sweep showed as normal load), rounded up to the next
 * NICE_STEPS value, so it never pages on load the sweep found normal. Without a target (no sweep,
 * too few samples, nothing within the SLO) it says why instead of a number.
 */
function ttftAlert(target: ReturnType<typeof sloTarget> | undefined, sweep: ReportInputs['sweep'], coldWarm: ReportInputs['coldWarm']): Recommendation {
  const topic = 'health check: TTFT';
  if (!sweep) return { topic, recommendation: 'Not enough data: the TTFT alert threshold comes from the p95 under load, and there is no sweep (run bench sweep).', from: 'bench sweep (missing)' };
  if (target?.kind !== 'target') return { topic, recommendation: `No threshold derived: ${target ? sloTargetText(target, sweep.ttft_slo_s ?? DEFAULT_TTFT_SLO_S) : 'requests failed during the sweep.'}`, from: 'bench sweep' };
  const normal = sweep.levels.filter((l) => target.level.concurrency >= l.concurrency && l.errors === 0 && l.requests >= MIN_SAMPLES_P95 && l.ttft.p95 !== undefined);
  const worst = normal.reduce((a, l) => (l.ttft.p95! > a.ttft.p95! ? l : a), target.level);
  const threshold = NICE_STEPS.find((x) => x >= worst.ttft.p95! * ALERT_HEADROOM) ?? Math.ceil(worst.ttft.p95! * ALERT_HEADROOM);
  const slo = sweep.ttft_slo_s ?? DEFAULT_TTFT_SLO_S;
  const notes: string[] = [];
  if (threshold > slo) notes.push(` This is above the TTFT SLO (${fmtS(slo)}): at concurrency ${target.level.concurrency} the SLO leaves less than ${ALERT_HEADROOM}× headroom over the measured p95.`);
  if (coldWarm?.ttft.max !== undefined && coldWarm.ttft.max > threshold) notes.push(` bench cold-warm measured a steady-state TTFT of ${fmtS(coldWarm.ttft.max)} on an idle server, above it: check that run before trusting the threshold.`);
  return {
    topic,
    recommendation: `Alert when probe TTFT p95 over 5 min exceeds ${threshold} s (slo.ttft.threshold: ${threshold}s in the vllm-probe config).${notes.join('')}`,
    from: `bench sweep: ${ALERT_HEADROOM} × the highest p95 TTFT measured at or below the concurrency target (${fmtS(worst.ttft.p95)} at concurrency ${worst.concurrency}) = ${fmtS(worst.ttft.p95! * ALERT_HEADROOM)}, rounded up to the next of ${NICE_STEPS.slice(0, 8).join(', ')} … s`,
  };
}

/** Seconds as text; a missing number (null in a summary, NaN) is n/a, never "0 ms". */
const fmt = (s: number | null | undefined) => fmtS(typeof s === 'number' && Number.isFinite(s) ? s : undefined);
/** toFixed for numbers read from a summary, where another version may have written null. */
const fixed = (v: number | null | undefined, digits: number) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : 'n/a');

/** One bench run found under the report's --in folder. */
export interface BenchRun {
  experiment: string;
  /** The run's summary file, and the folder holding its other files. */
  file: string;
  dir: string;
  target: string;
  collectedAt: string;
  summary: Record<string, unknown> & { experiment: string };
  environment?: EnvironmentSnapshot;
}

const SUMMARY_FILE = /^(?:[a-z-]+(?:-\d+)?\.)?summary\.json$/;

/** An entry of the report's folder that was not read, and why (shown in report.md and on stderr). */
export interface SkippedEntry {
  /** Relative to the folder. */
  path: string;
  why: string;
}

/**
 * What the report reads of each experiment's summary, checked before it is used: a summary of
 * another version's shape once stopped the whole report ("sweep.levels is not iterable").
 */
const SHAPES: Record<string, (s: Record<string, unknown>) => string | undefined> = {
  sweep: (s) => (Array.isArray(s.levels) && s.levels.every((l) => l && typeof l === 'object' && (l as { ttft?: unknown }).ttft && typeof (l as { ttft?: unknown }).ttft === 'object') ? undefined : 'sweep.levels is not a list of levels'),
  prefix: (s) => (Array.isArray(s.rows) ? undefined : 'prefix.rows is not a list'),
  'cold-warm': (s) => (s.ttft && typeof s.ttft === 'object' && (s.runs === undefined || Array.isArray(s.runs)) ? undefined : 'cold-warm.ttft is not an object or runs is not a list'),
  kv: (s) => (s.table === undefined || Array.isArray(s.table) ? undefined : 'kv.table is not a list'),
  'kv-scaling': (s) => (Array.isArray(s.rows) ? undefined : 'kv-scaling.rows is not a list'),
};

const errCode = (err: unknown) => (err as NodeJS.ErrnoException).code ?? (err as Error).message;

/**
 * Every bench run under DIR (any depth): `<experiment>[-N].summary.json`, and the single
 * `summary.json` older versions wrote. Sorted by collection time; each names its target (from
 * the summary, else the environment snapshot next to it). Links are followed only within DIR
 * and to each place once; what cannot be read is added to `skipped` with why, never thrown.
 */
export function findRuns(dir: string, skipped: SkippedEntry[] = []): BenchRun[] {
  const runs: BenchRun[] = [];
  const root = realpathSync(dir);
  const seen = new Set<string>([root]);
  const skip = (p: string, why: string) => skipped.push({ path: relative(dir, p) || p, why });
  const environmentIn = (d: string): EnvironmentSnapshot | undefined => {
    const envFile = join(d, 'environment.json'); // written next to summary.json before per-run summaries
    if (!existsSync(envFile)) return undefined;
    try {
      return JSON.parse(readFileSync(envFile, 'utf8')) as EnvironmentSnapshot;
    } catch {
      if (!skipped.some((e) => e.path === relative(dir, envFile))) skip(envFile, 'not valid JSON (half-written?); the runs next to it are reported without their environment');
      return undefined;
    }
  };
  const readRun = (d: string, p: string) => {
    let summary: BenchRun['summary'];
    try {
      summary = JSON.parse(readFileSync(p, 'utf8')) as BenchRun['summary'];
    } catch (err) {
      return skip(p, err instanceof SyntaxError ? 'not valid JSON (half-written?)' : `unreadable (${errCode(err)})`);
    }
    if (!summary || typeof summary !== 'object' || typeof summary.experiment !== 'string') return skip(p, 'not a bench summary (no "experiment")');
    const shape = SHAPES[summary.experiment]?.(summary);
    if (shape) return skip(p, `another version's summary shape: ${shape}`);
    const environment = (summary.environment as EnvironmentSnapshot | undefined) ?? environmentIn(d);
    const target = (typeof summary.target === 'string' && summary.target) || environment?.target || 'unknown target';
    const collectedAt = (typeof summary.collected_at === 'string' && summary.collected_at) || environment?.collected_at || statSync(p).mtime.toISOString();
    runs.push({ experiment: summary.experiment, file: p, dir: d, target, collectedAt, summary, ...(environment ? { environment } : {}) });
  };
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch (err) {
      return skip(d, `unreadable folder (${errCode(err)})`);
    }
    for (const name of names) {
      const p = join(d, name);
      let real: string;
      let isDir: boolean;
      try {
        const link = lstatSync(p).isSymbolicLink();
        if (link || lstatSync(p).isDirectory() || SUMMARY_FILE.test(name)) {
          real = realpathSync(p);
          isDir = statSync(real).isDirectory();
        } else continue;
        if (link && real !== root && !real.startsWith(root + sep)) {
          skip(p, `a link out of the folder (to ${real})`);
          continue;
        }
      } catch (err) {
        const code = errCode(err);
        skip(p, code === 'ENOENT' ? 'a link to nothing (ENOENT)' : code === 'ELOOP' ? 'a link that loops (ELOOP)' : `unreadable (${code})`);
        continue;
      }
      if (seen.has(real)) {
        skip(p, `a link to a ${isDir ? 'folder' : 'file'} already read (${relative(root, real) || '.'})`);
        continue;
      }
      seen.add(real);
      if (isDir) walk(p);
      else if (SUMMARY_FILE.test(name)) readRun(d, p);
    }
  };
  walk(dir);
  return runs.sort((a, b) => a.collectedAt.localeCompare(b.collectedAt));
}

/** The runs against one target, and what the report derives from them. */
export interface TargetSection {
  target: string;
  runs: BenchRun[];
  /** Each run keeps its own environment: what they shared, and what differed run by run. */
  environments: EnvironmentView;
  inputs: ReportInputs;
  recommendations: Recommendation[];
  keyNumbers: string[];
  observations: string[];
}

/** How the report names a run: "sweep at 2025-…". */
export const runLabel = (r: Pick<BenchRun, 'experiment' | 'collectedAt'>) => `${r.experiment} at ${r.collectedAt}`;

/** Groups runs by target; within a target the latest run of each experiment feeds the rules. */
export function sections(runs: BenchRun[], want: ReportInputs['want']): TargetSection[] {
  const byTarget = new Map<string, BenchRun[]>();
  for (const r of runs) byTarget.set(r.target, [...(byTarget.get(r.target) ?? []), r]);
  return [...byTarget.entries()].map(([target, rs]) => {
    const inputs: ReportInputs = { want };
    const latestRun = (e: string) => [...rs].reverse().find((r) => r.experiment === e);
    const latest = (e: string) => latestRun(e)?.summary as never;
    if (latest('cold-warm')) inputs.coldWarm = latest('cold-warm');
    if (latest('sweep')) inputs.sweep = latest('sweep');
    if (latest('prefix')) inputs.prefix = latest('prefix');
    if (latest('kv')) inputs.kv = latest('kv');
    if (latest('kv-scaling')) inputs.kvScaling = latest('kv-scaling');
    const environment = (latestRun('kv') ?? latestRun('kv-scaling'))?.environment;
    if (environment) inputs.environment = environment;
    const environments = environmentView(rs.map((r) => ({ run: runLabel(r), environment: r.environment })));
    return { target, runs: rs, environments, inputs, recommendations: recommend(inputs), keyNumbers: keyNumbers(inputs), observations: observations(inputs) };
  });
}

/** The environment part of a target's markdown: shared settings, then the ones that differ per run. */
function environmentSectionMarkdown(view: EnvironmentView): string[] {
  const lines = ['### Environment', ''];
  if (view.common.length) lines.push(...view.common.map(([k, v]) => `- ${k}: ${v}`), '');
  if (view.differing.fields.length) {
    lines.push('Differs between runs (each run\'s numbers were measured with its own row):', '');
    lines.push(markdownTable(['run', ...view.differing.fields], view.differing.runs.map((r) => [r.run, ...r.values])));
  }
  if (view.unrecorded.length) lines.push(`Not recorded for: ${view.unrecorded.join(', ')}.`, '');
  return lines;
}

function keyNumbers(inputs: ReportInputs): string[] {
  const lines: string[] = [];
  if (inputs.coldWarm) lines.push(`cold TTFT ${fmt(inputs.coldWarm.ttft.cold)} vs warm median ${fmt(inputs.coldWarm.ttft.median)} (${fixed(inputs.coldWarm.ttft.coldWarmFactor, 1)}×), warm spread ${fixed(inputs.coldWarm.ttft.spreadPct, 1)} %`);
  if (inputs.sweep) {
    const best = [...inputs.sweep.levels].sort((a, b) => b.outputTokPerS - a.outputTokPerS)[0];
    if (best) lines.push(`peak throughput ${fmtNum(best.outputTokPerS)} output tok/s (${fixed(best.reqPerS, 2)} req/s) at concurrency ${best.concurrency}; knee ${inputs.sweep.conclusion_withheld?.length ? 'not concluded (requests failed)' : inputs.sweep.knee ? `at ${inputs.sweep.knee.concurrency} (segmented regression)` : 'not found'}`);
    if (!inputs.sweep.conclusion_withheld?.length) {
      const slo = inputs.sweep.ttft_slo_s ?? DEFAULT_TTFT_SLO_S;
      lines.push(sloTargetText(sloTarget(inputs.sweep.levels, slo), slo));
    }
  }
  if (inputs.kv) lines.push(`KV cache ${inputs.kv.capacity_tokens} tokens (block ${inputs.kv.block_size}), ${inputs.kv.bytes_per_token === null ? 'bytes/token n/a' : `${inputs.kv.bytes_per_token.toFixed(0)} B per token`}, max_model_len ${inputs.kv.max_model_len ?? 'n/a'}`);
  if (inputs.kvScaling) lines.push(`KV scaling over max_model_len ${inputs.kvScaling.rows.map((r) => r.max_model_len).join(', ')}: capacity ${inputs.kvScaling.rows.map((r) => r.kv_cache_capacity_tokens ?? 'n/a').join(', ')} tokens`);
  if (inputs.prefix) {
    for (const r of inputs.prefix.rows.filter((x) => x.mode === 'cache')) {
      const n = inputs.prefix.rows.find((x) => x.mode === 'no_cache' && x.prefix_regime === r.prefix_regime && x.concurrency === r.concurrency);
      if (!n) continue;
      if (Number(r.errors ?? 0) > 0 || Number(n.errors ?? 0) > 0) lines.push(`prefix P=${r.prefix_regime} c=${r.concurrency}: not concluded (requests failed)`);
      else lines.push(`prefix P=${r.prefix_regime} c=${r.concurrency}: mean TTFT ${fmt(Number(n.mean_ttft_s))} → ${fmt(Number(r.mean_ttft_s))} with caching`);
    }
  }
  return lines;
}

function observations(inputs: ReportInputs): string[] {
  const lines: string[] = [];
  if (inputs.coldWarm) {
    const steady = inputs.coldWarm.runs?.filter((r) => r.run !== 'cold_1' && r.run !== 'warm_1').length;
    if (steady !== undefined && steady < MIN_SAMPLES_SPREAD) lines.push(`Warm TTFT stability: not enough data (${steady} steady-state requests; a spread needs at least ${MIN_SAMPLES_SPREAD}: --runs ${MIN_SAMPLES_SPREAD}).`);
    else if (inputs.coldWarm.ttft.spreadPct > 25) lines.push(`Warm TTFT is unstable (spread ${inputs.coldWarm.ttft.spreadPct.toFixed(0)} % over ${steady ?? 'the'} steady-state requests): look for other load on the node before trusting a baseline.`);
  }
  if (inputs.sweep?.levels.some((l) => l.errors > 0)) lines.push(`Requests failed during the sweep at concurrency ${inputs.sweep.levels.filter((l) => l.errors > 0).map((l) => l.concurrency).join(', ')}.`);
  if (inputs.sweep) lines.push(...clientDelayWarnings(inputs.sweep.levels));
  lines.push(...clientDelayWarnings([{ label: 'bench cold-warm', clientDelay: inputs.coldWarm?.client_delay }, { label: 'bench prefix', clientDelay: inputs.prefix?.client_delay }]));
  if (inputs.prefix?.rows.some((r) => Number(r.errors ?? 0) > 0)) lines.push('Requests failed in some prefix cells; those cells draw no conclusion.');
  return lines.length ? lines : ['Nothing unusual in the recorded numbers.'];
}

type RunTable = { header: string[]; rows: Array<Array<string | number | null | undefined>> };
type Levels = Array<{ concurrency: number; requests: number; errors: number; reqPerS: number; outputTokPerS: number; ttft: { p50?: number; p95?: number }; e2e: { p95?: number }; clientDelay?: ClientDelayRecord }>;

/** A TTFT figure, marked when the load client's own delay could have moved it (see the observations). */
function ttftCell(value: number | undefined, which: 'p50' | 'p95', delay: ClientDelayRecord | undefined): number | string | undefined {
  return value !== undefined && delay?.moved.includes(which) ? `${value.toFixed(4)} ${CLIENT_DELAY_MARK}` : value;
}

/** Per experiment: its numbers as a table, from its summary. */
const TABLES: Record<string, (s: Record<string, unknown>) => RunTable> = {
  sweep: (s) => ({
    header: ['concurrency', 'requests', 'errors', 'req/s', 'output tok/s', 'p50 TTFT s', 'p95 TTFT s', 'p95 E2E s', 'client delay p99 / max ms'],
    rows: (s.levels as Levels).map((l) => [l.concurrency, l.requests, l.errors, l.reqPerS, l.outputTokPerS, ttftCell(l.ttft.p50, 'p50', l.clientDelay), ttftCell(l.ttft.p95, 'p95', l.clientDelay), l.e2e.p95, l.clientDelay ? `${l.clientDelay.p99Ms.toFixed(1)} / ${l.clientDelay.maxMs.toFixed(1)}` : 'not recorded']),
  }),
  prefix: (s) => ({
    header: ['mode', 'prefix tokens', 'concurrency', 'mean TTFT s', 'p95 TTFT s', 'tok/s', 'errors', 'notes'],
    rows: (s.rows as Array<Record<string, string | number | null>>).map((r) => [r.mode, r.prefix_regime, r.concurrency, r.mean_ttft_s, r.p95_ttft_s, r.tok_s, r.errors ?? 0, r.notes]),
  }),
  'cold-warm': (s) => ({ header: ['run', 'TTFT s', 'E2E s'], rows: (s.runs as Array<{ run: string; ttft_s: number; e2e_s: number }>).map((r) => [r.run, r.ttft_s, r.e2e_s]) }),
  kv: (s) => ({
    header: ['context tokens', 'sequences that fit', 'KV MiB per sequence'],
    rows: (s.table as Array<{ context_tokens: number; max_concurrent_sequences: number; kv_mib_per_sequence: number | null }>).map((r) => [r.context_tokens, r.max_concurrent_sequences, r.kv_mib_per_sequence]),
  }),
  'kv-scaling': (s) => ({ header: KV_SCALING_HEADER, rows: (s.rows as KvScalingRow[]).map((r) => KV_SCALING_HEADER.map((h) => r[h as keyof KvScalingRow])) }),
};

/** The run's numbers as a table, or undefined for an experiment without one. */
export function runTable(run: BenchRun): RunTable | undefined {
  return TABLES[run.experiment]?.(run.summary);
}

export async function benchReport(values: Values, io: BenchIo): Promise<number> {
  const dir = values.in as string | undefined;
  if (!dir || !existsSync(dir)) throw new BenchUsageError(`--in DIR: expected a folder with bench outputs, got ${dir ?? 'nothing'}`);
  const want = { concurrency: intOpt('want-concurrency', values['want-concurrency'], 8), context: intOpt('context', values.context, 4096) };
  const skipped: SkippedEntry[] = [];
  const runs = findRuns(dir, skipped);
  for (const e of skipped) io.stderr(`vllm-probe bench report: skipped ${e.path}: ${e.why}\n`);
  if (runs.length === 0) throw new BenchUsageError(`${dir}: no bench outputs (*.summary.json) found${skipped.length ? ` (${skipped.length} entries skipped, named above)` : ''}`);
  const out = (values.out as string | undefined) ?? dir;
  const secs = sections(runs, want);
  const lines: string[] = ['# vLLM measurement report', '', `${runs.length} bench run${runs.length === 1 ? '' : 's'} under ${dir}, against ${secs.length === 1 ? `one target (${secs[0]!.target})` : `${secs.length} targets: ${secs.map((x) => x.target).join(', ')}`}.`, ''];
  for (const sec of secs) {
    lines.push(`## Target ${sec.target}`, '');
    lines.push(...environmentSectionMarkdown(sec.environments));
    lines.push('### Runs', '', ...sec.runs.map((r) => {
      const context = runContext(sec.environments, runLabel(r));
      return `- \`vllm-probe bench ${r.experiment}\` at ${r.collectedAt}${context ? ` (${context})` : ''} → ${relative(out, r.file) || r.file}`;
    }), '');
    lines.push('### Key numbers', '', ...sec.keyNumbers.map((k) => `- ${k}`), '');
    lines.push('### Observations', '', ...sec.observations.map((o) => `- ${o}`), '');
    for (const r of sec.runs) {
      const svg = (r.summary.files as string[] | undefined)?.find((f) => f.endsWith('.svg'));
      if (svg) lines.push(`![${r.experiment} at ${r.collectedAt}](${relative(out, join(r.dir, svg))})`, '');
    }
    lines.push('### First-cut configuration', '', markdownTable(['topic', 'recommendation', 'from'], sec.recommendations.map((x) => [x.topic, x.recommendation, x.from])));
  }
  if (skipped.length) lines.push('', '## Skipped', '', 'Not in this report:', '', ...skipped.map((e) => `- \`${e.path}\`: ${e.why}`));
  mkdirSync(out, { recursive: true });
  // Runs recorded by older versions may hold a secret (a URL password in the target): clean them too.
  const redactor = new Redactor(io.env, (values['api-key-env'] as string | undefined) ?? 'VLLM_API_KEY');
  writeFileSync(join(out, 'report.md'), redactor.text(`${lines.join('\n')}\n`));
  writeFileSync(join(out, 'report.html'), redactor.text(renderReportHtml(dir, secs, (run) => chartForSummary(run.summary), runTable, (sec, run) => runContext(sec.environments, runLabel(run)))));
  if (values.json) io.stdout(`${JSON.stringify({ runs: runs.map((r) => ({ experiment: r.experiment, target: r.target, file: r.file })), targets: secs.map((x) => ({ target: x.target, recommendations: x.recommendations })) }, null, 2)}\n`);
  else io.stdout(`wrote ${join(out, 'report.md')} and ${join(out, 'report.html')}\n`);
  return 0;
}
