/**
 * Pure analysis for the bench commands: per-level summaries, the throughput/latency knee, and
 * the prefix-caching model from the seeds (saved fraction ≈ P/(P+S)). Tested on recorded inputs.
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

/** The seeds' prefill model: the share of prefill saved when P of P+S prompt tokens are cached. */
export function predictedSavedFraction(prefixTokens: number, suffixTokens: number): number {
  return prefixTokens / (prefixTokens + suffixTokens);
}

/** Cold/warm table figures as the Tier 1 seed defines them. */
export function coldWarmSummary(cold: number, warm: number[]) {
  const sorted = [...warm].sort((a, b) => a - b);
  const median = percentile(sorted, 0.5)!;
  const min = sorted[0]!;
  const max = sorted[sorted.length - 1]!;
  return { cold, warm1: warm[0]!, min, median, max, spreadPct: ((max - min) / median) * 100, coldWarmFactor: cold / median };
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

/** A small dependency-free SVG: throughput (left axis) and p95 TTFT (right axis) vs concurrency. */
export function sweepSvg(levels: LevelResult[], knee?: Knee): string {
  const W = 640;
  const H = 360;
  const m = { l: 60, r: 60, t: 30, b: 50 };
  const xs = levels.map((l) => l.concurrency);
  const xLog = (c: number) => Math.log2(Math.max(1, c));
  const xMin = xLog(Math.min(...xs));
  const xMax = Math.max(xLog(Math.max(...xs)), xMin + 1);
  const tp = levels.map((l) => l.outputTokPerS);
  const lat = levels.map((l) => l.ttft.p95 ?? 0);
  const tpMax = Math.max(...tp, 1e-9);
  const latMax = Math.max(...lat, 1e-9);
  const X = (c: number) => m.l + ((xLog(c) - xMin) / (xMax - xMin)) * (W - m.l - m.r);
  const Y = (v: number, max: number) => H - m.b - (v / max) * (H - m.t - m.b);
  const path = (vals: number[], max: number) => levels.map((l, i) => `${i ? 'L' : 'M'}${X(l.concurrency).toFixed(1)},${Y(vals[i]!, max).toFixed(1)}`).join(' ');
  const ticks = levels.map((l) => `<text x="${X(l.concurrency).toFixed(1)}" y="${H - m.b + 18}" text-anchor="middle" font-size="11">${l.concurrency}</text>`).join('');
  const kneeLine = knee ? `<line x1="${X(knee.concurrency).toFixed(1)}" x2="${X(knee.concurrency).toFixed(1)}" y1="${m.t}" y2="${H - m.b}" stroke="#888" stroke-dasharray="4 3"/><text x="${(X(knee.concurrency) + 4).toFixed(1)}" y="${m.t + 12}" font-size="11" fill="#555">knee</text>` : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">Concurrency sweep: throughput and p95 TTFT</text>
<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>
<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="#1f77b4"/>
<line x1="${W - m.r}" y1="${m.t}" x2="${W - m.r}" y2="${H - m.b}" stroke="#d62728"/>
${ticks}
<text x="${W / 2}" y="${H - 12}" text-anchor="middle" font-size="12">concurrency (log scale)</text>
<text x="${m.l - 8}" y="${m.t - 8}" text-anchor="start" font-size="11" fill="#1f77b4">${tpMax.toFixed(0)} tok/s</text>
<text x="${W - m.r}" y="${m.t - 8}" text-anchor="end" font-size="11" fill="#d62728">${fmtS(latMax)} p95 TTFT</text>
<path d="${path(tp, tpMax)}" fill="none" stroke="#1f77b4" stroke-width="2"/>
<path d="${path(lat, latMax)}" fill="none" stroke="#d62728" stroke-width="2"/>
${kneeLine}
</svg>
`;
}
