/**
 * The chart of each experiment, drawn from its summary (the same data the report reads), so a
 * bench run and `bench report` draw the same picture. Each returns undefined when the run has
 * nothing successful to draw.
 */
import { barChart, lineChart, PALETTE, type ReferenceLine } from './charts.js';
import type { Knee, LevelResult } from './analysis.js';
import type { KvScalingRow } from './common.js';

/** The parts of each experiment's summary its chart reads. */
export interface SweepChartInput {
  levels: LevelResult[];
  knee: Knee | null;
  ttft_slo_s?: number;
}
export interface PrefixChartInput {
  rows: Array<Record<string, string | number | null>>;
  ttft_slo_s?: number;
}
export interface ColdWarmChartInput {
  runs: Array<{ run: string; ttft_s: number | undefined | null; e2e_s?: number | undefined | null }>;
  ttft: { median: number };
  ttft_slo_s?: number;
}
export interface KvChartInput {
  table: Array<{ context_tokens: number; max_concurrent_sequences: number }>;
  want_concurrency?: number;
  capacity_tokens: number;
}
export interface KvScalingChartInput {
  rows: KvScalingRow[];
  bytes_per_token: number | null;
  gpu_memory_slope_bytes_per_token: number | null;
  gpu_memory_fit_r2: number | null;
}

const sloLine = (slo: number | undefined, axis: 'left' | 'right' = 'left'): ReferenceLine[] => (slo ? [{ y: slo, axis, label: `TTFT SLO ${slo < 1 ? `${Math.round(slo * 1000)} ms` : `${slo} s`}`, color: '#9a6700' }] : []);

/** Throughput and p95 TTFT against concurrency, with the knee and the TTFT SLO. */
export function sweepChart(s: SweepChartInput): string | undefined {
  const ok = s.levels.filter((l) => l.requests > 0);
  return lineChart({
    title: 'Concurrency sweep: throughput and p95 TTFT',
    subtitle: s.knee ? `knee at concurrency ${s.knee.concurrency}: more concurrency adds queueing, not throughput` : 'no knee in the measured range',
    x: { label: 'concurrent requests', unit: 'count', log: true },
    y: { label: 'output throughput', unit: 'tok/s' },
    y2: { label: 'p95 time to first token', unit: 's' },
    series: [
      { name: 'output tok/s', points: ok.map((l) => ({ x: l.concurrency, y: l.outputTokPerS })), color: PALETTE[0]! },
      { name: 'p95 TTFT', points: ok.map((l) => ({ x: l.concurrency, y: l.ttft.p95 })), color: PALETTE[1]!, axis: 'right' },
    ],
    lines: [...(s.knee ? [{ x: s.knee.concurrency, label: `knee (${s.knee.concurrency})`, color: '#555' }] : []), ...sloLine(s.ttft_slo_s, 'right')],
  });
}

/** Mean TTFT against prefix length: cache (solid) and forced misses (dashed) per concurrency. */
export function prefixChart(s: PrefixChartInput): string | undefined {
  const levels = [...new Set(s.rows.map((r) => Number(r.concurrency)))].sort((a, b) => a - b);
  // A cell with failed requests draws no point: its mean would describe only the survivors.
  const clean = s.rows.filter((r) => r.mean_ttft_s !== null && r.mean_ttft_s !== undefined && Number(r.errors ?? 0) === 0);
  const series = levels.flatMap((c, i) =>
    (['cache', 'no_cache'] as const).map((mode) => ({
      name: `${mode === 'cache' ? 'cache' : 'no cache'}, concurrency ${c}`,
      color: PALETTE[i % PALETTE.length]!,
      dashed: mode === 'no_cache',
      points: clean
        .filter((r) => r.mode === mode && Number(r.concurrency) === c)
        .map((r) => ({ x: Number(r.prefix_regime), y: Number(r.mean_ttft_s) }))
        .sort((a, b) => a.x - b.x),
    })),
  );
  return lineChart({
    title: 'Prefix caching: mean TTFT by prefix size',
    subtitle: 'solid: requests sharing the prefix (cache); dashed: forced misses (no cache)',
    x: { label: 'shared prefix length (tokens)', unit: 'tokens', log: true },
    y: { label: 'mean time to first token', unit: 's' },
    series,
    lines: sloLine(s.ttft_slo_s),
  });
}

/** Above this multiple of the tallest bar, the SLO line would squash the bars: it becomes a note. */
const OFF_SCALE = 2;

/**
 * TTFT per request after a restart as bars: cold, warm_1, steady state, at the bars' own scale.
 * The SLO is drawn as a line when it is within OFF_SCALE × the tallest bar; above that (a 500 ms
 * SLO over 14–28 ms bars left them a few pixels tall) the subtitle names it instead.
 */
export function coldWarmChart(s: ColdWarmChartInput): string | undefined {
  const kind = (run: string) => (run === 'cold_1' ? 'cold (first after start)' : run === 'warm_1' ? 'warm_1 (right after)' : 'steady state');
  const tallest = Math.max(0, ...s.runs.map((r) => r.ttft_s ?? 0));
  const offScale = s.ttft_slo_s !== undefined && s.ttft_slo_s > tallest * OFF_SCALE;
  const ms = (x: number) => (x < 1 ? `${Math.round(x * 1000)} ms` : `${x.toFixed(2)} s`);
  return barChart({
    title: 'Cold vs warm: TTFT per request after a restart',
    subtitle: `steady-state median ${ms(s.ttft.median)}${offScale ? `; TTFT SLO ${ms(s.ttft_slo_s!)} is off the scale (every request well within it)` : ''}`,
    y: { label: 'time to first token', unit: 's' },
    groups: s.runs.map((r) => ({ label: r.run, bars: [{ series: kind(r.run), value: r.ttft_s ?? undefined }] })),
    colors: { 'cold (first after start)': PALETTE[1]!, 'warm_1 (right after)': PALETTE[3]!, 'steady state': PALETTE[0]! },
    lines: [{ y: s.ttft.median, label: 'steady-state median', color: '#555' }, ...(offScale ? [] : sloLine(s.ttft_slo_s))],
  });
}

/** Sequences that fit against tokens per sequence, with the wanted concurrency. */
export function kvChart(s: KvChartInput): string | undefined {
  return lineChart({
    title: 'KV cache: sequences that fit by context length',
    subtitle: `${s.capacity_tokens} KV tokens; each sequence takes whole blocks`,
    x: { label: 'tokens per sequence', unit: 'tokens', log: true },
    y: { label: 'concurrent sequences that fit', unit: 'sequences' },
    series: [{ name: 'sequences that fit', points: s.table.map((r) => ({ x: r.context_tokens, y: r.max_concurrent_sequences })) }],
    lines: s.want_concurrency ? [{ y: s.want_concurrency, label: `wanted: ${s.want_concurrency}`, color: '#9a6700' }] : [],
  });
}

/** KV capacity and sequences that fit against --max-model-len; the bytes-per-token figures on top. */
export function kvScalingChart(s: KvScalingChartInput): string | undefined {
  const fit = [
    s.bytes_per_token !== null ? `${Math.round(s.bytes_per_token)} B per KV token (kv_cache_memory_bytes / capacity)` : undefined,
    s.gpu_memory_slope_bytes_per_token !== null ? `GPU memory fit ${Math.round(s.gpu_memory_slope_bytes_per_token)} B/token (r² ${s.gpu_memory_fit_r2?.toFixed(3)})` : undefined,
  ].filter(Boolean);
  return lineChart({
    title: 'KV cache by --max-model-len: capacity and sequences that fit',
    subtitle: fit.length ? fit.join('; ') : 'bytes per token not reported by this vLLM',
    x: { label: '--max-model-len (tokens)', unit: 'tokens', log: true },
    y: { label: 'KV capacity', unit: 'tokens' },
    y2: { label: 'sequences of max-model-len that fit', unit: 'sequences' },
    series: [
      { name: 'KV capacity (tokens)', points: s.rows.map((r) => ({ x: r.max_model_len, y: r.kv_cache_capacity_tokens ?? undefined })), color: PALETTE[0]! },
      { name: 'sequences that fit', points: s.rows.map((r) => ({ x: r.max_model_len, y: r.max_concurrency_at_max_model_len ?? undefined })), color: PALETTE[2]!, axis: 'right' },
    ],
  });
}

const CHARTS: Record<string, (summary: never) => string | undefined> = {
  sweep: sweepChart,
  prefix: prefixChart,
  'cold-warm': coldWarmChart,
  kv: kvChart,
  'kv-scaling': kvScalingChart,
};

/** The chart for any experiment's summary (by its `experiment` field), or undefined. */
export function chartForSummary(summary: { experiment?: string }): string | undefined {
  const draw = summary.experiment ? CHARTS[summary.experiment] : undefined;
  return draw ? draw(summary as never) : undefined;
}
