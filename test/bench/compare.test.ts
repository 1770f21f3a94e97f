/**
 * `bench compare A B` on recorded run folders (test/fixtures/bench/compare-a, -b: cold-warm,
 * sweep, prefix and kv against the emulator; B serves vLLM 0.26.0's metric set with a slower
 * first token and twice the KV blocks), and compare.html as a reader sees it in Chromium.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, test } from 'vitest';
import { bootstrapDiff, compareRuns, type Comparison } from '../../src/bench/compare.js';
import { findRuns } from '../../src/bench/report.js';
import { runCli } from '../../src/cli.js';
import { chromium, skipWithoutChromium } from '../helpers/chromium.js';
import { decodePng, inkFraction } from '../helpers/png.js';

const A = 'test/fixtures/bench/compare-a';
const B = 'test/fixtures/bench/compare-b';

const cli = async (args: string[]) => {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: new AbortController().signal, env: {} });
  return { code, out, err };
};
const compare = async (a: string, b: string, extra: string[] = []) => {
  const out = mkdtempSync(join(tmpdir(), 'compare-'));
  const r = await cli(['bench', 'compare', a, b, '--out', out, '--json', ...extra]);
  expect(r.code, r.err).toBe(0);
  return { c: JSON.parse(r.out) as Comparison, out };
};
const fig = (c: Comparison, experiment: string, cell: string, figure: string) => c.figures.find((f) => f.experiment === experiment && f.cell === cell && f.figure.startsWith(figure))!;

describe('bench compare on recorded folders', () => {
  test('each key figure: B − A, its bootstrap interval and a verdict in the right direction', async () => {
    const { c } = await compare(A, B);
    // B's first token is ~25 ms slower at every level (the recording's emulator setting).
    const p50 = fig(c, 'sweep', 'concurrency 1', 'p50 TTFT');
    expect(p50.verdict).toBe('worse');
    expect(p50.ci![0]).toBeGreaterThan(0.015);
    expect(p50.ci![1]).toBeLessThan(0.035);
    expect(p50.diff!).toBeGreaterThanOrEqual(p50.ci![0]);
    expect(p50.diff!).toBeLessThanOrEqual(p50.ci![1]);
    expect(p50.n).toEqual([40, 40]);
    // Higher is better for throughput: a lower B is "worse" too.
    const tok = fig(c, 'sweep', 'concurrency 16', 'output tok/s');
    expect(tok.diff!).toBeLessThan(0);
    expect(tok.verdict).toBe('worse');
    // Exact figures have no interval; twice the KV blocks is better.
    expect(fig(c, 'kv', 'KV cache', 'capacity')).toMatchObject({ a: 65536, b: 131072, ci: null, verdict: 'better' });
    expect(fig(c, 'cold-warm', 'after a restart', 'cold TTFT')).toMatchObject({ ci: null, verdict: 'no interval' });
    expect(fig(c, 'prefix', 'cache, P=256, concurrency 1', 'mean TTFT').verdict).toBe('worse');
  });

  test('the /metrics families that exist on one side only (0.32.0 → 0.26.0 loses admission rejections)', async () => {
    const { c } = await compare(A, B);
    expect(c.metricFamilies).toMatchObject({ onlyB: [] });
    const m = c.metricFamilies as { onlyA: string[] };
    expect(m.onlyA).toContain('vllm:admission_rejections_total');
    expect(m.onlyA).toContain('vllm:request_num_preemptions');
    expect(m.onlyA.some((n) => n.endsWith('_created'))).toBe(false);
    expect(c.environment.find((e) => e.field === 'vLLM version')).toEqual({ field: 'vLLM version', a: '0.32.0', b: '0.26.0', differs: true });
  });

  test('a folder against itself: no difference anywhere', async () => {
    const { c } = await compare(A, A);
    expect(new Set(c.figures.map((f) => f.verdict))).toEqual(new Set(['no difference', 'no interval']));
    expect(c.metricFamilies).toMatchObject({ onlyA: [], onlyB: [] });
  });

  test('seeded: the same folders give the same report, byte for byte', async () => {
    const one = await compare(A, B);
    const two = await compare(A, B);
    expect(readFileSync(join(one.out, 'compare.md'), 'utf8').replace(/\/tmp\S*/g, '')).toBe(readFileSync(join(two.out, 'compare.md'), 'utf8').replace(/\/tmp\S*/g, ''));
    expect(one.c.figures).toEqual(two.c.figures);
  });

  test('the markdown states the method, the verdicts and the families', async () => {
    const { out } = await compare(A, B);
    const md = readFileSync(join(out, 'compare.md'), 'utf8');
    expect(md).toContain('95 % percentile-bootstrap confidence interval over the recorded requests (2000 resamples');
    expect(md).toMatch(/^\*\*B is better in 1, worse in \d+ and no different in \d+ of \d+ figures at 95 % confidence/m);
    expect(md).toContain('| sweep | concurrency 1 | p50 TTFT |');
    expect(md).toContain('| B worse |');
    expect(md).toContain('Only in A (gone in B): vllm:admission_rejections_total');
  });

  test('runs recorded before samples and families existed: compared without intervals, and it says why', async () => {
    const old = mkdtempSync(join(tmpdir(), 'compare-old-'));
    cpSync(A, old, { recursive: true });
    const file = join(old, 'sweep.summary.json');
    const s = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    delete s.samples;
    writeFileSync(file, JSON.stringify(s));
    for (const e of ['cold-warm', 'prefix', 'kv']) {
      const f = join(old, `${e}.summary.json`);
      const x = JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;
      delete x.metric_families;
      writeFileSync(f, JSON.stringify(x));
    }
    const sw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    delete sw.metric_families;
    writeFileSync(file, JSON.stringify(sw));
    const { c } = await compare(old, B);
    const p95 = fig(c, 'sweep', 'concurrency 1', 'p95 TTFT');
    expect(p95).toMatchObject({ ci: null, verdict: 'no interval' });
    expect(p95.note).toMatch(/^no per-request samples recorded/);
    expect(c.metricFamilies).toEqual({ missing: 'not recorded in A (runs by an older vllm-probe, or /metrics unreadable): rerun one experiment on that side to record them' });
  });

  test('usage: two folders, a sane confidence, --help', async () => {
    expect((await cli(['bench', 'compare', A])).err).toBe('vllm-probe bench: compare: expected two result folders (A B), got 1\n');
    expect((await cli(['bench', 'compare', A, B, '--confidence', '2'])).code).toBe(2);
    const help = await cli(['bench', 'compare', '--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: vllm-probe bench compare A B/);
    expect((await cli(['bench', '--help'])).out).toContain('compare     two result folders side by side');
  });

  test('--confidence 0.99 widens the interval', async () => {
    const c95 = (await compare(A, B)).c;
    const c99 = (await compare(A, B, ['--confidence', '0.99'])).c;
    const w = (c: Comparison) => {
      const f = fig(c, 'sweep', 'concurrency 16', 'mean E2E');
      return f.ci![1] - f.ci![0];
    };
    expect(w(c99)).toBeGreaterThan(w(c95));
  });
});

describe('bootstrap interval', () => {
  test('covers a known shift and excludes 0; identical samples include 0', () => {
    const base = Array.from({ length: 200 }, (_, i) => 0.1 + ((i * 37) % 200) / 2000);
    const samples = (xs: number[]) => ({ ttft_s: xs, e2e_s: xs, output_tokens: xs.map(() => 1) });
    const median = (s: { ttft_s: number[] }, idx: number[]) => {
      const v = idx.map((i) => s.ttft_s[i]!).sort((a, b) => a - b);
      return v[Math.floor(v.length / 2)];
    };
    const shifted = bootstrapDiff(samples(base), samples(base.map((x) => x + 0.02)), median)!;
    expect(shifted[0]).toBeGreaterThan(0);
    expect(shifted[0]).toBeLessThanOrEqual(0.02);
    expect(shifted[1]).toBeGreaterThanOrEqual(0.02);
    const same = bootstrapDiff(samples(base), samples(base), median)!;
    expect(same[0]).toBeLessThanOrEqual(0);
    expect(same[1]).toBeGreaterThanOrEqual(0);
  });
  test('compareRuns is pure over the runs read from the folders', () => {
    const a = { label: 'a', runs: findRuns(A) };
    const b = { label: 'b', runs: findRuns(B) };
    expect(compareRuns(a, b)).toEqual(compareRuns(a, b));
  });
});

describe.skipIf(skipWithoutChromium)('compare.html in headless Chromium', () => {
  test('renders: the chart has marks, the tables fit the page, verdicts are coloured', async () => {
    const { out } = await compare(A, B);
    const html = readFileSync(join(out, 'compare.html'), 'utf8');
    expect(html).not.toMatch(/<script|<link|src="http|href="http/);
    const check = `<script>
const svg = document.querySelector('figure.chart svg');
const box = svg.getBoundingClientRect();
const bodyRight = document.body.getBoundingClientRect().right;
const pre = document.createElement('pre');
pre.id = 'check';
pre.textContent = JSON.stringify({ width: box.width, height: box.height, x: box.x, y: box.y + window.scrollY,
  marks: [...svg.querySelectorAll('path.series, circle')].filter((e) => { const b = e.getBBox(); return b.width > 0 || b.height > 0; }).length,
  legend: svg.querySelectorAll('g.legend text').length,
  overflowing: [...document.querySelectorAll('table')].filter((t) => t.getBoundingClientRect().right > bodyRight + 1).length,
  worse: [...document.querySelectorAll('td.worse')].filter((td) => getComputedStyle(td).backgroundColor !== 'rgba(0, 0, 0, 0)').length,
  docHeight: document.documentElement.scrollHeight, scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth });
document.body.appendChild(pre);
</script>`;
    const page = join(out, 'check.html');
    writeFileSync(page, html.replace('</body>', `${check}</body>`));
    const dom = await chromium(pathToFileURL(page).href, ['--window-size=1200,900', '--dump-dom']);
    const m = /<pre id="check">([^<]*)<\/pre>/.exec(dom);
    expect(m, 'the check script did not run').not.toBeNull();
    const r = JSON.parse(m![1]!.replace(/&quot;/g, '"').replace(/&amp;/g, '&')) as Record<string, number>;
    expect(r.width).toBeGreaterThan(200);
    expect(r.marks).toBeGreaterThan(4);
    expect(r.legend).toBe(4);
    expect(r.overflowing).toBe(0);
    expect(r.scrollWidth).toBeLessThanOrEqual(r.innerWidth!);
    expect(r.worse).toBeGreaterThan(5);
    const png = join(out, 'compare.png');
    await chromium(pathToFileURL(join(out, 'compare.html')).href, [`--window-size=1200,${Math.min(16000, Math.ceil(r.docHeight!) + 50)}`, `--screenshot=${png}`]);
    const img = decodePng(readFileSync(png));
    expect(inkFraction(img, { x: r.x!, y: r.y!, width: r.width!, height: r.height! })).toBeGreaterThan(0.01);
  }, 60_000);
});
