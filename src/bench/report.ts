/**
 * `bench report`: one markdown report over a folder of bench outputs, with a first-cut vLLM
 * configuration derived from the measurements by the seeds' rules of thumb.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../config.js';
import { runGpuCommand } from '../gpu/command.js';
import { linearFit } from '../stats.js';
import { markdownTable, toCsv } from './analysis.js';
import { sequencesThatFit, splitCommand, runCommand, waitForRestart, type BenchIo } from './commands.js';
import { BenchUsageError, intList, type Values } from './options.js';
import { environmentMarkdown, type EnvironmentSnapshot } from '../vllm/environment.js';
import type { KvScalingRow } from './kv-scaling.js';

export interface ReportInputs {
  environment?: EnvironmentSnapshot;
  coldWarm?: { ttft: { cold: number; median: number; coldWarmFactor: number; spreadPct: number }; e2e: { median: number } };
  sweep?: { levels: Array<{ concurrency: number; outputTokPerS: number; reqPerS: number; ttft: { p95?: number }; e2e: { p95?: number }; errors: number }>; knee: { concurrency: number; reason: string } | null };
  prefix?: { rows: Array<Record<string, string | number | null>> };
  kv?: { capacity_tokens: number; block_size: number; max_model_len: number | null; bytes_per_token: number | null };
  kvScaling?: { rows: KvScalingRow[]; bytes_per_token: number | null };
  /** What the team asks for: concurrent sequences of a context length (the seeds' 8 × 4K). */
  want: { concurrency: number; context: number };
}

export interface Recommendation {
  topic: string;
  recommendation: string;
  from: string;
}

/** The seeds' rules of thumb applied to recorded measurements. Pure; each rule names its source. */
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
    if (sweep.knee) {
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
    const speedups = [...pairs.entries()].filter(([, p]) => p.cache && p.no_cache).map(([key, p]) => ({ key, speedup: Number(p.no_cache!.mean_ttft_s) / Number(p.cache!.mean_ttft_s) }));
    const best = speedups.sort((a, b) => b.speedup - a.speedup)[0];
    if (best) {
      const [regime] = best.key.split('/');
      const on = best.speedup >= 1.1;
      out.push({
        topic: 'prefix caching',
        recommendation: on
          ? `Keep prefix caching on (the V1 default): cache hits cut mean TTFT ${best.speedup.toFixed(1)}× at P=${regime} (concurrency ${best.key.split('/')[1]}); the seeds' model expects a saved fraction of about P/(P+S) for a shared prefix P and suffix S. Keep shared prefixes byte-identical and at the start of the prompt.`
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
    { topic: 'health check: KV cache', recommendation: 'Alert when vllm_probe_engine_kv_cache_usage_ratio stays above 0.95 for 5 min, with requests waiting: queueing and preemptions follow.', from: 'seeds: KV pressure row; bench kv capacity' },
    { topic: 'health check: queue', recommendation: `Alert when vllm_probe_engine_requests_waiting > 0 for 5 min${sweep?.knee ? ` (sustained load above ~${sweep.knee.concurrency} concurrent requests per replica)` : ''}.`, from: sweep?.knee ? 'bench sweep knee' : 'seeds: batching knobs' },
    { topic: 'health check: GPU memory', recommendation: 'Alert when GPU memory headroom (free / total) stays below 5 % for 5 min beyond what --gpu-memory-utilization reserves.', from: 'seeds: VRAM headroom in the health-check dashboard' },
  );
  return out;
}

function niceUp(x: number): number {
  const steps = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 5, 7.5, 10, 20, 40, 80];
  return steps.find((s) => s >= x) ?? Math.ceil(x);
}
const fmt = (s: number | undefined) => (s === undefined ? 'n/a' : s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);

/** Finds the bench outputs under DIR (any depth) by their summary.json `experiment`. */
export function readReportInputs(dir: string, want: ReportInputs['want']): { inputs: ReportInputs; found: string[] } {
  const inputs: ReportInputs = { want };
  const found: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name === 'summary.json') {
        const s = JSON.parse(readFileSync(p, 'utf8')) as { experiment?: string };
        found.push(`${s.experiment}: ${d}`);
        if (s.experiment === 'cold-warm') inputs.coldWarm = s as never;
        if (s.experiment === 'sweep') inputs.sweep = s as never;
        if (s.experiment === 'prefix') inputs.prefix = s as never;
        if (s.experiment === 'kv') inputs.kv = s as never;
        if (s.experiment === 'kv-scaling') inputs.kvScaling = s as never;
        const envFile = join(d, 'environment.json');
        if (!inputs.environment && existsSync(envFile)) inputs.environment = JSON.parse(readFileSync(envFile, 'utf8')) as EnvironmentSnapshot;
      }
    }
  };
  walk(dir);
  return { inputs, found };
}

export async function benchReport(values: Values, io: BenchIo): Promise<number> {
  const dir = values.in as string | undefined;
  if (!dir || !existsSync(dir)) throw new BenchUsageError(`--in DIR: expected a folder with bench outputs, got ${dir ?? 'nothing'}`);
  const want = { concurrency: Number(values['want-concurrency'] ?? 8), context: Number(values.context ?? 4096) };
  const { inputs, found } = readReportInputs(dir, want);
  if (found.length === 0) throw new BenchUsageError(`${dir}: no bench outputs (summary.json) found`);
  const recs = recommend(inputs);
  const lines: string[] = ['# vLLM measurement report', '', inputs.environment ? environmentMarkdown(inputs.environment) : '## Environment\n\nnot recorded\n', '## Commands run', '', ...found.map((f) => `- \`vllm-probe bench ${f.split(':')[0]}\` → ${f.split(': ')[1]}`), '', '## Key numbers', ''];
  if (inputs.coldWarm) lines.push(`- cold TTFT ${fmt(inputs.coldWarm.ttft.cold)} vs warm median ${fmt(inputs.coldWarm.ttft.median)} (${inputs.coldWarm.ttft.coldWarmFactor.toFixed(1)}×), warm spread ${inputs.coldWarm.ttft.spreadPct.toFixed(1)} %`);
  if (inputs.sweep) {
    const best = [...inputs.sweep.levels].sort((a, b) => b.outputTokPerS - a.outputTokPerS)[0];
    if (best) lines.push(`- peak throughput ${best.outputTokPerS.toFixed(1)} output tok/s (${best.reqPerS.toFixed(2)} req/s) at concurrency ${best.concurrency}; knee ${inputs.sweep.knee ? `at ${inputs.sweep.knee.concurrency}` : 'not found'}`);
  }
  if (inputs.kv) lines.push(`- KV cache ${inputs.kv.capacity_tokens} tokens (block ${inputs.kv.block_size}), ${inputs.kv.bytes_per_token === null ? 'bytes/token n/a' : `${inputs.kv.bytes_per_token.toFixed(0)} B per token`}, max_model_len ${inputs.kv.max_model_len ?? 'n/a'}`);
  if (inputs.kvScaling) lines.push(`- KV scaling over max_model_len ${inputs.kvScaling.rows.map((r) => r.max_model_len).join(', ')}: capacity ${inputs.kvScaling.rows.map((r) => r.kv_cache_capacity_tokens ?? 'n/a').join(', ')} tokens`);
  if (inputs.prefix) {
    for (const r of inputs.prefix.rows.filter((x) => x.mode === 'cache')) {
      const n = inputs.prefix.rows.find((x) => x.mode === 'no_cache' && x.prefix_regime === r.prefix_regime && x.concurrency === r.concurrency);
      if (n) lines.push(`- prefix P=${r.prefix_regime} c=${r.concurrency}: mean TTFT ${fmt(Number(n.mean_ttft_s))} → ${fmt(Number(r.mean_ttft_s))} with caching`);
    }
  }
  lines.push('', '## Observations', '');
  if (inputs.coldWarm && inputs.coldWarm.ttft.spreadPct > 25) lines.push(`- Warm TTFT is unstable (spread ${inputs.coldWarm.ttft.spreadPct.toFixed(0)} %): look for other load on the node before trusting a baseline.`);
  if (inputs.sweep?.levels.some((l) => l.errors > 0)) lines.push(`- Errors appeared at concurrency ${inputs.sweep.levels.filter((l) => l.errors > 0).map((l) => l.concurrency).join(', ')}.`);
  if (lines[lines.length - 1] === '') lines.push('- Nothing unusual in the recorded numbers.');
  lines.push('', '## First-cut configuration', '', markdownTable(['topic', 'recommendation', 'from'], recs.map((r) => [r.topic, r.recommendation, r.from])));
  const out = (values.out as string | undefined) ?? dir;
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'report.md'), `${lines.join('\n')}\n`);
  if (values.json) io.stdout(`${JSON.stringify({ found, recommendations: recs }, null, 2)}\n`);
  else io.stdout(`wrote ${join(out, 'report.md')}\n`);
  return 0;
}
