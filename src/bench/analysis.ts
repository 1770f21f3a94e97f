/**
 * Pure analysis for the bench commands: per-level summaries, the throughput/latency knee, and
 * the prefix-caching model (saved fraction ≈ P/(P+S)). Tested on recorded inputs.
 */
import { mean, percentile } from '../stats.js';
import type { RequestRecord } from './load.js';

export interface LevelResult {
  concurrency: number;
  requests: number;
  errors: number;
  durationS: number;
  reqPerS: number;
  outputTokPerS: number;
  ttft: { mean?: number; p50?: number; p95?: number; p99?: number };
  e2e: { mean?: number; p50?: number; p95?: number; p99?: number };
}

/**
 * Summarises one load level. Requests that started before `warmupMs` are warm-up and excluded;
 * throughput counts the requests that finished inside the measured window.
 */
export function summariseLevel(concurrency: number, records: RequestRecord[], warmupMs = 0): LevelResult {
  const measured = records.filter((r) => r.start >= warmupMs);
  const ok = measured.filter((r) => r.outcome === 'success');
  const first = Math.min(...measured.map((r) => r.start));
  const last = Math.max(...measured.map((r) => r.end));
  const durationS = measured.length ? (last - first) / 1000 : 0;
  const q = (xs: number[]) => ({ mean: mean(xs), p50: percentile(xs, 0.5), p95: percentile(xs, 0.95), p99: percentile(xs, 0.99) });
  const tokens = ok.reduce((a, r) => a + (r.outputTokens ?? 0), 0);
  return {
    concurrency,
    requests: ok.length,
    errors: measured.length - ok.length,
    durationS,
    reqPerS: durationS > 0 ? ok.length / durationS : 0,
    outputTokPerS: durationS > 0 ? tokens / durationS : 0,
    ttft: q(ok.map((r) => r.ttft!).filter((x) => x !== undefined)),
    e2e: q(ok.map((r) => r.e2e)),
  };
}

/** Each successful measured request's figures, for `bench compare`'s bootstrap over requests. */
export interface RequestSamples {
  ttft_s: number[];
  e2e_s: number[];
  output_tokens: number[];
}

/** The successful requests that started after `warmupMs`, as parallel arrays (µs precision). */
export function requestSamples(records: RequestRecord[], warmupMs = 0): RequestSamples {
  const ok = records.filter((r) => r.start >= warmupMs && r.outcome === 'success' && r.ttft !== undefined);
  const r6 = (x: number) => Math.round(x * 1e6) / 1e6;
  return { ttft_s: ok.map((r) => r6(r.ttft!)), e2e_s: ok.map((r) => r6(r.e2e)), output_tokens: ok.map((r) => r.outputTokens ?? 0) };
}

export interface Knee {
  concurrency: number;
  reason: string;
}

/**
 * The knee of a concurrency sweep without an SLA: the lowest concurrency whose throughput is
 * within `tolerance` (default 5 %) of the best seen, provided p95 TTFT keeps rising beyond it
 * (more concurrency buys queueing, not throughput). Undefined when throughput still climbs at
 * the last level (no knee in range) or the sweep has fewer than three levels.
 */
export function findKnee(levels: LevelResult[], tolerance = 0.05): Knee | undefined {
  const sorted = [...levels].filter((l) => l.requests > 0).sort((a, b) => a.concurrency - b.concurrency);
  if (sorted.length < 3) return undefined;
  const best = Math.max(...sorted.map((l) => l.outputTokPerS));
  const idx = sorted.findIndex((l) => l.outputTokPerS >= best * (1 - tolerance));
  if (idx < 0 || idx === sorted.length - 1) return undefined;
  const knee = sorted[idx]!;
  const after = sorted.slice(idx + 1);
  const latencyRises = after.every((l) => (l.ttft.p95 ?? 0) >= (knee.ttft.p95 ?? 0)) && (after[after.length - 1]!.ttft.p95 ?? 0) > (knee.ttft.p95 ?? 0) * 1.1;
  if (!latencyRises) return undefined;
  const top = after[after.length - 1]!;
  return {
    concurrency: knee.concurrency,
    reason: `throughput reaches ${knee.outputTokPerS.toFixed(1)} tok/s (${((knee.outputTokPerS / best) * 100).toFixed(0)} % of the best ${best.toFixed(1)}) at concurrency ${knee.concurrency}; going to ${top.concurrency} adds ${(((top.outputTokPerS - knee.outputTokPerS) / knee.outputTokPerS) * 100).toFixed(0)} % throughput but p95 TTFT goes from ${fmtS(knee.ttft.p95)} to ${fmtS(top.ttft.p95)}`,
  };
}

export const fmtS = (s: number | undefined) => (s === undefined ? 'n/a' : s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);

/** The prefill model: the share of prefill saved when P of P+S prompt tokens are cached. */
export function predictedSavedFraction(prefixTokens: number, suffixTokens: number): number {
  return prefixTokens / (prefixTokens + suffixTokens);
}

/**
 * Cold/warm figures: `cold` is the first request after start, `warm1` the one right after it,
 * and min/median/max/spread describe the steady-state requests after warm_1 (`steady`).
 * cold/warm factor = cold / steady median.
 */
export function coldWarmSummary(cold: number, warm1: number, steady: number[]) {
  const sorted = [...steady].sort((a, b) => a - b);
  const median = percentile(sorted, 0.5)!;
  const min = sorted[0]!;
  const max = sorted[sorted.length - 1]!;
  return { cold, warm1, min, median, max, spreadPct: ((max - min) / median) * 100, coldWarmFactor: cold / median };
}

/** CSV with RFC 4180 quoting. */
export function toCsv(header: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cell = (v: string | number | null | undefined) => {
    if (v === null || v === undefined) return '';
    const s = typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(6).replace(/0+$/, '').replace(/\.$/, '')) : v;
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header.join(','), ...rows.map((r) => r.map(cell).join(','))].join('\n') + '\n';
}

export function markdownTable(header: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cell = (v: string | number | null | undefined) => (v === null || v === undefined ? '–' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : v);
  return [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n') + '\n';
}
