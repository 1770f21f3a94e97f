/** The charts' contract: readable ticks in units, the reference lines, and no chart from nothing. */
import { describe, expect, test } from 'vitest';
import type { LevelResult } from '../../src/bench/analysis.js';
import { barChart, formatValue, lineChart, niceTicks } from '../../src/bench/charts.js';
import { chartForSummary, coldWarmChart, kvChart, prefixChart, sweepChart } from '../../src/bench/experiment-charts.js';

const level = (concurrency: number, tok: number, p95: number | undefined, requests = 10, errors = 0): LevelResult => ({
  concurrency,
  requests,
  errors,
  durationS: 1,
  reqPerS: requests,
  outputTokPerS: tok,
  ttft: p95 === undefined ? {} : { p95 },
  e2e: {},
});

describe('ticks and units', () => {
  test.each([
    [0.25, 's', '250 ms'],
    [1.5, 's', '1.5 s'],
    [0, 's', '0'],
    [12_000, 'tok/s', '12k tok/s'],
    [1500, 'tokens', '1.5k'],
    [8 * 2 ** 30, 'bytes', '8 GiB'],
  ] as const)('%d %s → %s', (v, unit, want) => expect(formatValue(v, unit)).toBe(want));
  test('round steps that cover the maximum', () => {
    expect(niceTicks(0.93)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(740)).toEqual([0, 200, 400, 600, 800]);
  });
  // 5e-324 / 5 underflows to 0: a step of 0 once looped until V8's heap ran out (issue 23).
  test.each([5e-324, 1e-320, 2.2e-308, 1e-300, Number.MAX_VALUE])('any finite maximum (%d) gets a few ticks that cover it, at once', (max) => {
    const ticks = niceTicks(max);
    expect(ticks.length).toBeGreaterThanOrEqual(2);
    expect(ticks.length).toBeLessThanOrEqual(12);
    expect(ticks.at(-1)).toBeGreaterThanOrEqual(max);
    expect(ticks.every(Number.isFinite)).toBe(true);
  });
});

describe('charts', () => {
  test('the sweep chart draws both axes in units, the knee and the SLO line', () => {
    const svg = sweepChart({ levels: [level(1, 100, 0.02), level(2, 200, 0.03), level(4, 390, 0.4)], knee: { concurrency: 2, reason: 'x' }, ttft_slo_s: 0.5 })!;
    expect(svg).toContain('tok/s</text>');
    expect(svg).toContain('ms</text>');
    expect(svg).toContain('knee (2)');
    expect(svg).toContain('TTFT SLO 500 ms');
    expect(svg.match(/class="series"/g)).toHaveLength(2);
    expect(svg.match(/class="grid"/g)!.length).toBeGreaterThan(2);
  });
  test('an all-failed run draws no chart', () => {
    expect(sweepChart({ levels: [level(1, 0, undefined, 0, 5), level(2, 0, undefined, 0, 5)], knee: null })).toBeUndefined();
    expect(prefixChart({ rows: [{ mode: 'cache', prefix_regime: 512, concurrency: 1, mean_ttft_s: 0.1, errors: 3 }] })).toBeUndefined();
    expect(lineChart({ title: 't', x: { label: 'x', unit: 'count' }, y: { label: 'y', unit: 's' }, series: [{ name: 'a', points: [{ x: 1, y: undefined }] }] })).toBeUndefined();
    expect(barChart({ title: 't', y: { label: 'y', unit: 's' }, groups: [{ label: 'g', bars: [{ series: 'a', value: undefined }] }] })).toBeUndefined();
    expect(chartForSummary({ experiment: 'unknown' })).toBeUndefined();
  });
  test('a cell with errors draws no point; its clean neighbours still do', () => {
    const svg = prefixChart({
      rows: [
        { mode: 'cache', prefix_regime: 512, concurrency: 1, mean_ttft_s: 0.05, errors: 0 },
        { mode: 'cache', prefix_regime: 1024, concurrency: 1, mean_ttft_s: 0.9, errors: 2 },
        { mode: 'no_cache', prefix_regime: 512, concurrency: 1, mean_ttft_s: 0.2, errors: 0 },
      ],
    })!;
    expect(svg.match(/<circle/g)).toHaveLength(2);
    expect(svg).not.toContain('900 ms at');
  });
  test('text is escaped', () => {
    const svg = barChart({ title: 'a < b & "c"', y: { label: 'y', unit: 's' }, groups: [{ label: '<g>', bars: [{ series: 's', value: 1 }] }] })!;
    expect(svg).toContain('a &lt; b &amp; &quot;c&quot;');
    expect(svg).not.toContain('<g>');
  });
});

describe('charts at the scale of their data (issue 24)', () => {
  const runs = [
    { run: 'cold_1', ttft_s: 0.028 },
    { run: 'warm_1', ttft_s: 0.016 },
    { run: 'warm_2', ttft_s: 0.014 },
    { run: 'warm_3', ttft_s: 0.015 },
  ];
  const yTicks = (svg: string) => [...svg.matchAll(/text-anchor="end" font-size="10"[^>]*>([^<]+)</g)].map((m) => m[1]);
  test('cold-warm: a 500 ms SLO over 14–28 ms bars is a note, not a line that squashes the bars', () => {
    const svg = coldWarmChart({ runs, ttft: { median: 0.015 }, ttft_slo_s: 0.5 })!;
    expect(yTicks(svg).at(-1)).toBe('30 ms');
    expect(svg).toContain('TTFT SLO 500 ms is off the scale');
    expect(svg).not.toMatch(/class="ref"[^>]*stroke="#9a6700"/);
  });
  test('cold-warm: an SLO near the bars is still drawn as a line', () => {
    const svg = coldWarmChart({ runs, ttft: { median: 0.015 }, ttft_slo_s: 0.04 })!;
    expect(svg).toMatch(/class="ref"[^>]*stroke="#9a6700"/);
    expect(svg).not.toContain('off the scale');
  });
  test('powers of two on a log axis are printed exactly: 1024, 2048, 4096, not 1k, 2k, 4.1k', () => {
    const svg = kvChart({ table: [1024, 2048, 4096, 16384].map((c) => ({ context_tokens: c, max_concurrent_sequences: 65536 / c })), capacity_tokens: 65536 })!;
    const xTicks = [...svg.matchAll(/text-anchor="middle" font-size="10">([^<]+)</g)].map((m) => m[1]);
    expect(xTicks).toEqual(['1024', '2048', '4096', '16384']);
    expect(svg).toContain('sequences that fit: 16 at 4096');
  });
});
