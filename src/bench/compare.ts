/**
 * `bench compare A B`: is B (a new vLLM version, a new flag) better or worse than A on the same
 * experiments, by how much, and with what confidence? Each folder's runs are read as `bench
 * report` reads them; the latest run of each experiment on both sides is matched cell by cell
 * (sweep by concurrency, prefix by mode/prefix/concurrency, cold-warm, kv, kv-scaling by
 * max-model-len). Every key figure gets B − A with a bootstrap confidence interval over the
 * recorded requests (seeded, so the same folders give the same report) and a verdict: better,
 * worse, or no difference at the stated confidence. Figures read from /metrics (KV capacity) are
 * exact and compared as such. The vllm:* metric families each side exported are diffed: what
 * dashboards and alerts would lose or gain. Writes compare.md and compare.html.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { percentile } from '../stats.js';
import { fmtNum, fmtS, markdownTable, MIN_SAMPLES_P95, type RequestSamples } from './analysis.js';
import { lineChart, PALETTE } from './charts.js';
import type { BenchIo } from './common.js';
import { environmentRows } from './environments.js';
import { BenchUsageError, type Values } from './options.js';
import { Redactor } from './redact.js';
import { CSS, esc, table } from './report-html.js';
import { findRuns, type BenchRun } from './report.js';

/** How a figure is judged: which direction is better. */
type Better = 'lower' | 'higher';
export type Verdict = 'better' | 'worse' | 'no difference' | 'not enough data' | 'no interval';

/** One key figure of one cell, A against B. */
export interface FigureComparison {
  experiment: string;
  /** Which cell: "concurrency 16", "cache, P=1024, concurrency 8", "max_model_len 4096". */
  cell: string;
  figure: string;
  unit: 's' | 'tok/s' | 'tokens';
  better: Better;
  a: number | null;
  b: number | null;
  /** B − A. */
  diff: number | null;
  /** The confidence interval of B − A; null for exact figures and single samples. */
  ci: [number, number] | null;
  verdict: Verdict;
  /** Requests each side contributed (null for exact figures). */
  n: [number, number] | null;
  note?: string;
}

export interface Comparison {
  a: string;
  b: string;
  confidence: number;
  resamples: number;
  seed: number;
  figures: FigureComparison[];
  /** Experiments run on one side only. */
  onlyA: string[];
  onlyB: string[];
  environment: Array<{ field: string; a: string; b: string; differs: boolean }>;
  metricFamilies: { onlyA: string[]; onlyB: string[]; common: number } | { missing: string };
  /** Sweep curves for the chart: concurrency → tok/s and p95 TTFT per side. */
  sweep?: { a: SweepPoint[]; b: SweepPoint[] };
}
interface SweepPoint {
  concurrency: number;
  tokPerS: number;
  p95: number | undefined;
}

/** Bootstrap settings: resamples, confidence and the PRNG seed (same inputs → same report). */
export interface BootstrapOptions {
  confidence: number;
  resamples: number;
  seed: number;
}
export const DEFAULT_BOOTSTRAP: BootstrapOptions = { confidence: 0.95, resamples: 2000, seed: 1 };

/** mulberry32: a small, fast, seeded PRNG; uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A statistic of one side's requests, read through a list of request indices (a resample). */
type Statistic = (s: RequestSamples, idx: number[]) => number | undefined;

/**
 * The percentile bootstrap interval of stat(B) − stat(A): each resample draws A's and B's
 * requests with replacement, independently. Pure and deterministic for a given seed.
 */
export function bootstrapDiff(a: RequestSamples, b: RequestSamples, stat: Statistic, opts: BootstrapOptions = DEFAULT_BOOTSTRAP): [number, number] | null {
  const na = a.ttft_s.length;
  const nb = b.ttft_s.length;
  if (na === 0 || nb === 0) return null;
  const rand = prng(opts.seed);
  const draw = (n: number) => Array.from({ length: n }, () => Math.floor(rand() * n));
  const diffs: number[] = [];
  for (let i = 0; i < opts.resamples; i++) {
    const x = stat(a, draw(na));
    const y = stat(b, draw(nb));
    if (x !== undefined && y !== undefined) diffs.push(y - x);
  }
  const tail = (1 - opts.confidence) / 2;
  const lo = percentile(diffs, tail);
  const hi = percentile(diffs, 1 - tail);
  return lo === undefined || hi === undefined ? null : [lo, hi];
}

const all = (s: RequestSamples) => s.ttft_s.map((_, i) => i);
const pick = (xs: number[], idx: number[]) => idx.map((i) => xs[i]!);
const ttftQuantile = (q: number): Statistic => (s, idx) => percentile(pick(s.ttft_s, idx), q);
const meanE2e: Statistic = (s, idx) => (idx.length ? pick(s.e2e_s, idx).reduce((x, y) => x + y, 0) / idx.length : undefined);
/** Closed-loop throughput by Little's law: concurrency × Σ output tokens / Σ E2E. */
const littleTokPerS =
  (concurrency: number): Statistic =>
  (s, idx) => {
    const e2e = pick(s.e2e_s, idx).reduce((x, y) => x + y, 0);
    return e2e > 0 ? (concurrency * pick(s.output_tokens, idx).reduce((x, y) => x + y, 0)) / e2e : undefined;
  };

/** Compares one figure from per-request samples on both sides. */
function sampled(experiment: string, cell: string, figure: string, unit: FigureComparison['unit'], better: Better, a: RequestSamples, b: RequestSamples, stat: Statistic, opts: BootstrapOptions, minSamples = 2): FigureComparison {
  const va = stat(a, all(a)) ?? null;
  const vb = stat(b, all(b)) ?? null;
  const n: [number, number] = [a.ttft_s.length, b.ttft_s.length];
  const base = { experiment, cell, figure, unit, better, a: va, b: vb, diff: va !== null && vb !== null ? vb - va : null, n };
  if (n[0] < minSamples || n[1] < minSamples) return { ...base, ci: null, verdict: 'not enough data', note: `needs at least ${minSamples} requests on each side (has ${n[0]} and ${n[1]})` };
  const ci = bootstrapDiff(a, b, stat, opts);
  if (!ci) return { ...base, ci: null, verdict: 'not enough data' };
  const verdict: Verdict = ci[0] > 0 || ci[1] < 0 ? ((ci[0] > 0) === (better === 'higher') ? 'better' : 'worse') : 'no difference';
  return { ...base, ci, verdict };
}

/** An exact figure (read from /metrics) or a single sample: compared without an interval. */
function exact(experiment: string, cell: string, figure: string, unit: FigureComparison['unit'], better: Better, a: number | null, b: number | null, note: string): FigureComparison {
  const diff = a !== null && b !== null ? b - a : null;
  const verdict: Verdict = diff === null ? 'not enough data' : note.startsWith('exact') ? (diff === 0 ? 'no difference' : (diff > 0) === (better === 'higher') ? 'better' : 'worse') : 'no interval';
  return { experiment, cell, figure, unit, better, a, b, diff, ci: null, verdict, n: null, note };
}

type Summary = Record<string, unknown>;
type SweepSummary = { levels: Array<{ concurrency: number; outputTokPerS: number; ttft: { p95?: number } }>; samples?: Array<RequestSamples & { concurrency: number }> };
type PrefixSummary = { samples?: Array<RequestSamples & { mode: string; prefix_regime: number; concurrency: number }> };
type ColdWarmSummary = { runs: Array<{ run: string; ttft_s: number }> };

const NO_SAMPLES = 'no per-request samples recorded (a run by an older vllm-probe): rerun to compare';

/** Per experiment: its key figures, A against B. */
const FIGURES: Record<string, (a: Summary, b: Summary, o: BootstrapOptions) => FigureComparison[]> = {
  sweep: (a, b, o) => {
    const sa = (a as SweepSummary).samples;
    const sb = (b as SweepSummary).samples;
    const levels = [...new Set((a as SweepSummary).levels.map((l) => l.concurrency))].filter((c) => (b as SweepSummary).levels.some((l) => l.concurrency === c)).sort((x, y) => x - y);
    return levels.flatMap((c) => {
      const cell = `concurrency ${c}`;
      const xa = sa?.find((s) => s.concurrency === c);
      const xb = sb?.find((s) => s.concurrency === c);
      if (!xa || !xb) {
        const la = (a as SweepSummary).levels.find((l) => l.concurrency === c)!;
        const lb = (b as SweepSummary).levels.find((l) => l.concurrency === c)!;
        return [exact('sweep', cell, 'output tok/s', 'tok/s', 'higher', la.outputTokPerS, lb.outputTokPerS, NO_SAMPLES), exact('sweep', cell, 'p95 TTFT', 's', 'lower', la.ttft.p95 ?? null, lb.ttft.p95 ?? null, NO_SAMPLES)];
      }
      return [
        sampled('sweep', cell, 'output tok/s (c × tokens / E2E)', 'tok/s', 'higher', xa, xb, littleTokPerS(c), o),
        sampled('sweep', cell, 'p50 TTFT', 's', 'lower', xa, xb, ttftQuantile(0.5), o),
        sampled('sweep', cell, 'p95 TTFT', 's', 'lower', xa, xb, ttftQuantile(0.95), o, MIN_SAMPLES_P95),
        sampled('sweep', cell, 'mean E2E', 's', 'lower', xa, xb, meanE2e, o),
      ];
    });
  },
  prefix: (a, b, o) => {
    const sa = (a as PrefixSummary).samples ?? [];
    const sb = (b as PrefixSummary).samples ?? [];
    if (!sa.length || !sb.length) return [exact('prefix', 'all cells', 'mean TTFT', 's', 'lower', null, null, NO_SAMPLES)];
    return sa.flatMap((xa) => {
      const xb = sb.find((s) => s.mode === xa.mode && s.prefix_regime === xa.prefix_regime && s.concurrency === xa.concurrency);
      return xb ? [sampled('prefix', `${xa.mode}, P=${xa.prefix_regime}, concurrency ${xa.concurrency}`, 'mean TTFT', 's', 'lower', xa, xb, (s, idx) => (idx.length ? pick(s.ttft_s, idx).reduce((x, y) => x + y, 0) / idx.length : undefined), o)] : [];
    });
  },
  'cold-warm': (a, b, o) => {
    const steady = (s: Summary): RequestSamples => {
      const runs = (s as ColdWarmSummary).runs.filter((r) => r.run !== 'cold_1' && r.run !== 'warm_1');
      return { ttft_s: runs.map((r) => r.ttft_s), e2e_s: runs.map(() => 0), output_tokens: runs.map(() => 0) };
    };
    const cold = (s: Summary) => (s as ColdWarmSummary).runs.find((r) => r.run === 'cold_1')?.ttft_s ?? null;
    return [
      exact('cold-warm', 'after a restart', 'cold TTFT', 's', 'lower', cold(a), cold(b), 'one request per side: no interval; rerun cold-warm several times to judge it'),
      sampled('cold-warm', 'steady state', 'median TTFT', 's', 'lower', steady(a), steady(b), ttftQuantile(0.5), o),
    ];
  },
  kv: (a, b) => [exact('kv', 'KV cache', 'capacity', 'tokens', 'higher', Number(a.capacity_tokens ?? NaN) || null, Number(b.capacity_tokens ?? NaN) || null, 'exact: read from vllm:cache_config_info')],
  'kv-scaling': (a, b) => {
    type Rows = { rows: Array<{ max_model_len: number; kv_cache_capacity_tokens: number | null }> };
    return (a as Rows).rows.flatMap((ra) => {
      const rb = (b as Rows).rows.find((r) => r.max_model_len === ra.max_model_len);
      return rb ? [exact('kv-scaling', `max_model_len ${ra.max_model_len}`, 'KV capacity', 'tokens', 'higher', ra.kv_cache_capacity_tokens, rb.kv_cache_capacity_tokens, 'exact: read from vllm:cache_config_info')] : [];
    });
  },
};

/** Compares the runs of two folders (each: every run found under it). Pure given the runs. */
export function compareRuns(a: { label: string; runs: BenchRun[] }, b: { label: string; runs: BenchRun[] }, opts: BootstrapOptions = DEFAULT_BOOTSTRAP): Comparison {
  const latest = (runs: BenchRun[], e: string) => [...runs].reverse().find((r) => r.experiment === e);
  const experiments = (runs: BenchRun[]) => new Set(runs.map((r) => r.experiment));
  const ea = experiments(a.runs);
  const eb = experiments(b.runs);
  const figures: FigureComparison[] = [];
  for (const e of Object.keys(FIGURES)) {
    const ra = latest(a.runs, e);
    const rb = latest(b.runs, e);
    if (ra && rb) figures.push(...FIGURES[e]!(ra.summary, rb.summary, opts));
  }
  const envA = [...a.runs].reverse().find((r) => r.environment)?.environment;
  const envB = [...b.runs].reverse().find((r) => r.environment)?.environment;
  const rowsA = new Map(envA ? environmentRows(envA) : []);
  const rowsB = new Map(envB ? environmentRows(envB) : []);
  const environment = [...new Set([...rowsA.keys(), ...rowsB.keys()])].filter((f) => f !== 'collected').map((field) => {
    const va = rowsA.get(field) ?? 'not recorded';
    const vb = rowsB.get(field) ?? 'not recorded';
    return { field, a: va, b: vb, differs: va !== vb };
  });
  // `*_created` are OpenMetrics companions of counters: not names a dashboard reads.
  const families = (runs: BenchRun[]) => ([...runs].reverse().find((r) => Array.isArray(r.summary.metric_families))?.summary.metric_families as string[] | undefined)?.filter((n) => !n.endsWith('_created'));
  const fa = families(a.runs);
  const fb = families(b.runs);
  const metricFamilies =
    fa && fb
      ? { onlyA: fa.filter((n) => !fb.includes(n)), onlyB: fb.filter((n) => !fa.includes(n)), common: fa.filter((n) => fb.includes(n)).length }
      : { missing: `not recorded in ${[!fa ? 'A' : '', !fb ? 'B' : ''].filter(Boolean).join(' and ')} (runs by an older vllm-probe, or /metrics unreadable): rerun one experiment on that side to record them` };
  const sweepPoints = (runs: BenchRun[]) => (latest(runs, 'sweep')?.summary as SweepSummary | undefined)?.levels.map((l) => ({ concurrency: l.concurrency, tokPerS: l.outputTokPerS, p95: l.ttft.p95 }));
  const spa = sweepPoints(a.runs);
  const spb = sweepPoints(b.runs);
  return {
    a: a.label,
    b: b.label,
    ...opts,
    figures,
    onlyA: [...ea].filter((e) => !eb.has(e)),
    onlyB: [...eb].filter((e) => !ea.has(e)),
    environment,
    metricFamilies,
    ...(spa && spb ? { sweep: { a: spa, b: spb } } : {}),
  };
}

/** A value in its unit for prose and tables: 345 ms, 1,003 tok/s, 65,536 tokens. */
function fmtValue(v: number | null, unit: FigureComparison['unit']): string {
  if (v === null || !Number.isFinite(v)) return 'n/a';
  if (unit === 's') return v < 0 ? `−${fmtS(-v)}` : fmtS(v);
  return `${v < 0 ? '−' : ''}${fmtNum(Math.abs(v))}${unit === 'tok/s' ? ' tok/s' : ''}`;
}
const signed = (v: number | null, unit: FigureComparison['unit']) => (v === null ? 'n/a' : `${v > 0 ? '+' : ''}${fmtValue(v, unit)}`);
const pct = (f: FigureComparison) => (f.a && f.diff !== null ? ` (${f.diff > 0 ? '+' : f.diff < 0 ? '−' : ''}${Math.abs((f.diff / f.a) * 100).toFixed(1)} %)` : '');

/** The table rows both outputs show: cell, figure, A, B, B − A, interval, verdict. */
function figureRows(c: Comparison): string[][] {
  return c.figures.map((f) => [
    f.experiment,
    f.cell,
    f.figure,
    fmtValue(f.a, f.unit),
    fmtValue(f.b, f.unit),
    `${signed(f.diff, f.unit)}${pct(f)}`,
    f.ci ? `${fmtValue(f.ci[0], f.unit)} … ${fmtValue(f.ci[1], f.unit)}` : '–',
    f.verdict === 'better' || f.verdict === 'worse' ? `B ${f.verdict}` : f.verdict,
    f.n ? `${f.n[0]} / ${f.n[1]}` : '–',
    f.note ?? '',
  ]);
}
const FIGURE_HEADER = ['experiment', 'cell', 'figure', 'A', 'B', 'B − A', 'CI of B − A', 'verdict', 'requests A / B', 'note'];

/** The method, in the words both outputs use. */
function methodText(c: Comparison): string {
  return `Each figure's B − A comes with a ${c.confidence * 100} % percentile-bootstrap confidence interval over the recorded requests (${c.resamples} resamples of each side's requests with replacement, seed ${c.seed}: the same folders give the same numbers). B is better or worse when the interval excludes 0, else "no difference" at ${c.confidence * 100} % confidence. Throughput is closed-loop: concurrency × Σ output tokens / Σ E2E over the requests (Little's law). A p95 needs at least ${MIN_SAMPLES_P95} requests on each side. KV capacity is exact (from /metrics), and cold TTFT is one request per side: neither gets an interval. The interval covers the spread between requests within each run, not what changed between the runs (other load on the host, a warmer cache): run A and B back to back on a quiet machine, and repeat both before trusting a verdict the change cannot explain.`;
}

function headline(c: Comparison): string {
  const n = (v: Verdict) => c.figures.filter((f) => f.verdict === v).length;
  return `B is better in ${n('better')}, worse in ${n('worse')} and no different in ${n('no difference')} of ${c.figures.length} figures at ${c.confidence * 100} % confidence${n('not enough data') ? `; ${n('not enough data')} without enough data` : ''}${n('no interval') ? `; ${n('no interval')} single samples` : ''}.`;
}

function familiesText(c: Comparison): string[] {
  const m = c.metricFamilies;
  if ('missing' in m) return [`vllm:* metric families: ${m.missing}.`];
  if (!m.onlyA.length && !m.onlyB.length) return [`Both export the same ${m.common} vllm:* metric families.`];
  return [
    `${m.common} vllm:* metric families in both. Dashboards and alerts reading a family only A exports break on B.`,
    `Only in A (gone in B): ${m.onlyA.length ? m.onlyA.join(', ') : 'none'}`,
    `Only in B (new): ${m.onlyB.length ? m.onlyB.join(', ') : 'none'}`,
  ];
}

export function compareMarkdown(c: Comparison): string {
  const lines = ['# vLLM bench comparison: B against A', '', `- A: ${c.a}`, `- B: ${c.b}`, '', `**${headline(c)}**`, '', methodText(c), '', '## Environment', ''];
  lines.push(markdownTable(['setting', 'A', 'B', ''], c.environment.map((e) => [e.field, e.a, e.b, e.differs ? 'differs' : ''])));
  lines.push('## Key figures', '', markdownTable(FIGURE_HEADER, figureRows(c)));
  if (c.onlyA.length || c.onlyB.length) lines.push(`Not compared (run on one side only): ${[...c.onlyA.map((e) => `${e} (A)`), ...c.onlyB.map((e) => `${e} (B)`)].join(', ')}.`, '');
  lines.push('## /metrics families', '', ...familiesText(c).map((l) => `- ${l}`), '');
  return `${lines.join('\n')}\n`;
}

/** The sweep of both sides on one chart: tok/s (solid) and p95 TTFT (dashed), A and B. */
export function compareChart(c: Comparison): string | undefined {
  if (!c.sweep) return undefined;
  const side = (pts: SweepPoint[], name: string, color: string) => [
    { name: `${name} output tok/s`, points: pts.map((p) => ({ x: p.concurrency, y: p.tokPerS })), color },
    { name: `${name} p95 TTFT`, points: pts.map((p) => ({ x: p.concurrency, y: p.p95 })), color, dashed: true, axis: 'right' as const },
  ];
  return lineChart({
    title: 'Concurrency sweep: A against B',
    subtitle: 'solid: output tok/s (left axis); dashed: p95 TTFT (right axis)',
    x: { label: 'concurrent requests', unit: 'count', log: true },
    y: { label: 'output throughput', unit: 'tok/s' },
    y2: { label: 'p95 time to first token', unit: 's' },
    series: [...side(c.sweep.a, 'A', PALETTE[0]!), ...side(c.sweep.b, 'B', PALETTE[1]!)],
  });
}

const COMPARE_CSS = `${CSS}
td.better{background:#e6f4ea}td.worse{background:#fce8e6}`;

export function compareHtml(c: Comparison): string {
  const body = [
    '<h1>vLLM bench comparison: B against A</h1>',
    `<ul><li>A: ${esc(c.a)}</li><li>B: ${esc(c.b)}</li></ul>`,
    `<p><strong>${esc(headline(c))}</strong></p>`,
    `<p class="muted">${esc(methodText(c))}</p>`,
    '<h2>Environment</h2>',
    table(['setting', 'A', 'B', ''], c.environment.map((e) => [e.field, e.a, e.b, e.differs ? 'differs' : ''])),
    '<h2>Key figures</h2>',
    table(FIGURE_HEADER, figureRows(c)).replace(/<td>B (better|worse)<\/td>/g, '<td class="$1">B $1</td>'),
  ];
  const svg = compareChart(c);
  if (svg) body.push(`<figure class="chart" data-experiment="compare-sweep">${svg}</figure>`);
  if (c.onlyA.length || c.onlyB.length) body.push(`<p>Not compared (run on one side only): ${esc([...c.onlyA.map((e) => `${e} (A)`), ...c.onlyB.map((e) => `${e} (B)`)].join(', '))}.</p>`);
  body.push('<h2>/metrics families</h2>', `<ul class="families">${familiesText(c).map((l) => `<li>${esc(l)}</li>`).join('')}</ul>`);
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>vLLM bench comparison</title><style>${COMPARE_CSS}</style></head>\n<body>\n${body.join('\n')}\n</body></html>\n`;
}

/** `vllm-probe bench compare A B`: reads both folders, writes compare.md and compare.html. */
export async function benchCompare(values: Values, io: BenchIo, positionals: string[]): Promise<number> {
  if (positionals.length !== 2) throw new BenchUsageError(`compare: expected two result folders (A B), got ${positionals.length}`);
  const [dirA, dirB] = positionals as [string, string];
  for (const d of [dirA, dirB]) if (!existsSync(d)) throw new BenchUsageError(`compare: ${d}: no such folder`);
  const runsA = findRuns(dirA);
  const runsB = findRuns(dirB);
  for (const [d, rs] of [[dirA, runsA], [dirB, runsB]] as const) if (rs.length === 0) throw new BenchUsageError(`compare: ${d}: no bench outputs (*.summary.json) found`);
  const confidence = values.confidence === undefined ? DEFAULT_BOOTSTRAP.confidence : Number(values.confidence);
  if (!(confidence > 0.5 && confidence < 1)) throw new BenchUsageError(`--confidence: expected a level between 0.5 and 1 like 0.95, got "${values.confidence}"`);
  const label = (d: string, rs: BenchRun[]) => {
    const env = [...rs].reverse().find((r) => r.environment)?.environment;
    return `${d} (${rs.length} run${rs.length === 1 ? '' : 's'}${env ? `; vLLM ${env.vllm_version ?? 'n/a'}, ${env.model ?? 'n/a'} at ${env.target}` : ''})`;
  };
  const c = compareRuns({ label: label(dirA, runsA), runs: runsA }, { label: label(dirB, runsB), runs: runsB }, { ...DEFAULT_BOOTSTRAP, confidence });
  if (c.figures.length === 0) throw new BenchUsageError(`compare: no experiment was run in both folders (A: ${[...new Set(runsA.map((r) => r.experiment))].join(', ')}; B: ${[...new Set(runsB.map((r) => r.experiment))].join(', ')})`);
  const out = values.out ?? join('bench-out', `compare-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')}`);
  const redactor = new Redactor(io.env, values['api-key-env'] ?? 'VLLM_API_KEY');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'compare.md'), redactor.text(compareMarkdown(c)));
  writeFileSync(join(out, 'compare.html'), redactor.text(compareHtml(c)));
  if (values.json) io.stdout(`${JSON.stringify(c, null, 2)}\n`);
  else io.stdout(`${headline(c)}\nwrote ${join(out, 'compare.md')} and ${join(out, 'compare.html')}\n`);
  return 0;
}
