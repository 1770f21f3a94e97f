/**
 * 4. /metrics render time: the daemon's registry (createMetrics from dist/metrics.js with the
 * default config) filled with label combinations until it exposes ~300 (what the daemon shows
 * at the default config), 1,000 and 10,000 series; then `await registry.metrics()` — exactly
 * what GET /metrics calls — timed many times in this process. Series = sample lines in the
 * output (each histogram bucket, _sum and _count is one).
 */
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { defaultConfig } from '../dist/config.js';
import { createMetrics, OUTCOMES, preinitialiseProbeSeries } from '../dist/metrics.js';
import { appendSection, contention, fmt, max, median, pass, pct, spread, table } from './lib.mjs';

export const title = '4. /metrics render time';

/** Fills one "model" worth of series the way a running daemon would. */
function fillModel(m, model, full) {
  for (const probe of ['ttft', 'prefix']) {
    preinitialiseProbeSeries(m, probe, model);
    m.requests.labels({ probe, model, outcome: 'success' }).inc(10);
    m.timeToFirstToken.labels({ probe, model, phase: 'warm' }).observe(0.05);
    m.requestDuration.labels({ probe, model, outcome: 'success' }).observe(0.3);
    m.probeSuccess.labels({ probe, model }).set(1);
    m.probeDuration.labels({ probe, model }).set(0.3);
    m.lastSuccess.labels({ probe, model }).set(Date.now() / 1000);
    m.probeTokens.labels({ probe, model, token_type: 'input' }).inc(100);
    if (full) {
      m.timeToFirstToken.labels({ probe, model, phase: 'cold' }).observe(0.5);
      m.interTokenLatency.labels({ probe, model }).observe(0.01);
      m.timePerOutputToken.labels({ probe, model }).observe(0.01);
      for (const outcome of OUTCOMES.slice(1, 4)) m.requestDuration.labels({ probe, model, outcome }).observe(1);
    }
  }
  m.prefixTimeToFirstToken.labels({ model, cache: 'hit', prefix_tokens: '1024' }).observe(0.05);
  m.prefixTimeToFirstToken.labels({ model, cache: 'miss', prefix_tokens: '1024' }).observe(0.2);
  m.prefixSpeedup.labels({ model, prefix_tokens: '1024' }).set(4);
  m.prefixSavedFraction.labels({ model, prefix_tokens: '1024' }).set(0.75);
  m.prefixCachedTokens.labels({ model, cache: 'hit' }).inc(1000);
  m.engineKvCacheUsage.labels({ model }).set(0.2);
  m.engineRequestsRunning.labels({ model }).set(3);
  m.engineRequestsWaiting.labels({ model }).set(0);
  m.engineGenerationTokens.labels({ model }).inc(1000);
}

/** A registry with `models` models' worth of series (+ one GPU) and `pad` single-series gauges. */
async function build(models, full = true, pad = 0) {
  const registry = new Registry();
  const m = createMetrics(registry, defaultConfig());
  m.buildInfo.labels({ version: 'bench', node_version: process.version }).set(1);
  for (const [name, g] of Object.entries(m.gpu)) g.labels({ gpu: '0', uuid: 'GPU-0' }).set(name.length);
  m.gpuInfo.labels({ gpu: '0', uuid: 'GPU-0', name: 'NVIDIA H100 80GB HBM3', driver_version: '580.159.04', pci_bus_id: '00000000:00:00.0' }).set(1);
  for (const status of ['healthy', 'degraded', 'unhealthy']) m.statusVerdict.labels({ status }).set(status === 'healthy' ? 1 : 0);
  for (const source of ['vllm', 'gpu', 'host']) m.sourceUp.labels({ source }).set(1);
  for (let i = 0; i < models; i++) fillModel(m, `model-${String(i).padStart(4, '0')}`, full);
  for (let i = 0; i < pad; i++) m.engineKvCacheUsage.labels({ model: `pad-${i}` }).set(0.5);
  const text = await registry.metrics();
  return { registry, series: text.split('\n').filter((l) => l && !l.startsWith('#')).length, bytes: Buffer.byteLength(text) };
}

/** Full models while they stay below `target` series, then single-series gauges up to it. */
async function sized(target) {
  let models = 1;
  while ((await build(models + 1)).series <= target) models++;
  const below = await build(models);
  const pad = Math.max(0, target - below.series);
  return { models, ...(await build(models, true, pad)) };
}

async function timeRender(registry, reps) {
  for (let i = 0; i < Math.min(50, reps); i++) await registry.metrics();
  const ms = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await registry.metrics();
    ms.push(performance.now() - t);
  }
  return { median: median(ms), p99: pct(ms, 99), max: max(ms) };
}

export async function run(ctx) {
  const { quick, log } = ctx;
  const contended = contention();
  const cases = [];
  // the default-config daemon: one model, the series the daemon preinitialises plus one GPU
  const def = await build(1, false);
  cases.push({ label: 'default daemon (1 model, 1 GPU)', models: 1, ...def });
  for (const target of [1000, 10_000]) {
    const s = await sized(target);
    cases.push({ label: `${target.toLocaleString('en-US')} series`, ...s });
  }
  const runs = quick ? 1 : 3;
  const rows = [];
  for (const c of cases) {
    const reps = c.series > 5000 ? (quick ? 50 : 300) : quick ? 200 : 2000;
    const res = [];
    for (let r = 0; r < runs; r++) res.push(await timeRender(c.registry, reps));
    c.res = res;
    log(`  ${c.label}: ${c.series} series, ${fmt(c.bytes / 1024, 0)} KiB; median ${fmt(median(res.map((x) => x.median)))} ms, p99 ${fmt(median(res.map((x) => x.p99)))} ms\n`);
    rows.push([c.label, c.models, c.series, fmt(c.bytes / 1024, 0), `${runs} × ${reps}`, spread(res.map((x) => x.median)), spread(res.map((x) => x.p99)), spread(res.map((x) => x.max), 2)]);
  }
  const k1 = cases[1];
  const k1Median = median(k1.res.map((x) => x.median));
  const ok = k1Median <= 2;
  const md = [
    '`await registry.metrics()` on a registry from `createMetrics(registry, defaultConfig())` (prom-client), in-process, after 50 warm-up renders. More series = more `model` label values, each filled like a running daemon fills its probe, prefix and engine families. Times in ms; spread = median (min–max) over runs.',
    '',
    table(['registry', 'models', 'series', 'size (KiB)', 'runs × renders', 'median', 'p99', 'max'], rows),
    '',
    `Target: ≤ 2 ms at 1k series → ${pass(ok)} (median ${fmt(k1Median)} ms, p99 ${fmt(median(k1.res.map((x) => x.p99)))} ms).`,
  ].join('\n');
  appendSection(title, md, { contention: contended, mode: quick ? '--quick' : 'full' });
  return {
    title,
    markdown: md,
    summary: [
      { metric: '/metrics render, 1k series (median / p99)', value: `${spread(k1.res.map((x) => x.median))} / ${spread(k1.res.map((x) => x.p99))} ms`, target: '≤ 2 ms', ok },
      { metric: '/metrics render, 10k series (median / p99)', value: `${spread(cases[2].res.map((x) => x.median))} / ${spread(cases[2].res.map((x) => x.p99))} ms`, target: '(info)', ok: undefined },
      { metric: '/metrics render, default daemon', value: `${cases[0].series} series: ${spread(cases[0].res.map((x) => x.median))} ms`, target: '(info)', ok: undefined },
    ],
  };
}
