/**
 * Traffic-aware probing against the real CPU vLLM (issue 25). With a background load of real
 * requests, mode when_idle must send at least 90 % fewer synthetic requests than mode always,
 * still name a wedge (SIGSTOP of EngineCore) within three probe intervals, and name a crash
 * (EngineCore killed); on an idle vLLM it probes on schedule.
 *
 * The phases also measure the saving for docs/benchmarks.md (synthetic tokens per hour and
 * their share of the server's output): set TRAFFIC_BENCH_OUT=FILE to have the table written.
 * TRAFFIC_RECORD=FILE writes vLLM's counters as scraped in each phase (the fixture of
 * test/diagnosis/traffic.test.ts).
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseProcStat } from '../../src/host/proc.js';
import { parseExposition } from '../../src/vllm/exposition.js';
import { normaliseVllmMetrics } from '../../src/vllm/schema.js';
import { startDaemon, testConfig, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { realVllm, realVllmAvailable, type RealVllm } from './real-vllm.js';
import { streamingLoad } from '../helpers/load.js';

const PROBE_INTERVAL_S = 2;
const PROBE_TIMEOUT_S = 1.9;
const SCRAPE_INTERVAL_S = 2;
const MEASURE_MS = 30_000;
/** Closed-loop clients of the background load (the CPU server runs them all at once). */
const CONCURRENCY = 3;

let vllm: RealVllm;
const results: Record<string, Phase> = {};
const records: Record<string, Sample[]> = {};
/** Seconds from the fault to /status naming it, per fault and mode (for docs/benchmarks.md). */
const timings: Record<string, number> = {};

interface Phase {
  seconds: number;
  synthRequests: number;
  synthIn: number;
  synthOut: number;
  skipped: number;
  serverOut: number;
  realFinished: number;
}

interface Sample {
  at: number;
  success: number | null;
  ttft: number | null;
  e2e: number | null;
  gen: number | null;
  own_requests: number;
  own_tokens: number;
  /** Taken while EngineCore was stopped (SIGSTOP). */
  engine_stopped?: boolean;
}

/** Sum of every sample of `name` whose labels include `labels`. */
function total(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([^{\s]+)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

const inference = (m: string, name: string, labels: Record<string, string> = {}) => total(m, name, { probe: 'ttft', ...labels }) + total(m, name, { probe: 'prefix', ...labels });

async function engineCounters() {
  const res = await fetch(`${vllm.url}/metrics`, { signal: AbortSignal.timeout(5000) });
  return normaliseVllmMetrics(parseExposition(await res.text()));
}

/** `concurrency` clients streaming real requests back to back until stopped. */
function backgroundLoad(concurrency: number) {
  return streamingLoad({
    url: vllm.url,
    apiKey: vllm.apiKey,
    workers: concurrency,
    body: () => ({ model: 'tiny-llama', prompt: 'A user asks about the weather in the mountains today and', max_tokens: 24, ignore_eos: true }),
  });
}

function daemonConfig(mode: 'always' | 'when_idle') {
  return testConfig(vllm.url, {
    target: { api_key_env: 'VLLM_API_KEY' },
    probes: {
      ttft: { interval: `${PROBE_INTERVAL_S}s`, timeout: `${PROBE_TIMEOUT_S * 1000}ms`, mode, max_interval: '5m' },
      prefix: { enabled: true, interval: '4s', timeout: '3500ms', prefix_tokens: [256], mode, max_interval: '5m' },
      models: { interval: '2s', timeout: '1900ms' },
    },
    scrape: { interval: `${SCRAPE_INTERVAL_S}s`, timeout: '1500ms', wedge_scrapes: 4 },
    status: { failures_to_unhealthy: 2, successes_to_recover: 1, window: '1m' },
    gpu: { enabled: false },
  });
}

/** Runs a daemon in `mode` and measures what it and vLLM did over MEASURE_MS once it settled. */
async function measure(name: string, mode: 'always' | 'when_idle', settled: (d: RunningDaemon) => Promise<boolean>): Promise<RunningDaemon> {
  const d = await startDaemon(daemonConfig(mode), { env: { VLLM_API_KEY: vllm.apiKey } });
  expect(await waitFor(async () => (await d.status()).body.state === 'healthy', 90_000, 500), `${name}: ${JSON.stringify((await d.status()).body.cause)}`).toBe(true);
  expect(await waitFor(() => settled(d), 60_000, 500)).toBe(true);
  const samples: Sample[] = [];
  const sample = () => takeSample(d, samples);
  const m0 = await sample();
  const t0 = Date.now();
  while (Date.now() - t0 < MEASURE_MS) {
    await new Promise((r) => setTimeout(r, SCRAPE_INTERVAL_S * 1000));
    await sample();
  }
  const m1 = await sample();
  const first = samples[0]!;
  const last = samples.at(-1)!;
  results[name] = {
    seconds: (last.at - first.at) / 1000,
    synthRequests: inference(m1, 'vllm_probe_requests_total') - inference(m0, 'vllm_probe_requests_total'),
    synthIn: inference(m1, 'vllm_probe_probe_tokens_total', { token_type: 'input' }) - inference(m0, 'vllm_probe_probe_tokens_total', { token_type: 'input' }),
    synthOut: last.own_tokens - first.own_tokens,
    skipped: total(m1, 'vllm_probe_probes_skipped_total', { reason: 'traffic' }) - total(m0, 'vllm_probe_probes_skipped_total', { reason: 'traffic' }),
    serverOut: (last.gen ?? 0) - (first.gen ?? 0),
    realFinished: (last.success ?? 0) - (first.success ?? 0) - (last.own_requests - first.own_requests),
  };
  records[name] = samples;
  return d;
}

/** One reading of vLLM's counters and of what the daemon sent so far, appended to `into`. */
async function takeSample(d: RunningDaemon, into: Sample[], engineStopped?: boolean): Promise<string> {
  const [s, m] = await Promise.all([engineCounters(), d.metrics()]);
  into.push({
    at: Date.now(),
    success: s.requests_succeeded,
    ttft: s.histograms.time_to_first_token?.count ?? null,
    e2e: s.histograms.e2e_latency?.count ?? null,
    gen: s.generation_tokens,
    own_requests: inference(m, 'vllm_probe_requests_total'),
    own_tokens: inference(m, 'vllm_probe_probe_tokens_total', { token_type: 'output' }),
    ...(engineStopped ? { engine_stopped: true } : {}),
  });
  return m;
}

function engineCorePid(): number {
  const table = new Map<number, [number, string]>();
  for (const n of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const s = parseProcStat(readFileSync(`/proc/${n}/stat`, 'utf8'));
      if (s) table.set(Number(n), [s.ppid, s.comm]);
    } catch {
      /* exited */
    }
  }
  const tree = [Number(readFileSync(`.cache/vllm-${vllm.port}.pid`, 'utf8').trim())];
  for (let i = 0; i < tree.length; i++) for (const [pid, [ppid]] of table) if (ppid === tree[i]) tree.push(pid);
  const pid = tree.find((p) => table.get(p)?.[1].startsWith('VLLM::EngineCor'));
  expect(pid).toBeDefined();
  return pid!;
}

/** SIGSTOPs EngineCore and returns the seconds until /status says wedged (SIGCONT after). */
async function wedgeNamedAfter(d: RunningDaemon, record: Sample[]): Promise<number> {
  const engine = engineCorePid();
  process.kill(engine, 'SIGSTOP');
  const stoppedAt = Date.now();
  let named = false;
  // vLLM's counters as the stop freezes them, for the recorded fixture.
  const recorder = (async () => {
    while (!named && Date.now() - stoppedAt < 60_000) {
      await takeSample(d, record, true).catch(() => undefined);
      await new Promise((r) => setTimeout(r, SCRAPE_INTERVAL_S * 1000));
    }
  })();
  try {
    named = await waitFor(async () => (await d.status()).body.state === 'wedged', 60_000, 200);
    expect(named, JSON.stringify((await d.status()).body.cause)).toBe(true);
    return (Date.now() - stoppedAt) / 1000;
  } finally {
    named = true;
    process.kill(engine, 'SIGCONT');
    await recorder;
  }
}

/** After SIGCONT: the engine serves the load again and /status is healthy. */
async function recovered(d: RunningDaemon): Promise<void> {
  expect(await waitFor(async () => (await d.status()).body.state === 'healthy', 120_000, 500), JSON.stringify((await d.status()).body.cause)).toBe(true);
}

beforeAll(async () => {
  if (!realVllmAvailable()) throw new Error('real vLLM venv missing: run scripts/real-vllm/setup (npm run test:e2e does)');
  vllm = await realVllm();
  await vllm.start();
}, 600_000);

afterAll(async () => {
  await vllm?.stop();
  const r = results;
  if (process.env.TRAFFIC_RECORD) writeFileSync(process.env.TRAFFIC_RECORD, `${JSON.stringify(records, null, 1)}\n`);
  if (process.env.TRAFFIC_BENCH_OUT && r['busy always']) {
    const capacity = r['busy always'].serverOut / r['busy always'].seconds; // output tok/s under the load
    const row = (name: string) => {
      const p = r[name];
      if (!p) return `| ${name} | not run | | | | |`;
      const perHour = (v: number) => Math.round((v / p.seconds) * 3600);
      return `| ${name} | ${p.synthRequests} in ${Math.round(p.seconds)} s (${p.skipped} skipped) | ${perHour(p.synthRequests)} | ${perHour(p.synthIn)} in / ${perHour(p.synthOut)} out | ${((p.synthOut / p.seconds / capacity) * 100).toFixed(2)} % | ${p.realFinished} real requests, ${Math.round(p.serverOut / p.seconds)} tok/s |`;
    };
    const lines = [
      `| phase | synthetic requests | per hour | synthetic tokens per hour | share of output capacity (${capacity.toFixed(1)} tok/s) | vLLM served meanwhile |`,
      '|---|---|---|---|---|---|',
      ...['idle always', 'idle when_idle', 'busy always', 'busy when_idle'].map(row),
      '',
      ...Object.entries(timings).map(([k, v]) => `- ${k}: ${v.toFixed(1)} s`),
    ];
    writeFileSync(process.env.TRAFFIC_BENCH_OUT, `${lines.join('\n')}\n`);
  }
}, 120_000);

describe('when_idle on the real CPU vLLM', () => {
  test('idle: both modes probe on schedule', async () => {
    for (const mode of ['always', 'when_idle'] as const) {
      const d = await measure(`idle ${mode}`, mode, async () => true);
      await d.stop();
    }
    const always = results['idle always']!;
    const idle = results['idle when_idle']!;
    expect(idle.skipped).toBe(0);
    expect(idle.synthRequests).toBeGreaterThanOrEqual(0.8 * always.synthRequests);
    expect(always.synthRequests).toBeGreaterThanOrEqual(MEASURE_MS / 1000 / PROBE_INTERVAL_S);
  });

  test('busy: at least 90 % fewer synthetic requests than always, and a wedge still named within three probe intervals', async () => {
    const load = backgroundLoad(CONCURRENCY);
    try {
      const always = await measure('busy always', 'always', async () => true);
      timings['wedge named under load, mode always'] = await wedgeNamedAfter(always, []);
      await recovered(always);
      await always.stop();

      const idle = await measure('busy when_idle', 'when_idle', async (d) => total(await d.metrics(), 'vllm_probe_probes_skipped_total', { probe: 'ttft', reason: 'traffic' }) >= 2);
      const a = results['busy always']!;
      const w = results['busy when_idle']!;
      expect(a.realFinished).toBeGreaterThan(20);
      expect(w.synthRequests, JSON.stringify({ a, w })).toBeLessThanOrEqual(0.1 * a.synthRequests);
      const line = (await idle.status()).body.checks.find((c) => c.name === 'probe_ttft');
      expect(line?.reason).toMatch(/^skipped: real traffic served \d+ requests? in the last \d+ s \(vLLM's counters/);

      const took = await wedgeNamedAfter(idle, records['busy when_idle']!);
      timings['wedge named under load, mode when_idle'] = took;
      // Three probe intervals and two probe timeouts (as test/e2e/wedge.test.ts), plus the two
      // scrapes that must see vLLM's counters stop before the probe resumes.
      expect(took).toBeLessThanOrEqual(3 * PROBE_INTERVAL_S + 2 * PROBE_TIMEOUT_S + 2 * SCRAPE_INTERVAL_S);
      await recovered(idle);

      // A crash under load: the engine is killed; the probe resumes and the state says so.
      const engine = engineCorePid();
      process.kill(engine, 'SIGKILL');
      const killedAt = Date.now();
      const named = await waitFor(async () => ['crashed', 'down', 'starting', 'failing'].includes((await idle.status()).body.state), 60_000, 200);
      expect(named, JSON.stringify((await idle.status()).body)).toBe(true);
      timings[`crash (EngineCore SIGKILL) named under load, mode when_idle, as "${(await idle.status()).body.state}"`] = (Date.now() - killedAt) / 1000;
      expect((Date.now() - killedAt) / 1000).toBeLessThanOrEqual(3 * PROBE_INTERVAL_S + 2 * PROBE_TIMEOUT_S + 2 * SCRAPE_INTERVAL_S);
      await idle.stop();
    } finally {
      await load.stop();
    }
  });
});
