/**
 * Pure analysis for the bench commands: per-level summaries, the throughput/latency knee, and
 * the prefix-caching model (saved fraction ≈ P/(P+S)). Tested on recorded inputs.
 */
import { mean, percentile } from '../stats.js';
import type { ClientDelay, RequestRecord } from './load.js';

export interface LevelResult {
  concurrency: number;
  requests: number;
  errors: number;
  durationS: number;
  reqPerS: number;
  outputTokPerS: number;
  ttft: { mean?: number; p50?: number; p95?: number; p99?: number };
  e2e: { mean?: number; p50?: number; p95?: number; p99?: number };
  /** The load client's own event-loop delay during the level (runs recorded since issue 28). */
  clientDelay?: ClientDelayRecord;
}

/** A share of a figure that the client's own delay may not reach before the figure is marked. */
export const CLIENT_DELAY_SHARE = 0.05;

/**
 * The client's event-loop delay during a level (ms) and which of the level's TTFT figures it
 * could have moved: a token that arrives while the loop is stalled D ms is time-stamped up to
 * D ms late.
 */
export interface ClientDelayRecord {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samples: number;
  /** TTFT figures the delay could have moved (names as in `ttft`); empty when none. */
  moved: Array<'mean' | 'p50' | 'p95' | 'p99'>;
}

/**
 * Which TTFT figures the client's own delay could have moved by at least CLIENT_DELAY_SHARE of
 * their value (and at least 1 ms). The mean and median are compared with the delay most
 * intervals stayed under (ELD p99), the tail figures with the longest stall (ELD max): one
 * stall moves only the requests whose first token fell inside it, and those are in the tail.
 */
export function clientDelayRecord(delay: ClientDelay, ttftS: { mean?: number; p50?: number; p95?: number; p99?: number }): ClientDelayRecord {
  const moved: ClientDelayRecord['moved'] = [];
  const check = (name: 'mean' | 'p50' | 'p95' | 'p99', delayMs: number) => {
    const v = ttftS[name];
    if (v !== undefined && delayMs >= 1 && delayMs >= CLIENT_DELAY_SHARE * v * 1000) moved.push(name);
  };
  check('mean', delay.p99Ms);
  check('p50', delay.p99Ms);
  check('p95', delay.maxMs);
  check('p99', delay.maxMs);
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return { p50Ms: r3(delay.p50Ms), p99Ms: r3(delay.p99Ms), maxMs: r3(delay.maxMs), samples: delay.samples, moved };
}

/** The mark put on a TTFT figure the client's own delay could have moved. */
export const CLIENT_DELAY_MARK = '†';

/**
 * One warning per level whose client delay could have moved a TTFT figure, in words, naming
 * the marked figures; empty when none could (or the run predates the record).
 */
export function clientDelayWarnings(levels: Array<({ concurrency: number } | { label: string }) & { clientDelay?: ClientDelayRecord }>): string[] {
  return levels
    .filter((l) => l.clientDelay?.moved.length)
    .map((l) => {
      const d = l.clientDelay!;
      return `${CLIENT_DELAY_MARK} ${'label' in l ? l.label : `concurrency ${l.concurrency}`}: the load client's own event loop was late by up to ${d.maxMs.toFixed(1)} ms (p99 ${d.p99Ms.toFixed(1)} ms), so TTFT ${d.moved.join(', ')} may be too high by up to that much: the client, not the server, could have moved ${d.moved.length === 1 ? 'it' : 'them'}. Run the bench on a machine or core with nothing else busy, or at lower concurrency.`;
    });
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

/** How much gain per doubling the knee leaves: after it, under a quarter of the gain before. */
export const KNEE_GAIN_RATIO = 0.25;

/**
 * The knee of a concurrency sweep by segmented regression (GuideLLM finds its throughput knee
 * the same way): output tok/s against log2(concurrency) is fitted with two least-squares lines
 * meeting at a measured level, at every interior level in turn; the breakpoint with the least
 * squared error wins. It is a knee when throughput rose before it and the gain per doubling
 * after it is under KNEE_GAIN_RATIO (a quarter) of the gain before. Undefined with fewer than
 * three levels with successful requests, or when throughput keeps rising (no knee in range).
 */
export function findKnee(levels: LevelResult[]): Knee | undefined {
  const sorted = [...levels].filter((l) => l.requests > 0).sort((a, b) => a.concurrency - b.concurrency);
  if (sorted.length < 3) return undefined;
  const pts = sorted.map((l) => ({ x: Math.log2(l.concurrency), y: l.outputTokPerS }));
  let best: { b: number; sse: number; before: number; after: number } | undefined;
  for (let b = 1; b < pts.length - 1; b++) {
    const left = fitLine(pts.slice(0, b + 1));
    const right = fitLine(pts.slice(b));
    const sse = left.sse + right.sse;
    if (!best || sse < best.sse - 1e-9) best = { b, sse, before: left.slope, after: right.slope };
  }
  if (!best || !(best.before > 0) || best.after >= best.before * KNEE_GAIN_RATIO) return undefined;
  const knee = sorted[best.b]!;
  const top = sorted[sorted.length - 1]!;
  const perDoubling = (x: number) => `${x >= 0 ? '+' : '−'}${fmtNum(Math.abs(x))} tok/s`;
  return {
    concurrency: knee.concurrency,
    reason: `segmented regression of output tok/s on log2(concurrency) breaks at ${knee.concurrency}: ${perDoubling(best.before)} per doubling up to it, ${perDoubling(best.after)} per doubling after (under ${KNEE_GAIN_RATIO * 100} % of the gain before); from ${knee.concurrency} to ${top.concurrency} throughput goes ${fmtNum(knee.outputTokPerS)} → ${fmtNum(top.outputTokPerS)} tok/s while p95 TTFT goes ${fmtS(knee.ttft.p95)} → ${fmtS(top.ttft.p95)}`,
  };
}

function fitLine(pts: Array<{ x: number; y: number }>): { slope: number; sse: number } {
  const n = pts.length;
  const mx = pts.reduce((a, p) => a + p.x, 0) / n;
  const my = pts.reduce((a, p) => a + p.y, 0) / n;
  const sxx = pts.reduce((a, p) => a + (p.x - mx) ** 2, 0);
  const slope = sxx === 0 ? 0 : pts.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0) / sxx;
  const sse = pts.reduce((a, p) => a + (p.y - (my + slope * (p.x - mx))) ** 2, 0);
  return { slope, sse };
}

/** Below this many successful requests a level's p95 is not reported as one (it is nearly the max). */
export const MIN_SAMPLES_P95 = 20;

/** The sweep's answer to "how much concurrency within the TTFT SLO?", with the levels it came from. */
export type SloTarget =
  | { kind: 'target'; level: SweepLevel; /** the lowest measured level above it that breaks the SLO */ broken?: SweepLevel; skipped: SweepLevel[] }
  | { kind: 'none-within'; lowest: SweepLevel; skipped: SweepLevel[] }
  | { kind: 'not-enough-data'; skipped: SweepLevel[] };

/** The parts of a sweep level the advice reads (a LevelResult, or one read back from a summary). */
export interface SweepLevel {
  concurrency: number;
  requests: number;
  errors: number;
  outputTokPerS: number;
  ttft: { p95?: number };
}

/**
 * The highest measured concurrency whose p95 TTFT is within `sloS`. Only levels with no failed
 * request and at least MIN_SAMPLES_P95 successful ones count; the others are `skipped`.
 */
export function sloTarget(levels: SweepLevel[], sloS: number): SloTarget {
  const sorted = [...levels].sort((a, b) => a.concurrency - b.concurrency);
  const usable = sorted.filter((l) => l.errors === 0 && l.requests >= MIN_SAMPLES_P95 && l.ttft.p95 !== undefined);
  const skipped = sorted.filter((l) => !usable.includes(l));
  if (usable.length === 0) return { kind: 'not-enough-data', skipped };
  const within = usable.filter((l) => l.ttft.p95! <= sloS);
  const level = within[within.length - 1];
  if (!level) return { kind: 'none-within', lowest: usable[0]!, skipped };
  const broken = usable.find((l) => l.concurrency > level.concurrency && l.ttft.p95! > sloS);
  return { kind: 'target', level, ...(broken ? { broken } : {}), skipped };
}

/** The SLO target in one sentence: "The highest concurrency within the TTFT SLO (p95 ≤ 500 ms) is 16 (345 ms, 1,003 tok/s) …". */
export function sloTargetText(t: SloTarget, sloS: number): string {
  const slo = `the TTFT SLO (p95 ≤ ${fmtS(sloS)})`;
  const skipped = t.skipped.length ? ` Not counted: ${t.skipped.map((l) => `concurrency ${l.concurrency} (${l.errors ? `${l.errors} failed requests` : `${l.requests} requests`})`).join(', ')}; a level needs no failures and at least ${MIN_SAMPLES_P95} requests for a p95.` : '';
  if (t.kind === 'not-enough-data') return `Not enough data for a concurrency target: no level has ${MIN_SAMPLES_P95} successful requests without failures (a p95 from fewer is nearly the maximum); run with --requests ${MIN_SAMPLES_P95} or a longer --duration.${skipped}`;
  if (t.kind === 'none-within') return `No measured concurrency is within ${slo}: already at concurrency ${t.lowest.concurrency} p95 TTFT is ${fmtS(t.lowest.ttft.p95)}.${skipped}`;
  const { level, broken } = t;
  return `The highest concurrency within ${slo} is ${level.concurrency} (${fmtS(level.ttft.p95)}, ${fmtNum(level.outputTokPerS)} tok/s)${broken ? `; concurrency ${broken.concurrency} breaks it (${fmtS(broken.ttft.p95)})` : '; every measured level is within it, so sweep higher to find the limit'}.${skipped}`;
}

/** A count or rate for prose: 1,003 (no decimals from 100 up), 12.5, 0.42. */
export function fmtNum(x: number): string {
  const abs = Math.abs(x);
  return x.toLocaleString('en-US', { maximumFractionDigits: abs >= 100 ? 0 : abs >= 10 ? 1 : 2 });
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
