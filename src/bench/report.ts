/**
 * `bench report`: one report over a folder of bench outputs: report.md and a self-contained
 * report.html (charts inline), grouped by the target each run measured, with a first-cut vLLM
 * configuration per target derived from the measurements by rules of thumb.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { environmentMarkdown, type EnvironmentSnapshot } from '../vllm/environment.js';
import { markdownTable } from './analysis.js';
import { chartForSummary } from './experiment-charts.js';
import { BenchUsageError, intOpt, type Values } from './options.js';
import { KV_SCALING_HEADER, type BenchIo, type KvScalingRow } from './common.js';
import { renderReportHtml } from './report-html.js';

export interface ReportInputs {
  environment?: EnvironmentSnapshot;
  coldWarm?: { ttft: { cold: number; median: number; coldWarmFactor: number; spreadPct: number }; e2e: { median: number } };
  sweep?: { levels: Array<{ concurrency: number; outputTokPerS: number; reqPerS: number; ttft: { p95?: number }; e2e: { p95?: number }; errors: number }>; knee: { concurrency: number; reason: string } | null; conclusion_withheld?: string[] };
  prefix?: { rows: Array<Record<string, string | number | null>> };
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
        : `${want.concurrency} × ${want.context}-token sequences do not fit: the KV cache holds ${capacity} tokens (${perSeq} per sequence). Either cap --max-model-len at ${perSeq} and accept shorter contexts, lower the wanted concurrency to ${Math.floor(capacity / (Math.ceil(want.context / block) * block))}, or give the KV cache more memory (--gpu-memory-utilization, a larger GPU, tensor parallelism).`,
      from: kv ? 'bench kv (KV capacity from vllm:cache_config_info)' : 'bench kv-scaling',
    });
  }
  if (sweep) {
    if (sweep.conclusion_withheld?.length) {
      out.push({ topic: 'concurrency target', recommendation: `None: requests failed during the sweep (${sweep.conclusion_withheld.join('; ')}). Fix the failures and sweep again.`, from: 'bench sweep' });
    } else if (sweep.knee) {
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
    { topic: 'health check: KV cache', recommendation: 'Alert when vllm_probe_engine_kv_cache_usage_ratio stays above 0.95 for 5 min, with requests waiting: queueing and preemptions follow.', from: 'rule of thumb: a full KV cache makes requests queue and preempts running ones' },
    { topic: 'health check: queue', recommendation: `Alert when vllm_probe_engine_requests_waiting > 0 for 5 min${sweep?.knee ? ` (sustained load above ~${sweep.knee.concurrency} concurrent requests per replica)` : ''}.`, from: sweep?.knee ? 'bench sweep knee' : 'rule of thumb: a queue that does not drain means too few slots or replicas' },
    { topic: 'health check: GPU memory', recommendation: 'Alert when GPU memory headroom (free / total) stays below 5 % for 5 min beyond what --gpu-memory-utilization reserves.', from: 'rule of thumb: GPU memory headroom on the health dashboard' },
  );
  return out;
}

function niceUp(x: number): number {
  const steps = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 5, 7.5, 10, 20, 40, 80];
  return steps.find((s) => s >= x) ?? Math.ceil(x);
}
const fmt = (s: number | undefined) => (s === undefined ? 'n/a' : s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);

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

/**
 * Every bench run under DIR (any depth): `<experiment>[-N].summary.json`, and the single
 * `summary.json` older versions wrote. Sorted by collection time; each names its target (from
 * the summary, else the environment snapshot next to it).
 */
export function findRuns(dir: string): BenchRun[] {
  const runs: BenchRun[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (SUMMARY_FILE.test(name)) {
        let summary: BenchRun['summary'];
        try {
          summary = JSON.parse(readFileSync(p, 'utf8')) as BenchRun['summary'];
        } catch {
          continue; // not ours, or half-written
        }
        if (typeof summary?.experiment !== 'string') continue;
        const envFile = join(d, 'environment.json'); // written next to summary.json before per-run summaries
        const environment = (summary.environment as EnvironmentSnapshot | undefined) ?? (existsSync(envFile) ? (JSON.parse(readFileSync(envFile, 'utf8')) as EnvironmentSnapshot) : undefined);
        const target = (typeof summary.target === 'string' && summary.target) || environment?.target || 'unknown target';
        const collectedAt = (typeof summary.collected_at === 'string' && summary.collected_at) || environment?.collected_at || statSync(p).mtime.toISOString();
        runs.push({ experiment: summary.experiment, file: p, dir: d, target, collectedAt, summary, ...(environment ? { environment } : {}) });
      }
    }
  };
  walk(dir);
  return runs.sort((a, b) => a.collectedAt.localeCompare(b.collectedAt));
}

/** The runs against one target, and what the report derives from them. */
export interface TargetSection {
  target: string;
  runs: BenchRun[];
  environment?: EnvironmentSnapshot;
  inputs: ReportInputs;
  recommendations: Recommendation[];
  keyNumbers: string[];
  observations: string[];
}

/** Groups runs by target; within a target the latest run of each experiment feeds the rules. */
export function sections(runs: BenchRun[], want: ReportInputs['want']): TargetSection[] {
  const byTarget = new Map<string, BenchRun[]>();
  for (const r of runs) byTarget.set(r.target, [...(byTarget.get(r.target) ?? []), r]);
  return [...byTarget.entries()].map(([target, rs]) => {
    const inputs: ReportInputs = { want };
    const latest = (e: string) => [...rs].reverse().find((r) => r.experiment === e)?.summary as never;
    if (latest('cold-warm')) inputs.coldWarm = latest('cold-warm');
    if (latest('sweep')) inputs.sweep = latest('sweep');
    if (latest('prefix')) inputs.prefix = latest('prefix');
    if (latest('kv')) inputs.kv = latest('kv');
    if (latest('kv-scaling')) inputs.kvScaling = latest('kv-scaling');
    const environment = [...rs].reverse().find((r) => r.environment)?.environment;
    if (environment) inputs.environment = environment;
    return { target, runs: rs, ...(environment ? { environment } : {}), inputs, recommendations: recommend(inputs), keyNumbers: keyNumbers(inputs), observations: observations(inputs) };
  });
}

function keyNumbers(inputs: ReportInputs): string[] {
  const lines: string[] = [];
  if (inputs.coldWarm) lines.push(`cold TTFT ${fmt(inputs.coldWarm.ttft.cold)} vs warm median ${fmt(inputs.coldWarm.ttft.median)} (${inputs.coldWarm.ttft.coldWarmFactor.toFixed(1)}×), warm spread ${inputs.coldWarm.ttft.spreadPct.toFixed(1)} %`);
  if (inputs.sweep) {
    const best = [...inputs.sweep.levels].sort((a, b) => b.outputTokPerS - a.outputTokPerS)[0];
    if (best) lines.push(`peak throughput ${best.outputTokPerS.toFixed(1)} output tok/s (${best.reqPerS.toFixed(2)} req/s) at concurrency ${best.concurrency}; knee ${inputs.sweep.conclusion_withheld?.length ? 'not concluded (requests failed)' : inputs.sweep.knee ? `at ${inputs.sweep.knee.concurrency}` : 'not found'}`);
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
  if (inputs.coldWarm && inputs.coldWarm.ttft.spreadPct > 25) lines.push(`Warm TTFT is unstable (spread ${inputs.coldWarm.ttft.spreadPct.toFixed(0)} %): look for other load on the node before trusting a baseline.`);
  if (inputs.sweep?.levels.some((l) => l.errors > 0)) lines.push(`Requests failed during the sweep at concurrency ${inputs.sweep.levels.filter((l) => l.errors > 0).map((l) => l.concurrency).join(', ')}.`);
  if (inputs.prefix?.rows.some((r) => Number(r.errors ?? 0) > 0)) lines.push('Requests failed in some prefix cells; those cells draw no conclusion.');
  return lines.length ? lines : ['Nothing unusual in the recorded numbers.'];
}

type RunTable = { header: string[]; rows: Array<Array<string | number | null | undefined>> };
type Levels = Array<{ concurrency: number; requests: number; errors: number; reqPerS: number; outputTokPerS: number; ttft: { p50?: number; p95?: number }; e2e: { p95?: number } }>;

/** Per experiment: its numbers as a table, from its summary. */
const TABLES: Record<string, (s: Record<string, unknown>) => RunTable> = {
  sweep: (s) => ({
    header: ['concurrency', 'requests', 'errors', 'req/s', 'output tok/s', 'p50 TTFT s', 'p95 TTFT s', 'p95 E2E s'],
    rows: (s.levels as Levels).map((l) => [l.concurrency, l.requests, l.errors, l.reqPerS, l.outputTokPerS, l.ttft.p50, l.ttft.p95, l.e2e.p95]),
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
  const runs = findRuns(dir);
  if (runs.length === 0) throw new BenchUsageError(`${dir}: no bench outputs (*.summary.json) found`);
  const out = (values.out as string | undefined) ?? dir;
  const secs = sections(runs, want);
  const lines: string[] = ['# vLLM measurement report', '', `${runs.length} bench run${runs.length === 1 ? '' : 's'} under ${dir}, against ${secs.length === 1 ? `one target (${secs[0]!.target})` : `${secs.length} targets: ${secs.map((x) => x.target).join(', ')}`}.`, ''];
  for (const sec of secs) {
    lines.push(`## Target ${sec.target}`, '');
    lines.push(sec.environment ? environmentMarkdown(sec.environment).replace(/^## Environment/, '### Environment') : '### Environment\n\nnot recorded\n');
    lines.push('### Runs', '', ...sec.runs.map((r) => `- \`vllm-probe bench ${r.experiment}\` at ${r.collectedAt} → ${relative(out, r.file) || r.file}`), '');
    lines.push('### Key numbers', '', ...sec.keyNumbers.map((k) => `- ${k}`), '');
    lines.push('### Observations', '', ...sec.observations.map((o) => `- ${o}`), '');
    for (const r of sec.runs) {
      const svg = (r.summary.files as string[] | undefined)?.find((f) => f.endsWith('.svg'));
      if (svg) lines.push(`![${r.experiment} at ${r.collectedAt}](${relative(out, join(r.dir, svg))})`, '');
    }
    lines.push('### First-cut configuration', '', markdownTable(['topic', 'recommendation', 'from'], sec.recommendations.map((x) => [x.topic, x.recommendation, x.from])));
  }
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'report.md'), `${lines.join('\n')}\n`);
  writeFileSync(join(out, 'report.html'), renderReportHtml(dir, secs, (run) => chartForSummary(run.summary), runTable));
  if (values.json) io.stdout(`${JSON.stringify({ runs: runs.map((r) => ({ experiment: r.experiment, target: r.target, file: r.file })), targets: secs.map((x) => ({ target: x.target, recommendations: x.recommendations })) }, null, 2)}\n`);
  else io.stdout(`wrote ${join(out, 'report.md')} and ${join(out, 'report.html')}\n`);
  return 0;
}
