/**
 * report.html as a reader sees it: generated from real bench runs against the emulator (two
 * targets), loaded in headless Chromium, screenshotted, and every chart checked for a non-empty
 * box with drawn marks, axis ticks and a legend.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { analyseKvScaling, type KvScalingRow } from '../../src/bench/kv-scaling.js';
import { runCli } from '../../src/cli.js';
import { chromium, skipWithoutChromium } from '../helpers/chromium.js';
import { startEmulator } from '../helpers/daemon.js';
import { decodePng, inkFraction } from '../helpers/png.js';

const cli = async (args: string[]) => {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: new AbortController().signal, env: {} });
  return { code, out, err };
};

/** Runs in the page after load; writes what it measured into the DOM for --dump-dom. */
const CHECK_SCRIPT = `<script>
const charts = [...document.querySelectorAll('figure.chart')].map((fig) => {
  const svg = fig.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0, x: 0, y: 0 };
  const marks = svg ? [...svg.querySelectorAll('path.series, rect.bar, circle')].filter((e) => { const b = e.getBBox(); return b.width > 0 || b.height > 0; }).length : 0;
  return { experiment: fig.dataset.experiment, width: box.width, height: box.height, x: box.x, y: box.y + window.scrollY,
    marks, ticks: svg ? svg.querySelectorAll('text').length : 0, legend: svg ? svg.querySelectorAll('g.legend text').length : 0,
    grid: svg ? svg.querySelectorAll('line.grid').length : 0 };
});
const pre = document.createElement('pre');
pre.id = 'chart-check';
const bodyRight = document.body.getBoundingClientRect().right;
const overflowing = [...document.querySelectorAll('table')].filter((t) => t.getBoundingClientRect().right > bodyRight + 1).map((t) => t.querySelector('tr').textContent.slice(0, 80));
pre.textContent = JSON.stringify({ charts, docHeight: document.documentElement.scrollHeight, overflowing, scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth });
document.body.appendChild(pre);
</script>`;

describe.skipIf(skipWithoutChromium)('report.html in headless Chromium', () => {
  let a: Awaited<ReturnType<typeof startEmulator>>;
  let b: Awaited<ReturnType<typeof startEmulator>>;
  let root: string;
  beforeAll(async () => {
    a = await startEmulator({ model: 'model-a', maxNumSeqs: 4, itlMs: 5, coldStartMs: 100, batchSlowdown: 0 });
    b = await startEmulator({ model: 'model-b', itlMs: 5, coldStartMs: 0 });
    root = mkdtempSync(join(tmpdir(), 'report-html-'));
    const restart = `node -e "fetch('${a.url}/_emulator/restart',{method:'POST'}).then(r=>process.exit(r.ok?0:1))"`;
    for (const args of [
      ['cold-warm', '--target', a.url, '--restart-cmd', restart, '--runs', '3', '--max-tokens', '4', '--out', join(root, 'a')],
      ['sweep', '--target', a.url, '--concurrency', '1,2,4', '--requests', '6', '--max-tokens', '8', '--input-tokens', '32', '--out', join(root, 'a')],
      ['prefix', '--target', a.url, '--regimes', '256,512', '--concurrency', '1,2', '--requests', '3', '--max-tokens', '2', '--out', join(root, 'a')],
      ['kv', '--target', b.url, '--out', join(root, 'b')],
    ]) {
      const r = await cli(['bench', ...args]);
      expect(r.code, `${args[0]}: ${r.err}`).toBe(0);
    }
    // kv-scaling needs vLLM restarted per value; a recorded run stands in for it.
    const rows: KvScalingRow[] = [1024, 2048, 4096].map((len) => ({ max_model_len: len, gpu_mem_before_start_bytes: null, gpu_mem_after_start_bytes: null, gpu_mem_after_first_request_bytes: null, kv_cache_capacity_tokens: 65536, block_size: 16, num_gpu_blocks: 4096, kv_cache_memory_bytes: 65536 * 8192, max_concurrency_at_max_model_len: 65536 / len }));
    mkdirSync(join(root, 'b'), { recursive: true });
    writeFileSync(join(root, 'b', 'kv-scaling.summary.json'), JSON.stringify({ experiment: 'kv-scaling', target: b.url, collected_at: new Date().toISOString(), rows, ...analyseKvScaling(rows) }));
    const rep = await cli(['bench', 'report', '--in', root]);
    expect(rep.code, rep.err).toBe(0);
  }, 60_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  test('is self-contained: no scripts, no external resources', () => {
    const html = readFileSync(join(root, 'report.html'), 'utf8');
    expect(html).not.toMatch(/<script|<link|src="http|href="http/);
    expect(html).toContain(`Target ${a.url}`);
    expect(html).toContain(`Target ${b.url}`);
    expect(html).toContain('First-cut configuration');
  });

  test('every chart renders with a box, drawn marks, ticks and a legend; the screenshot has ink in each', async () => {
    const html = readFileSync(join(root, 'report.html'), 'utf8');
    const page = join(root, 'check.html');
    writeFileSync(page, html.replace('</body>', `${CHECK_SCRIPT}</body>`));
    const dom = await chromium(pathToFileURL(page).href, ['--window-size=1200,900', '--dump-dom']);
    const m = /<pre id="chart-check">([^<]*)<\/pre>/.exec(dom);
    expect(m, 'the check script did not run').not.toBeNull();
    const { charts, docHeight, overflowing, scrollWidth, innerWidth } = JSON.parse(m![1]!.replace(/&quot;/g, '"').replace(/&amp;/g, '&')) as {
      charts: Array<{ experiment: string; width: number; height: number; x: number; y: number; marks: number; ticks: number; legend: number; grid: number }>;
      docHeight: number;
      overflowing: string[];
      scrollWidth: number;
      innerWidth: number;
    };
    // Tables wrap inside the page (the kv-scaling table with its long column names overflowed).
    expect(overflowing).toEqual([]);
    expect(scrollWidth).toBeLessThanOrEqual(innerWidth);
    expect(charts.map((c) => c.experiment).sort()).toEqual(['cold-warm', 'kv', 'kv-scaling', 'prefix', 'sweep']);
    for (const c of charts) {
      expect(c.width, c.experiment).toBeGreaterThan(200);
      expect(c.height, c.experiment).toBeGreaterThan(100);
      expect(c.marks, c.experiment).toBeGreaterThan(0);
      expect(c.ticks, c.experiment).toBeGreaterThan(5);
      expect(c.legend, c.experiment).toBeGreaterThan(0);
      expect(c.grid, c.experiment).toBeGreaterThan(1);
    }
    // The whole page in one screenshot; each chart's area must hold drawn pixels.
    const png = join(root, 'report.png');
    await chromium(pathToFileURL(join(root, 'report.html')).href, [`--window-size=1200,${Math.min(16000, Math.ceil(docHeight) + 50)}`, `--screenshot=${png}`]);
    const img = decodePng(readFileSync(png));
    expect(img.width).toBe(1200);
    for (const c of charts) expect(inkFraction(img, { x: c.x, y: c.y, width: c.width, height: c.height }), c.experiment).toBeGreaterThan(0.01);
  }, 120_000);
});
